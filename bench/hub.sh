#!/usr/bin/env bash
# Benchmark of a big hub on the nspawn testbed (issue 15): validate, render, no-op apply, one
# peer added, start and restart, peak RSS; each beside the stock command it replaces, in the
# same run, for a 10,000-peer hub (WGFLEET_BENCH_HUB_NS="10000 60000" adds more; the testbed's
# wireguard-go holds at most 65,536 peers, so 100,000 needs the kernel module; the pure core at
# 100,000 peers is `HUB_N=100000 bash bench/run.sh`).
#
#   bash bench/hub.sh          (as root; waits for the global testbed lock; ~10 min)
#
# Through bench/testbed-bench.sh: builds the release binary, runs the ignored test tests/hub_bench.rs with the release profile,
# and writes its markdown to bench/hub-results.md with the date, commit and machine.
# Knobs (passed through): WGFLEET_BENCH_HUB_NS ("10000"), WGFLEET_BENCH_HUB_RUNS (3),
# WGFLEET_BENCH_HUB_STOCK_RUNS (2 at N ≤ 10000, 1 above).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. bench/testbed-bench.sh
testbed_bench hub "NS=\"${WGFLEET_BENCH_HUB_NS:-10000}\" RUNS=${WGFLEET_BENCH_HUB_RUNS:-3} STOCK_RUNS=${WGFLEET_BENCH_HUB_STOCK_RUNS:-default}"
