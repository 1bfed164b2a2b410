#!/usr/bin/env bash
# Benchmark: backup and restore of a Forlock database of BENCH_DB_MB MB (default
# 1000) on a real test node, side by side in one run:
#   floor  backup: docker exec pg_dump -Fc -Z0 > /dev/null (the dump alone,
#          through docker exec as ours, nothing stored); also reported: the
#          same inside the container (no transport) and piped through cat.
#          restore: pg_restore --single-transaction of that dump from a file
#          already in the container, API stopped (the server's share alone)
#   guide  the operations guide's manual procedure: pg_dump -F c -f in the
#          container, docker cp, gzip; restore: stop API, gunzip | pg_restore -c,
#          start API
#   ours   forlockctl backup --only postgres (zstd + AES-256-GCM + SHA-256 to a
#          host dir) and forlockctl restore --latest --only postgres (verify,
#          stop API, pg_restore in one transaction, start API, wait healthy);
#          then the same with --pg-format physical (pg_basebackup; restore:
#          verify, stage beside the live data, stop API and postgres, swap
#          the data directory, start both, wait healthy); the restores'
#          phases are taken from the agent's log
# Prints seconds, ratios and the load average. Method: docs/benchmarks.md.
# Needs make build and the test node images (deploy/testnode/build-images.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
MB=${BENCH_DB_MB:-1000}
NODE=${BENCH_NODE:-fl-bench}
BIN=${BIN:-bin}
work=$(mktemp -d /var/tmp/forlock-bench.XXXXXX)
port=$((20000 + RANDOM % 20000))
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  deploy/testnode/down.sh "$NODE" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b-a}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }

url=$(deploy/testnode/up.sh "$NODE" 2>/dev/null)
pg_port=$(docker port "$NODE-postgres" 5432/tcp | head -n1 | sed 's/.*://')
redis_port=$(docker port "$NODE-redis" 6379/tcp | head -n1 | sed 's/.*://')
echo "loading ${MB} MB into $NODE ..." >&2
docker exec "$NODE-api" forlockapi load --mb "$MB" >/dev/null 2>&1
size=$(docker exec -u postgres "$NODE-postgres" psql -X -At -d forlock -c "select pg_size_pretty(pg_database_size('forlock'))")
want=$(docker exec "$NODE-api" forlockapi summary)

"$BIN/forlock-controlplane" --data-dir "$work/cp" --listen "127.0.0.1:$port" --log-format text >"$work/cp.log" 2>&1 &
pids+=($!)
ctl() { "$BIN/forlockctl" --config "$work/cp/forlockctl.yaml" --timeout 10m "$@"; }
for _ in $(seq 100); do [ -s "$work/cp/forlockctl.yaml" ] && ctl nodes list >/dev/null 2>&1 && break; sleep 0.1; done
(umask 077; ctl tokens create -q >"$work/token"; echo "postgres://forlock:forlock-test@127.0.0.1:$pg_port/forlock?sslmode=disable" >"$work/dsn")
mkdir -p "$work/backups"
"$BIN/forlock-agent" --control-plane "127.0.0.1:$port" --ca-file "$work/cp/ca.crt" --join-token-file "$work/token" \
  --state-dir "$work/agent" --name bench --containers "$NODE-api,$NODE-postgres,$NODE-redis,$NODE-nginx" \
  --api-url "$url" --api-insecure-skip-verify --postgres-dsn-file "$work/dsn" --redis-addr "127.0.0.1:$redis_port" \
  --backup-dirs "$work/backups" --compose-dir "$PWD/deploy/testnode" --log-format text >"$work/agent.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do ctl nodes list --state online -o json | grep -q '"bench"' && break; sleep 0.1; done

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(now); docker exec -u postgres "$NODE-postgres" sh -c 'pg_dump -Fc -Z0 forlock >/dev/null'; t1=$(now)
floor_inside=$(secs "$t0" "$t1")
t0=$(now); docker exec -u postgres "$NODE-postgres" pg_dump -Fc -Z0 forlock | cat >/dev/null; t1=$(now)
floor_cat=$(secs "$t0" "$t1")
t0=$(now); docker exec -u postgres "$NODE-postgres" pg_dump -Fc -Z0 forlock >/dev/null; t1=$(now)
floor=$(secs "$t0" "$t1")

mkdir -p "$work/guide"
t0=$(now)
docker exec -u postgres "$NODE-postgres" pg_dump -U postgres -F c -f /tmp/backup.dump forlock
docker cp "$NODE-postgres:/tmp/backup.dump" "$work/guide/"
gzip "$work/guide/backup.dump"
t1=$(now)
docker exec "$NODE-postgres" rm -f /tmp/backup.dump
guide_backup=$(secs "$t0" "$t1")
guide_size=$(du -m "$work/guide/backup.dump.gz" | cut -f1)

agent_pid=${pids[1]}
# CPU seconds (user + system) the agent spent, a figure the machine's load
# does not stretch as it stretches wall time.
agent_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$agent_pid/stat"; }
c0=$(agent_cpu)
t0=$(now); ctl backup --node bench --only postgres --dest "$work/backups/bench" >/dev/null; t1=$(now)
ours_backup=$(secs "$t0" "$t1")
agent_backup_cpu=$(awk -v a="$c0" -v b="$(agent_cpu)" 'BEGIN{printf "%.1f", b-a}')
ours_size=$(du -m "$work/backups/bench"/postgres_* | cut -f1)

