# Sourced by the benchmarks: a real test node, a control plane and the node's
# enrolled agent, and the timing helpers. The caller sets NODE, BIN and work
# (a scratch directory) and removes them on exit (cleanup_fleet).

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b-a}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }

pids=()
cleanup_fleet() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  deploy/testnode/down.sh "$NODE" 2>/dev/null || true
  rm -rf "$work"
}

# start_node: the test node's containers; sets url, pg_port and redis_port.
start_node() {
  url=$(deploy/testnode/up.sh "$NODE" 2>/dev/null)
  pg_port=$(docker port "$NODE-postgres" 5432/tcp | head -n1 | sed 's/.*://')
  redis_port=$(docker port "$NODE-redis" 6379/tcp | head -n1 | sed 's/.*://')
}

ctl() { "$BIN/forlockctl" --config "$work/cp/forlockctl.yaml" --timeout 60m "$@"; }

# start_fleet [AGENT FLAG...]: a control plane on a random loopback port and
# the node's agent, named bench, backing up to $work/backups; returns once
# the agent is online; sets agent_pid.
start_fleet() {
  local port=$((20000 + RANDOM % 20000))
  "$BIN/forlock-controlplane" --data-dir "$work/cp" --listen "127.0.0.1:$port" --log-format text >"$work/cp.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$work/cp/forlockctl.yaml" ] && ctl nodes list >/dev/null 2>&1 && break; sleep 0.1; done
  (umask 077; ctl tokens create -q >"$work/token"; echo "postgres://forlock:forlock-test@127.0.0.1:$pg_port/forlock?sslmode=disable" >"$work/dsn")
  mkdir -p "$work/backups"
  "$BIN/forlock-agent" --control-plane "127.0.0.1:$port" --ca-file "$work/cp/ca.crt" --join-token-file "$work/token" \
    --state-dir "$work/agent" --name bench --containers "$NODE-api,$NODE-postgres,$NODE-redis,$NODE-nginx" \
    --api-url "$url" --api-insecure-skip-verify --postgres-dsn-file "$work/dsn" --redis-addr "127.0.0.1:$redis_port" \
    --backup-dirs "$work/backups" --compose-dir "$PWD/deploy/testnode" --log-format text "$@" >"$work/agent.log" 2>&1 &
  agent_pid=$!
  pids+=("$agent_pid")
  for _ in $(seq 200); do ctl nodes list --state online -o json | grep -q '"bench"' && break; sleep 0.1; done
}

# agent_cpu: CPU seconds (user + system) the agent spent, a figure the
# machine's load does not stretch as it stretches wall time.
agent_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$agent_pid/stat"; }

# phases FROM_LINE T0: each "restore:" event of the agent's log after line
# FROM_LINE, with its time in seconds after T0.
phases() {
  tail -n +"$(($1 + 1))" "$work/agent.log" | grep 'msg="restore: ' |
    sed -E 's/^time=([^ ]+) .*msg="restore: ([^"]*)".*/\1 \2/' |
    while read -r ts what; do printf '%s at %s s; ' "$what" "$(secs "$2" "$(date -d "$ts" +%s.%N)")"; done
}
