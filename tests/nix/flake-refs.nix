# flake.nix evaluated without nixpkgs (builtins-only stubs: tests/nix/nixpkgs-stub.nix,
# tests/nix/package-stubs.nix), for tests/flake.rs:
#
#   nix-instantiate --eval --strict --json --readonly-mode tests/nix/flake-refs.nix
#
# What cannot run here (no nixpkgs, no KVM) is still evaluated as far as builtins go: the
# package, checks.fmt and checks.clippy (their commands are returned, to compare with
# tests/run-all.sh), checks.module* and checks.vm* (nix/vm-test.nix), whose NixOS modules are
# called with stub arguments and walked whole. So a misspelt attribute (self.nixosModules.default,
# wg.mkFleet, wg.hubAndSpoke, wg.mkMembers, …) fails the evaluation, and every path they name is
# returned with whether it exists. The modules in modules/ need nixpkgs' lib: their paths are
# returned, not evaluated (tests/nix_module_core.rs and tests/nixos_module.rs evaluate them).
let
  root = ../..;
  system = "x86_64-linux";

  nixpkgs = {
    outPath = ./nixpkgs-stub.nix;
    lib = {
      genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);
      # The configuration's modules as given, where a NixOS system has its toplevel.
      nixosSystem = args: { config.system.build.toplevel.nixosSystem = args; };
    };
  };
  flake = import (root + "/flake.nix");
  self = flake.outputs { inherit self nixpkgs; } // { outPath = root; };
  checks = self.checks.${system};

  # What a NixOS module function is called with. Only what the modules here use.
  moduleArgs = {
    lib = {
      mkDefault = v: v;
      mkForce = v: v;
    };
    pkgs = import nixpkgs { inherit system; overlays = [ self.overlays.default ]; };
    config = { };
    nodes = builtins.mapAttrs (_: n: { networking.primaryIPAddress = n; }) {
      cp = "192.0.2.1";
      worker1 = "192.0.2.2";
    };
  };

  # A module (a function, a set, or a path to a file) -> every path value in it, all of it
  # forced. Functions in values (overrideAttrs, …) are not called. A module file from modules/
  # needs nixpkgs' lib: only its path is taken.
  isModulesDir =
    p:
    let
      dir = toString root + "/modules/";
    in
    builtins.substring 0 (builtins.stringLength dir) (toString p) == dir;
  modulePaths =
    m:
    if builtins.isPath m then
      [ m ] ++ (if isModulesDir m then [ ] else modulePaths (import m))
    else if builtins.isFunction m then
      modulePaths (m (builtins.intersectAttrs (builtins.functionArgs m) moduleArgs))
    else
      builtins.concatMap modulePaths (m.imports or [ ])
      ++ valuePaths (builtins.removeAttrs m [ "imports" ]);
  valuePaths =
    v:
    if builtins.isPath v then
      [ v ]
    else if builtins.isList v then
      builtins.concatMap valuePaths v
    else if builtins.isAttrs v then
      # A specialisation's configuration is a module, with its own imports.
      if v ? configuration then
        modulePaths v.configuration ++ valuePaths (builtins.removeAttrs v [ "configuration" ])
      else
        builtins.concatMap valuePaths (builtins.attrValues v)
    else
      builtins.seq v [ ];

  # The line of a build phase that runs `cargo`.
  cargoLine =
    drv:
    let
      lines = builtins.filter (l: builtins.isString l && builtins.match " *cargo .*" l != null) (
        builtins.split "\n" drv.buildPhase
      );
    in
    if builtins.length lines == 1 then
      builtins.replaceStrings [ "  " ] [ "" ] (builtins.head lines)
    else
      throw "flake.nix: expected one cargo command in the buildPhase of ${drv.pname}";

  # A check is a NixOS test (its nodes are modules), a NixOS system (its modules), or a
  # derivation (the package, fmt, clippy).
  checkPaths =
    check:
    if check ? nixosTest then
      builtins.concatMap modulePaths (builtins.attrValues check.nixosTest.nodes)
      ++ valuePaths (builtins.removeAttrs check.nixosTest [ "nodes" ])
    else if check ? nixosSystem then
      builtins.concatMap modulePaths check.nixosSystem.modules
    else
      valuePaths check;
  paths =
    modulePaths self.nixosModules.default
    ++ builtins.concatMap checkPaths (builtins.attrValues checks)
    ++ valuePaths self.lib.version;
  unique = builtins.foldl' (acc: p: if builtins.elem p acc then acc else acc ++ [ p ]) [ ];
in
{
  checks = builtins.attrNames checks;
  fmt = cargoLine checks.fmt;
  clippy = cargoLine checks.clippy;
  # Every path the package, the module and the tests name, and whether it exists.
  paths = map (p: {
    path = toString p;
    exists = builtins.pathExists p;
  }) (unique (map toString paths));
}
