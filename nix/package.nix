# The wgfleet package (flake `packages.default`, overlay `pkgs.wgfleet`): built from Cargo.lock,
# wrapped so that the tools it runs (wg, ip, iptables, ping) are on its PATH whatever the caller's is.
#
# Tests in the build: only those that run unprivileged and offline in the build sandbox. The
# rest need what a sandbox does not have (see tests/run-all.sh): tests/examples.rs runs
# `wg-quick strip` (root) and nix-instantiate, the testbed tests boot systemd-nspawn containers
# (root, a bridge), tests/nixos_module.rs evaluates Nix. Run them with `bash tests/run-all.sh`
# on a machine, and the VM test with `nix build .#checks.x86_64-linux.vm` where KVM is.
{
  lib,
  rustPlatform,
  makeWrapper,
  wireguard-tools,
  iproute2,
  iptables,
  iputils,
  age,
  openssh,
}:

let
  cargoToml = lib.importTOML ../Cargo.toml;
in
rustPlatform.buildRustPackage {
  pname = "wgfleet";
  inherit (cargoToml.package) version;

  # Only what the build and its tests read: no target/, fuzz/ or bench/.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      ../tests
      ../examples
      ../schema
      ../secrets
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  nativeBuildInputs = [ makeWrapper ];

  doCheck = true;
  cargoTestFlags = [
    "--lib"
    "--bins"
    "--test"
    "validation"
    "--test"
    "schema"
    "--test"
    "properties"
    "--test"
    "secrets"
  ];
  # Evaluates a .nix fleet with nix-instantiate, which cannot run inside the build sandbox.
  checkFlags = [ "--skip=nix_errors_are_nix_own_and_missing_nix_is_explained" ];
  # tests/secrets.rs checks interoperability with the age CLI and `wg pubkey`, on SSH keys made
  # by `ssh-keygen`. tests/nix-sandbox-check.sh runs this check phase with only these programs.
  nativeCheckInputs = [
    age
    openssh
    wireguard-tools
  ];
  # A snapshot that differs fails the build instead of writing a .snap.new.
  env.INSTA_UPDATE = "no";

  # WGFLEET_EXE: the wg-quick@ drop-in that restores the firewall must run this wrapper (which
  # sets PATH), not the wrapped binary that current_exe() would name.
  postInstall = ''
    wrapProgram $out/bin/wgfleet \
      --set WGFLEET_EXE $out/bin/wgfleet \
      --prefix PATH : ${
        lib.makeBinPath [
          wireguard-tools
          iproute2
          iptables
          iputils
        ]
      }
  '';

  meta = {
    description = "Declarative WireGuard fleets: one description in git, a reconciler on every host";
    mainProgram = "wgfleet";
    platforms = lib.platforms.linux;
  };
}
