#!/usr/bin/env bash
# start.sh DIR PORT: starts the HashiCorp Vault dev server (built by build.sh)
# on 127.0.0.1:PORT and prints its address (http://127.0.0.1:PORT) once it
# serves requests. A dev server keeps everything in memory, starts unsealed
# with a KV v2 engine at secret/, and forgets it all when stopped: for tests
# only.
#   DIR/vault.pid  the server's PID, used by stop.sh
#   DIR/vault.log  its output (mode 0600: dev mode prints the unseal key)
#   DIR/home       the server's HOME, so nothing is written to the caller's
# The root token comes from VAULT_DEV_ROOT_TOKEN_ID (test default below),
# passed in the environment, never on the command line.
# Ready means: the PID is alive, it owns the listening socket on PORT (so a
# different process on a taken port does not count), and GET /v1/sys/health
# answers 200 (initialized, unsealed, active).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log() { echo "vault/start: $*" >&2; }
[ $# -eq 2 ] || { echo "usage: $0 DIR PORT" >&2; exit 2; }
dir=$1 port=$2
case $port in '' | *[!0-9]*) log "PORT must be a number, got '$port'"; exit 2 ;; esac
version=${VAULT_VERSION:-v1.21.0}
bin=${FORLOCK_BIN_CACHE:-/var/cache/forlock-fleet/bin}/vault-$version
timeout=${FORLOCK_VAULT_START_TIMEOUT:-30}
[ -x "$bin" ] || { log "$bin is missing: run $here/build.sh first (10-16 minutes the first time)"; exit 1; }

umask 077
mkdir -p "$dir/home"
dir=$(cd "$dir" && pwd)
pidfile=$dir/vault.pid logfile=$dir/vault.log
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  log "already running in $dir (pid $(cat "$pidfile")); stop it with $here/stop.sh $dir"
  exit 1
fi

# -dev-no-store-token: do not write the root token to ~/.vault-token.
# VAULT_ADDR and VAULT_TOKEN of the caller must not leak into the server.
env -u VAULT_ADDR -u VAULT_TOKEN -u VAULT_NAMESPACE \
  HOME="$dir/home" \
  VAULT_DEV_ROOT_TOKEN_ID="${VAULT_DEV_ROOT_TOKEN_ID:-forlock-test-root}" \
  setsid "$bin" server -dev -dev-no-store-token \
  -dev-listen-address="127.0.0.1:$port" </dev/null >"$logfile" 2>&1 &
pid=$!
echo "$pid" >"$pidfile"

# shellcheck source=../lib/owns-port.sh
. "$here/../lib/owns-port.sh"

deadline=$((SECONDS + timeout))
while :; do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pidfile"
    log "vault exited during start-up (port $port taken?); last lines of $logfile:"
    # The log holds the unseal key and root token: show only error lines.
    grep -iE 'error|fail|panic' "$logfile" | tail -n 20 >&2 || true
    exit 1
  fi
  if owns_port "$pid" "$port" && curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/v1/sys/health" 2>/dev/null; then
    break
  fi
  if [ $SECONDS -ge $deadline ]; then
    log "vault (pid $pid) not ready on 127.0.0.1:$port after ${timeout}s; stopping it. Log: $logfile"
    "$here/stop.sh" "$dir" || true
    exit 1
  fi
  sleep 0.1
done
log "vault $version dev server ready on 127.0.0.1:$port (pid $pid)"
echo "http://127.0.0.1:$port"
