#!/usr/bin/env bash
# Brings up a local Forlock Fleet: one control plane and one enrolled agent on
# loopback, shows the fleet, and keeps running until Ctrl-C (DEMO_ONESHOT=1:
# exit after showing it). Everything lives under .demo/ and is removed first.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
DEMO=${DEMO_DIR:-.demo}
PORT=${DEMO_PORT:-7443}
rm -rf "$DEMO"
mkdir -p "$DEMO"
chmod 700 "$DEMO"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$BIN/forlock-controlplane" --data-dir "$DEMO/controlplane" --listen "127.0.0.1:$PORT" \
  --log-format text >"$DEMO/controlplane.log" 2>&1 &
pids+=($!)
ctl() { "$BIN/forlockctl" --config "$DEMO/controlplane/forlockctl.yaml" "$@"; }

for _ in $(seq 100); do [ -s "$DEMO/controlplane/forlockctl.yaml" ] && ctl nodes list >/dev/null 2>&1 && break; sleep 0.1; done
ctl nodes list >/dev/null || { cat "$DEMO/controlplane.log"; echo "control plane did not start" >&2; exit 1; }
echo "control plane up on 127.0.0.1:$PORT (data in $DEMO/controlplane)"

umask 077
ctl tokens create --ttl 10m --label env=demo --description "demo agent" -q >"$DEMO/join-token"
"$BIN/forlock-agent" --control-plane "127.0.0.1:$PORT" --ca-file "$DEMO/controlplane/ca.crt" \
  --join-token-file "$DEMO/join-token" --state-dir "$DEMO/agent" --name demo-node-1 \
  --log-format text >"$DEMO/agent.log" 2>&1 &
pids+=($!)

for _ in $(seq 100); do ctl nodes list --state online -o json | grep -q demo-node-1 && break; sleep 0.1; done
echo
ctl nodes list
echo
ctl nodes list -o json
ctl nodes list --state online -o json | grep -q demo-node-1 || { echo "agent did not come online; see $DEMO/agent.log" >&2; exit 1; }

if [ "${DEMO_ONESHOT:-}" = 1 ]; then exit 0; fi
echo
echo "Try: $BIN/forlockctl --config $DEMO/controlplane/forlockctl.yaml nodes get demo-node-1"
echo "Logs: $DEMO/controlplane.log $DEMO/agent.log. Ctrl-C stops both."
wait
