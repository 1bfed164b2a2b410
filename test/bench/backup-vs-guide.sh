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
# shellcheck source=test/bench/fleet.sh
. test/bench/fleet.sh
trap cleanup_fleet EXIT INT TERM

start_node
echo "loading ${MB} MB into $NODE ..." >&2
docker exec "$NODE-api" forlockapi load --mb "$MB" >/dev/null 2>&1
size=$(docker exec -u postgres "$NODE-postgres" psql -X -At -d forlock -c "select pg_size_pretty(pg_database_size('forlock'))")
want=$(docker exec "$NODE-api" forlockapi summary)
# WAL archiving off: this benchmark compares backups, not the archive.
start_fleet --wal-archive=false

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
