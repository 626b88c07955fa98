#!/usr/bin/env bash
# The check phase of the flake's package (nix/package.nix), run here as the Nix build sandbox
# would run it, because no machine of ours runs `nix build`: a test that needs a program the
# package does not declare, a file outside its source, the network or a writable home fails here
# as it would fail the build of every host that uses the package.
#
# What it reads from nix/package.nix itself (tests/nix/package-args.nix, builtins-only stubs):
# doCheck, cargoTestFlags, checkFlags, env, the source file set, nativeBuildInputs and
# nativeCheckInputs. So the test selection and the declared programs are not kept twice.
#
# The environment, as in the sandbox:
#   - PATH: only the programs of the declared inputs (each nixpkgs attribute mapped below to the
#     Debian package that ships the same programs) and stdenv's basics (bash as sh, coreutils,
#     findutils, diffutils, sed, grep, awk, tar, gzip, …). cargo and rustc, which
#     buildRustPackage also puts there, are left out: no selected test may need them;
#   - an empty environment: HOME=/homeless-shelter, TMPDIR=a fresh directory (the sandbox's
#     /build), SOURCE_DATE_EPOCH as stdenv sets it, and the package's `env`;
#   - an unprivileged user (nobody), a network namespace with only loopback, and a private mount
#     namespace in which the repository shows only the package's source file set (a writable
#     copy, as the sandbox's unpacked source) plus target/ (read-only for nobody).
# Not emulated: the release profile (the tests run from the debug build tests/run-all.sh makes,
# which reads rust-embed's files from the dependencies' sources at run time: those stay
# readable, as the sandbox's vendored sources are) and the paths outside the repository (/tmp,
# /etc, … stay visible).
#
# Needs root (namespaces, mounts, setpriv), nix-instantiate, python3 and cargo.
# Usage: bash tests/nix-sandbox-check.sh
set -euo pipefail

# The Debian packages that ship the programs of a nixpkgs attribute. "" = no programs (a setup
# hook). A new input in nix/package.nix needs its line here.
declare -A debian_of=(
  [age]=age
  [iproute2]=iproute2
  [iptables]=iptables
  [makeWrapper]=""
  [openssh]=openssh-client
  [wireguard-tools]=wireguard-tools
)
# stdenv's basics (those installed here; one missing only makes this stricter than Nix).
stdenv_packages=(bash coreutils findutils diffutils sed grep gawk mawk tar gzip bzip2 xz-utils make patch)

nobody=65534

