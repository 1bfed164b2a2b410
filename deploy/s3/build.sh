#!/usr/bin/env bash
# Builds the S3-compatible test server, Versity's gateway (Apache-2.0), from
# the Go module proxy into a cache outside the repo, keyed by version:
#   $FORLOCK_S3_CACHE/versitygw-<version>   (default $FORLOCK_BIN_CACHE, else /var/cache/forlock-fleet/bin)
# A no-op when that binary is present. Prints the binary's path.
set -euo pipefail
version=${VERSITYGW_VERSION:-v1.8.0}
cache=${FORLOCK_S3_CACHE:-${FORLOCK_BIN_CACHE:-/var/cache/forlock-fleet/bin}}
bin=$cache/versitygw-$version
log() { echo "s3/build: $*" >&2; }

if [ -x "$bin" ]; then
  log "$bin present"
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { log "go is missing: it builds versitygw from the module proxy"; exit 1; }
mkdir -p "$cache"
# Build into a private directory, then rename: an interrupted build never
# leaves a half-written binary under the cached name.
tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
t0=$(date +%s)
log "go install github.com/versity/versitygw/cmd/versitygw@$version (first build takes minutes)"
# Run outside any module so the repo's go.mod plays no part.
(cd "$tmp" && GOBIN="$tmp" GOFLAGS=-trimpath CGO_ENABLED=0 \
  go install "github.com/versity/versitygw/cmd/versitygw@$version")
mv "$tmp/versitygw" "$bin"
log "built $bin in $(($(date +%s) - t0))s"
echo "$bin"
