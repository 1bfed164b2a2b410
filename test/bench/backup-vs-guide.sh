#!/usr/bin/env bash
# Benchmark: backup and restore of a Forlock database of BENCH_DB_MB MB (default
# 1000) on a real test node, side by side in one run:
#   floor  pg_dump -Fc -Z0 > /dev/null           (the dump alone, nothing stored)
#   guide  the operations guide's manual procedure: pg_dump -F c -f in the
#          container, docker cp, gzip; restore: stop API, gunzip | pg_restore -c,
#          start API
#   ours   forlockctl backup --only postgres (zstd + AES-256-GCM + SHA-256 to a
#          host dir) and forlockctl restore --latest --only postgres (verify,
#          stop API, pg_restore in one transaction, start API, wait healthy)
# Prints seconds and ratios. Method: docs/benchmarks.md. Needs make build and
# the test node images (deploy/testnode/build-images.sh).
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

t0=$(now); ctl backup --node bench --only postgres --dest "$work/backups/bench" >/dev/null; t1=$(now)
ours_backup=$(secs "$t0" "$t1")
ours_size=$(du -m "$work/backups/bench"/postgres_* | cut -f1)

t0=$(now)
docker stop "$NODE-api" >/dev/null
gunzip -c "$work/guide/backup.dump.gz" | docker exec -i -u postgres "$NODE-postgres" pg_restore -U postgres -d forlock -c >/dev/null
docker start "$NODE-api" >/dev/null
t1=$(now)
guide_restore=$(secs "$t0" "$t1")
[ "$(docker exec "$NODE-api" forlockapi summary)" = "$want" ] || { echo "guide restore changed the data" >&2; exit 1; }

t0=$(now); ctl restore --latest --node bench --only postgres --yes >/dev/null; t1=$(now)
ours_restore=$(secs "$t0" "$t1")
[ "$(docker exec "$NODE-api" forlockapi summary)" = "$want" ] || { echo "our restore changed the data" >&2; exit 1; }

cat <<TABLE
database: ${MB} MB loaded, ${size} on disk
| step | floor: pg_dump -Fc -Z0 > /dev/null | guide (manual) | ours (encrypted) | guide / ours | ours / floor |
|---|---|---|---|---|---|
| backup | ${floor} s | ${guide_backup} s (${guide_size} MB) | ${ours_backup} s (${ours_size} MB) | $(ratio "$guide_backup" "$ours_backup") | $(ratio "$ours_backup" "$floor") |
| restore | | ${guide_restore} s | ${ours_restore} s | $(ratio "$guide_restore" "$ours_restore") | |
TABLE
