#!/usr/bin/env bash
# Benchmark of a probe run on a hub with 100 spokes, 97 of which never run, and with 2 spokes
# that answer (issue 27: bounded in packets and time), beside a stock `ping` loop.
#
#   bash bench/probe.sh          (as root; waits for the global testbed lock)
#
# Through bench/testbed-bench.sh: the ignored test tests/probe_bench.rs, release profile; the
# table goes to bench/probe-results.md. Knob: WGFLEET_BENCH_RUNS (5).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. bench/testbed-bench.sh
testbed_bench probe "RUNS=${WGFLEET_BENCH_RUNS:-5}"
