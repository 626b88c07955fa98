# The NixOS side of host cp (seed 000): a module of its system configuration, next to
# `wgfleet.nixosModules.default` (see docs/nixos.md). tests/nixos_module.rs evaluates it.
{
  networking.hostName = "cp"; # its name in the fleet (or services.wgfleet.host)
  services.wgfleet = {
    enable = true;
    fleet = import ./fleet-lib.nix; # the fleet as a Nix attribute set
    interval = "2min";
  };
}
