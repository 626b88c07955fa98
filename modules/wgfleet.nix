# NixOS module for wgfleet: the fleet description in the Nix store (it holds no secret: private
# keys are age files, decrypted on the host with its SSH host key), `wgfleet.service` that runs
# `wgfleet apply` for this host, and `wgfleet.timer` that runs it at boot, every `interval`
# (drift, expiring clients, a fleetFile edited outside Nix) and after every `nixos-rebuild switch`
# that changed what it would run.
#
# How a switch re-runs it: the service is a oneshot started only by the timer (it is inactive
# between runs, so switch-to-configuration leaves it alone), and the timer carries the service's
# command line as a restart trigger. When the fleet, the host, the identities or the package
# change, switch restarts the timer; a restarted timer whose OnBootSec is in the past elapses at
# once, so apply runs exactly once, with the new unit. Nothing changed: nothing runs.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkEnableOption mkOption mkIf mkMerge types literalExpression;

  cfg = config.services.wgfleet;

  # Host names as the fleet schema allows them (schema/fleet.schema.json).
  hostName = types.strMatching "[A-Za-z0-9][A-Za-z0-9._-]{0,62}";

  # A file on the host, given as a string so that it is never copied into the Nix store.
  hostPath = types.addCheck types.str (lib.hasPrefix "/") // {
    name = "hostPath";
    description = "absolute path on the host (a string, never copied to the Nix store)";
  };

  # systemd's own quoting for one Exec argument: plain when safe, else "…" with \ " escaped and
  # % $ doubled (specifiers and environment expansion).
  systemdArg = arg:
    let s = toString arg; in
    if builtins.match "[A-Za-z0-9_./:@+,=-]+" s != null then s
    else "\"" + lib.replaceStrings [ "\\" "\"" "%" "$" ] [ "\\\\" "\\\"" "%%" "$$" ] s + "\"";

  fleetGiven = cfg.fleet != null || cfg.fleetFile != null;

  # A fleet written in Nix is evaluated by wgfleet itself (nix-instantiate) at run time.
  nixFleet = cfg.fleet == null && cfg.fleetFile != null && lib.hasSuffix ".nix" (toString cfg.fleetFile);

  generatedFleet = pkgs.writeText "wgfleet-fleet.json" (builtins.toJSON cfg.fleet);

  args = [ "apply" "--fleet" cfg.fleetPath "--host" cfg.host ]
    ++ lib.concatMap (i: [ "--identity" i ]) cfg.identityFiles
    ++ cfg.extraArgs;

  execStart = lib.concatMapStringsSep " " systemdArg ([ "${cfg.package}/bin/wgfleet" ] ++ args);

  # Hosts of the fleet, when Nix can see them: `fleet`, or a JSON fleetFile given as a Nix path.
  knownHosts =
    if cfg.fleet != null then builtins.attrNames (cfg.fleet.hosts or { })
    else if builtins.isPath cfg.fleetFile && lib.hasSuffix ".json" (toString cfg.fleetFile)
    then builtins.attrNames ((builtins.fromJSON (builtins.readFile cfg.fleetFile)).hosts or { })
    else null;

  # Key files given as relative strings in `fleet`: relative to the fleet file, which is in the
  # store, where they do not exist.
  relativeKeyFiles =
    let
      fleet = if cfg.fleet == null then { } else cfg.fleet;
      entries = where: set: field: lib.concatLists (lib.mapAttrsToList
        (name: v: lib.optional
          (builtins.isAttrs v && builtins.isString (v.${field} or null) && !lib.hasPrefix "/" v.${field})
          "${where}.${name}.${field} = \"${v.${field}}\"")
        set);
    in
    entries "hosts" (fleet.hosts or { }) "privateKeyFile"
    ++ lib.concatLists (lib.mapAttrsToList
      (net: n:
        entries "networks.${net}.members" (n.members or { }) "privateKeyFile"
        ++ entries "networks.${net}.clients" (n.clients or { }) "presharedKeyFile"
        ++ entries "networks.${net}.presharedKeys" (lib.listToAttrs (lib.imap0
          (i: v: { name = toString i; value = v; }) (n.presharedKeys or [ ]))) "file")
      (fleet.networks or { }));

  # Hardening shared with systemd/wgfleet.service (keep them in step).
  hardening = {
    # wgfleet runs as root: it owns /etc/wireguard (0700) and reads the SSH host key (0600), both
    # root's, so it needs no DAC capability. CAP_NET_ADMIN for `wg`, `ip` and iptables,
    # CAP_NET_RAW for iptables' raw sockets. Units are driven over D-Bus: systemd authorises
    # root by its UID, and wg-quick@ runs in its own unit with its own capabilities.
    CapabilityBoundingSet = [ "CAP_NET_ADMIN" "CAP_NET_RAW" ];
    NoNewPrivileges = true;
    ProtectSystem = "strict";
    # /etc/wireguard: the configs; /var/lib/wgfleet: the audit log; /run: the lock and
    # xtables.lock; /etc/sysctl.d: the forwarding sysctls that must survive a reboot.
    ReadWritePaths = [ "/etc/wireguard" "/var/lib/wgfleet" "/run" "-/etc/sysctl.d" ];
    # Created before the sandbox is set up, so the ReadWritePaths above exist on a fresh host.
    ConfigurationDirectory = "wireguard";
    ConfigurationDirectoryMode = "0700";
    StateDirectory = "wgfleet";
    StateDirectoryMode = "0700";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    # Not ProtectKernelTunables: wgfleet turns on net.ipv4.ip_forward for forwarding members.
    RestrictAddressFamilies = [ "AF_UNIX" "AF_NETLINK" "AF_INET" "AF_INET6" ];
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    SystemCallArchitectures = "native";
    SystemCallFilter = [ "@system-service" ];
    UMask = "0077";
  };
