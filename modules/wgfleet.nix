# NixOS module for wgfleet: the fleet description in the Nix store (it holds no secret: private
# keys are age files, decrypted on the host with its SSH host key), `wgfleet.service` that runs
# `wgfleet apply` for this host, and `wgfleet.timer` that runs it at boot, every `interval`
# (drift, expiring clients, a fleetFile edited outside Nix) and after every `nixos-rebuild switch`
# that changed what it would run; and `wgfleet-endpoints.timer`, which every `endpointsInterval`
# (30 s) re-resolves the endpoints of peers dialled by name whose handshake is stale.
#
# How a switch re-runs it: the service is a oneshot started only by the timer (it is inactive
# between runs, so switch-to-configuration leaves it alone), and the timer carries the service's
# command line as a restart trigger. When the fleet, the host, the identities or the package
# change, switch restarts the timer; a restarted timer whose OnBootSec is in the past elapses at
# once, so apply runs exactly once, with the new unit. Nothing changed: nothing runs.
#
# When Nix can see the fleet (`fleet`, or `fleetFile` as a Nix path or a store path), the module
# also gives NixOS what this host needs: the UDP ports peers dial it on, the tunnel interfaces as
# units started at boot (so other units can order after them), forwarding sysctls, and loose
# reverse-path filtering where the tunnel carries a default route. The computation is plain Nix
# in ./core.nix, tested without nixpkgs.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkEnableOption mkOption mkIf mkMerge mkDefault types literalExpression;

  core = import ./core.nix;

  cfg = config.services.wgfleet;

  # Host names as the fleet schema allows them (schema/fleet.schema.json).
  hostName = types.strMatching "[A-Za-z0-9][A-Za-z0-9._-]{0,62}";

  # A file on the host, given as a string so that it is never copied into the Nix store.
  hostPath = types.addCheck types.str (lib.hasPrefix "/") // {
    name = "hostPath";
    description = "absolute path on the host (a string, never copied to the Nix store)";
  };

  fleetGiven = cfg.fleet != null || cfg.fleetFile != null;

  source = core.fleetSource { inherit (cfg) fleet fleetFile; };

  # The fleet as Nix sees it, or null for a file on the host.
  visible = if fleetGiven then source.fleet else null;
  needs = core.hostNeeds visible cfg.host;

  exe = "${cfg.package}/bin/wgfleet";

  execStart = core.execLine (core.applyArgv {
    inherit exe;
    inherit (cfg) host identityFiles extraArgs;
    fleet = cfg.fleetPath;
  });

  endpointsExecStart = core.execLine (core.endpointsArgv {
    inherit exe;
    inherit (cfg) host;
    fleet = cfg.fleetPath;
  });

  # The endpoint check runs where it can have work: the host dials a peer by a DNS name or at
  # several endpoints, or the fleet is a file on the host that Nix cannot read.
  endpointsTimer = cfg.endpointsInterval != null && (visible == null || needs.followsEndpoints);

  # Only a .nix file read at run time needs Nix on the service's PATH.
  nixAtRunTime = source.file != null && lib.hasSuffix ".nix" source.file;

  unresolvedKeyFiles = if fleetGiven then core.unresolvedKeyFiles source else [ ];

  firewallOn = config.networking.firewall.enable;
  strictReversePath = builtins.elem config.networking.firewall.checkReversePath [ true "strict" ];

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
        be looked up next to the generated JSON in the store, where it does not exist; for a
        fleet written with relative paths, use `fleetFile = ./fleet.nix;` instead.

        Definitions in several modules are merged, so a module can add a host or a client.
        Exactly one of `fleet` and `fleetFile` must be set.
      '';
    };

    fleetFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = literalExpression "./wireguard/fleet.json";
      description = ''
        A fleet file (`.json`, or `.nix`), instead of `fleet`. Relative key paths in it are
        relative to the file:

        - `./wireguard/fleet.json` or `./wireguard/fleet.nix` (a Nix path): read at evaluation
          time; the fleet and the key files it names are copied to the store, and the service
          re-runs on switch when any of them changed. The module sees the fleet, so it opens
          the firewall and declares the interfaces for this host.
        - `"''${./wireguard}/fleet.json"` (a store path): the whole directory is copied; the
          module reads the fleet from the store copy.
        - `"/etc/wgfleet/fleet.json"` (a string): a file on the host, for example a git checkout
          updated outside Nix; the timer applies its changes within `interval`. Nix cannot see
          it, so open the listen port yourself (a warning says which option).
      '';
    };

    fleetPath = mkOption {
      type = types.path;
      readOnly = true;
      default = core.serviceFleet pkgs.writeText source;
      defaultText = literalExpression ''
        the fleet JSON in the store for `fleet` or a fleetFile given as a Nix path; else fleetFile
      '';
      description = ''
        The fleet file the service applies (read-only). For `fleet`, and for a `fleetFile` given
        as a Nix path (`./fleet.json`, `./fleet.nix`), it is the fleet as JSON in the Nix store,
        with the key files it names (relative to the fleet file, or as Nix paths) copied to the
        store and named by their store paths. A store path (`"''${./wireguard}/fleet.json"`) or
        a file on the host (`"/etc/wgfleet/fleet.json"`) is used as it is. Handy for checks,
        e.g. `wgfleet validate --fleet ''${config.services.wgfleet.fleetPath}`.
      '';
    };

    interfaces = mkOption {
      type = types.listOf types.str;
      readOnly = true;
      default = needs.interfaces;
      defaultText = literalExpression "the networks of the fleet that this host is a member of";
      example = [ "wg0" ];
      description = ''
        This host's WireGuard interfaces (read-only), when Nix can see the fleet; empty for a
        fleet file on the host. Each `wg-quick@<interface>` is started at boot, so a service
        that needs the tunnel can say
        `after = [ "wg-quick@wg0.service" ]; wants = [ "wg-quick@wg0.service" ];`.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Open what this host needs in NixOS's firewall (iptables or nftables), when Nix can see
        the fleet: the UDP listen port of each network in which peers dial this host (a hub, or
        a mesh member, with an endpoint), and, for networks with `flows`, the tunnel interface
        as trusted, because wgfleet's own WGFLEET-INPUT chain already lets in exactly what the
        flows allow and drops the rest. Without flows the tunnel is an interface like any other:
        open services on it with `networking.firewall.interfaces.<interface>.allowedTCPPorts`.
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

    endpointsInterval = mkOption {
      type = types.nullOr types.str;
      default = "30s";
      example = "1min";
      description = ''
        How often `wgfleet-endpoints.timer` runs `wgfleet apply --endpoints-only` (a systemd time
        span; null: never). For each peer this host dials by a DNS name or at several endpoints
        (`endpoints`) whose handshake is stale (older than 135 s), it resolves the name again
        and sets a new address live with `wg set` (no reload, no restart), or moves on to the
        next endpoint; each change is audited. A run whose peers are all fresh resolves nothing
        and writes nothing. The timer exists only where it can have work: when the host dials a
        peer by name or at several endpoints, or when the fleet is a file on the host.
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
          assertion = visible == null || builtins.elem cfg.host (core.hostNames visible);
          message = "services.wgfleet.host is \"${cfg.host}\", which is not a host of the fleet "
            + "(its hosts: ${lib.concatStringsSep ", " (if visible == null then [ ] else core.hostNames visible)}). "
            + "Set services.wgfleet.host to this machine's name in the fleet (it defaults to "
            + "networking.hostName), or add \"${cfg.host}\" to the fleet's hosts.";
        }
      ];

      warnings = lib.optional (unresolvedKeyFiles != [ ]) (
        "services.wgfleet: key paths that will not be found at run time (${lib.concatStringsSep ", " unresolvedKeyFiles}). "
        + "Relative paths in `fleet` are resolved next to the generated fleet JSON in the Nix store, where they do not exist, "
        + "and relative paths in a fleetFile given as a Nix path must name existing files. "
        + "Give them as Nix paths (privateKeyFile = ./secrets/cp.age;) or absolute paths on the host, "
        + "or use services.wgfleet.fleetFile = ./fleet.nix; (or ./fleet.json) so that they are relative to the fleet file."
      )
      ++ lib.optional (fleetGiven && visible == null && cfg.openFirewall && firewallOn) (
        "services.wgfleet.fleetFile is a file on the host (${toString cfg.fleetFile}), which Nix cannot read, "
        + "so NixOS's firewall stays closed to the fleet: where peers dial this host, open its listen port "
        + "(networking.firewall.allowedUDPPorts = [ 51820 ];), and start the tunnels at boot yourself if other "
        + "units need them. Give the fleet as a Nix path (fleetFile = ./fleet.json;) to have it done, or set "
        + "services.wgfleet.openFirewall = false; to silence this."
      )
      ++ lib.optional (cfg.openFirewall && firewallOn && strictReversePath && needs.defaultRouteInterfaces != [ ]) (
        "services.wgfleet: ${lib.concatStringsSep ", " needs.defaultRouteInterfaces} carries a default route "
        + "(a `reach` or a peer's route of 0.0.0.0/0 or ::/0), which wg-quick installs in its own routing table; "
        + "strict reverse-path filtering (networking.firewall.checkReversePath) then drops the tunnel's replies. "
        + "Set networking.firewall.checkReversePath = \"loose\"; (wgfleet sets it by default unless you set it)."
      );
    }

    (mkIf fleetGiven {
      environment.systemPackages = [ cfg.package ];

      # wg-quick@.service, which wgfleet enables and drives for each network.
      systemd.packages = [ pkgs.wireguard-tools ];

      systemd.services = {
        wgfleet = {
          description = "wgfleet: make this host's WireGuard interfaces match the fleet";
          wants = [ "network-online.target" ];
          after = [ "network-online.target" ];
          # The tools wgfleet runs, pinned (the package wraps them too).
          path = [ pkgs.wireguard-tools pkgs.iproute2 pkgs.iptables ]
            ++ lib.optional nixAtRunTime config.nix.package;
          # Restarted if a switch changes the fleet while a run is in progress; the timer below
          # is what re-runs it after a switch.
          restartTriggers = [ cfg.fleetPath ];
          serviceConfig = hardening // {
            Type = "oneshot";
            ExecStart = execStart;
            TimeoutStartSec = "5min";
          };
        };
      }
      # Each interface this host has, started at boot like any NixOS unit, so that a database
      # can order itself after `wg-quick@wg0.service`. The config is wgfleet's to write: on a
      # fresh host (none yet) the unit is skipped, not failed, and the timer's first run, 5 s
      # after boot, writes it and starts the unit. A switch never restarts it: wgfleet decides
      # between reload and restart. The drop-in restores wgfleet's firewall chains before the
      # interface comes up, so they hold from boot on, before wgfleet itself runs, and reloads
      # as wgfleet's own drop-in does.
      // lib.listToAttrs (map
        (iface: {
          name = "wg-quick@${iface}";
          value = {
            overrideStrategy = "asDropin";
            wantedBy = [ "multi-user.target" ];
            restartIfChanged = false;
            unitConfig.ConditionPathExists = "/etc/wireguard/${iface}.conf";
            serviceConfig = {
              ExecStartPre = [ ("-" + core.execLine [ exe "firewall-restore" ]) ];
              # The routes of a file wgfleet wrote with `Table = off`, in one batch (see
              # `wgfleet routes-interface`): no `ip route` process per AllowedIPs entry.
              ExecStartPost = [ (core.execLine [ exe "routes-interface" iface ]) ];
              # A reload without `wg-quick strip`'s bash loop (see `wgfleet reload-interface`).
              ExecReload = [ "" (core.execLine [ exe "reload-interface" iface ]) ];
            };
          };
        })
        needs.interfaces);

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

    (mkIf (fleetGiven && endpointsTimer) {
      systemd.services.wgfleet-endpoints = {
        description = "wgfleet: follow the endpoints of peers dialled by name";
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
        path = [ pkgs.wireguard-tools ] ++ lib.optional nixAtRunTime config.nix.package;
        serviceConfig = hardening // {
          Type = "oneshot";
          ExecStart = endpointsExecStart;
          TimeoutStartSec = "1min";
        };
      };
      systemd.timers.wgfleet-endpoints = {
        description = "Follow the endpoints of WireGuard peers dialled by name every ${cfg.endpointsInterval}";
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnBootSec = "1min";
          OnUnitActiveSec = cfg.endpointsInterval;
          AccuracySec = "5s";
          Unit = "wgfleet-endpoints.service";
        };
      };
    })

    (mkIf (fleetGiven && cfg.openFirewall) {
      # Through NixOS's own options, so it holds with iptables and with nftables (where an
      # ACCEPT in wgfleet's iptables-nft table cannot override a drop in NixOS's table).
      networking.firewall.allowedUDPPorts = needs.udpPorts;
      networking.firewall.trustedInterfaces = needs.policyInterfaces;
      networking.firewall.checkReversePath = mkIf (needs.defaultRouteInterfaces != [ ]) (mkDefault "loose");
    })

    (mkIf fleetGiven {
      # Forwarding members route between peers from boot on (wgfleet sets the same at run time).
      boot.kernel.sysctl = lib.optionalAttrs needs.forwarding.ipv4 { "net.ipv4.ip_forward" = mkDefault 1; }
        // lib.optionalAttrs needs.forwarding.ipv6 { "net.ipv6.conf.all.forwarding" = mkDefault 1; };
    })
  ]);
}
