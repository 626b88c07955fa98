#!/usr/bin/env bash
# Benchmark of `wgfleet apply` against raw `wg syncconf` on the nspawn testbed (DESIGN.md §9):
# no-op on a hub with 1,000 peers, one peer added on a hub with 10,000 peers, peak RSS of each.
#
#   bash bench/apply.sh          (as root; waits for the global testbed lock)
#
# Builds the release binary, runs the ignored test tests/apply_bench.rs with the release profile
# (so env!("CARGO_BIN_EXE_wgfleet") is target/release/wgfleet), prints its markdown table and
# writes it to bench/apply-results.md with the date, commit and machine.
#
# Knobs (passed through to the test): WGFLEET_BENCH_NOOP_N (1000), WGFLEET_BENCH_ADD_N (10000),
# WGFLEET_BENCH_NOOP_RUNS (20), WGFLEET_BENCH_ADD_RUNS (12), WGFLEET_BENCH_RSS_RUNS (3);
# WGFLEET_BENCH_BASELINE=PATH (an earlier release build, timed interleaved in the no-op runs).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

die() { echo "bench/apply.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "the testbed needs root"
command -v python3 >/dev/null || die "python3 is needed for bench/gen_fleet.py"
for tool in systemd-nspawn nsenter wg wg-quick wireguard-go; do
    command -v "$tool" >/dev/null || die "$tool is missing (see README: what the tests need)"
done
if ! dpkg -s time >/dev/null 2>&1 && [ ! -x /usr/bin/time ]; then
    echo "bench/apply.sh: /usr/bin/time is missing; installing Debian package time" >&2
    apt-get install -y -qq time >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq time >/dev/null; } \
        || echo "bench/apply.sh: could not install time; the test falls back to VmHWM" >&2
fi

echo "== cargo build --release" >&2
cargo build --release || die "cargo build --release failed"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wgfleet-apply-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%MZ)
echo "== cargo test --release --test apply_bench -- --ignored --nocapture" >&2
# The test's stdout (the table) goes to a file; its stderr (per-run figures) to the terminal.
cargo test --release --test apply_bench -- --ignored --nocapture >"$tmp/stdout" \
    || { cat "$tmp/stdout" >&2; die "the benchmark test failed"; }
sed -n '/<!-- apply-bench:begin -->/,/<!-- apply-bench:end -->/p' "$tmp/stdout" \
    | sed '1d;$d' >"$tmp/table.md"
[ -s "$tmp/table.md" ] || { cat "$tmp/stdout" >&2; die "no table in the test's output"; }

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null; then
    commit="$commit (+ uncommitted changes in src/ of the shared work tree)"
fi
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
    echo "# apply benchmark results"
    echo
    echo "Measured $started at commit $commit on $(nproc) CPU(s) ($cpu), Linux $(uname -r), $(rustc --version)."
    echo "Command: \`bash bench/apply.sh\` = \`cargo build --release\` then \`cargo test --release --test apply_bench -- --ignored --nocapture\`"
    echo "(tests/apply_bench.rs; knobs: NOOP_N=${WGFLEET_BENCH_NOOP_N:-1000} ADD_N=${WGFLEET_BENCH_ADD_N:-10000} NOOP_RUNS=${WGFLEET_BENCH_NOOP_RUNS:-20} ADD_RUNS=${WGFLEET_BENCH_ADD_RUNS:-12} RSS_RUNS=${WGFLEET_BENCH_RSS_RUNS:-3})."
    echo "Machine load average before the run: $load_before (the machine is shared)."
    echo
    cat "$tmp/table.md"
} >"$tmp/results.md"
cp "$tmp/results.md" bench/apply-results.md
cat bench/apply-results.md
