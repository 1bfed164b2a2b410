#!/usr/bin/env bash
# Benchmark: the recovery time (RTO) of a point-in-time restore on a real
# test node holding BENCH_DB_MB MB of data (default 1000) with BENCH_WAL_MB MB
# of WAL (default 1000) written after its physical base backup, side by side
# in one run with its floor:
#   base   forlockctl restore --latest (the physical base backup alone:
#          verify, stage, stop, swap, start); what a PITR costs before any
#          WAL is fetched or replayed
#   pitr   forlockctl restore --to-latest (the base backup and all the WAL:
#          WAL headers checked, base and WAL staged, stop, swap, start,
#          replay, promote)
# The WAL is written by inserting 100 MB batches into a scratch table and
# truncating it, so the data stays BENCH_DB_MB while the WAL grows; its
# volume is measured by pg_current_wal_lsn. Both restores must give back the
# API's summary of the data; the pitr one also the last marker row written.
# Prints seconds, the phases from the agent's log, sizes and the load
# average. Method and figures: docs/benchmarks.md. Needs make build and the
# test node images (deploy/testnode/build-images.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
MB=${BENCH_DB_MB:-1000}
WAL_MB=${BENCH_WAL_MB:-1000}
NODE=${BENCH_NODE:-fl-rto}
BIN=${BIN:-bin}
work=$(mktemp -d /var/tmp/forlock-rto.XXXXXX)
# shellcheck source=test/bench/fleet.sh
. test/bench/fleet.sh
trap cleanup_fleet EXIT INT TERM

psql() { docker exec -u postgres "$NODE-postgres" psql -X -At -v ON_ERROR_STOP=1 -d forlock "$@"; }

start_node
echo "loading ${MB} MB into $NODE ..." >&2
docker exec "$NODE-api" forlockapi load --mb "$MB" >/dev/null 2>&1
size=$(psql -c "select pg_size_pretty(pg_database_size('forlock'))")
start_fleet --wal-archive=true --recovery-timeout 2h

# The archive key comes with the first session; archiving starts with it,
# and from the slot on the WAL the base backup needs is kept.
for _ in $(seq 600); do grep -q "created the WAL archive's replication slot" "$work/agent.log" && break; sleep 0.2; done
t0=$(now); ctl backup --node bench --only postgres --pg-format physical >/dev/null; t1=$(now)
base_backup=$(secs "$t0" "$t1")
base_size=$(du -cm "$work/backups/bench"/postgres_*.base.tar.zst.enc | tail -n1 | cut -f1)
want=$(docker exec "$NODE-api" forlockapi summary)

echo "writing ${WAL_MB} MB of WAL ..." >&2
psql -c "create table rto_wal (id int, pad text); create table rto_marker (at timestamptz)" >/dev/null
from=$(psql -c "select pg_current_wal_lsn()")
t0=$(now)
while :; do
  written=$(psql -c "select (pg_current_wal_lsn() - '$from') / 1048576")
  [ "${written%.*}" -ge "$WAL_MB" ] && break
  # ~100 MB of rows (about 1 KB each), then gone again: WAL, not data.
  psql -c "insert into rto_wal select g, repeat(md5(g::text), 30) from generate_series(1, 100000) g; truncate rto_wal" >/dev/null
done
psql -c "insert into rto_marker values (now())" >/dev/null
marker=$(psql -c "select at from rto_marker")
t1=$(now)
wal_write=$(secs "$t0" "$t1")
wal_mb=$(psql -c "select round((pg_current_wal_lsn() - '$from') / 1048576)")

# Archived to the end: the window's latest time at or past the marker.
t0=$(now)
want_latest=$(date -d "$marker" +%s.%N)
until ctl restore --list --node bench -o json | tr -d ' \n' | grep -o '"latest":"[^"]*"' | head -n1 | sed 's/.*:"//; s/"$//' |
  { read -r l && [ -n "$l" ] && awk -v a="$(date -d "$l" +%s.%N)" -v b="$want_latest" 'BEGIN{exit !(a >= b)}'; }; do sleep 0.5; done
t1=$(now)
archive_lag=$(secs "$t0" "$t1")
wal_stored=$(du -sm "$work/backups/wal" | cut -f1)

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
# restore NAME ARGS...: forlockctl restore ARGS, timed; sets NAME_s,
# NAME_cpu and NAME_phases.
restore() {
  local name=$1 from c0 t0 t1
  shift
  from=$(wc -l <"$work/agent.log")
  c0=$(agent_cpu)
  t0=$(now); ctl restore --node bench --yes "$@" >/dev/null; t1=$(now)
  printf -v "${name}_s" %s "$(secs "$t0" "$t1")"
  printf -v "${name}_cpu" %s "$(awk -v a="$c0" -v b="$(agent_cpu)" 'BEGIN{printf "%.1f", b-a}')"
  printf -v "${name}_phases" %s "$(phases "$from" "$t0")"
  [ "$(docker exec "$NODE-api" forlockapi summary)" = "$want" ] || { echo "the $name restore changed the data" >&2; exit 1; }
}
restore pitr --to-latest
[ "$(psql -c "select at from rto_marker")" = "$marker" ] || { echo "the point-in-time restore lost the last row" >&2; exit 1; }
restore base --latest --only postgres
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

cat <<TABLE
database: ${MB} MB loaded, ${size} on disk; physical base backup ${base_size} MB stored, taken in ${base_backup} s
WAL: ${wal_mb} MB written in ${wal_write} s after the base backup, ${wal_stored} MB stored, archived to the last row ${archive_lag} s after it was written
load average $load_start before the restores, $load_end after ($(nproc) CPUs)
| restore | seconds | agent CPU s | pitr / base |
|---|---|---|---|
| base backup only (--latest) | ${base_s} | ${base_cpu} | |
| base + ${wal_mb} MB WAL (--to-latest) | ${pitr_s} | ${pitr_cpu} | $(ratio "$pitr_s" "$base_s") |
base: ${base_phases}done at ${base_s} s
pitr: ${pitr_phases}done at ${pitr_s} s
TABLE
