#!/usr/bin/env bash
# Benchmark of a timer run whose git source did not move, against today's no-op apply of a file
# and against the round trip itself (`git ls-remote`), on the nspawn testbed (issue 25: ≤ 50 ms).
#
#   bash bench/source.sh          (as root; waits for the global testbed lock)
#
# Through bench/testbed-bench.sh: builds the release binary, runs the ignored test
# tests/source_bench.rs with the release profile, prints its markdown table and writes it to
# bench/source-results.md with the date, commit and machine.
#
# Knobs: WGFLEET_BENCH_NOOP_N (1000 peers on the hub), WGFLEET_BENCH_RUNS (20).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. bench/testbed-bench.sh
testbed_bench source "NOOP_N=${WGFLEET_BENCH_NOOP_N:-1000} RUNS=${WGFLEET_BENCH_RUNS:-20}"
