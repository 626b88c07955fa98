{
  description = "wgfleet: declarative WireGuard fleets, one description in git and a reconciler on every host";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      # WireGuard, systemd and iptables: Linux only.
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems =
        f:
        nixpkgs.lib.genAttrs systems (
          system:
          f (
            import nixpkgs {
              inherit system;
              overlays = [ self.overlays.default ];
            }
          )
        );

      # Host cp of seed 000 (examples/seed-000/nixos-host-cp.nix) as a NixOS system.
      moduleSystem =
        pkgs: nftables:
        (nixpkgs.lib.nixosSystem {
          inherit (pkgs.stdenv.hostPlatform) system;
          modules = [
            self.nixosModules.default
            ./examples/seed-000/nixos-host-cp.nix
            {
              boot.loader.grub.enable = false;
              fileSystems."/" = {
                device = "none";
                fsType = "tmpfs";
              };
              system.stateVersion = "25.05";
              networking.nftables.enable = nftables;
            }
          ];
        }).config.system.build.toplevel;
    in
    {
      overlays.default = final: _prev: { wgfleet = final.callPackage ./nix/package.nix { }; };

      packages = forAllSystems (pkgs: {
        default = pkgs.wgfleet;
        wgfleet = pkgs.wgfleet;
      });

      # services.wgfleet, with this flake's package as the default.
      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./modules/wgfleet.nix ];
          services.wgfleet.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };
      nixosModules.wgfleet = self.nixosModules.default;

      # Helpers for writing fleets in Nix, builtins only (nix/lib.nix).
      lib = import ./nix/lib.nix;

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ pkgs.wgfleet ];
          packages = with pkgs; [
            clippy
            rustfmt
            rust-analyzer
            wireguard-tools
            wireguard-go
            age
            iptables
            iproute2
            nix
          ];
        };
      });

      checks = forAllSystems (pkgs: {
        # The build, with the tests that run in the build sandbox (see nix/package.nix).
        package = pkgs.wgfleet;

        # The same commands as tests/run-all.sh (tests/nix/flake-refs.nix checks that they stay
        # so), in the package's build environment: --frozen is --locked with the vendored crates.
        clippy = pkgs.wgfleet.overrideAttrs (old: {
          pname = "wgfleet-clippy";
          nativeBuildInputs = old.nativeBuildInputs ++ [ pkgs.clippy ];
          buildPhase = ''
            runHook preBuild
            cargo clippy --frozen --all-targets -- -D warnings
            runHook postBuild
          '';
          doCheck = false;
          installPhase = "mkdir -p $out";
        });

        fmt = pkgs.wgfleet.overrideAttrs (old: {
          pname = "wgfleet-fmt";
          nativeBuildInputs = old.nativeBuildInputs ++ [ pkgs.rustfmt ];
          buildPhase = ''
            runHook preBuild
            cargo fmt --check
            runHook postBuild
          '';
          doCheck = false;
          installPhase = "mkdir -p $out";
        });

        # The module in a real (minimal) NixOS system: its options against NixOS's own types,
        # the units and the firewall rendered by NixOS, with the iptables and the nftables
        # firewall. No KVM needed.
        module = moduleSystem pkgs false;
        module-nftables = moduleSystem pkgs true;

        # Two VMs, a tunnel, a switch that adds a peer (nix/vm-test.nix). Needs KVM.
        vm = import ./nix/vm-test.nix {
          inherit pkgs;
          module = self.nixosModules.default;
        };
        vm-nftables = import ./nix/vm-test.nix {
          inherit pkgs;
          module = self.nixosModules.default;
          nftables = true;
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt-rfc-style);
    };
}