in
{
  options.services.wgfleet = {
    enable = mkEnableOption "wgfleet, which makes this host's WireGuard interfaces match a fleet description";

    package = mkOption {
      type = types.package;
      default = pkgs.wgfleet or (throw
        "services.wgfleet.package: pkgs.wgfleet does not exist. Import wgfleet's flake module (nixosModules.default), add its overlay (overlays.default), or set services.wgfleet.package.");
      defaultText = literalExpression "pkgs.wgfleet";
      description = "The wgfleet package to run.";
    };

    fleet = mkOption {
      type = types.nullOr (types.attrsOf types.anything);
      default = null;
      example = literalExpression ''
        {
          version = 1;
          hosts = {
            cp = { publicKey = "j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=";
                   privateKeyFile = ./secrets/cp.age; endpoint = "203.0.113.10"; };
            worker-1 = { publicKey = "um/TOLbxUvqJwIOGdbFPn9uBh/Es4shlVXFlWyEYvng=";
                         privateKeyFile = ./secrets/worker-1.age; };
          };
          networks.wg0 = {
            subnet = "10.50.0.0/24";
            topology.hubAndSpoke.hubs = [ "cp" ];
            members = { cp.id = 0; worker-1.id = 1; };
          };
        }
      '';
      description = ''
        The fleet (schema v1, as `wgfleet schema` prints it) written as a Nix attribute set, for
        example `import ./fleet.nix`. It is turned into JSON with `builtins.toJSON` and written
        to the Nix store, which is fine: a fleet holds public keys and the paths of age-encrypted
        private keys, never a secret.

        Give key files as Nix paths (`privateKeyFile = ./secrets/cp.age;`): the encrypted file is
        copied to the store and referenced by its absolute store path. A relative string would
        be looked up next to the generated JSON in the store, where it does not exist.

        Definitions in several modules are merged, so a module can add a host or a client.
        Exactly one of `fleet` and `fleetFile` must be set.
      '';
    };

    fleetFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = literalExpression ''"''${./wireguard}/fleet.json"'';
      description = ''
        A fleet file (`.json`, or `.nix` evaluated by wgfleet with `nix-instantiate`), instead
        of `fleet`. Relative key paths in it are relative to the file, so keep the fleet and its
        encrypted keys together:

        - `"''${./wireguard}/fleet.json"` copies the whole directory (fleet and `secrets/*.age`)
          to the store; the service re-runs on switch when any of it changed.
        - `"/etc/wgfleet/fleet.json"` (a string) uses a file on the host, for example a git
          checkout updated outside Nix; the timer applies its changes within `interval`.

        A Nix path to the file alone (`./fleet.json`) copies only that file: use it only when
        the fleet's key paths are absolute.
      '';
    };

    fleetPath = mkOption {
      type = types.path;
      readOnly = true;
      default = if cfg.fleet != null then generatedFleet else cfg.fleetFile;
      defaultText = literalExpression ''
        if fleet != null then pkgs.writeText "wgfleet-fleet.json" (builtins.toJSON fleet) else fleetFile
      '';
      description = ''
        The fleet file the service applies (read-only): the JSON generated from `fleet`, or
        `fleetFile`. Handy for checks, e.g. `wgfleet validate --fleet ''${config.services.wgfleet.fleetPath}`.
      '';
    };

    host = mkOption {
      type = hostName;
      default = config.networking.hostName;
      defaultText = literalExpression "config.networking.hostName";
      example = "worker-1";
      description = "This machine's name in the fleet (a key of the fleet's `hosts`).";
    };

    identityFiles = mkOption {
      type = types.listOf hostPath;
      default =
        let
          keys = config.services.openssh.hostKeys;
          ofType = t: map (k: k.path) (builtins.filter (k: (k.type or null) == t && k ? path) keys);
        in
        map toString (ofType "ed25519" ++ ofType "rsa");
      defaultText = literalExpression ''
        map (k: k.path) (ed25519 keys, then RSA keys, of config.services.openssh.hostKeys)
      '';
      example = [ "/etc/ssh/ssh_host_ed25519_key" "/var/lib/wgfleet/identity.txt" ];
      description = ''
        Files to decrypt the host's private keys with: OpenSSH ed25519/RSA private keys or age
        identity files, tried in order. Paths on the host, given as strings so that they never
        enter the Nix store; no option of this module takes a key itself. The default is this
        host's SSH host keys, so the fleet's age files are encrypted to the host's
        `ssh-ed25519` public key, as with agenix.
      '';
    };

    interval = mkOption {
      type = types.str;
      default = "5min";
      example = "1h";
      description = ''
        How often the timer re-applies the fleet (systemd `OnUnitActiveSec=`, a systemd time
        span). A run with nothing to change writes nothing and restarts nothing, so it is cheap;
        it heals drift (a peer removed by hand) and removes expired clients.
      '';
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "--json" ];
      description = "Extra arguments for `wgfleet apply`.";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions = [
        {
          assertion = fleetGiven;
          message = "services.wgfleet is enabled but has no fleet. Set services.wgfleet.fleet to "
            + "the fleet as a Nix attribute set (e.g. `services.wgfleet.fleet = import ./fleet.nix;`) "
            + "or services.wgfleet.fleetFile to a fleet.json or fleet.nix.";
        }
        {
          assertion = !(cfg.fleet != null && cfg.fleetFile != null);
          message = "services.wgfleet.fleet and services.wgfleet.fleetFile are both set; set only one: "
            + "`fleet` for a fleet written in Nix, `fleetFile` for a fleet.json or fleet.nix file.";
        }
        {
          assertion = knownHosts == null || builtins.elem cfg.host knownHosts;
          message = "services.wgfleet.host is \"${cfg.host}\", which is not a host of the fleet "
            + "(its hosts: ${lib.concatStringsSep ", " (if knownHosts == null then [ ] else knownHosts)}). "
            + "Set services.wgfleet.host to this machine's name in the fleet (it defaults to "
            + "networking.hostName), or add \"${cfg.host}\" to the fleet's hosts.";
        }
      ];

      warnings = lib.optional (relativeKeyFiles != [ ]) (
        "services.wgfleet.fleet has relative key paths (${lib.concatStringsSep ", " relativeKeyFiles}). "
        + "They are resolved next to the generated fleet JSON in the Nix store, where they do not exist. "
        + "Give them as Nix paths (privateKeyFile = ./secrets/cp.age;) or absolute paths on the host, "
        + "or use services.wgfleet.fleetFile = \"\${./dir}/fleet.json\" to keep the fleet and its keys together."
      );
    }

    (mkIf fleetGiven {
      environment.systemPackages = [ cfg.package ];

      # wg-quick@.service, which wgfleet enables and drives for each network.
      systemd.packages = [ pkgs.wireguard-tools ];

      systemd.services.wgfleet = {
        description = "wgfleet: make this host's WireGuard interfaces match the fleet";
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
        # The tools wgfleet runs, pinned (the package wraps them too).
        path = [ pkgs.wireguard-tools pkgs.iproute2 pkgs.iptables ]
          ++ lib.optional nixFleet config.nix.package;
        # Restarted if a switch changes the fleet while a run is in progress; the timer below is
        # what re-runs it after a switch.
        restartTriggers = [ cfg.fleetPath ];
        serviceConfig = hardening // {
          Type = "oneshot";
          ExecStart = execStart;
          TimeoutStartSec = "5min";
        };
      };

      systemd.timers.wgfleet = {
        description = "Apply the WireGuard fleet at boot, after a switch that changed it, and every ${cfg.interval}";
        wantedBy = [ "timers.target" ];
        # A changed command line restarts the timer on switch, and a restarted timer whose
        # OnBootSec has passed fires at once: apply runs once per switch that changed it.
        restartTriggers = [ execStart ];
        timerConfig = {
          OnBootSec = "5s";
          OnUnitActiveSec = cfg.interval;
          AccuracySec = "5s";
          Unit = "wgfleet.service";
        };
      };
    })
  ]);
}
