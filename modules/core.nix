# The part of the NixOS module (modules/wgfleet.nix) that is plain computation: which fleet file
# the service gets, its command line, and what this host needs from NixOS (ports, interfaces,
# sysctls) when the fleet is visible at evaluation time. Builtins only, so it is tested with a
# bare `nix-instantiate` on every machine (tests/nixos_module.rs), with no nixpkgs.
let
  inherit (builtins)
    attrNames attrValues concatLists concatStringsSep elem filter hasAttr isAttrs isPath
    isString listToAttrs mapAttrs match replaceStrings stringLength substring;

  hasPrefix = p: s: substring 0 (stringLength p) s == p;
  hasSuffix = x: s:
    let n = stringLength s; m = stringLength x; in n >= m && substring (n - m) m s == x;
  # Distinct values, in the order of their string forms.
  unique = list: attrValues (listToAttrs (map (value: { name = toString value; inherit value; }) list));
  mapValues = f: set: map (name: f name set.${name}) (attrNames set);
  optional = cond: x: if cond then [ x ] else [ ];

  defaultListenPort = 51820;

  # The fields that name an age file relative to the fleet file, as { where, get, set } over the
  # fleet: hosts' and members' private keys (and hosts' next ones), clients' and member pairs'
  # preshared keys (and pairs' next ones).
  keyFields = fleet:
    let
      inSet = where: set: field: mapValues
        (name: v: {
          where = "${where}.${name}.${field}";
          value = if isAttrs v then v.${field} or null else null;
        })
        set;
    in
    inSet "hosts" (fleet.hosts or { }) "privateKeyFile"
    ++ inSet "hosts" (fleet.hosts or { }) "nextPrivateKeyFile"
    ++ concatLists (mapValues
      (net: n:
        inSet "networks.${net}.members" (n.members or { }) "privateKeyFile"
        ++ inSet "networks.${net}.clients" (n.clients or { }) "presharedKeyFile"
        ++ builtins.genList
          (i: {
            where = "networks.${net}.presharedKeys.${toString i}.file";
            value = (builtins.elemAt n.presharedKeys i).file or null;
          })
          (builtins.length (n.presharedKeys or [ ]))
        ++ builtins.genList
          (i: {
            where = "networks.${net}.presharedKeys.${toString i}.nextFile";
            value = (builtins.elemAt n.presharedKeys i).nextFile or null;
          })
          (builtins.length (n.presharedKeys or [ ])))
      (fleet.networks or { }));

  isRelative = v: isString v && !hasPrefix "/" v;

  # `fleet` with every relative key path resolved against `dir` (a Nix path): the key files
  # become Nix paths, so the fleet's JSON names them by their store paths. A path whose file
  # does not exist is left as written (and reported by `missingKeyFiles`).
  resolveKeys = dir: fleet:
    let
      resolve = v: if isRelative v && builtins.pathExists (dir + "/${v}") then dir + "/${v}" else v;
      field = name: set: if isAttrs set && set ? ${name} then set // { ${name} = resolve set.${name}; } else set;
      each = name: mapAttrs (_: field name);
    in
    fleet
    // optionalAttr fleet "hosts" (mapAttrs (_: h: field "nextPrivateKeyFile" (field "privateKeyFile" h)) fleet.hosts)
    // optionalAttr fleet "networks" (mapAttrs
      (_: n: n
        // optionalAttr n "members" (each "privateKeyFile" n.members)
        // optionalAttr n "clients" (each "presharedKeyFile" n.clients)
        // optionalAttr n "presharedKeys" (map (p: field "nextFile" (field "file" p)) n.presharedKeys))
      fleet.networks);
  optionalAttr = set: name: value: if set ? ${name} then { ${name} = value; } else { };

  # As wgfleet reads it: JSON, or Nix (a function is called with its defaults, as by
  # `nix-instantiate --eval`).
  readFleet = file:
    if hasSuffix ".nix" (toString file) then
      let v = import file; in if builtins.isFunction v then v { } else v
    else builtins.fromJSON (builtins.readFile file);
