#!/usr/bin/env bash
# The audit log over a year of timer runs on a 10,000-peer hub (issue: "a year of timer runs").
#
#   bash bench/audit.sh
#
# Generates (bench/gen_audit.py) a year of the hub's log in the format apply writes now (a
# snapshot when first managed, then 5 changes a day; the 288 no-op timer runs a day append
# nothing) and one day of it in the format before (every run appended all 10,000 peers), then
# times `wgfleet audit --client X` over each with hyperfine and reports size and peak RSS.
# Targets: a year < 10 MB, `audit --client` over it < 1 s. Writes bench/audit-results.md.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
PEERS=${PEERS:-10000}
RESULTS=${RESULTS:-$root/bench/audit-results.md}
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
cargo build --release --locked --quiet
bin=$root/target/release/wgfleet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 bench/gen_audit.py new "$PEERS" 365 5 > "$work/year.jsonl"
python3 bench/gen_audit.py old "$PEERS" 1 288 > "$work/old-day.jsonl"

size_mb() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.2f", b / 1e6 }'; }
time_ms() { # file client -> mean ms
    hyperfine --warmup 1 --min-runs 5 --export-json "$work/h.json" -N \
        "$bin audit --log $1 --client $2 --json" >/dev/null
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.1f ± %.1f" % (r["mean"] * 1000, r["stddev"] * 1000))' "$work/h.json"
}
rss_mib() {
    /usr/bin/time -f %M "$bin" audit --log "$1" --client "$2" --json 2>&1 >/dev/null | tail -n 1 |
        awk '{ printf "%.1f", $1 / 1024 }'
}
[ -x /usr/bin/time ] || { apt-get install -y -qq time >/dev/null; }

year_size=$(size_mb "$work/year.jsonl")
year_lines=$(wc -l < "$work/year.jsonl")
year_ms=$(time_ms "$work/year.jsonl" client-42)
year_rss=$(rss_mib "$work/year.jsonl" client-42)
old_size=$(size_mb "$work/old-day.jsonl")
old_ms=$(time_ms "$work/old-day.jsonl" client-42)
old_rss=$(rss_mib "$work/old-day.jsonl" client-42)

{
    echo "# Audit log of a $PEERS-peer hub ($(date -u +%F), commit $(git rev-parse --short HEAD))"
    echo
    echo "| log | entries | size | \`audit --client client-42\` | peak RSS | target |"
    echo "|---|---|---|---|---|---|"
    echo "| a year, this format (5 changes a day, 288 no-op runs a day) | $year_lines | $year_size MB | $year_ms ms | $year_rss MiB | < 10 MB, < 1 s |"
    echo "| one day, the format before (every run: all peers) | 288 | $old_size MB | $old_ms ms | $old_rss MiB | still readable |"
} | tee "$RESULTS"
