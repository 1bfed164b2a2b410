#!/usr/bin/env bash
# Builds the image registry used by the upgrade tests (CNCF Distribution,
# Apache-2.0) from the Go module proxy into a cache outside the repo, keyed by
# version:
#   $FORLOCK_BIN_CACHE/registry-<version>   (default /var/cache/forlock-fleet/bin)
# A no-op when that binary is present. Prints the binary's path.
set -euo pipefail
version=${REGISTRY_VERSION:-v3.1.2}
cache=${FORLOCK_BIN_CACHE:-/var/cache/forlock-fleet/bin}
bin=$cache/registry-$version
log() { echo "registry/build: $*" >&2; }

if [ -x "$bin" ]; then
  log "$bin present"
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { log "go is missing: it builds the registry from the module proxy"; exit 1; }
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.registry-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
t0=$(date +%s)
log "go install github.com/distribution/distribution/v3/cmd/registry@$version (first build takes minutes)"
# Outside any module so the repo's go.mod plays no part.
(cd "$tmp" && GOBIN="$tmp" GOFLAGS=-trimpath CGO_ENABLED=0 GOWORK=off \
  go install "github.com/distribution/distribution/v3/cmd/registry@$version")
mv "$tmp/registry" "$bin"
log "built $bin in $(($(date +%s) - t0))s"
echo "$bin"
