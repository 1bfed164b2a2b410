#!/usr/bin/env bash
# Benchmark: the cost of identities and the audit log on SubmitJob and
# ListNodes (controlplane/internal/api, BenchmarkListNodes and
# BenchmarkSubmitJob). Runs BENCH_ROUNDS rounds (default 6) of
# BENCH_CALLS calls (default 5000) per sub-benchmark; each round runs every
# chain once (A-before, B-identity, B-admin), so the chains alternate and a
# change in the machine's load falls on all of them. Prints each round's load
# average, the raw results and benchstat's comparison of each B with A.
# Method and figures: docs/benchmarks.md. Not a gate: nothing is asserted.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${BENCH_ROUNDS:-6}
CALLS=${BENCH_CALLS:-5000}
GO=${GO:-go}
# benchstat pinned (golang.org/x/perf has no releases).
BENCHSTAT=golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$GO" test -c -o "$work/api.test" ./controlplane/internal/api
for i in $(seq "$ROUNDS"); do
  echo "# round $i of $ROUNDS: load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  (cd controlplane/internal/api && "$work/api.test" -test.run '^$' -test.bench 'BenchmarkListNodes|BenchmarkSubmitJob' \
    -test.benchtime "${CALLS}x" -test.count 1 -test.benchmem -test.timeout 30m) | tee -a "$work/results.txt"
done
echo "# end: load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$GO" run "$BENCHSTAT" -col /chain "$work/results.txt"
