# Evaluates modules/wgfleet.nix with the real nixpkgs module system (lib.evalModules) over stubs
# of the NixOS options it sets, and returns what it produced, for tests/nixos_module.rs:
#
#   nix-instantiate --eval --strict --json tests/nix/eval-module.nix \
#     --argstr nixpkgsLib /path/to/nixpkgs/lib \
#     --arg config '{ networking.hostName = "cp"; services.wgfleet = { enable = true; fleet = import ./examples/seed-000/fleet.nix; }; }'
#
# The stubs declare their options with the same names and (simplified) types as NixOS, without
# freeform attributes, so a misspelt or mistyped definition in the module fails here as it would
# on NixOS. `pkgs` is fake: packages are derivation-shaped attribute sets with made-up store
# paths, and `writeText` keeps its text so the generated fleet JSON can be inspected; its store
# path hashes the text, so a changed fleet gives a changed path, as in real Nix.
{
  # The nixpkgs `lib` directory (a path or a string).
  nixpkgsLib,
  # A NixOS-style module with the configuration under test.
  config ? { },
}:
let
  lib = import nixpkgsLib;
  inherit (lib) mkOption types;

  hash = s: builtins.substring 0 32 (builtins.hashString "sha256" s);
  fakePackage = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/${hash name}-${name}";
  };
  pkgs = {
    writeText = name: text: fakePackage name // {
      outPath = "/nix/store/${hash text}-${name}";
      inherit text;
    };
    wgfleet = fakePackage "wgfleet-0.1.0";
    wireguard-tools = fakePackage "wireguard-tools-1.0.20250521";
    iproute2 = fakePackage "iproute2-6.15.0";
    iptables = fakePackage "iptables-1.8.11";
    nix = fakePackage "nix-2.28.4";
  };

  # Like NixOS's unitOption: a value or a list of values, rendered one line each.
  atom = types.oneOf [ types.bool types.int types.str types.path ];
  unitOption = types.either atom (types.listOf atom);
  strList = mkOption { type = types.listOf types.str; default = [ ]; };
  unitOptions = {
    description = mkOption { type = types.str; default = ""; };
    documentation = strList;
    wants = strList;
    requires = strList;
    after = strList;
    before = strList;
    wantedBy = strList;
    requiredBy = strList;
    restartTriggers = mkOption { type = types.listOf types.unspecified; default = [ ]; };
    reloadTriggers = mkOption { type = types.listOf unitOption; default = [ ]; };
    unitConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
  };
  service = types.submodule {
    options = unitOptions // {
      path = mkOption { type = types.listOf (types.either types.package types.str); default = [ ]; };
      environment = mkOption { type = types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ])); default = { }; };
      serviceConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
      restartIfChanged = mkOption { type = types.bool; default = true; };
      overrideStrategy = mkOption { type = types.enum [ "asDropinIfExists" "asDropin" ]; default = "asDropinIfExists"; };
      stopIfChanged = mkOption { type = types.bool; default = true; };
      startAt = mkOption { type = types.either types.str (types.listOf types.str); default = [ ]; };
    };
  };
  timer = types.submodule {
    options = unitOptions // {
      timerConfig = mkOption { type = types.attrsOf unitOption; };
    };
  };

  nixosStubs = {
    options = {
      assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      warnings = mkOption { type = types.listOf types.str; default = [ ]; };
      networking.hostName = mkOption { type = types.str; default = "nixos"; };
      networking.firewall = {
        enable = mkOption { type = types.bool; default = true; };
        allowedUDPPorts = mkOption { type = types.listOf types.port; default = [ ]; };
        trustedInterfaces = mkOption { type = types.listOf types.str; default = [ ]; };
        checkReversePath = mkOption { type = types.either types.bool (types.enum [ "strict" "loose" ]); default = true; };
      };
      networking.nftables.enable = mkOption { type = types.bool; default = false; };
      boot.kernel.sysctl = mkOption { type = types.attrsOf (types.nullOr (types.oneOf [ types.bool types.str types.int ])); default = { }; };
      # NixOS's default host keys.
      services.openssh.hostKeys = mkOption {
        type = types.listOf types.attrs;
        default = [
          { type = "rsa"; bits = 4096; path = "/etc/ssh/ssh_host_rsa_key"; }
          { type = "ed25519"; path = "/etc/ssh/ssh_host_ed25519_key"; }
        ];
      };
      nix.package = mkOption { type = types.package; default = pkgs.nix; };
      environment.systemPackages = mkOption { type = types.listOf types.package; default = [ ]; };
      systemd.packages = mkOption { type = types.listOf types.package; default = [ ]; };
      systemd.services = mkOption { type = types.attrsOf service; default = { }; };
      systemd.timers = mkOption { type = types.attrsOf timer; default = { }; };
    };
  };

  eval = lib.evalModules {
    modules = [ ../../modules/wgfleet.nix nixosStubs config ];
    specialArgs = { inherit pkgs; };
  };
  cfg = eval.config;
  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) cfg.assertions);
  wgfleet = cfg.services.wgfleet;
in
{
  inherit failedAssertions;
  inherit (cfg) warnings;
  enabled = wgfleet.enable;
  identityFiles = wgfleet.identityFiles;
  host = wgfleet.host;
}
# Like NixOS, which refuses to build a system whose assertions fail: only then the units.
// lib.optionalAttrs (failedAssertions == [ ] && wgfleet.enable) {
  service = cfg.systemd.services.wgfleet;
  # The tunnel units the module declares (drop-ins on wireguard-tools' wg-quick@.service).
  tunnels = builtins.removeAttrs cfg.systemd.services [ "wgfleet" "wgfleet-endpoints" ];
  # The endpoint check (`apply --endpoints-only`) and its timer, where the module declares them.
  endpointsService = cfg.systemd.services.wgfleet-endpoints or null;
  endpointsTimer = cfg.systemd.timers.wgfleet-endpoints or null;
  firewall = { inherit (cfg.networking.firewall) allowedUDPPorts trustedInterfaces checkReversePath; };
  sysctl = cfg.boot.kernel.sysctl;
  interfaces = wgfleet.interfaces;
  timer = cfg.systemd.timers.wgfleet;
  systemdPackages = map (p: p.name) cfg.systemd.packages;
  systemPackages = map (p: p.name) cfg.environment.systemPackages;
  fleetPath = toString wgfleet.fleetPath;
  # The generated fleet JSON, when the fleet was given as a Nix attribute set.
  fleetJson = wgfleet.fleetPath.text or null;
}
