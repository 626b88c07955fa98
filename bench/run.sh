#!/usr/bin/env bash
# Benchmarks of the pure core (load + validate + plan + render) on synthetic fleets.
#
#   bash bench/run.sh
#
# Builds the release binary, generates a 1,000-host full mesh and a hub with 10,000 spokes
# (bench/gen_fleet.py), times each command with hyperfine and measures its peak RSS with
# /usr/bin/time, then prints a markdown table and writes it to bench/results.md.
#
# Exits non-zero when something fails to build or a command fails; a missed target is reported
# in the table (and on stderr), not in the exit status.
#
# Environment knobs: MESH_N (default 1000), HUB_N (default 10000), WARMUP (3), MIN_RUNS (10),
# RSS_RUNS (3), RESULTS (where the table goes besides stdout; default bench/results.md, the
# committed figures: point it elsewhere for trial runs).
set -euo pipefail

caller_pwd=$PWD
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

MESH_N=${MESH_N:-1000}
HUB_N=${HUB_N:-10000}
WARMUP=${WARMUP:-3}
MIN_RUNS=${MIN_RUNS:-10}
RSS_RUNS=${RSS_RUNS:-3}
RESULTS=${RESULTS:-$root/bench/results.md}
case $RESULTS in /*) ;; *) RESULTS=$caller_pwd/$RESULTS ;; esac
RSS_TARGET_MIB=64
HOST_TARGET_MS=100
FLEET_TARGET_MS=2000

die() { echo "bench/run.sh: $*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------------------
need_pkg() { # command-to-test debian-package
    if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "$1" ]; then
        echo "bench/run.sh: $1 is missing; installing Debian package $2" >&2
        command -v apt-get >/dev/null 2>&1 || die "no apt-get; install $2 by hand"
        if [ "$(id -u)" -ne 0 ]; then die "not root; run: apt-get install -y $2"; fi
        apt-get install -y -qq "$2" >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null && apt-get install -y -qq "$2" >/dev/null; } \
            || die "could not install $2"
    fi
}
need_pkg hyperfine hyperfine
need_pkg /usr/bin/time time
command -v python3 >/dev/null || die "python3 is needed for bench/gen_fleet.py"

# --- build -------------------------------------------------------------------------------------
echo "== cargo build --release" >&2
cargo build --release --quiet --bin wgfleet || die "cargo build --release failed"
bin=$root/target/release/wgfleet
[ -x "$bin" ] || die "no binary at $bin"

# --- fleets ------------------------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wgfleet-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
python3 bench/gen_fleet.py mesh "$MESH_N" >"$tmp/mesh.json"
python3 bench/gen_fleet.py hub "$HUB_N" >"$tmp/hub.json"
mesh_host=h$((MESH_N / 2))
spoke=s$((HUB_N / 2))
kib() { echo $(( ($(stat -c %s "$1") + 1023) / 1024 )); }
echo "== fleets: mesh.json ($MESH_N hosts, $(kib "$tmp/mesh.json") KiB), hub.json (1 hub + $HUB_N spokes, $(kib "$tmp/hub.json") KiB)" >&2

# --- benchmarks --------------------------------------------------------------------------------
# name | target ms | arguments (run from $tmp, so the table shows short paths)
benches=(
    "render one mesh host ($MESH_N-host mesh)|$HOST_TARGET_MS|render --fleet mesh.json --host $mesh_host"
    "render the hub ($HUB_N peers)|$HOST_TARGET_MS|render --fleet hub.json --host hub"
    "render one spoke (hub fleet, $HUB_N spokes)|$HOST_TARGET_MS|render --fleet hub.json --host $spoke"
    "validate the mesh fleet ($MESH_N hosts)|$FLEET_TARGET_MS|validate --fleet mesh.json"
    "validate the hub fleet ($((HUB_N + 1)) hosts)|$FLEET_TARGET_MS|validate --fleet hub.json"
)

rows=()
missed=0
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
cd "$tmp"
for b in "${benches[@]}"; do
    IFS='|' read -r name target args <<<"$b"
    read -r -a argv <<<"$args"
    echo "== $name: wgfleet $args" >&2

    # A failing command is an error of the benchmark, not a missed target.
    if ! "$bin" "${argv[@]}" >"$tmp/out.txt" 2>"$tmp/err.txt"; then
        cat "$tmp/err.txt" >&2
        die "command failed: wgfleet $args"
    fi

    hyperfine --style basic --shell=none --warmup "$WARMUP" --min-runs "$MIN_RUNS" \
        --export-json "$tmp/h.json" "'$bin' $args" >&2 \
        || die "hyperfine failed on: wgfleet $args"
    stats=$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print("%.1f %.1f %.1f %.1f" % (r["mean"] * 1000, (r["stddev"] or 0) * 1000, r["min"] * 1000, (r["user"] + r["system"]) * 1000))' "$tmp/h.json") \
        || die "could not read hyperfine's results"
    read -r mean_ms sd_ms min_ms cpu_ms <<<"$stats"

    peak_kib=0
    for _ in $(seq "$RSS_RUNS"); do
        /usr/bin/time -f %M -o "$tmp/rss.txt" "$bin" "${argv[@]}" >/dev/null 2>&1 \
            || die "command failed under /usr/bin/time: wgfleet $args"
        kib_now=$(tail -n1 "$tmp/rss.txt")
        if [ "$kib_now" -gt "$peak_kib" ]; then peak_kib=$kib_now; fi
    done
    rss_mib=$(awk -v k="$peak_kib" 'BEGIN { printf "%.1f", k / 1024 }')

    verdict=pass
    fails=()
    awk -v m="$mean_ms" -v t="$target" 'BEGIN { exit !(m < t) }' || fails+=("time")
    awk -v r="$rss_mib" -v t="$RSS_TARGET_MIB" 'BEGIN { exit !(r < t) }' || fails+=("RSS")
    if [ "${#fails[@]}" -gt 0 ]; then
        verdict="**FAIL** (${fails[*]})"
        missed=$((missed + 1))
    fi
    if [ "$target" -ge 1000 ]; then target_txt="< $((target / 1000)) s"; else target_txt="< $target ms"; fi
    rows+=("| $name | \`wgfleet $args\` | $mean_ms ± $sd_ms ms | $min_ms ms | $cpu_ms ms | $rss_mib MiB | $target_txt, < $RSS_TARGET_MIB MiB | $verdict |")
done
cd "$root"

# --- report ------------------------------------------------------------------------------------
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null; then commit="$commit (+ uncommitted changes in src/)"; fi
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
    echo "Measured $(date -u +%Y-%m-%dT%H:%MZ) at commit $commit on $(nproc) CPU(s) ($cpu), $(rustc --version)."
    echo "hyperfine: --warmup $WARMUP --min-runs $MIN_RUNS, wall time (pass/fail on the mean) and mean CPU time; peak RSS: max of $RSS_RUNS runs of /usr/bin/time -f %M; load average before: $load_before."
    echo "Fleets: \`python3 bench/gen_fleet.py mesh $MESH_N > mesh.json\`, \`python3 bench/gen_fleet.py hub $HUB_N > hub.json\`."
    echo
    echo "| benchmark | command | time (mean ± σ) | min | CPU (user + sys) | peak RSS | target | result |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${rows[@]}"
} >"$tmp/results.md"
cp "$tmp/results.md" "$RESULTS"
cat "$tmp/results.md"
if [ "$missed" -gt 0 ]; then
    echo "bench/run.sh: $missed benchmark(s) missed a target (see the table)" >&2
else
    echo "bench/run.sh: all targets met" >&2
fi
