# Seed 004's full mesh (examples/seed-004/fleet.json) written with nix/lib.nix; tests/nixos_module.rs
# checks that it evaluates to exactly the same JSON.
let
  wg = import ../../nix/lib.nix;
  keys = "../../secrets/examples/seed-004";
in
wg.mkFleet {
  hosts = wg.mkHosts { keyDir = keys; } {
    node-a = { publicKey = "nYRH3U+O0ffBh39H4sK5paHx09FypVsy9ctAkE+w4HI="; endpoint = "198.51.100.1"; };
    node-b = { publicKey = "9oz0zaN6Z8b4dDnwqcz6P5nysjEOq5f8TtyS9xLSBDw="; endpoint = "198.51.100.2"; };
    node-c = { publicKey = "yfGLqAp0hD39tJtagcqlRGGnWHjBb5Pbc5SUZOyZJA4="; endpoint = "node-c.example.net:51900"; };
  };
  networks.wg0 = {
    subnet = "10.42.0.0/24";
    listenPort = 51820;
    mtu = 1280;
    persistentKeepalive = 25;
    topology = wg.mesh;
    members = wg.withAll { forwarding = true; } (wg.mkMembers [ "node-a" "node-b" ])
      // { node-c = { id = 2; forwarding = true; listenPort = 51900; }; };
    presharedKeys = [
      { peers = [ "node-a" "node-b" ]; file = "${keys}/wg0-node-a-node-b.psk.age"; }
    ];
  };
}
