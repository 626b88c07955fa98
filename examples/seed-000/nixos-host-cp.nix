# The NixOS side of host cp (seed 000): a module of its system configuration, next to
# `wgfleet.nixosModules.default` (see docs/nixos.md). tests/nix_module_core.rs and
# tests/nixos_module.rs evaluate it.
{
  networking.hostName = "cp"; # its name in the fleet (or services.wgfleet.host)
  services.wgfleet = {
    enable = true;
    # The fleet in Nix, as a Nix path: it is evaluated when the system is built, and the key
    # files it names (relative to it) are copied to the store with it.
    fleetFile = ./fleet-lib.nix;
    interval = "2min";
  };
}
