#!/usr/bin/env bash
# Builds the Debian package of wgfleet, target/debian/wgfleet_VERSION_amd64.deb, so that a Debian
# or Ubuntu host needs no Rust toolchain: `apt install ./wgfleet_VERSION_amd64.deb`.
#
#   bash packaging/deb.sh
#
# 1. cargo-deb (pinned below) from crates.io with `cargo install --locked`, unless it is there;
# 2. the release binary (`cargo build --release --locked`);
# 3. into target/deb-assets/: the man pages (`wgfleet man`), the bash, zsh and fish completions
#    (`wgfleet completions`), and copies of systemd/'s units whose ExecStart= runs
#    /usr/bin/wgfleet (systemd/ itself stays as systemd/install.sh installs it, /usr/local);
# 4. `cargo deb --no-build`, from [package.metadata.deb] in Cargo.toml (what goes where) and
#    packaging/debian/ (the maintainer scripts: daemon-reload, and stop on removal; they enable
#    and start nothing).
# The last line printed is the path of the .deb. What it installs: docs/debian.md.
set -euo pipefail
cd "$(dirname "$0")/.."

# 3.8.0 builds with Rust 1.85 and later.
cargo_deb_version=3.8.0

if [[ $(cargo deb --version 2>/dev/null) != "cargo-deb $cargo_deb_version" ]]; then
  echo "deb.sh: installing cargo-deb $cargo_deb_version" >&2
  cargo install --locked cargo-deb --version "$cargo_deb_version" >&2
fi

cargo build --release --locked >&2

target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[[ -n $target_dir ]] || { echo "deb.sh: no target_directory in cargo metadata" >&2; exit 1; }
wgfleet="$target_dir/release/wgfleet"

# The assets Cargo.toml names under target/deb-assets (a path of this repository, whatever
# CARGO_TARGET_DIR says), made anew so that nothing stale is packaged.
assets=target/deb-assets
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions" "$assets/systemd"

"$wgfleet" man --dir "$assets/man"
"$wgfleet" completions bash >"$assets/completions/wgfleet"
"$wgfleet" completions zsh >"$assets/completions/_wgfleet"
"$wgfleet" completions fish >"$assets/completions/wgfleet.fish"

units=(wgfleet.service wgfleet.timer wgfleet-endpoints.service wgfleet-endpoints.timer)
for unit in "${units[@]}"; do
  sed -e 's|/usr/local/bin/wgfleet|/usr/bin/wgfleet|g' \
    -e 's|Installed by systemd/install\.sh|Installed by the wgfleet Debian package|' \
    "systemd/$unit" >"$assets/systemd/$unit"
done
if grep -n /usr/local "$assets"/systemd/*; then
  echo "deb.sh: a packaged unit still names /usr/local (see above)" >&2
  exit 1
fi
for service in wgfleet.service wgfleet-endpoints.service; do
  grep -q '^ExecStart=/usr/bin/wgfleet ' "$assets/systemd/$service" || {
    echo "deb.sh: $service: no ExecStart=/usr/bin/wgfleet" >&2
    exit 1
  }
done

# cargo-deb prints the path of the package it wrote as its last line.
deb=$(cargo deb --no-build --locked | tail -n 1)
[[ -f $deb ]] || { echo "deb.sh: cargo deb did not name a package: $deb" >&2; exit 1; }
echo "$deb"
