#!/usr/bin/env bash
# Brings up a local Forlock Fleet: a control plane, one Forlock test node on
# the local Docker Engine (deploy/testnode: the guide's forlock-api,
# forlock-postgres, forlock-redis, forlock-nginx) and its agent; shows
# `forlockctl status` and a health check, then a backup and restore round
# trip (load vault rows, back up, delete rows, restore --latest, compare the
# rows' checksum); keeps running until Ctrl-C
# (DEMO_ONESHOT=1: exit after showing it). Files live under .demo/; the test
# node is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
DEMO=${DEMO_DIR:-.demo}
PORT=${DEMO_PORT:-7443}
NODE=${DEMO_NODE:-forlock}
rm -rf "$DEMO"
mkdir -p "$DEMO"
chmod 700 "$DEMO"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  deploy/testnode/down.sh "$NODE" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

echo "building the test node images (cached by content hash)..."
deploy/testnode/build-images.sh >"$DEMO/build-images.log" 2>&1 || { tail -30 "$DEMO/build-images.log"; exit 1; }
url=$(deploy/testnode/up.sh "$NODE" 2>"$DEMO/testnode.log") || { cat "$DEMO/testnode.log"; exit 1; }
pg_port=$(docker port "$NODE-postgres" 5432/tcp | head -n1 | sed 's/.*://')
redis_port=$(docker port "$NODE-redis" 6379/tcp | head -n1 | sed 's/.*://')
echo "test node $NODE up: $url"

"$BIN/forlock-controlplane" --data-dir "$DEMO/controlplane" --listen "127.0.0.1:$PORT" \
  --log-format text >"$DEMO/controlplane.log" 2>&1 &
pids+=($!)
ctl() { "$BIN/forlockctl" --config "$DEMO/controlplane/forlockctl.yaml" "$@"; }

for _ in $(seq 100); do [ -s "$DEMO/controlplane/forlockctl.yaml" ] && ctl nodes list >/dev/null 2>&1 && break; sleep 0.1; done
ctl nodes list >/dev/null || { cat "$DEMO/controlplane.log"; echo "control plane did not start" >&2; exit 1; }
echo "control plane up on 127.0.0.1:$PORT (data in $DEMO/controlplane)"

umask 077
ctl tokens create --ttl 10m --label env=demo --description "demo agent" -q >"$DEMO/join-token"
echo "postgres://forlock:forlock-test@127.0.0.1:$pg_port/forlock?sslmode=disable" >"$DEMO/postgres-dsn"
"$BIN/forlock-agent" --control-plane "127.0.0.1:$PORT" --ca-file "$DEMO/controlplane/ca.crt" \
  --join-token-file "$DEMO/join-token" --state-dir "$DEMO/agent" --name demo-node-1 \
  --containers "$NODE-api,$NODE-postgres,$NODE-redis,$NODE-nginx" \
  --api-url "$url" --api-insecure-skip-verify \
  --postgres-dsn-file "$DEMO/postgres-dsn" --redis-addr "127.0.0.1:$redis_port" \
  --backup-dirs "$(cd "$DEMO" && pwd)/backups" --compose-dir "$(pwd)/deploy/testnode" \
  --log-format text >"$DEMO/agent.log" 2>&1 &
pids+=($!)

for _ in $(seq 150); do ctl nodes list --state online -o json | grep -q '"checks"' && break; sleep 0.2; done
ctl nodes list --state online -o json | grep -q demo-node-1 || { echo "agent did not come online; see $DEMO/agent.log" >&2; exit 1; }
echo
ctl status
echo
ctl nodes list -o json >"$DEMO/nodes.json"
ctl health --node demo-node-1

echo
echo "backup and restore round trip: loading 20 MB of vault rows..."
docker exec "$NODE-api" forlockapi load --mb 20 >/dev/null 2>&1
rows() {
  docker exec "$NODE-api" forlockapi summary | tr -d ' \n' |
    sed -E 's/.*"items":([0-9]+).*"checksum":"([0-9a-f]+)".*/\1 rows, checksum \2/'
}
before=$(rows)
echo "rows before the backup: $before"
ctl backup --node demo-node-1
echo
echo "deleting half the rows..."
docker exec -u postgres "$NODE-postgres" psql -X -q -d forlock -c "DELETE FROM vault_items WHERE id % 2 = 0"
echo "rows now: $(rows)"
echo
ctl restore --latest --node demo-node-1 --yes
after=$(rows)
if [ "$after" != "$before" ]; then
  echo "round trip FAILED: rows after the restore: $after, before the backup: $before" >&2
  exit 1
fi
echo "rows after the restore: $after: every row as at the backup"
echo
ctl restore --list --node demo-node-1

if [ "${DEMO_ONESHOT:-}" = 1 ]; then exit 0; fi
echo
echo "Try: $BIN/forlockctl --config $DEMO/controlplane/forlockctl.yaml logs api --node demo-node-1 -f"
echo "Logs: $DEMO/controlplane.log $DEMO/agent.log. Ctrl-C stops everything and removes the test node."
wait
