#!/usr/bin/env bash
# Cost of decrypting a host's key: `wgfleet check-secrets` for cp of seed 000 with three kinds of
# identity (age X25519, OpenSSH ed25519, OpenSSH RSA 3072), against `wgfleet validate` of the same
# fleet as the baseline (same load + validation, no decryption). The difference is the cost of
# reading the identity, decrypting cp.age and checking the key. Compared with the no-op apply time
# of bench/apply-results.md, if that file exists.
#
#   bash bench/secrets.sh
#
# The SSH keys are made with ssh-keygen in a temporary directory; cp's key is re-encrypted to each
# one through a pipe (`age -d … | age -R key.pub -a`), so the plain key never touches a file.
# Writes bench/secrets-results.md. Knobs: WARMUP (5), MIN_RUNS (40).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

WARMUP=${WARMUP:-5}
MIN_RUNS=${MIN_RUNS:-40}

die() { echo "bench/secrets.sh: $*" >&2; exit 1; }

need_pkg() { # command debian-package
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "bench/secrets.sh: $1 is missing; installing Debian package $2" >&2
        [ "$(id -u)" -eq 0 ] || die "not root; run: apt-get install -y $2"
        apt-get install -y -qq "$2" >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null && apt-get install -y -qq "$2" >/dev/null; } \
            || die "could not install $2"
    fi
}
need_pkg hyperfine hyperfine
need_pkg age age
need_pkg ssh-keygen openssh-client
command -v python3 >/dev/null || die "python3 is needed to edit the fleet copies and read hyperfine's JSON"

echo "== cargo build --release" >&2
cargo build --release || die "cargo build --release failed"
bin=$root/target/release/wgfleet

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wgfleet-secrets-bench.XXXXXX")
chmod 700 "$tmp"
trap 'rm -rf "$tmp"' EXIT

fleet=examples/seed-000/fleet.json
age_id=secrets/test-identity.txt
ssh-keygen -q -t ed25519 -N '' -C wgfleet-bench -f "$tmp/id_ed25519"
ssh-keygen -q -t rsa -b 3072 -N '' -C wgfleet-bench -f "$tmp/id_rsa"

# A copy of the fleet per SSH identity: cp's key re-encrypted to it (armored, like the original),
# the other hosts' files pointing at the originals (check-secrets --host cp does not read them).
for kind in ed25519 rsa; do
    mkdir "$tmp/$kind"
    age -d -i "$age_id" secrets/examples/seed-000/cp.age \
        | age -R "$tmp/id_$kind.pub" -a -o "$tmp/$kind/cp.age"
    python3 - "$fleet" "$tmp/$kind/fleet.json" "$root/examples/seed-000" <<'EOF'
import json, os, sys
src, dst, srcdir = sys.argv[1:]
doc = json.load(open(src))
for name, host in doc["hosts"].items():
    host["privateKeyFile"] = "cp.age" if name == "cp" else os.path.normpath(os.path.join(srcdir, host["privateKeyFile"]))
json.dump(doc, open(dst, "w"), indent=2)
EOF
done

names=(
    "validate (baseline: load + validate, no decryption)"
    "check-secrets, age X25519 identity"
    "check-secrets, SSH ed25519 key"
    "check-secrets, SSH RSA 3072 key"
)
cmds=(
    "$bin validate --fleet $fleet"
    "$bin check-secrets --fleet $fleet --host cp -i $age_id"
    "$bin check-secrets --fleet $tmp/ed25519/fleet.json --host cp -i $tmp/id_ed25519"
    "$bin check-secrets --fleet $tmp/rsa/fleet.json --host cp -i $tmp/id_rsa"
)
shown=(
    "wgfleet validate --fleet $fleet"
    "wgfleet check-secrets --fleet $fleet --host cp -i $age_id"
    "wgfleet check-secrets --fleet TMP/ed25519/fleet.json --host cp -i TMP/id_ed25519"
    "wgfleet check-secrets --fleet TMP/rsa/fleet.json --host cp -i TMP/id_rsa"
)

# Each must succeed, and check-secrets must say the key matches.
for i in "${!cmds[@]}"; do
    out=$(${cmds[$i]} 2>&1) || die "failed: ${shown[$i]}: $out"
    echo "   ${shown[$i]}: $out" >&2
    if [ "$i" -gt 0 ]; then
        grep -q "matches the declared public key" <<<"$out" || die "no key check in: $out"
    fi
