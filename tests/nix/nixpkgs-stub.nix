# `import nixpkgs { system; overlays; }` for tests/nix/flake-refs.nix: a package set of stubs
# (tests/nix/package-stubs.nix) holding only what flake.nix and nix/vm-test.nix take from pkgs,
# with the flake's overlays applied. A new `pkgs.x` fails with "attribute 'x' missing": add it.
{
  system,
  overlays ? [ ],
}:
let
  stubs = import ./package-stubs.nix;
  base = final: {
    stdenv.hostPlatform.system = system;
    callPackage = stubs.callPackage;
    # The test's attributes as given: tests/nix/flake-refs.nix evaluates its nodes.
    testers.runNixOSTest = test: { nixosTest = test; };
    clippy = stubs.stubPackage "clippy";
    rustfmt = stubs.stubPackage "rustfmt";
    iproute2 = stubs.stubPackage "iproute2";
    wireguard-tools = stubs.stubPackage "wireguard-tools";
  };
  extend = prev: overlay: final: prev final // overlay final (prev final);
  pkgs = builtins.foldl' extend base overlays;
  fix = f: let x = f x; in x;
in
fix pkgs
