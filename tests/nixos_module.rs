//! The NixOS module (`modules/wgfleet.nix`) evaluated with the real nixpkgs module system
//! (`lib.evalModules`) over stubs of the NixOS options it sets (`tests/nix/eval-module.nix`).
//! Needs `nix-instantiate` and a nixpkgs as Nix users have one: `$WGFLEET_NIXPKGS_LIB` (its
//! `lib` directory) or `<nixpkgs>` on `NIX_PATH`. Where there is none, each test prints
//! "skipped: no nixpkgs" and passes; the plain-Nix part of the module is tested everywhere by
//! tests/nix_module_core.rs, and the flake's `checks.module` and `checks.vm` run the real thing.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use serde_json::Value;

#[path = "support/nix.rs"]
mod nix;
use nix::{nix_instantiate, nix_str, root};

/// nixpkgs' `lib` directory: `$WGFLEET_NIXPKGS_LIB`, else `<nixpkgs/lib>` from `NIX_PATH`.
fn find_nixpkgs_lib() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("WGFLEET_NIXPKGS_LIB") {
        let dir = PathBuf::from(dir);
        return if dir.join("default.nix").is_file() {
            Ok(dir)
        } else {
            Err(format!(
                "WGFLEET_NIXPKGS_LIB={} has no default.nix",
                dir.display()
            ))
        };
    }
    let out = nix_instantiate(&["--find-file", "nixpkgs/lib"]);
    if out.status.success() {
        return Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    Err("WGFLEET_NIXPKGS_LIB is not set and NIX_PATH has no nixpkgs".into())
}

/// The nixpkgs lib, or `None` after saying once, on the terminal itself (libtest captures only
/// the print macros), that these tests are skipped.
fn nixpkgs_lib() -> Option<&'static Path> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| match find_nixpkgs_lib() {
            Ok(lib) => Some(lib),
            Err(why) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "skipped: no nixpkgs ({why}): the NixOS module is not evaluated with nixpkgs' \
                     module system here; tests/nix_module_core.rs covers its plain-Nix part"
                );
                None
            }
        })
        .as_deref()
}

/// Returns from the test when there is no nixpkgs.
macro_rules! need_nixpkgs {
    () => {
        if nixpkgs_lib().is_none() {
            return;
        }
    };
}

/// A file of the repository as a Nix expression (a string path, fine for `import`).
fn repo_file(rel: &str) -> String {
    nix_str(&root().join(rel).display().to_string())
}

fn harness(config: &str) -> Output {
    let lib = nixpkgs_lib()
        .expect("need_nixpkgs! first")
        .display()
        .to_string();
    nix_instantiate(&[
        "--eval",
        "--strict",
        "--json",
        "tests/nix/eval-module.nix",
        "--argstr",
        "nixpkgsLib",
        &lib,
        "--arg",
        "config",
        config,
    ])
}

/// Evaluates the module with `config` (a NixOS module expression) and returns its result.
fn eval(config: &str) -> Value {
    let out = harness(config);
    assert!(
        out.status.success(),
        "evaluating the module failed with config {config}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("harness output is JSON")
}

/// Evaluates a config that must be rejected by an option's type; returns Nix's error.
fn eval_err(config: &str) -> String {
    let out = harness(config);
    assert!(
        !out.status.success(),
        "config {config} must be rejected, but evaluated to {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn example_fleet() -> Value {
    json_file("examples/seed-000/fleet.json")
}

fn json_file(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(rel)).unwrap()).unwrap()
}

/// `services.wgfleet` enabled on host `cp` (a default) with seed 000's fleet (the Nix one), plus
/// the module `extra`, merged by the module system as NixOS would.
fn cp_config(extra: &str) -> String {
    format!(
        "{{ imports = [ ({{ lib, ... }}: {{ networking.hostName = lib.mkDefault \"cp\"; \
         services.wgfleet = {{ enable = true; fleet = import {}; }}; }}) ({extra}) ]; }}",
        repo_file("examples/seed-000/fleet.nix")
    )
}

