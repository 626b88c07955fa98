# Helpers for writing a wgfleet fleet in Nix. Builtins only: no nixpkgs needed, so a fleet written
# with them evaluates on any machine with `nix-instantiate` (`wgfleet validate --fleet fleet.nix`)
# and inside a NixOS configuration (`services.wgfleet.fleet = import ./fleet.nix;`).
#
#   let wg = import ./nix/lib.nix; in          # or: wgfleet.lib from the flake
#   wg.mkFleet {
#     hosts = wg.mkHosts { keyDir = "secrets"; } {
#       cp = { publicKey = "j65i…BnM="; endpoint = "203.0.113.10"; };
#       worker-1.publicKey = "um/T…vng=";
#     };
#     networks.wg0 = {
#       subnet = "10.50.0.0/24";
#       topology = wg.hubAndSpoke [ "cp" ];
#       members = wg.mkMembers [ "cp" "worker-1" ];      # cp id 0, worker-1 id 1
#     };
#   }
#
# Every helper returns plain attribute sets in fleet schema v1 (see `wgfleet schema`); nothing
# here is magic, and the result can be mixed with hand-written parts freely.
let
  # The element index of a list, as pairs: [ { index = 0; value = a; } … ].
  indexed = list:
    builtins.genList (i: { index = i; value = builtins.elemAt list i; }) (builtins.length list);

  # attrNames that are in `names` but not in `set`.
  missing = set: names: builtins.filter (n: !(builtins.hasAttr n set)) names;

  quoteList = names: builtins.concatStringsSep ", " (map (n: "\"${n}\"") names);
in
rec {
  # The schema version these helpers produce.
  version = 1;

  # The mesh topology: everyone peers with everyone.
  mesh = "mesh";

  # Hub-and-spoke topology: spokes and clients peer with (and dial) the hubs.
  #   hubAndSpoke [ "cp" ]  →  { hubAndSpoke = { hubs = [ "cp" ]; }; }
  hubAndSpoke = hubs: { hubAndSpoke = { inherit hubs; }; };

  # Names with a numbered suffix: numbered "worker-" [ 1 2 ]  →  [ "worker-1" "worker-2" ].
  numbered = prefix: numbers: map (n: "${prefix}${toString n}") numbers;

  # Members with ids taken from their position, starting at `first`:
  #   mkMembersFrom 1 [ "worker-1" "worker-2" ]  →  { worker-1.id = 1; worker-2.id = 2; }
  # An id N gives the (N+1)-th address of the subnet (id 1 → 10.50.0.2 in 10.50.0.0/24).
  mkMembersFrom = first: names:
    builtins.listToAttrs (map
      (e: { name = e.value; value = { id = first + e.index; }; })
      (indexed names));

  # mkMembersFrom 0: the first name gets id 0 (the subnet's first host address).
  mkMembers = mkMembersFrom 0;

  # Members named by a numbered suffix, each with that number as id:
  #   mkNumberedMembers "worker-" [ 1 2 ]  →  { worker-1.id = 1; worker-2.id = 2; }
  mkNumberedMembers = prefix: numbers:
    builtins.listToAttrs (map
      (n: { name = "${prefix}${toString n}"; value = { id = n; }; })
      numbers);

  # Adds the same fields to every entry: withAll { forwarding = true; } (mkMembers [ … ]).
  # Fields already on an entry win.
  withAll = extra: set: builtins.mapAttrs (_: v: extra // v) set;

  # Hosts whose private keys follow one naming scheme, `<keyDir>/<name>.age` (relative to the
  # fleet file, like every path in a fleet). An explicit privateKeyFile on a host wins.
  #   mkHosts { keyDir = "secrets"; } { cp.publicKey = "…"; }
  #   →  { cp = { publicKey = "…"; privateKeyFile = "secrets/cp.age"; }; }
  mkHosts = { keyDir, suffix ? ".age" }: hosts:
    builtins.mapAttrs
      (name: host: { privateKeyFile = "${keyDir}/${name}${suffix}"; } // host)
      hosts;

  # Recursive merge of a list of attribute sets, later ones winning; lists and other values are
  # replaced, not concatenated. For assembling a fleet from parts (one file per team, …).
  merge = builtins.foldl' recursiveUpdate { };

  recursiveUpdate = a: b:
    a // builtins.mapAttrs
      (name: v:
        if builtins.isAttrs v && builtins.isAttrs (a.${name} or null)
        then recursiveUpdate a.${name} v
        else v)
      b;

  # The whole fleet: adds `version`, and checks what Nix can see cheaply (every member of a
  # network is a host, every hub a member) with messages that say what to fix. `wgfleet validate`
  # checks the rest (addresses, keys, overlaps, …).
  mkFleet = fleet:
    let
      hosts = fleet.hosts or { };
      networks = fleet.networks or { };
      problems = builtins.concatLists (builtins.attrValues (builtins.mapAttrs
        (net: n:
          let
            members = n.members or { };
            hubs = if builtins.isAttrs (n.topology or null) then n.topology.hubAndSpoke.hubs or [ ] else [ ];
            notHosts = missing hosts (builtins.attrNames members);
            notMembers = missing members hubs;
          in
          (if notHosts == [ ] then [ ] else [
            "networks.${net}.members: ${quoteList notHosts} not in hosts; add them to `hosts` (with their publicKey) or remove them from the network"
          ])
          ++ (if notMembers == [ ] then [ ] else [
            "networks.${net}.topology.hubAndSpoke.hubs: ${quoteList notMembers} not members of ${net}; add them to its `members`"
          ]))
        networks));
    in
    if problems != [ ]
    then throw "wgfleet fleet:\n  ${builtins.concatStringsSep "\n  " problems}"
    else { inherit version; } // fleet;
}
