#!/usr/bin/env bash
# Benchmark of a big hub on the nspawn testbed (issue 15): validate, render, no-op apply, one
# peer added, start and restart, peak RSS; each beside the stock command it replaces, in the
# same run, for a 10,000-peer hub (WGFLEET_BENCH_HUB_NS="10000 60000" adds more; the testbed's
# default WireGuard, wireguard-go, holds at most 65,536 peers).
#
#   bash bench/hub.sh          (as root; waits for the global testbed lock; ~10 min)
#
# 100,000 peers: WGFLEET_BENCH_WG=gotatun WGFLEET_BENCH_HUB_NS=100000 bash bench/hub.sh
# runs the hub on Mullvad's gotatun (installed here from crates.io into /usr/local when missing:
# `cargo install gotatun-cli --version 0.10.2 --locked`; the testbed hosts boot over this
# machine's root and see it). gotatun cannot reload 100,000 peers (`wg syncconf` does not end in
# minutes), so the hub reaches N by a hand-run start, and the reload cases say why they did not
# run (see tests/hub_bench.rs); ~25 min. Only the no-op cases (e.g. after a change to them):
# add WGFLEET_BENCH_HUB_ONLY_NOOP=1 (~6 min at 100,000). The pure core at 100,000 peers alone is
# `HUB_N=100000 bash bench/run.sh`.
#
# Through bench/testbed-bench.sh: builds the release binary, runs the ignored test tests/hub_bench.rs with the release profile,
# and writes its markdown to bench/hub-results.md with the date, commit and machine
# (WGFLEET_BENCH_HUB_RESULTS names another file, e.g. bench/hub-results-100k.md).
# Knobs (passed through): WGFLEET_BENCH_WG (wireguard-go), WGFLEET_BENCH_HUB_NS ("10000"),
# WGFLEET_BENCH_HUB_RUNS (3), WGFLEET_BENCH_HUB_STOCK_RUNS (2 at N ≤ 10000, 1 above),
# WGFLEET_BENCH_HUB_ONLY_NOOP (0), WGFLEET_BENCH_HUB_NO_START (0: 1 skips start, restart and stock
# `wg-quick up`), and those tests/hub_bench.rs lists.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. bench/testbed-bench.sh
wg_impl=${WGFLEET_BENCH_WG:-wireguard-go}
case $wg_impl in
    wireguard-go) ;;
    gotatun)
        # The version measured; a registry install, nothing third-party committed.
        if ! gotatun --version 2>/dev/null | grep -qx 'gotatun-cli 0.10.2'; then
            echo "bench/hub.sh: installing gotatun-cli 0.10.2 from crates.io into /usr/local" >&2
            nice -n 10 cargo install gotatun-cli --version 0.10.2 --locked --root /usr/local \
                || { echo "bench/hub.sh: cargo install gotatun-cli failed" >&2; exit 1; }
        fi
        ;;
    *) echo "bench/hub.sh: WGFLEET_BENCH_WG=$wg_impl: wireguard-go or gotatun" >&2; exit 1 ;;
esac
testbed_bench hub "WG=$wg_impl NS=\"${WGFLEET_BENCH_HUB_NS:-10000}\" RUNS=${WGFLEET_BENCH_HUB_RUNS:-3} STOCK_RUNS=${WGFLEET_BENCH_HUB_STOCK_RUNS:-default}${WGFLEET_BENCH_HUB_ONLY_NOOP:+ ONLY_NOOP=$WGFLEET_BENCH_HUB_ONLY_NOOP}${WGFLEET_BENCH_HUB_START_BY_HAND:+ START_BY_HAND=$WGFLEET_BENCH_HUB_START_BY_HAND}${WGFLEET_BENCH_HUB_NO_START:+ NO_START=$WGFLEET_BENCH_HUB_NO_START}" \
    "${WGFLEET_BENCH_HUB_RESULTS:-bench/hub-results.md}"
