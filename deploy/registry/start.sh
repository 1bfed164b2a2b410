#!/usr/bin/env bash
# start.sh DIR PORT: starts the test image registry (CNCF Distribution, built
# by build.sh) on 127.0.0.1:PORT with filesystem storage and htpasswd basic
# auth, and prints its endpoint (127.0.0.1:PORT) once it serves requests.
#   DIR/data          repositories, layers and manifests
#   DIR/config.yml    the registry's configuration (written here)
#   DIR/htpasswd      the bcrypt password file (written here, mode 0600)
#   DIR/registry.pid  the server's PID, used by stop.sh
#   DIR/registry.log  its output
# Credentials come from FORLOCK_REGISTRY_USER / FORLOCK_REGISTRY_PASSWORD
# (test defaults below; the password goes to the hashing program on stdin,
# never on a command line). FORLOCK_REGISTRY_AUTH=0 starts it without auth.
# Docker trusts registries on 127.0.0.0/8 over plain HTTP, so no TLS.
# Ready means: the PID is alive, it owns the listening socket on PORT (so a
# different process on a taken port does not count), and GET /v2/ answers
# (401 with auth, 200 without).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
log() { echo "registry/start: $*" >&2; }
[ $# -eq 2 ] || { echo "usage: $0 DIR PORT" >&2; exit 2; }
dir=$1 port=$2
case $port in '' | *[!0-9]*) log "PORT must be a number, got '$port'"; exit 2 ;; esac
version=${REGISTRY_VERSION:-v3.1.2}
bin=${FORLOCK_BIN_CACHE:-/var/cache/forlock-fleet/bin}/registry-$version
timeout=${FORLOCK_REGISTRY_START_TIMEOUT:-30}
auth=${FORLOCK_REGISTRY_AUTH:-1}
user=${FORLOCK_REGISTRY_USER:-forlock-test}
[ -x "$bin" ] || { log "$bin is missing: run $here/build.sh first"; exit 1; }

mkdir -p "$dir/data"
dir=$(cd "$dir" && pwd)
pidfile=$dir/registry.pid logfile=$dir/registry.log
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  log "already running in $dir (pid $(cat "$pidfile")); stop it with $here/stop.sh $dir"
  exit 1
fi

auth_yaml=""
if [ "$auth" != 0 ]; then
  umask 077
  printf '%s' "${FORLOCK_REGISTRY_PASSWORD:-forlock-test-secret}" |
    (cd "$repo" && go run ./test/htpasswd "$user") >"$dir/htpasswd.new"
  mv "$dir/htpasswd.new" "$dir/htpasswd"
  umask 022
  auth_yaml="auth:
  htpasswd:
    realm: forlock-test-registry
    path: $dir/htpasswd"
fi
cat >"$dir/config.yml" <<YAML
# Written by deploy/registry/start.sh; rewritten at every start.
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: $(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
$auth_yaml
YAML

# OTEL_TRACES_EXPORTER=none: the registry would otherwise export traces to
# an OTLP collector on localhost.
OTEL_TRACES_EXPORTER=none setsid "$bin" serve "$dir/config.yml" </dev/null >"$logfile" 2>&1 &
pid=$!
echo "$pid" >"$pidfile"

# shellcheck source=../lib/owns-port.sh
. "$here/../lib/owns-port.sh"

deadline=$((SECONDS + timeout))
while :; do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pidfile"
    log "registry exited during start-up (port $port taken?); last lines of $logfile:"
    tail -n 20 "$logfile" >&2
    exit 1
  fi
  if owns_port "$pid" "$port"; then
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/v2/" 2>/dev/null || true)
    case $code in 200 | 401) break ;; esac
  fi
  if [ $SECONDS -ge $deadline ]; then
    log "registry (pid $pid) not ready on 127.0.0.1:$port after ${timeout}s; stopping it. Log: $logfile"
    "$here/stop.sh" "$dir" || true
    exit 1
  fi
  sleep 0.1
done
mode="user $user"
[ "$auth" != 0 ] || mode="no auth"
log "registry $version ready on 127.0.0.1:$port (pid $pid, $mode, data $dir/data)"
echo "127.0.0.1:$port"