/// The module with `settings` for `services.wgfleet` (enable added) on host `cp`.
fn with_settings(settings: &str) -> Value {
    eval(&format!(
        "{{ networking.hostName = \"cp\"; services.wgfleet = {{ enable = true; {settings} }}; }}"
    ))
}

fn exec_start(result: &Value) -> &str {
    result["service"]["serviceConfig"]["ExecStart"]
        .as_str()
        .unwrap_or_else(|| panic!("no ExecStart in {result:#}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[test]
fn service_applies_the_fleet_for_the_host_with_its_ssh_host_keys() {
    need_nixpkgs!();
    let r = eval(&cp_config("{}"));
    assert_eq!(r["failedAssertions"], serde_json::json!([]), "{r:#}");
    let fleet_path = r["fleetPath"].as_str().unwrap();
    assert!(
        fleet_path.starts_with("/nix/store/") && fleet_path.ends_with("-wgfleet-fleet.json"),
        "{fleet_path}"
    );
    let words: Vec<&str> = exec_start(&r).split(' ').collect();
    assert!(
        words[0].starts_with("/nix/store/") && words[0].ends_with("-wgfleet-0.1.0/bin/wgfleet"),
        "{words:?}"
    );
    // NixOS lists the RSA key first; ed25519 is tried first, as wgfleet's own default does.
    assert_eq!(
        words[1..],
        [
            "apply",
            "--fleet",
            fleet_path,
            "--host",
            "cp",
            "--identity",
            "/etc/ssh/ssh_host_ed25519_key",
            "--identity",
            "/etc/ssh/ssh_host_rsa_key",
        ]
    );
    let service = &r["service"];
    assert_eq!(service["serviceConfig"]["Type"], "oneshot");
    assert_eq!(strings(&service["after"]), ["network-online.target"]);
    assert_eq!(strings(&service["wants"]), ["network-online.target"]);
    // Started by the timer only: wanted by multi-user.target it would also run on every switch.
    assert_eq!(service["wantedBy"], serde_json::json!([]));
    let path = strings(&service["path"]).join(" ");
    for tool in ["wireguard-tools", "iproute2", "iptables"] {
        assert!(
            path.contains(tool),
            "{tool} not on the service's path: {path}"
        );
    }
    assert!(
        !path.contains("nix-2"),
        "nix is only needed for a .nix fleetFile: {path}"
    );
    assert_eq!(
        strings(&r["systemdPackages"]),
        ["wireguard-tools-1.0.20250521"]
    );
    assert_eq!(strings(&r["systemPackages"]), ["wgfleet-0.1.0"]);
}

#[test]
fn fleet_as_a_nix_attrset_gives_the_example_json() {
    need_nixpkgs!();
    for fleet in [
        "examples/seed-000/fleet.nix",
        "examples/seed-000/fleet-lib.nix",
    ] {
        let r = eval(&format!(
            "{{ networking.hostName = \"cp\"; services.wgfleet = {{ enable = true; fleet = import {}; }}; }}",
            repo_file(fleet)
        ));
        let generated: Value = serde_json::from_str(
            r["fleetJson"]
                .as_str()
                .unwrap_or_else(|| panic!("no fleet JSON in {r:#}")),
        )
        .unwrap();
        assert_eq!(
            generated,
            example_fleet(),
            "the module's JSON for {fleet} differs from examples/seed-000/fleet.json"
        );
    }
}

#[test]
fn timer_runs_it_at_boot_and_every_interval() {
    need_nixpkgs!();
    let default = eval(&cp_config("{}"));
    let timer = &default["timer"];
    assert_eq!(timer["timerConfig"]["OnUnitActiveSec"], "5min");
    assert_eq!(timer["timerConfig"]["Unit"], "wgfleet.service");
    assert!(timer["timerConfig"]["OnBootSec"].is_string(), "{timer:#}");
    assert_eq!(strings(&timer["wantedBy"]), ["timers.target"]);

    let hourly = eval(&cp_config("{ services.wgfleet.interval = \"1h\"; }"));
    assert_eq!(hourly["timer"]["timerConfig"]["OnUnitActiveSec"], "1h");
}

/// `wgfleet-endpoints.timer` runs `apply --endpoints-only` every `endpointsInterval` where the
/// check can have work: not on seed 000's hub (it dials nobody), but with a fleet file on the
/// host (Nix cannot tell); `endpointsInterval = null` turns it off.
#[test]
fn the_endpoint_timer_runs_where_it_has_work() {
    need_nixpkgs!();
    let hub = eval(&cp_config("{}"));
    assert!(hub["endpointsTimer"].is_null(), "{hub:#}");
    assert!(hub["endpointsService"].is_null(), "{hub:#}");

    let r = with_settings("fleetFile = \"/etc/wgfleet/fleet.json\";");
    let timer = &r["endpointsTimer"];
    assert_eq!(timer["timerConfig"]["OnUnitActiveSec"], "30s", "{r:#}");
    assert_eq!(timer["timerConfig"]["Unit"], "wgfleet-endpoints.service");
    assert_eq!(strings(&timer["wantedBy"]), ["timers.target"]);
    let sc = &r["endpointsService"]["serviceConfig"];
    let exec = sc["ExecStart"].as_str().unwrap();
    assert!(
        exec.ends_with(" apply --fleet /etc/wgfleet/fleet.json --host cp --endpoints-only"),
        "{exec}"
    );
    assert_eq!(sc["Type"], "oneshot");
    // The same sandbox as the main service.
    for key in [
        "CapabilityBoundingSet",
        "ProtectSystem",
        "ReadWritePaths",
        "UMask",
    ] {
        assert_eq!(sc[key], r["service"]["serviceConfig"][key], "{key}");
    }

    let minute =
        with_settings("fleetFile = \"/etc/wgfleet/fleet.json\"; endpointsInterval = \"1min\";");
    assert_eq!(
        minute["endpointsTimer"]["timerConfig"]["OnUnitActiveSec"],
        "1min"
    );
    let off = with_settings("fleetFile = \"/etc/wgfleet/fleet.json\"; endpointsInterval = null;");
    assert!(off["endpointsTimer"].is_null(), "{off:#}");
}

/// The configuration docs/nixos.md shows: it evaluates, applies seed 000's fleet on cp, and
/// the fleet it writes is the example's.
#[test]
fn the_guides_host_configuration() {
    need_nixpkgs!();
    let r = eval(&format!(
        "import {}",
        repo_file("examples/seed-000/nixos-host-cp.nix")
    ));
    assert_eq!(r["failedAssertions"], serde_json::json!([]), "{r:#}");
    assert!(
        exec_start(&r).contains(" apply --fleet /nix/store/"),
        "{r:#}"
    );
    assert!(exec_start(&r).contains(" --host cp "), "{r:#}");
    assert_eq!(r["timer"]["timerConfig"]["OnUnitActiveSec"], "2min");
    assert_eq!(r["warnings"], serde_json::json!([]), "{r:#}");
    // The fleet it writes is the example's, with the keys copied to the store beside it.
    let mut fleet: Value = serde_json::from_str(r["fleetJson"].as_str().unwrap()).unwrap();
    let example = example_fleet();
    for (name, host) in fleet["hosts"].as_object_mut().unwrap() {
        let key = host["privateKeyFile"].as_str().unwrap();
        assert!(
            key.starts_with("/nix/store/") && key.ends_with(&format!("-{name}.age")),
            "{key}"
        );
        host["privateKeyFile"] = example["hosts"][name]["privateKeyFile"].clone();
    }
    assert_eq!(fleet, example);
    assert_eq!(r["firewall"]["allowedUDPPorts"], serde_json::json!([51821]));
    assert_eq!(strings(&r["interfaces"]), ["wg0"]);
}

/// A JSON fleet given as a Nix path (the examples), for `host`.
fn example_on(example: &str, host: &str, extra: &str) -> Value {
    eval(&format!(
        "{{ networking.hostName = \"{host}\"; services.wgfleet = {{ enable = true; \
           fleetFile = /. + {}; {extra} }}; }}",
        repo_file(&format!("examples/{example}/fleet.json"))
    ))
}

#[test]
fn the_firewall_opens_the_port_peers_dial_and_trusts_tunnels_that_flows_police() {
    need_nixpkgs!();
    // cp is seed 000's hub and has an endpoint: the workers dial its port.
    let r = example_on("seed-000", "cp", "");
    assert_eq!(r["firewall"]["allowedUDPPorts"], serde_json::json!([51821]));
    assert_eq!(r["firewall"]["trustedInterfaces"], serde_json::json!([]));
    // A worker only dials out; its replies come back as established traffic.
    let r = example_on("seed-000", "worker-1", "");
    assert_eq!(r["firewall"]["allowedUDPPorts"], serde_json::json!([]));
    // In a mesh every member with an endpoint is dialled, on its own port where it has one.
    let r = example_on("seed-004", "node-c", "");
    assert_eq!(r["firewall"]["allowedUDPPorts"], serde_json::json!([51900]));
    // With flows, wgfleet's WGFLEET-INPUT lets in what they allow and drops the rest: NixOS's
    // firewall trusts the tunnel instead of dropping it in its own table.
    let r = example_on("seed-000-policy", "cp", "");
    assert_eq!(strings(&r["firewall"]["trustedInterfaces"]), ["wg0"]);
    // Turned off: nothing, and no warning.
    let r = example_on("seed-000", "cp", "openFirewall = false;");
    assert_eq!(r["firewall"]["allowedUDPPorts"], serde_json::json!([]));
    assert_eq!(r["warnings"], serde_json::json!([]));

    // A fleet on the host: Nix cannot see it, and says what to open by hand.
    let r = with_settings("fleetFile = \"/etc/wgfleet/fleet.json\";");
    assert_eq!(r["firewall"]["allowedUDPPorts"], serde_json::json!([]));
    let warnings = strings(&r["warnings"]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("networking.firewall.allowedUDPPorts")
            && warnings[0].contains("openFirewall = false"),
        "{}",
        warnings[0]
    );
}

#[test]
fn tunnels_start_at_boot_so_other_units_can_order_after_them() {
    need_nixpkgs!();
    let r = example_on("seed-000", "cp", "");
    let unit = &r["tunnels"]["wg-quick@wg0"];
    assert_eq!(unit["overrideStrategy"], "asDropin", "{r:#}");
    assert_eq!(strings(&unit["wantedBy"]), ["multi-user.target"]);
    // wgfleet decides between reload and restart, not a switch.
    assert_eq!(unit["restartIfChanged"], false);
    // A fresh host has no config before wgfleet's first run: skipped, not failed.
    assert_eq!(
        unit["unitConfig"]["ConditionPathExists"],
        "/etc/wireguard/wg0.conf"
    );
    let pre = strings(&unit["serviceConfig"]["ExecStartPre"]);
    assert_eq!(pre.len(), 1);
    assert!(
        pre[0].starts_with("-/nix/store/") && pre[0].ends_with("/bin/wgfleet firewall-restore"),
        "{pre:?}"
    );
    let post = strings(&unit["serviceConfig"]["ExecStartPost"]);
    assert!(
        post.len() == 1 && post[0].ends_with("/bin/wgfleet routes-interface wg0"),
        "{post:?}"
    );
    let reload = strings(&unit["serviceConfig"]["ExecReload"]);
    assert!(
        reload.len() == 2
            && reload[0].is_empty()
            && reload[1].ends_with("/bin/wgfleet reload-interface wg0"),
        "{reload:?}"
    );
    assert_eq!(
        r["tunnels"].as_object().unwrap().len(),
        1,
        "{:#}",
        r["tunnels"]
    );
    // cp forwards between the workers from boot on.
    assert_eq!(r["sysctl"]["net.ipv4.ip_forward"], 1);

    // A fleet Nix cannot see declares nothing.
    let r = with_settings("fleetFile = \"/etc/wgfleet/fleet.json\";");
    assert_eq!(r["tunnels"], serde_json::json!({}));
    assert_eq!(r["interfaces"], serde_json::json!([]));
}

#[test]
fn a_default_route_into_the_tunnel_loosens_reverse_path_filtering() {
    need_nixpkgs!();
    let fleet = "fleet = { version = 1; \
        hosts.gw = { publicKey = \"j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=\"; endpoint = \"203.0.113.1\"; privateKeyFile = \"/var/lib/wgfleet/gw.age\"; }; \
        hosts.laptop = { publicKey = \"um/TOLbxUvqJwIOGdbFPn9uBh/Es4shlVXFlWyEYvng=\"; privateKeyFile = \"/var/lib/wgfleet/laptop.age\"; }; \
        networks.wg0 = { subnet = \"10.9.0.0/24\"; topology.hubAndSpoke.hubs = [ \"gw\" ]; \
          members = { gw = { id = 1; forwarding = true; }; laptop = { id = 2; reach = [ \"0.0.0.0/0\" ]; }; }; }; };";
    let laptop = |extra: &str| {
        eval(&format!(
            "{{ networking.hostName = \"laptop\"; {extra} services.wgfleet = {{ enable = true; {fleet} }}; }}"
        ))
    };
    let r = laptop("");
    assert_eq!(r["firewall"]["checkReversePath"], "loose", "{r:#}");
    assert_eq!(r["warnings"], serde_json::json!([]));
    // The user's own strict setting wins, with a warning that says why it breaks the tunnel.
    let r = laptop("networking.firewall.checkReversePath = true;");
    assert_eq!(r["firewall"]["checkReversePath"], true);
    let warnings = strings(&r["warnings"]);
    assert!(
        warnings.len() == 1 && warnings[0].contains("checkReversePath = \"loose\""),
        "{warnings:?}"
    );
    // The hub routes only the subnet: NixOS's default stays.
    let r = eval(&format!(
        "{{ networking.hostName = \"gw\"; services.wgfleet = {{ enable = true; {fleet} }}; }}"
    ));
    assert_eq!(r["firewall"]["checkReversePath"], true);
}

#[test]
fn restart_triggers_follow_the_fleet_and_nothing_else() {
    need_nixpkgs!();
    let before = eval(&cp_config("{}"));
    let fleet_path = before["fleetPath"].as_str().unwrap();
    assert_eq!(strings(&before["service"]["restartTriggers"]), [fleet_path]);
    // The timer carries the whole command line: a changed fleet, host, identity or package
    // restarts it on switch, and a restarted timer fires at once (its OnBootSec has passed).
    assert_eq!(
        strings(&before["timer"]["restartTriggers"]),
        [exec_start(&before)]
    );

    let same = eval(&cp_config("{}"));
    assert_eq!(same["fleetPath"], before["fleetPath"]);
    assert_eq!(
        same["timer"]["restartTriggers"],
        before["timer"]["restartTriggers"]
    );

    // A module adding a member (definitions of `fleet` merge): another store file, new triggers.
    let added = eval(&cp_config(
        "{ services.wgfleet.fleet.networks.wg0.members.worker-3.id = 3; \
           services.wgfleet.fleet.hosts.worker-3.publicKey = \"XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXA=\"; }",
    ));
    let fleet: Value = serde_json::from_str(added["fleetJson"].as_str().unwrap()).unwrap();
    assert_eq!(fleet["networks"]["wg0"]["members"]["worker-3"]["id"], 3);
    assert_eq!(fleet["networks"]["wg0"]["members"]["cp"]["id"], 0);
    assert_ne!(added["fleetPath"], before["fleetPath"]);
    assert_eq!(
        strings(&added["service"]["restartTriggers"]),
        [added["fleetPath"].as_str().unwrap()]
    );
    assert_ne!(
        added["timer"]["restartTriggers"],
        before["timer"]["restartTriggers"]
    );
}

#[test]
fn service_is_hardened() {
    need_nixpkgs!();
    let r = eval(&cp_config("{}"));
    let sc = &r["service"]["serviceConfig"];
    for (key, want) in [
        ("NoNewPrivileges", serde_json::json!(true)),
        ("ProtectSystem", serde_json::json!("strict")),
        ("ProtectHome", serde_json::json!(true)),
        ("PrivateTmp", serde_json::json!(true)),
        ("PrivateDevices", serde_json::json!(true)),
        ("ProtectKernelModules", serde_json::json!(true)),
        ("ProtectControlGroups", serde_json::json!(true)),
        ("RestrictSUIDSGID", serde_json::json!(true)),
        ("UMask", serde_json::json!("0077")),
        (
            "CapabilityBoundingSet",
            serde_json::json!(["CAP_NET_ADMIN", "CAP_NET_RAW"]),
        ),
    ] {
        assert_eq!(sc[key], want, "{key} in {sc:#}");
    }
    let rw = strings(&sc["ReadWritePaths"]);
    for dir in ["/etc/wireguard", "/var/lib/wgfleet", "/run"] {
        assert!(rw.contains(&dir), "{dir} not writable: {rw:?}");
    }
    // wgfleet writes net.ipv4.ip_forward: the tunables must stay writable.
    assert!(sc.get("ProtectKernelTunables").is_none(), "{sc:#}");
    assert_eq!(sc["StateDirectory"], "wgfleet");
    assert_eq!(sc["ConfigurationDirectory"], "wireguard");
}

#[test]
fn the_plain_units_share_the_modules_hardening() {
    need_nixpkgs!();
    let unit = std::fs::read_to_string(root().join("systemd/wgfleet.service")).unwrap();
    let r = eval(&cp_config("{}"));
    let sc = r["service"]["serviceConfig"].as_object().unwrap();
    for (key, value) in sc {
        if ["ExecStart", "ReadWritePaths"].contains(&key.as_str()) {
            continue;
        }
        let rendered = match value {
            Value::Bool(true) => "yes".to_owned(),
            Value::Bool(false) => "no".to_owned(),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(" "),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let line = format!("\n{key}={rendered}\n");
        assert!(
            unit.contains(&line),
            "systemd/wgfleet.service lacks `{}` (the module has it)",
            line.trim()
        );
    }
    for dir in strings(&r["service"]["serviceConfig"]["ReadWritePaths"]) {
        assert!(
            unit.lines()
                .any(|l| l.starts_with("ReadWritePaths=") && l.split(['=', ' ']).any(|w| w == dir)),
            "systemd/wgfleet.service does not make {dir} writable"
        );
    }
    let timer = std::fs::read_to_string(root().join("systemd/wgfleet.timer")).unwrap();
    for line in [
        "OnUnitActiveSec=5min",
        "Unit=wgfleet.service",
        "WantedBy=timers.target",
    ] {
        assert!(timer.contains(line), "systemd/wgfleet.timer lacks {line}");
    }
    assert!(unit.contains("\nExecStart=/usr/local/bin/wgfleet apply $WGFLEET_ARGS\n"));
}

#[test]
fn assertion_no_fleet() {
    need_nixpkgs!();
    let r = eval("{ networking.hostName = \"cp\"; services.wgfleet.enable = true; }");
    let failed = strings(&r["failedAssertions"]);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("has no fleet")
            && failed[0].contains("services.wgfleet.fleet")
            && failed[0].contains("services.wgfleet.fleetFile"),
        "{}",
        failed[0]
    );
    assert!(r.get("service").is_none());
}

#[test]
fn assertion_both_fleet_and_fleet_file() {
    need_nixpkgs!();
    let r = eval(&cp_config(
        "{ services.wgfleet.fleetFile = \"/etc/wgfleet/fleet.json\"; }",
    ));
    let failed = strings(&r["failedAssertions"]);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("are both set; set only one"),
        "{}",
        failed[0]
    );
}

#[test]
fn assertion_host_not_in_fleet() {
    need_nixpkgs!();
    let r = eval(&cp_config("{ networking.hostName = \"nixos\"; }"));
    let failed = strings(&r["failedAssertions"]);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("services.wgfleet.host is \"nixos\", which is not a host of the fleet")
            && failed[0].contains("cp, proxy, worker-1, worker-2")
            && failed[0].contains("add \"nixos\" to the fleet's hosts"),
        "{}",
        failed[0]
    );
    // An explicit host fixes it, whatever the hostname.
    let r = eval(&cp_config(
        "{ networking.hostName = \"nixos\"; services.wgfleet.host = \"worker-1\"; }",
    ));
    assert_eq!(r["failedAssertions"], serde_json::json!([]));
    assert!(exec_start(&r).contains(" --host worker-1 "));

    // A JSON fleetFile given as a Nix path is checked too; a file on the host cannot be.
    let json_path = format!(
        "fleetFile = /. + {};",
        nix_str(
            &root()
                .join("examples/seed-000/fleet.json")
                .display()
                .to_string()
        )
    );
    let r = eval(&format!(
        "{{ networking.hostName = \"nixos\"; services.wgfleet = {{ enable = true; {json_path} }}; }}"
    ));
    assert_eq!(strings(&r["failedAssertions"]).len(), 1, "{r:#}");
    let r = eval(
        "{ networking.hostName = \"nixos\"; services.wgfleet = { enable = true; \
           fleetFile = \"/etc/wgfleet/fleet.json\"; }; }",
    );
    assert_eq!(r["failedAssertions"], serde_json::json!([]));
}

#[test]
fn fleet_file_on_the_host_is_used_as_is() {
    need_nixpkgs!();
    let r = with_settings("fleetFile = \"/etc/wgfleet/fleet.json\";");
    assert_eq!(r["fleetPath"], "/etc/wgfleet/fleet.json");
    assert!(r["fleetJson"].is_null());
    assert!(
        exec_start(&r).contains(" apply --fleet /etc/wgfleet/fleet.json --host cp "),
        "{}",
        exec_start(&r)
    );
    assert_eq!(
        strings(&r["service"]["restartTriggers"]),
        ["/etc/wgfleet/fleet.json"]
    );

    // A fleet in Nix is evaluated by wgfleet at run time: nix goes on the service's path.
    let r = with_settings("fleetFile = \"/etc/wgfleet/fleet.nix\";");
    let path = strings(&r["service"]["path"]).join(" ");
    assert!(path.contains("-nix-2.28.4"), "{path}");
}

#[test]
fn identities_follow_the_host_keys_or_the_option_and_never_enter_the_store() {
    need_nixpkgs!();
    let r = eval(&cp_config(
        "{ services.openssh.hostKeys = [ { type = \"rsa\"; bits = 4096; path = \"/persist/ssh/rsa\"; } \
           { type = \"ecdsa\"; path = \"/persist/ssh/ecdsa\"; } ]; }",
    ));
    assert_eq!(strings(&r["identityFiles"]), ["/persist/ssh/rsa"]);
    assert!(exec_start(&r).ends_with(" --host cp --identity /persist/ssh/rsa"));

    let r = eval(&cp_config(
        "{ services.wgfleet.identityFiles = [ \"/var/lib/wgfleet/identity.txt\" ]; }",
    ));
    assert!(
        exec_start(&r).ends_with(" --host cp --identity /var/lib/wgfleet/identity.txt"),
        "{}",
        exec_start(&r)
    );

    // A Nix path would copy the key into the world-readable store: rejected by the type.
    let err = eval_err(&cp_config(
        "{ services.wgfleet.identityFiles = [ ./secrets/test-identity.txt ]; }",
    ));
    assert!(
        err.contains("services.wgfleet.identityFiles") && err.contains("never copied"),
        "{err}"
    );
    let err = eval_err(&cp_config(
        "{ services.wgfleet.identityFiles = [ \"identity.txt\" ]; }",
    ));
    assert!(err.contains("absolute path on the host"), "{err}");
}

#[test]
fn host_names_are_checked_and_arguments_quoted_for_systemd() {
    need_nixpkgs!();
    let err = eval_err(&cp_config("{ services.wgfleet.host = \"cp; rm -rf /\"; }"));
    assert!(err.contains("services.wgfleet.host"), "{err}");

    let r = eval(&cp_config(
        "{ services.wgfleet.extraArgs = [ \"--json\" \"50% of $HOME\" \"a\\\"b\" ]; }",
    ));
    assert!(
        exec_start(&r).ends_with(r#" --json "50%% of $$HOME" "a\"b""#),
        "{}",
        exec_start(&r)
    );
}

#[test]
fn relative_key_paths_in_a_store_fleet_are_warned_about() {
    need_nixpkgs!();
    let r = eval(&cp_config("{}"));
    let warnings = strings(&r["warnings"]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0]
            .contains("hosts.cp.privateKeyFile = \"../../secrets/examples/seed-000/cp.age\"")
            && warnings[0].contains("Nix paths"),
        "{}",
        warnings[0]
    );
    let r = eval(&format!(
        "{{ networking.hostName = \"node-a\"; services.wgfleet = {{ enable = true; fleet = import {}; }}; }}",
        repo_file("examples/seed-004/fleet-lib.nix")
    ));
    assert!(
        strings(&r["warnings"])[0]
            .contains("networks.wg0.presharedKeys.0.file = \"../../secrets/examples/seed-004/"),
        "{r:#}"
    );
    let r = with_settings(
        "fleet = { version = 1; hosts.cp = { publicKey = \"j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=\"; \
           privateKeyFile = \"/var/lib/wgfleet/cp.age\"; }; networks = { }; };",
    );
    assert_eq!(r["warnings"], serde_json::json!([]));
}

#[test]
fn key_files_given_as_nix_paths_become_absolute_store_paths() {
    need_nixpkgs!();
    let key = format!(
        "/. + {}",
        nix_str(
            &root()
                .join("secrets/examples/seed-000/cp.age")
                .display()
                .to_string()
        )
    );
    let r = with_settings(&format!(
        "fleet = {{ version = 1; hosts.cp = {{ publicKey = \"j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=\"; \
           privateKeyFile = {key}; }}; networks = {{ }}; }};"
    ));
    let fleet: Value = serde_json::from_str(r["fleetJson"].as_str().unwrap()).unwrap();
    let file = fleet["hosts"]["cp"]["privateKeyFile"].as_str().unwrap();
    assert!(
        file.starts_with("/nix/store/") && file.ends_with("-cp.age"),
        "{file}"
    );
    assert_eq!(r["warnings"], serde_json::json!([]));
}

#[test]
fn disabled_module_defines_nothing() {
    need_nixpkgs!();
    let r = eval("{ services.wgfleet.fleetFile = \"/etc/wgfleet/fleet.json\"; }");
    assert_eq!(r["enabled"], false);
    assert_eq!(r["failedAssertions"], serde_json::json!([]));
    assert!(r.get("service").is_none() && r.get("timer").is_none());
}
