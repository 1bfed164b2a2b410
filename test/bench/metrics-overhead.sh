#!/usr/bin/env bash
# metrics-overhead.sh: the control plane's CPU and memory with /metrics off
# and on, at BENCH_AGENTS (default 1000) simulated agents (test/loadgen, in
# its own process), in one run. With metrics on, /metrics is scraped every
# SCRAPE seconds (default 15, Prometheus's default interval) for the
# measured window. Per side: a fresh control plane, all agents online, 20 s
# to settle, then CPU seconds (user + system, from /proc) over WINDOW seconds
# (default 120) and the RSS at the end. Method and figures: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
agents=${BENCH_AGENTS:-1000}
window=${WINDOW:-120}
scrape=${SCRAPE:-15}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/loadgen" ./test/loadgen
# Agents dial from 40 loopback addresses, as a fleet comes from many hosts:
# the control plane caps connections without a certificate per address.
sources=$(seq -s, -f '127.0.0.%g' 2 41)
hz=$(getconf CLK_TCK)
cpu() { awk -v hz="$hz" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
rss() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

side() { # side off|on
  local dir="$work/$1" port=$((20000 + RANDOM % 20000)) mport=$((40000 + RANDOM % 20000)) extra=()
  [ "$1" = on ] && extra=(--metrics-listen "127.0.0.1:$mport")
  "$BIN/forlock-controlplane" --data-dir "$dir" --listen "127.0.0.1:$port" --log-format text "${extra[@]}" >"$work/cp-$1.log" 2>&1 &
  local cp=$!
  pids+=("$cp")
  local ctl=("$BIN/forlockctl" --config "$dir/forlockctl.yaml")
  for _ in $(seq 200); do [ -s "$dir/forlockctl.yaml" ] && "${ctl[@]}" nodes list >/dev/null 2>&1 && break; sleep 0.1; done
  (umask 077; "${ctl[@]}" tokens create -q --max-uses "$agents" --ttl 1h >"$work/token-$1")
  "$work/loadgen" --control-plane "127.0.0.1:$port" --ca-file "$dir/ca.crt" --token-file "$work/token-$1" \
    --agents "$agents" --rate 200 --source-addrs "$sources" >"$work/loadgen-$1.log" 2>&1 &
  local lg=$!
  pids+=("$lg")
  for _ in $(seq 1200); do grep -q '^online:' "$work/loadgen-$1.log" && break; sleep 0.5; done
  grep -E '^online:|enroll:' "$work/loadgen-$1.log" >&2
  grep -q '^online:' "$work/loadgen-$1.log" || { echo "agents never all online: $(tail -3 "$work/loadgen-$1.log")" >&2; exit 1; }
  sleep 20
  local c0 c1 scrapes=0 bytes=0 t0 t1
  c0=$(cpu "$cp")
  t0=$(date +%s)
  while [ $(($(date +%s) - t0)) -lt "$window" ]; do
    if [ "$1" = on ]; then
      bytes=$(curl -sf "http://127.0.0.1:$mport/metrics" | wc -c)
      scrapes=$((scrapes + 1))
    fi
    sleep "$scrape"
  done
  c1=$(cpu "$cp")
  t1=$(date +%s)
  printf '%-4s agents %d: control plane CPU %.1f %% of a core over %d s, RSS %d MiB' "$1" "$agents" \
    "$(awk -v a="$c0" -v b="$c1" -v s=$((t1 - t0)) 'BEGIN{print 100*(b-a)/s}')" $((t1 - t0)) "$(rss "$cp")"
  [ "$1" = on ] && printf ', %d scrapes of %d KiB' "$scrapes" $((bytes / 1024))
  echo
  kill "$lg" "$cp" 2>/dev/null || true
  wait "$lg" "$cp" 2>/dev/null || true
}
echo "metrics overhead at $agents agents, heartbeats every 10 s, scrape every ${scrape} s"
side off
side on