done

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%MZ)
echo "== hyperfine --shell=none --warmup $WARMUP --min-runs $MIN_RUNS (4 commands)" >&2
hyperfine --style basic --shell=none --warmup "$WARMUP" --min-runs "$MIN_RUNS" \
    --export-json "$tmp/h.json" "${cmds[@]}" >&2
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# The no-op apply of the apply benchmark, for scale.
noop=$(sed -n 's/^| `wgfleet apply` (nothing changed) | [0-9]* | \([0-9.]*\) ± [0-9.]* ms | \([0-9.]*\) ms .*/\1 \2/p' \
    bench/apply-results.md 2>/dev/null | head -n1 || true)
noop_peers=$(sed -n 's/^\*\*No-op, hub with \([0-9]*\) peers\*\*.*/\1/p' bench/apply-results.md 2>/dev/null | head -n1 || true)

table=$(python3 - "$tmp/h.json" "$noop" "$noop_peers" "${names[@]}" -- "${shown[@]}" <<'EOF'
import json, statistics, sys
path, noop, noop_peers = sys.argv[1:4]
rest = sys.argv[4:]
sep = rest.index("--")
names, shown = rest[:sep], rest[sep + 1:]
res = json.load(open(path))["results"]
ms = lambda s: s * 1000
rows = []
base = res[0]
bmean, bmed, bcpu = ms(base["mean"]), ms(base["median"]), ms(base["user"] + base["system"])
print("| what | command | runs | mean ± σ | median | min | CPU (user + sys) | decryption cost: mean / median / CPU over validate |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for name, cmd, r in zip(names, shown, res):
    mean, med, sd, mn = ms(r["mean"]), ms(r["median"]), ms(r["stddev"] or 0), ms(r["min"])
    cpu = ms(r["user"] + r["system"])
    cost = "—" if r is base else f"{mean - bmean:+.1f} / {med - bmed:+.1f} / {cpu - bcpu:+.1f} ms"
    print(f"| {name} | `{cmd}` | {len(r['times'])} | {mean:.1f} ± {sd:.1f} ms | {med:.1f} ms | {mn:.1f} ms | {cpu:.1f} ms | {cost} |")
print()
print(f"Differences smaller than the baseline's σ ({ms(base['stddev'] or 0):.1f} ms) are within the noise of this shared machine; "
      "the median and CPU columns are the steadier estimates.")
print()
if noop:
    nmean, nmed = map(float, noop.split())
    print(f"Against the no-op `wgfleet apply` of bench/apply-results.md (hub with {noop_peers} peers, age X25519 identity: "
          f"{nmean:.1f} ms mean, {nmed:.1f} ms median), the decryption cost (median difference) is:")
    print()
    for name, r in zip(names[1:], res[1:]):
        d = ms(r["median"]) - bmed
        print(f"- {name.split(', ')[1]}: {d:.1f} ms, {100 * d / nmed:.0f}% of the no-op apply")
else:
    print("(bench/apply-results.md not found: run bench/apply.sh for the no-op apply time to compare with.)")
EOF
)

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null; then
    commit="$commit (+ uncommitted changes in src/ of the shared work tree)"
fi
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
    echo "# secrets benchmark results"
    echo
    echo "Measured $started at commit $commit on $(nproc) CPU(s) ($cpu), Linux $(uname -r), $(rustc --version), $(hyperfine --version), age $(age --version)."
    echo "Command: \`bash bench/secrets.sh\` (hyperfine --shell=none --warmup $WARMUP --min-runs $MIN_RUNS, the four commands in one invocation; load average before $load_before, after $load_after: the machine is shared)."
    echo "Identities: \`secrets/test-identity.txt\` (age X25519) with the example's own cp.age; \`ssh-keygen -t ed25519\` and \`ssh-keygen -t rsa -b 3072\` keys made for the run, each with a copy of the fleet whose cp.age was re-encrypted to it (\`age -d -i secrets/test-identity.txt secrets/examples/seed-000/cp.age | age -R key.pub -a -o TMP/KIND/cp.age\`)."
    echo "Every check-secrets run decrypts cp's key and checks it against the declared public key (\`host cp: 1 secret(s) decrypted; the private key of wg0 matches the declared public key\`)."
    echo
    echo "$table"
} >"$tmp/results.md"
cp "$tmp/results.md" bench/secrets-results.md
cat bench/secrets-results.md
