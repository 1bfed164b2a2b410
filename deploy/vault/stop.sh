#!/usr/bin/env bash
# stop.sh DIR: stops the Vault dev server that start.sh started in DIR (by the
# PID in DIR/vault.pid): SIGTERM, then SIGKILL after 10 s. Stopping a server
# that is not running is not an error. A dev server keeps nothing: its data is
# gone once it stops.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
pidfile=$1/vault.pid
[ -s "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
# Only signal the PID if it is still our vault, not a recycled PID.
if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'vault.* server -dev'; then
  kill -TERM "$pid"
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "vault/stop: pid $pid ignored SIGTERM for 10s; sending SIGKILL" >&2
    kill -KILL "$pid"
  fi
fi
rm -f "$pidfile"
