#!/usr/bin/env bash
# Benchmark of a big hub on the nspawn testbed (issue 15): validate, render, no-op apply, one
# peer added, start and restart, peak RSS; each beside the stock command it replaces, in the
# same run, for a 10,000-peer hub (WGFLEET_BENCH_HUB_NS="10000 60000" adds more; the testbed's
# wireguard-go holds at most 65,536 peers, so 100,000 needs the kernel module; the pure core at
# 100,000 peers is `HUB_N=100000 bash bench/run.sh`).
#
#   bash bench/hub.sh          (as root; waits for the global testbed lock; ~10 min)
#
# Builds the release binary, runs the ignored test tests/hub_bench.rs with the release profile,
# and writes its markdown to bench/hub-results.md with the date, commit and machine.
# Knobs (passed through): WGFLEET_BENCH_HUB_NS ("10000"), WGFLEET_BENCH_HUB_RUNS (3),
# WGFLEET_BENCH_HUB_STOCK_RUNS (2 at N ≤ 10000, 1 above).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

die() { echo "bench/hub.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "the testbed needs root"
command -v python3 >/dev/null || die "python3 is needed for bench/gen_fleet.py"
for tool in systemd-nspawn nsenter wg wg-quick wireguard-go; do
    command -v "$tool" >/dev/null || die "$tool is missing (see README: what the tests need)"
done
[ -x /usr/bin/time ] || echo "bench/hub.sh: /usr/bin/time is missing; peak RSS falls back to VmHWM" >&2

echo "== cargo build --release" >&2
cargo build --release || die "cargo build --release failed"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wgfleet-hub-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%MZ)
echo "== cargo test --release --test hub_bench -- --ignored --nocapture" >&2
cargo test --release --test hub_bench -- --ignored --nocapture >"$tmp/stdout" \
    || { cat "$tmp/stdout" >&2; die "the benchmark test failed"; }
sed -n '/<!-- hub-bench:begin -->/,/<!-- hub-bench:end -->/p' "$tmp/stdout" \
    | sed '1d;$d' >"$tmp/table.md"
[ -s "$tmp/table.md" ] || { cat "$tmp/stdout" >&2; die "no table in the test's output"; }

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null; then
    commit="$commit (+ uncommitted changes in src/)"
fi
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
    echo "# hub benchmark results"
    echo
    echo "Measured $started at commit $commit on $(nproc) CPU(s) ($cpu), Linux $(uname -r), $(rustc --version)."
    echo "Command: \`bash bench/hub.sh\` = \`cargo build --release\` then \`cargo test --release --test hub_bench -- --ignored --nocapture\`"
    echo "(tests/hub_bench.rs; knobs: NS=\"${WGFLEET_BENCH_HUB_NS:-10000}\" RUNS=${WGFLEET_BENCH_HUB_RUNS:-3} STOCK_RUNS=${WGFLEET_BENCH_HUB_STOCK_RUNS:-default})."
    echo "Machine load average before the run: $load_before (the machine is shared)."
    echo
    cat "$tmp/table.md"
} >"$tmp/results.md"
cp "$tmp/results.md" bench/hub-results.md
cat bench/hub-results.md
