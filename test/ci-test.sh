#!/usr/bin/env bash
# ci-test.sh [go test args]: runs the whole suite (default: -race -count=1
# -timeout 45m ./...) through `go test -json`, keeps the JSON stream in
# $TEST_JSON (default bin/test.json) and prints a summary (test/testsum):
# package ok/FAIL lines, the output of failed tests, and every skipped test.
# Fails when a test failed or skipped: outside -short nothing may skip.
set -euo pipefail
cd "$(dirname "$0")/.."
json=${TEST_JSON:-bin/test.json}
mkdir -p "$(dirname "$json")"
[ $# -gt 0 ] || set -- -race -count=1 -timeout 45m ./...
go build -o bin/testsum ./test/testsum
status=0
go test -json "$@" | bin/testsum -o "$json" || status=$?
exit "$status"