in
rec {
  # systemd's own quoting for one Exec argument: plain when safe, else "…" with \ and " escaped
  # and % and $ doubled (specifiers and environment expansion are off).
  systemdArg = arg:
    let s = toString arg; in
    if match "[A-Za-z0-9_./:@+,=-]+" s != null then s
    else "\"" + replaceStrings [ "\\" "\"" "%" "$" ] [ "\\\\" "\\\"" "%%" "$$" ] s + "\"";

  # An ExecStart line from an argument vector.
  execLine = argv: concatStringsSep " " (map systemdArg argv);

  isStorePath = file: hasPrefix "${builtins.storeDir}/" (toString file);

  # Where the fleet comes from, and so what the service runs with:
  # - `fleet` (an attribute set), or a fleet file given as a Nix path (`./fleet.json`,
  #   `./fleet.nix`): evaluated here; `json` is the fleet to write to the store, with key files
  #   given relative to the file (or as Nix paths) turned into store paths. The service gets that
  #   store file, so an edit to the fleet or to a key changes the unit and re-runs apply.
  # - a string naming a store path (`"${./wireguard}/fleet.json"`): used as it is (its keys were
  #   copied with it), and read here for what the host needs.
  # - any other string (`"/etc/wgfleet/fleet.json"`): a file on the host, read only at run time;
  #   `fleet` is null, so the module cannot open ports or declare interfaces for it.
  fleetSource = { fleet ? null, fleetFile ? null }:
    if fleet != null then {
      kind = "attrs";
      inherit fleet;
      json = fleet;
      file = null;
    }
    else if isPath fleetFile then
      let value = readFleet fleetFile; in {
        kind = "nix-path";
        fleet = value;
        json = resolveKeys (dirOf fleetFile) value;
        file = null;
      }
    # (Only a store path Nix knows it made: a bare string naming one is not readable in pure
    # evaluation.)
    else if fleetFile != null && isStorePath fleetFile && builtins.hasContext fleetFile then {
      kind = "store";
      fleet = readFleet fleetFile;
      json = null;
      file = toString fleetFile;
    }
    else {
      kind = "host";
      fleet = null;
      json = null;
      file = if fleetFile == null then null else toString fleetFile;
    };

  # The fleet file the service is given: the fleet's JSON written with `write` (pkgs.writeText in
  # the module; builtins.toFile in the tests) where Nix evaluated the fleet, else the file as given.
  serviceFleet = write: source:
    if source.json != null then write "wgfleet-fleet.json" (builtins.toJSON source.json)
    else source.file;

  # The service's command line.
  applyArgv = { exe, fleet, host, identityFiles ? [ ], extraArgs ? [ ] }:
    [ exe "apply" "--fleet" (toString fleet) "--host" host ]
    ++ concatLists (map (i: [ "--identity" i ]) identityFiles)
    ++ extraArgs;

  # The endpoint check's command line (`apply --endpoints-only`): it decrypts no key, so it takes
  # no identity.
  endpointsArgv = { exe, fleet, host }:
    [ exe "apply" "--fleet" (toString fleet) "--host" host "--endpoints-only" ];

  # Key paths that will not be found at run time: relative strings in a fleet whose JSON is
  # written to the store (relative to the store file, where nothing is), as "where = value".
  unresolvedKeyFiles = source:
    if source.json == null then [ ]
    else map (k: "${k.where} = \"${k.value}\"") (filter (k: isRelative k.value) (keyFields source.json));

  # The networks `host` is a member of, and what each needs from the host's NixOS
  # configuration (nothing for a fleet Nix cannot see: null). Mirrors src/plan.rs: a member is
  # dialled (its listen port must be open) when it has an endpoint and is a hub or in a mesh;
  # with flows, wgfleet's own chains decide what the tunnel lets in.
  hostNeeds = fleet: host:
    let
      nets = if fleet == null then [ ] else filter (n: (n.value.members or { }) ? ${host})
        (mapValues (name: value: { inherit name value; }) (fleet.networks or { }));
      # Where a member is dialled, as src/fleet/validate/endpoints.rs reads it: its own
      # `endpoint` or `endpoints`, else its host's; `endpoint` is a one-element list.
      declared = e: if e ? endpoint then [ e.endpoint ] else if (e.endpoints or [ ]) != [ ] then e.endpoints else null;
      endpointsOf = name: m:
        let own = declared m; in
        if own != null then own
        else let h = declared (fleet.hosts.${name} or { }); in if h != null then h else [ ];
      # An IPv4 address (with a port or not), or an IPv6 one (bare, or in brackets).
      isAddress = e: match "[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+(:[0-9]+)?" e != null
        || hasPrefix "[" e || match ".*:.*:.*" e != null;
      one = { name, value }:
        let
          member = value.members.${host};
          hubs = value.topology.hubAndSpoke.hubs or null;
          endpoints = endpointsOf host member;
          port = member.listenPort or value.listenPort or defaultListenPort;
          isDefault = p: elem p [ "0.0.0.0/0" "::/0" ];
          others = attrValues (removeAttr host (value.members or { }));
          # Members this host dials (hubs, or everyone in a mesh), as src/plan.rs has it.
          dials = filter (n: n != host && (hubs == null || elem n hubs)) (attrNames (value.members or { }));
        in
        {
          # The host's own name for the interface (a point-to-point pair may name it differently
          # on each end).
          interface = member.interface or name;
          dialled = endpoints != [ ] && (hubs == null || elem host hubs);
          listenPort = port;
          policy = (value.flows or [ ]) != [ ];
          forwarding = member.forwarding or false;
          ipv6 = value ? subnet6 || member ? address6;
          # This host sends all traffic (or all of a family) into the tunnel: its own `reach`,
          # or a peer that routes a default (an exit node's `routes` or `allowedIPs`).
          defaultRoute = builtins.any isDefault (member.reach or [ ])
            || builtins.any (m: builtins.any isDefault ((m.routes or [ ]) ++ (m.allowedIPs or [ ]))) others;
          # It dials a peer by a DNS name or at several endpoints: the endpoint check has work.
          followsEndpoints = builtins.any
            (n: let eps = endpointsOf n value.members.${n}; in
              builtins.length eps > 1 || builtins.any (e: !isAddress e) eps)
            dials;
        };
      removeAttr = name: set: builtins.removeAttrs set [ name ];
      all = map one nets;
    in
    {
      interfaces = map (n: n.interface) all;
      udpPorts = unique (map (n: n.listenPort) (filter (n: n.dialled) all));
      policyInterfaces = map (n: n.interface) (filter (n: n.policy) all);
      forwarding = {
        ipv4 = builtins.any (n: n.forwarding) all;
        ipv6 = builtins.any (n: n.forwarding && n.ipv6) all;
      };
      defaultRouteInterfaces = map (n: n.interface) (filter (n: n.defaultRoute) all);
      followsEndpoints = builtins.any (n: n.followsEndpoints) all;
    };

  # The host names of a fleet, for the module's check of `services.wgfleet.host`.
  hostNames = fleet: attrNames (fleet.hosts or { });
}
