#!/usr/bin/env bash
# test-deps.sh [test|demo|packages]: provides what `make test` (or `make demo`)
# needs on a Debian machine that has Go, make, git and Docker Engine:
#   packages  the Debian packages: debootstrap and docker-compose (test node
#             images), curl (the deploy scripts), postgresql-15 and
#             redis-server (the agent's datastore checks; test only),
#             prometheus (its promtool checks the control plane's /metrics;
#             test only).
#             As root they are installed with apt-get; otherwise the script
#             stops with the one apt-get command to run.
#   test      packages, then the test node images (deploy/testnode), the S3
#             test server, the image registry and the Vault dev server, each
#             cached by content hash or version outside the repo (a no-op when
#             built).
#   demo      the demo's packages, then the test node images.
# Builds run under one lock ($FORLOCK_TEST_DEPS_LOCK, default
# /var/cache/forlock-fleet/test-deps.lock), so parallel invocations never
# build at once: the second waits, then finds everything built.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mode=${1:-test}
log() { echo "test-deps: $*" >&2; }

case $mode in
test | packages) pkgs=(make git debootstrap docker-compose curl postgresql-15 redis-server prometheus) ;;
demo) pkgs=(make git debootstrap docker-compose curl) ;;
*) echo "usage: $0 [test|demo|packages]" >&2; exit 2 ;;
esac

# ---- Debian packages ---------------------------------------------------------
need=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  cmd="apt-get install -y --no-install-recommends ${need[*]}"
  if [ "$(id -u)" != 0 ]; then
    log "missing Debian packages: ${need[*]}: run as root: $cmd"
    exit 1
  fi
  command -v apt-get >/dev/null || { log "missing: ${need[*]}, and this is not Debian (no apt-get): install them"; exit 1; }
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[ "$mode" = packages ] && exit 0

# ---- what the tests start: built under one lock ------------------------------
command -v docker >/dev/null || { log "docker is missing: install Docker Engine (https://docs.docker.com/engine/install/debian/)"; exit 1; }
docker version >/dev/null 2>&1 || { log "the Docker Engine does not answer: start it (systemctl start docker)"; exit 1; }
lock=${FORLOCK_TEST_DEPS_LOCK:-/var/cache/forlock-fleet/test-deps.lock}
mkdir -p "$(dirname "$lock")" 2>/dev/null && : >>"$lock" 2>/dev/null ||
  { log "cannot create the lock $lock: run as root, or set FORLOCK_TEST_DEPS_LOCK and the caches (FORLOCK_BIN_CACHE, FORLOCK_TESTNODE_CACHE) to a writable place"; exit 1; }
exec 9<>"$lock"
if ! flock -n 9; then
  log "another test-deps run holds $lock: waiting for it"
  flock 9
fi

t0=$(date +%s)
# The image build's long listing goes to a log, shown when it fails; the
# server builds say in one line each whether they build (minutes) or not.
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$here/testnode/build-images.sh" >"$out" 2>&1 || { cat "$out" >&2; log "deploy/testnode/build-images.sh failed"; exit 1; }
if [ "$mode" = test ]; then
  for s in s3 registry vault; do
    "$here/$s/build.sh" >/dev/null
  done
fi
log "$mode dependencies ready in $(($(date +%s) - t0))s"