# Restore floor: the server restoring a plain dump already in the container.
docker exec -u postgres "$NODE-postgres" pg_dump -Fc -Z0 -f /tmp/floor.dump forlock
docker stop "$NODE-api" >/dev/null
t0=$(now)
docker exec -u postgres "$NODE-postgres" pg_restore --clean --if-exists --single-transaction --exit-on-error -d forlock /tmp/floor.dump
t1=$(now)
docker exec "$NODE-postgres" rm -f /tmp/floor.dump
docker start "$NODE-api" >/dev/null
restore_floor=$(secs "$t0" "$t1")
until [ "$(docker inspect -f '{{.State.Health.Status}}' "$NODE-api")" = healthy ]; do sleep 0.2; done
[ "$(docker exec "$NODE-api" forlockapi summary)" = "$want" ] || { echo "floor restore changed the data" >&2; exit 1; }

t0=$(now)
docker stop "$NODE-api" >/dev/null
gunzip -c "$work/guide/backup.dump.gz" | docker exec -i -u postgres "$NODE-postgres" pg_restore -U postgres -d forlock -c >/dev/null
docker start "$NODE-api" >/dev/null
t1=$(now)
guide_restore=$(secs "$t0" "$t1")
until [ "$(docker inspect -f '{{.State.Health.Status}}' "$NODE-api")" = healthy ]; do sleep 0.2; done
[ "$(docker exec "$NODE-api" forlockapi summary)" = "$want" ] || { echo "guide restore changed the data" >&2; exit 1; }

# Phases of our restore from the agent's log: time of each "restore:" event
# after the command started.
phases() {
  tail -n +"$(($1 + 1))" "$work/agent.log" | grep 'msg="restore: ' |
    sed -E 's/^time=([^ ]+) .*msg="restore: ([^"]*)".*/\1 \2/' |
    while read -r ts what; do printf '%s at %s s; ' "$what" "$(secs "$2" "$(date -d "$ts" +%s.%N)")"; done
}
# our_restore NAME: ctl restore --latest --only postgres, timed; sets
# NAME_restore, NAME_restore_cpu and NAME_phases, and fails if the rows
# are not those of the backup.
our_restore() {
  local from c0 t0 t1
  from=$(wc -l <"$work/agent.log")
  c0=$(agent_cpu)
  t0=$(now); ctl restore --latest --node bench --only postgres --yes >/dev/null; t1=$(now)
  printf -v "${1}_restore" %s "$(secs "$t0" "$t1")"
  printf -v "${1}_restore_cpu" %s "$(awk -v a="$c0" -v b="$(agent_cpu)" 'BEGIN{printf "%.1f", b-a}')"
  [ "$(docker exec "$NODE-api" forlockapi summary)" = "$want" ] || { echo "our $1 restore changed the data" >&2; exit 1; }
  printf -v "${1}_phases" %s "$(phases "$from" "$t0")"
}
our_restore logical

# Ours, physical: pg_basebackup of the cluster through the same pipeline;
# restore by staging beside the live data and swapping the data directory.
c0=$(agent_cpu)
t0=$(now); ctl backup --node bench --only postgres --pg-format physical --dest "$work/backups/bench" >/dev/null; t1=$(now)
phys_backup=$(secs "$t0" "$t1")
agent_phys_backup_cpu=$(awk -v a="$c0" -v b="$(agent_cpu)" 'BEGIN{printf "%.1f", b-a}')
phys_size=$(du -m "$work/backups/bench"/postgres_*.base.tar.zst.enc | cut -f1)
our_restore physical
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

cat <<TABLE
database: ${MB} MB loaded, ${size} on disk; load average $load_start at the start, $load_end at the end ($(nproc) CPUs)
| step | floor | guide (manual) | ours, logical | ours, physical | guide / ours (logical, physical) | ours / floor (logical, physical) |
|---|---|---|---|---|---|---|
| backup | ${floor} s | ${guide_backup} s (${guide_size} MB) | ${ours_backup} s (${ours_size} MB) | ${phys_backup} s (${phys_size} MB) | $(ratio "$guide_backup" "$ours_backup"), $(ratio "$guide_backup" "$phys_backup") | $(ratio "$ours_backup" "$floor"), $(ratio "$phys_backup" "$floor") |
| restore | ${restore_floor} s | ${guide_restore} s | ${logical_restore} s | ${physical_restore} s | $(ratio "$guide_restore" "$logical_restore"), $(ratio "$guide_restore" "$physical_restore") | $(ratio "$logical_restore" "$restore_floor"), $(ratio "$physical_restore" "$restore_floor") |
backup floor: ${floor} s through docker exec, ${floor_inside} s inside the container, ${floor_cat} s piped through cat
our logical restore: ${logical_phases}done at ${logical_restore} s
our physical restore: ${physical_phases}done at ${physical_restore} s
agent CPU: logical backup ${agent_backup_cpu} s, restore ${logical_restore_cpu} s; physical backup ${agent_phys_backup_cpu} s, restore ${physical_restore_cpu} s
TABLE
