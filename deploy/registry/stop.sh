#!/usr/bin/env bash
# stop.sh DIR: stops the test registry that start.sh started in DIR (by the
# PID in DIR/registry.pid): SIGTERM, then SIGKILL after 10 s. Stopping a
# registry that is not running is not an error. The data stays in DIR/data.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
pidfile=$1/registry.pid
[ -s "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
# Only signal the PID if it is still our registry, not a recycled PID.
if kill -0 "$pid" 2>/dev/null && grep -q registry "/proc/$pid/cmdline" 2>/dev/null; then
  kill -TERM "$pid"
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "registry/stop: pid $pid ignored SIGTERM for 10s; sending SIGKILL" >&2
    kill -KILL "$pid"
  fi
fi
rm -f "$pidfile"
