#!/usr/bin/env bash
# Builds the Forlock test node images on the local Docker Engine (no registry):
#   forlock-testnode-base:<hash>  Debian bookworm minbase + postgresql-15, redis-server, nginx-light
#   forlock-test/postgres:<hash>  forlock-test/redis:<hash>  forlock-test/nginx:<hash>  forlock-test/api:<hash>
# and tags each :latest. A tag is a hash of the image's inputs, so a run with
# nothing changed only inspects images. The base rootfs tar is cached in
# $FORLOCK_TESTNODE_CACHE (default /var/cache/forlock-fleet/testnode) so the
# base comes back in seconds after `docker rmi`.
# The Debian mirror is read from the machine's apt sources (or
# FORLOCK_DEBIAN_MIRROR). Needs root (debootstrap), docker and go.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${FORLOCK_TESTNODE_CACHE:-/var/cache/forlock-fleet/testnode}
suite=bookworm
export DOCKER_BUILDKIT=0 # the Engine here has no BuildKit/buildx; the classic builder needs no network

t0=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1fs", b-a}'; }
log() { echo "build-images: $*" >&2; }

# hash_inputs FILE... : a short content hash of the named files (paths relative
# to the repo, so moving the checkout does not change it) plus any extra text
# given on stdin.
hash_inputs() {
  {
    cat
    for f in "$@"; do
      printf '%s\n' "${f#"$repo"/}"
      sha256sum <"$f"
    done
  } | sha256sum | cut -c1-12
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

debian_mirror() {
  local f m
  if [ -n "${FORLOCK_DEBIAN_MIRROR:-}" ]; then echo "$FORLOCK_DEBIAN_MIRROR"; return; fi
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    m=$(awk 'BEGIN{RS=""; FS="\n"}
      { types=""; uris=""; suites=""
        for (i=1;i<=NF;i++) { l=$i; if (l ~ /^[[:space:]]*#/) continue
          if (l ~ /^Types:/) types=l; if (l ~ /^URIs:/) uris=l; if (l ~ /^Suites:/) suites=l }
        if (types ~ /[[:space:]]deb([[:space:]]|$)/ && suites ~ /[[:space:]]bookworm([[:space:]]|$)/) {
          sub(/^URIs:[[:space:]]*/, "", uris); split(uris, u, /[[:space:]]+/); print u[1]; exit } }' "$f")
    if [ -n "$m" ]; then echo "$m"; return; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    m=$(sed -e 's/\[[^]]*\]//' "$f" | awk '$1=="deb" && $3=="bookworm" {print $2; exit}')
    if [ -n "$m" ]; then echo "$m"; return; fi
  done
  return 1
}

# ---- base ------------------------------------------------------------------
base_hash=$(printf 'suite=%s arch=%s\n' "$suite" "$(dpkg --print-architecture)" |
  hash_inputs "$here/base/packages" "$here/base/mkrootfs.sh")
base=forlock-testnode-base:$base_hash
tar=$cache/base-$base_hash.tar
t=$(date +%s.%N)
if image_exists "$base"; then
  log "$base present"
else
  if [ ! -s "$tar" ]; then
    mirror=$(debian_mirror) || { log "no Debian $suite mirror in the apt sources; set FORLOCK_DEBIAN_MIRROR"; exit 1; }
    command -v debootstrap >/dev/null || { log "debootstrap is missing: apt-get install -y debootstrap"; exit 1; }
    mkdir -p "$cache"
    rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'rm -rf --one-file-system "$rootfs"' EXIT
    log "debootstrap $suite from $mirror into $rootfs"
    "$here/base/mkrootfs.sh" "$rootfs" "$mirror" "$tar" >"$cache/debootstrap-$base_hash.log" 2>&1 ||
      { tail -n 30 "$cache/debootstrap-$base_hash.log" >&2; log "debootstrap failed (log: $cache/debootstrap-$base_hash.log)"; exit 1; }
    rm -rf --one-file-system "$rootfs"
    trap - EXIT
    # Keep only this base's tarball.
    find "$cache" -maxdepth 1 -name 'base-*.tar' ! -name "base-$base_hash.tar" -delete
    log "rootfs $(du -h "$tar" | cut -f1) in $(elapsed "$t")"
  else
    log "rootfs from cache $tar"
  fi
  t2=$(date +%s.%N)
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL org.forlock.testnode.inputs=$base_hash" \
    --change 'CMD ["/bin/bash"]' \
    "$tar" "$base" >/dev/null
  log "imported $base in $(elapsed "$t2")"
fi
docker tag "$base" forlock-testnode-base:latest
log "base ready in $(elapsed "$t")"

# ---- node images -----------------------------------------------------------
# Each image's tag hashes its base tag, this script, its directory and, for the
# API, the Go packages it is built from (sources and module versions).
api_src_hash() {
  (cd "$repo" && {
    go version
    go list -deps -f '{{if .Module}}{{.ImportPath}} {{.Module.Path}} {{.Module.Version}}{{end}}' ./test/forlockapi
    go list -f '{{range .GoFiles}}{{$.Dir}}/{{.}}{{"\n"}}{{end}}' ./test/forlockapi | xargs sha256sum | sed "s|$repo/||"
  })
}

build_image() {
  local name=$1 dir=$here/images/$1 t ctx hash extra=""
  t=$(date +%s.%N)
  [ "$name" = api ] && extra=$(api_src_hash)
  hash=$(printf 'base=%s\n%s\n' "$base" "$extra" | hash_inputs "$here/build-images.sh" $(find "$dir" -type f | sort))
  local img=forlock-test/$name:$hash
  if image_exists "$img"; then
    log "$img present"
  else
    ctx=$(mktemp -d)
    cp -a "$dir/." "$ctx/"
    if [ "$name" = api ]; then
      (cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$hash" -o "$ctx/forlockapi" ./test/forlockapi)
    fi
    docker build -q --build-arg BASE="$base" --label org.forlock.testnode.inputs="$hash" -t "$img" "$ctx" >"$ctx.log" 2>&1 ||
      { grep -v -e DEPRECATED -e 'BuildKit is currently disabled' -e 'environment-variable' "$ctx.log" >&2; rm -rf "$ctx" "$ctx.log"; log "docker build $img failed"; exit 1; }
    rm -f "$ctx.log"
    rm -rf "$ctx"
    log "built $img in $(elapsed "$t")"
  fi
  docker tag "$img" "forlock-test/$name:latest"
  prune "forlock-test/$name" "$hash"
}

# prune REPO TAG: removes REPO's other hashed tags (those still used by a
# container stay).
prune() {
  docker image ls "$1" --format '{{.Tag}}' | { grep -vx -e "$2" -e latest || true; } | while read -r old; do
    docker rmi "$1:$old" >/dev/null 2>&1 || true
  done
}

# The classic builder spends ~2 s per Dockerfile step on this Engine's storage
# driver: the four builds run side by side.
pids=()
for name in postgres redis nginx api; do
  build_image "$name" &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=1
done
[ "$failed" = 0 ] || { log "an image build failed"; exit 1; }
prune forlock-testnode-base "$base_hash"

log "done in $(elapsed "$t0")"
docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep -E '^forlock-(test/|testnode-base:)' | grep -v ':latest' | sort >&2
