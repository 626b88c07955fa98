#!/usr/bin/env bash
# Benchmark of `wgfleet apply` against raw `wg syncconf` on the nspawn testbed (DESIGN.md §9):
# no-op on a hub with 1,000 peers, one peer added on a hub with 10,000 peers, peak RSS of each.
#
#   bash bench/apply.sh          (as root; waits for the global testbed lock)
#
# Through bench/testbed-bench.sh: builds the release binary, runs the ignored test tests/apply_bench.rs with the release profile
# (so env!("CARGO_BIN_EXE_wgfleet") is target/release/wgfleet), prints its markdown table and
# writes it to bench/apply-results.md with the date, commit and machine.
#
# Knobs (passed through to the test): WGFLEET_BENCH_NOOP_N (1000), WGFLEET_BENCH_ADD_N (10000),
# WGFLEET_BENCH_NOOP_RUNS (20), WGFLEET_BENCH_ADD_RUNS (12), WGFLEET_BENCH_RSS_RUNS (3);
# WGFLEET_BENCH_BASELINE=PATH (an earlier release build, timed interleaved in the no-op runs).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. bench/testbed-bench.sh
testbed_bench apply "NOOP_N=${WGFLEET_BENCH_NOOP_N:-1000} ADD_N=${WGFLEET_BENCH_ADD_N:-10000} NOOP_RUNS=${WGFLEET_BENCH_NOOP_RUNS:-20} ADD_RUNS=${WGFLEET_BENCH_ADD_RUNS:-12} RSS_RUNS=${WGFLEET_BENCH_RSS_RUNS:-3}"
