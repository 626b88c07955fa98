# NixOS VM test (flake `checks.<system>.vm` and `.vm-nftables`; needs KVM): two machines of seed
# 000's fleet, `cp` (the hub) and `worker1` (host worker-1 in the fleet), both running
# services.wgfleet with NixOS's firewall on (on cp with iptables, or with nftables: `nftables`)
# and no port opened by hand, reach each other across wg0; a switch on cp to a fleet with worker-2
# added re-runs wgfleet once, which adds the peer by a reload: worker1's pings through the switch
# all come back. Then a peer removed by hand on cp is restored by the timer alone, and after a
# reboot of worker1 a unit ordered after wg-quick@wg0 finds the tunnel up.
#
# Keys: the example fleet's age files (secrets/examples/seed-000), decrypted with the public,
# test-only identity secrets/test-identity.txt, which is put in /etc (and so in the Nix store):
# fine for a throw-away VM, never for a real host, whose identity is its SSH host key.
{
  pkgs,
  module,
  nftables ? false,
}:

let
  wg = import ./lib.nix;
  secrets = ../secrets/examples/seed-000;
  keys = {
    cp = "j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=";
    worker-1 = "um/TOLbxUvqJwIOGdbFPn9uBh/Es4shlVXFlWyEYvng=";
    worker-2 = "cOW07yOnwkL6IrWiXjj2ZtKizAAu+k9RWgxFiIvoJwU=";
  };

  # Key files as store paths ("${secrets}" copies the encrypted files to the store).
  fleet = cpAddress: workers:
    wg.mkFleet {
      hosts = builtins.listToAttrs (map
        (name: {
          inherit name;
          value = { publicKey = keys.${name}; privateKeyFile = "${secrets}/${name}.age"; }
            // (if name == "cp" then { endpoint = cpAddress; } else { });
        })
        ([ "cp" ] ++ workers));
      networks.wg0 = {
        subnet = "10.50.0.0/24";
        listenPort = 51821;
        persistentKeepalive = 25;
        topology = wg.hubAndSpoke [ "cp" ];
        members = wg.mkMembers ([ "cp" ] ++ workers); # cp 10.50.0.1, worker-1 10.50.0.2, …
      };
    };

  common = { nodes, ... }: {
    imports = [ module ];
    services.wgfleet = {
      enable = true;
      fleet = fleet nodes.cp.networking.primaryIPAddress [ "worker-1" ];
      identityFiles = [ "/etc/wgfleet/test-identity.txt" ];
      interval = "10s";
    };
    environment.etc."wgfleet/test-identity.txt" = {
      source = ../secrets/test-identity.txt;
      mode = "0400";
    };
    # The firewall is on (NixOS's default) and nothing is opened by hand: the module opens
    # cp's listen port itself.
    networking.firewall.enable = true;
    environment.systemPackages = [ pkgs.wireguard-tools ];
  };
in
pkgs.testers.runNixOSTest {
  name = "wgfleet";

  nodes.cp = { lib, nodes, ... }: {
    imports = [ common ];
    networking.nftables.enable = nftables;
    specialisation.addPeer.configuration.services.wgfleet.fleet =
      lib.mkForce (fleet nodes.cp.networking.primaryIPAddress [ "worker-1" "worker-2" ]);
  };

  nodes.worker1 = {
    imports = [ common ];
    services.wgfleet.host = "worker-1";
    # A service that needs the tunnel, ordered after it as any NixOS unit would be.
    systemd.services.needs-tunnel = {
      wantedBy = [ "multi-user.target" ];
      wants = [ "wg-quick@wg0.service" ];
      after = [ "wg-quick@wg0.service" ];
      serviceConfig.Type = "oneshot";
      path = [ pkgs.iproute2 ];
      script = "if ip link show wg0; then echo up; else echo down; fi >> /var/lib/needs-tunnel.log";
    };
  };

  testScript = ''
    start_all()

    with subtest("the timer applies the fleet at boot and the tunnel comes up"):
        for m in (cp, worker1):
            m.wait_for_unit("wgfleet.timer")
            m.wait_until_succeeds("systemctl is-active wg-quick@wg0.service", timeout=120)
        worker1.wait_until_succeeds("ping -c 1 -W 1 10.50.0.1", timeout=60)
        cp.succeed("ping -c 1 -W 1 10.50.0.2")
        cp.succeed("test -s /var/lib/wgfleet/audit.jsonl")

    with subtest("a switch that adds a peer re-runs wgfleet once and keeps the session"):
        ifindex = cp.succeed("cat /sys/class/net/wg0/ifindex")
        worker1.succeed("systemd-run --unit=pinger -- \"$(command -v ping)\" -c 100 -i 0.2 -W 1 10.50.0.1")
        cp.succeed("/run/booted-system/specialisation/addPeer/bin/switch-to-configuration test")
        cp.wait_until_succeeds("wg show wg0 peers | grep -qF '${keys.worker-2}'", timeout=60)
        assert cp.succeed("cat /sys/class/net/wg0/ifindex") == ifindex, "wg0 was recreated, not reloaded"
        worker1.wait_until_fails("systemctl is-active pinger.service", timeout=60)
        pinged = worker1.succeed("journalctl -u pinger.service -o cat")
        assert " 0% packet loss" in pinged, pinged

    with subtest("drift is healed by the timer: a peer removed by hand comes back"):
        cp.succeed("wg set wg0 peer '${keys.worker-1}' remove")
        cp.wait_until_succeeds("wg show wg0 peers | grep -qF '${keys.worker-1}'", timeout=60)
        worker1.wait_until_succeeds("ping -c 1 -W 1 10.50.0.1", timeout=60)

    with subtest("boot ordering: the first boot converges, the next has the tunnel up first"):
        # First boot: no wg0.conf until the timer's first run wrote it, so wg-quick@wg0 may
        # have been skipped (not failed); the unit after it ran all the same.
        worker1.fail("systemctl is-failed wg-quick@wg0.service needs-tunnel.service")
        worker1.succeed("test -s /etc/wireguard/wg0.conf")
        worker1.shutdown()
        worker1.start()
        worker1.wait_for_unit("needs-tunnel.service")
        worker1.succeed("tail -n 1 /var/lib/needs-tunnel.log | grep -qx up")
        worker1.wait_until_succeeds("ping -c 1 -W 1 10.50.0.1", timeout=60)
  '';
}