# ---- inside the namespaces (root), re-invoked by the code at the bottom ----
if [[ ${1-} == --in-sandbox ]]; then
  scratch=$2 repo=$3
  mount --make-rprivate /
  ip link set lo up
  # The real directories stay reachable at their stashes while their paths are remade below.
  while IFS=$'\t' read -r path stash; do mount --bind "$path" "$stash"; done <"$scratch/exposed"
  # A directory above them that nobody cannot enter (/root, say): an empty tmpfs in its place
  # opens the way to them only.
  while IFS= read -r top; do mount -t tmpfs -o mode=0755 wgfleet-sandbox "$top"; done <"$scratch/tops"
  while IFS=$'\t' read -r path stash; do
    mkdir -p "$path"
    if [[ $path == "$repo" ]]; then
      # Only the package's source, a copy that nobody owns (the sandbox's unpacked source is
      # the builder's), and target/, which nobody cannot write.
      mount -t tmpfs -o mode=0755 wgfleet-source "$repo"
      while IFS= read -r file; do
        mkdir -p "$repo/$(dirname "$file")"
        cp -a "$stash/$file" "$repo/$file"
      done <"$scratch/source"
      chown -R "$nobody:$nobody" "$repo"
      while IFS= read -r target; do
        mkdir -p "$repo/$target"
        mount --bind "$stash/$target" "$repo/$target"
      done <"$scratch/targets"
    else
      mount --bind "$stash" "$path"
    fi
  done <"$scratch/exposed"

  mapfile -t check_flags <"$scratch/check-flags"
  mapfile -t env_vars <"$scratch/env"
  failed=()
  while IFS= read -r exe; do
    echo "== ${exe#"$repo"/} ${check_flags[*]}"
    mkdir -m 0700 "$scratch/build" && chown "$nobody:$nobody" "$scratch/build"
    if ! (cd "$repo" && setpriv --reuid="$nobody" --regid="$nobody" --clear-groups --inh-caps=-all \
      /usr/bin/env -i "PATH=$scratch/bin" HOME=/homeless-shelter \
      "TMPDIR=$scratch/build" "TMP=$scratch/build" "TEMP=$scratch/build" "TEMPDIR=$scratch/build" \
      "NIX_BUILD_TOP=$scratch/build" NIX_BUILD_CORES=2 NIX_STORE=/nix/store TERM=xterm-256color \
      SOURCE_DATE_EPOCH=315532800 "PWD=$repo" "CARGO_MANIFEST_DIR=$repo" "${env_vars[@]}" \
      "$exe" --test-threads=2 "${check_flags[@]}"); then
      failed+=("${exe#"$repo"/}")
    fi
    rm -rf "$scratch/build"
  done <"$scratch/executables"
  if ((${#failed[@]})); then
    echo "nix-sandbox-check: failed in the sandbox-like check phase of nix/package.nix: ${failed[*]}" >&2
    exit 1
  fi
  exit 0
fi

# ---- outside: read the package, gather the programs and the test binaries ----
cd "$(dirname "$0")/.."
repo=$PWD
for tool in nix-instantiate python3 cargo unshare setpriv dpkg; do
  command -v "$tool" >/dev/null || {
    echo "nix-sandbox-check: needs $tool" >&2
    exit 1
  }
done

package=$(nix-instantiate --eval --strict --json --readonly-mode tests/nix/package-args.nix \
  2> >(grep -v "build-users-group" >&2))
# field NAME: a list field one item a line, or `env` as NAME=VALUE lines.
field() {
  python3 -c '
import json, sys
v = json.loads(sys.argv[1])[sys.argv[2]]
if isinstance(v, dict):
    v = [f"{k}={x if isinstance(x, str) else json.dumps(x)}" for k, x in v.items()]
elif not isinstance(v, list):
    v = [json.dumps(v)]
print("\n".join(v))' "$package" "$1"
}

if [[ $(field doCheck) != true ]]; then
  echo "nix-sandbox-check: nix/package.nix runs no tests (doCheck is not true)"
  exit 0
fi

scratch=$(mktemp -d)
stashes=()
cleanup() {
  rm -rf "$scratch"
  # The bind mounts lived only in the namespace: a stash is an empty directory here (rmdir,
  # never rm -r, so that the real tree can never be deleted through one).
  ((${#stashes[@]} == 0)) || rmdir "${stashes[@]}"
}
trap cleanup EXIT
chmod 0755 "$scratch"
mkdir "$scratch/bin"

# PATH: the declared inputs' programs, then stdenv's.
link_programs() { # debian-package
  local program
  while IFS= read -r program; do
    [[ -f $program && -x $program ]] && ln -sf "$program" "$scratch/bin/"
  done < <(dpkg -L "$1" | grep -E '^(/usr)?/s?bin/[^/]+$')
}
for pkg in "${stdenv_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 && link_programs "$pkg"
done
ln -sf "$(command -v bash)" "$scratch/bin/sh" # stdenv's sh is bash
ln -sf "$(command -v awk)" "$scratch/bin/awk"  # Debian's is an alternatives link, not in dpkg -L
declared=$(field nativeBuildInputs; field nativeCheckInputs)
for attr in $declared; do
  if [[ ! -v debian_of[$attr] ]]; then
    echo "nix-sandbox-check: nix/package.nix declares '$attr': add the Debian package with its programs to debian_of in $0" >&2
    exit 1
  fi
  for pkg in ${debian_of[$attr]}; do
    dpkg -s "$pkg" >/dev/null 2>&1 || {
      echo "nix-sandbox-check: '$attr' is the Debian package $pkg, which is not installed (tests/run-all.sh installs it)" >&2
      exit 1
    }
    link_programs "$pkg"
  done
done
echo "nix-sandbox-check: declared inputs: $(echo $declared); PATH: $(ls "$scratch/bin" | wc -l) programs"

# The test binaries of exactly the package's selection (built already by tests/run-all.sh).
mapfile -t flags < <(field cargoTestFlags)
cargo test --locked --quiet --no-run --message-format=json "${flags[@]}" | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["profile"]["test"] and m.get("executable"):
        print(m["executable"])' >"$scratch/executables"
[[ -s $scratch/executables ]] || {
  echo "nix-sandbox-check: cargo test --no-run ${flags[*]} built nothing" >&2
  exit 1
}
field checkFlags >"$scratch/check-flags"
field env >"$scratch/env"
field source >"$scratch/source"

# target/ (wherever the binaries are, when inside the repository) is kept; the rest of the
# repository shows only the source file set.
target_dir=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
case $target_dir in
"$repo"/*) echo "${target_dir#"$repo"/}" >"$scratch/targets" ;;
*) : >"$scratch/targets" ;;
esac

# What nobody must reach: the repository, and the sources of the dependencies (in a debug build
# rust-embed reads its files from there at run time; the sandbox's vendored sources are
# readable too). Each gets a stash; the topmost directory above one that nobody cannot enter
# becomes a tmpfs in the namespace.
can_enter() { setpriv --reuid="$nobody" --regid="$nobody" --clear-groups test -x "$1"; }
exposed=("$repo")
cargo_home=${CARGO_HOME:-$HOME/.cargo}
for dir in "$cargo_home/registry/src" "$cargo_home/git/checkouts"; do
  [[ -d $dir ]] && exposed+=("$(realpath "$dir")")
done
: >"$scratch/exposed"
tops=()
for path in "${exposed[@]}"; do
  stash=$(mktemp -d)
  stashes+=("$stash")
  printf '%s\t%s\n' "$path" "$stash" >>"$scratch/exposed"
  top=
  dir=$path
  while [[ $dir != / ]]; do
    dir=$(dirname "$dir")
    can_enter "$dir" || top=$dir
  done
  [[ -n $top ]] && tops+=("$top")
done
((${#tops[@]} == 0)) || printf '%s\n' "${tops[@]}" | sort -u >"$scratch/tops"
touch "$scratch/tops"
for path in "$scratch" "${stashes[@]}"; do
  while IFS= read -r top; do
    if [[ $path == "$top"/* ]]; then
      echo "nix-sandbox-check: the temporary directory $path is under $top, which nobody cannot enter: set TMPDIR elsewhere" >&2
      exit 1
    fi
  done <"$scratch/tops"
done
can_enter "$scratch" || {
  echo "nix-sandbox-check: nobody cannot enter $scratch: set TMPDIR to a directory all may enter" >&2
  exit 1
}

unshare --mount --net --fork -- bash "$repo/tests/nix-sandbox-check.sh" --in-sandbox "$scratch" "$repo"
