# Shared by bench/apply.sh and bench/hub.sh (sourced, not run): checks what the nspawn testbed
# needs, builds the release binary, runs the ignored test tests/NAME_bench.rs with the release
# profile (so env!("CARGO_BIN_EXE_wgfleet") is target/release/wgfleet), and writes the markdown
# table it prints between <!-- NAME-bench:begin/end --> to bench/NAME-results.md with the date,
# commit and machine.
#
#   testbed_bench NAME "KNOBS" [RESULTS]   (KNOBS: the knob line of the results' header;
#                                           RESULTS: the file, bench/NAME-results.md by default)

testbed_bench() {
    local name=$1 knobs=$2 results=${3:-bench/$1-results.md}
    die() { echo "bench/$name.sh: $*" >&2; exit 1; }

    [ "$(id -u)" -eq 0 ] || die "the testbed needs root"
    command -v python3 >/dev/null || die "python3 is needed for bench/gen_fleet.py"
    for tool in systemd-nspawn nsenter wg wg-quick wireguard-go; do
        command -v "$tool" >/dev/null || die "$tool is missing (see README: what the tests need)"
    done
    if ! dpkg -s time >/dev/null 2>&1 && [ ! -x /usr/bin/time ]; then
        echo "bench/$name.sh: /usr/bin/time is missing; installing Debian package time" >&2
        apt-get install -y -qq time >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null && apt-get install -y -qq time >/dev/null; } \
            || echo "bench/$name.sh: could not install time; the test falls back to VmHWM" >&2
    fi

    echo "== cargo build --release" >&2
    cargo build --release || die "cargo build --release failed"

    tmp=$(mktemp -d "${TMPDIR:-/tmp}/wgfleet-$name-bench.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT

    local load_before started
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    started=$(date -u +%Y-%m-%dT%H:%MZ)
    echo "== cargo test --release --test ${name}_bench -- --ignored --nocapture" >&2
    # The test's stdout (the table) goes to a file; its stderr (per-run figures) to the terminal.
    cargo test --release --test "${name}_bench" -- --ignored --nocapture >"$tmp/stdout" \
        || { cat "$tmp/stdout" >&2; die "the benchmark test failed"; }
    sed -n "/<!-- $name-bench:begin -->/,/<!-- $name-bench:end -->/p" "$tmp/stdout" \
        | sed '1d;$d' >"$tmp/table.md"
    [ -s "$tmp/table.md" ] || { cat "$tmp/stdout" >&2; die "no table in the test's output"; }

    local commit cpu
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    if ! git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null; then
        commit="$commit (+ uncommitted changes in src/)"
    fi
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    {
        echo "# $name benchmark results"
        echo
        echo "Measured $started at commit $commit on $(nproc) CPU(s) ($cpu), Linux $(uname -r), $(rustc --version)."
        echo "Command: \`bash bench/$name.sh\` = \`cargo build --release\` then \`cargo test --release --test ${name}_bench -- --ignored --nocapture\`"
        echo "(tests/${name}_bench.rs; knobs: $knobs)."
        echo "Machine load average before the run: $load_before (the machine is shared)."
        echo
        cat "$tmp/table.md"
    } >"$tmp/results.md"
    cp "$tmp/results.md" "$results"
    cat "$results"
}
