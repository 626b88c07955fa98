# Seed 000's fleet (examples/seed-000/fleet.json) written with nix/lib.nix. tests/nixos_module.rs
# checks that it evaluates to exactly the same JSON (key paths are relative to this directory).
let
  wg = import ../../nix/lib.nix;
  workers = wg.numbered "worker-" [ 1 2 ];
in
wg.mkFleet {
  hosts = wg.mkHosts { keyDir = "../../secrets/examples/seed-000"; } {
    cp = {
      publicKey = "j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=";
      endpoint = "203.0.113.10";
      description = "control plane";
    };
    worker-1.publicKey = "um/TOLbxUvqJwIOGdbFPn9uBh/Es4shlVXFlWyEYvng=";
    worker-2.publicKey = "cOW07yOnwkL6IrWiXjj2ZtKizAAu+k9RWgxFiIvoJwU=";
    proxy = {
      publicKey = "3jfcaaPzGrCH1/Gd5HofHAJOtpt+VChIBIH7v0SZnVo=";
      endpoint = "192.0.2.30";
      description = "proxy server";
    };
  };
  groups.workers = workers;
  networks.wg0 = {
    subnet = "10.50.0.0/24";
    listenPort = 51821;
    persistentKeepalive = 25;
    topology = wg.hubAndSpoke [ "cp" ];
    # cp gets id 0, worker-N id N: 10.50.0.(N+1).
    members = wg.merge [
      (wg.mkMembers ([ "cp" ] ++ workers))
      {
        cp.forwarding = true;
        proxy = { address = "10.50.0.30"; reach = [ "10.50.0.0/24" ]; };
      }
    ];
  };
}
