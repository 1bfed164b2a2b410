#!/usr/bin/env bash
# up.sh [NAME]: starts a Forlock test node (compose project NAME, containers
# NAME-api, NAME-postgres, NAME-redis, NAME-nginx; NAME defaults to forlock)
# and waits until every container is healthy and /api/v1/health answers 200
# through nginx. HTTPS_PORT / HTTP_PORT pick the loopback ports (default: free
# ones chosen by Docker). UP_TIMEOUT (seconds, default 120) bounds the wait.
# Images come from build-images.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=${1:-forlock}
export NODE_NAME=$name
timeout=${UP_TIMEOUT:-120}
compose=(docker-compose -p "$name" -f "$here/docker-compose.yml")

t0=$(date +%s.%N)
elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }

"${compose[@]}" up -d --no-build >&2

deadline=$((SECONDS + timeout))
for svc in postgres redis api nginx; do
  c=$name-$svc
  until [ "$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$c" 2>/dev/null)" = healthy ]; do
    if [ $SECONDS -ge $deadline ]; then
      echo "up.sh: $c not healthy after ${timeout}s" >&2
      docker logs --tail 30 "$c" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
done

port=$(docker port "$name-nginx" 443/tcp | head -n1 | sed 's/.*://')
http_port=$(docker port "$name-nginx" 80/tcp | head -n1 | sed 's/.*://')
url=https://127.0.0.1:$port
until [ "$(curl -ks -o /dev/null -w '%{http_code}' "$url/api/v1/health")" = 200 ]; do
  if [ $SECONDS -ge $deadline ]; then
    echo "up.sh: $url/api/v1/health not 200 after ${timeout}s" >&2
    exit 1
  fi
  sleep 0.2
done
echo "up.sh: node $name healthy in $(elapsed)s: $url (http on 127.0.0.1:$http_port)" >&2
# stdout: the node's HTTPS URL, for scripts.
echo "$url"
