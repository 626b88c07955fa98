#!/usr/bin/env bash
# The whole test suite, as the README documents it: installs what the tests drive for real
# (WireGuard tools, wireguard-go, Nix, age, systemd-nspawn, iptables), then runs every test,
# the system tests on the nspawn testbed included. Needs root (apt-get, nspawn, netns).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(wireguard-tools wireguard-go nix-bin age systemd-container iptables iproute2 openssh-client iputils-ping procps python3 chromium nftables)
commands=(wg wireguard-go nix-instantiate age systemd-nspawn iptables ip ssh-keygen ping pgrep /usr/bin/python3 chromium nft)
missing=()
for i in "${!commands[@]}"; do
  command -v "${commands[$i]}" >/dev/null 2>&1 || missing+=("${packages[$i]}")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
# One test binary at a time keeps the testbed scenarios from competing for the two cores;
# inside a binary, tests run in parallel except the testbed's, which take a lock.
cargo test --locked --no-fail-fast -- --test-threads=2
# The flake package's check phase as the Nix build sandbox runs it (its programs only, no
# network, nobody, HOME=/homeless-shelter), from the binaries just built: no machine of ours
# runs `nix build`, so this is where a test that needs an undeclared program shows.
bash tests/nix-sandbox-check.sh
