#!/usr/bin/env bash
# Builds the HashiCorp Vault dev server used by the tests from the Go module
# proxy, into a cache outside the repo keyed by version:
#   $FORLOCK_BIN_CACHE/vault-<version>   (default /var/cache/forlock-fleet/bin)
# A no-op when that binary is present. Prints the binary's path.
#
# `go install github.com/hashicorp/vault@...` is refused (its go.mod carries
# replace directives), so this builds a two-line main in a scratch module with
# the replacements Vault's own go.mod needs. Its ~500-module graph stays out of
# the project's go.mod. Cold: 10-16 min on 2 cores, ~6 GB peak memory.
set -euo pipefail
version=${VAULT_VERSION:-v1.21.0}
sdk=${VAULT_SDK_VERSION:-v0.20.0}
cache=${FORLOCK_BIN_CACHE:-/var/cache/forlock-fleet/bin}
bin=$cache/vault-$version
log() { echo "vault/build: $*" >&2; }

if [ -x "$bin" ]; then
  log "$bin present"
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { log "go is missing: it builds Vault from the module proxy"; exit 1; }
mkdir -p "$cache"
# Build in a private directory, then rename: an interrupted build never leaves
# a half-written binary under the cached name.
tmp=$(mktemp -d "$cache/.vault-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
t0=$(date +%s)
cd "$tmp"
cat >main.go <<'GO'
// Command vault is HashiCorp Vault's CLI and server, built for tests.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() { os.Exit(command.Run(os.Args[1:])) }
GO
export GOFLAGS=-mod=mod GOWORK=off
go mod init forlock.test/vaultbin >/dev/null 2>&1
go mod edit \
  -replace "github.com/hashicorp/vault/sdk=github.com/hashicorp/vault/sdk@$sdk" \
  -replace github.com/99designs/keyring=github.com/Jeffail/keyring@v1.2.3 \
  -replace github.com/ma314smith/signedxml@v1.1.1=github.com/moov-io/signedxml@v1.1.1
log "go get github.com/hashicorp/vault@$version (first build takes 10-16 minutes)"
go get "github.com/hashicorp/vault@$version"
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o vault .
mv vault "$bin"
log "built $bin in $(($(date +%s) - t0))s"
echo "$bin"
