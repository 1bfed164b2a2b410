#!/usr/bin/env bash
# start.sh DIR PORT: starts the S3-compatible test server (versitygw, built by
# build.sh) on 127.0.0.1:PORT with the posix backend, and prints its endpoint
# (127.0.0.1:PORT) once it serves requests.
#   DIR/data           buckets (one directory each) and objects
#   DIR/versitygw.pid  the server's PID, used by stop.sh
#   DIR/versitygw.log  its output
# Root credentials come from FORLOCK_S3_ACCESS_KEY / FORLOCK_S3_SECRET_KEY
# (test defaults below; passed in the environment, never on the command line).
# Ready means: the PID is alive, it owns the listening socket on PORT (so a
# different process on a taken port does not count), and GET /health answers.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log() { echo "s3/start: $*" >&2; }
[ $# -eq 2 ] || { echo "usage: $0 DIR PORT" >&2; exit 2; }
dir=$1 port=$2
case $port in '' | *[!0-9]*) log "PORT must be a number, got '$port'"; exit 2 ;; esac
version=${VERSITYGW_VERSION:-v1.8.0}
bin=${FORLOCK_S3_CACHE:-${FORLOCK_BIN_CACHE:-/var/cache/forlock-fleet/bin}}/versitygw-$version
timeout=${FORLOCK_S3_START_TIMEOUT:-30}
[ -x "$bin" ] || { log "$bin is missing: run $here/build.sh first"; exit 1; }

mkdir -p "$dir/data"
dir=$(cd "$dir" && pwd)
pidfile=$dir/versitygw.pid logfile=$dir/versitygw.log
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  log "already running in $dir (pid $(cat "$pidfile")); stop it with $here/stop.sh $dir"
  exit 1
fi

ROOT_ACCESS_KEY=${FORLOCK_S3_ACCESS_KEY:-forlock-test} \
  ROOT_SECRET_KEY=${FORLOCK_S3_SECRET_KEY:-forlock-test-secret} \
  setsid "$bin" --port "127.0.0.1:$port" --health /health --quiet \
  posix "$dir/data" </dev/null >"$logfile" 2>&1 &
pid=$!
echo "$pid" >"$pidfile"

# shellcheck source=../lib/owns-port.sh
. "$here/../lib/owns-port.sh"

deadline=$((SECONDS + timeout))
while :; do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pidfile"
    log "versitygw exited during start-up (port $port taken?); last lines of $logfile:"
    tail -n 20 "$logfile" >&2
    exit 1
  fi
  if owns_port "$pid" "$port" && curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/health" 2>/dev/null; then
    break
  fi
  if [ $SECONDS -ge $deadline ]; then
    log "versitygw (pid $pid) not ready on 127.0.0.1:$port after ${timeout}s; stopping it. Log: $logfile"
    "$here/stop.sh" "$dir" || true
    exit 1
  fi
  sleep 0.1
done
log "versitygw $version ready on 127.0.0.1:$port (pid $pid, data $dir/data)"
echo "127.0.0.1:$port"
