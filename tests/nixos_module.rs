//! The NixOS module (`modules/wgfleet.nix`) evaluated with the real nixpkgs module system
//! (`lib.evalModules`) over stubs of the NixOS options it sets (`tests/nix/eval-module.nix`),
//! and the Nix helper library (`nix/lib.nix`). Needs `nix-instantiate` and nixpkgs' `lib`:
//! `$WGFLEET_NIXPKGS_LIB`, else `../shared/vendor/nixpkgs-lib/lib` beside the repository.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// nixpkgs' `lib` directory: `$WGFLEET_NIXPKGS_LIB`, else the vendored copy beside the repo.
fn nixpkgs_lib() -> PathBuf {
    if let Some(dir) = std::env::var_os("WGFLEET_NIXPKGS_LIB") {
        return PathBuf::from(dir);
    }
    let vendored = root().join("../shared/vendor/nixpkgs-lib/lib");
    assert!(
        vendored.join("default.nix").is_file(),
        "nixpkgs lib not found at {}: these tests evaluate the NixOS module with nixpkgs' module \
         system. Check out the shared directory beside the repository (shared/vendor/nixpkgs-lib), \
         or set WGFLEET_NIXPKGS_LIB to a nixpkgs `lib` directory.",
        vendored.display()
    );
    vendored
}

fn nix_instantiate(args: &[&str]) -> Output {
    Command::new("nix-instantiate")
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run nix-instantiate ({e}); install Nix (Debian: nix-bin), as tests/run-all.sh does")
        })
}

/// A Nix string literal.
fn nix_str(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace("${", "\\${")
    )
}

/// A file of the repository as a Nix expression (a string path, fine for `import`).
fn repo_file(rel: &str) -> String {
    nix_str(&root().join(rel).display().to_string())
}

fn harness(config: &str) -> Output {
    let lib = nixpkgs_lib().display().to_string();
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
fn every_nix_file_parses() {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if entry.file_type().unwrap().is_dir() {
                if name != "target" && name != ".git" {
                    walk(&path, found);
                }
            } else if path.extension().is_some_and(|e| e == "nix") {
                found.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(root(), &mut files);
    files.sort();
    for expected in [
        "flake.nix",
        "modules/wgfleet.nix",
        "nix/lib.nix",
        "tests/nix/eval-module.nix",
        "examples/seed-000/fleet.nix",
    ] {
        assert!(
            files.contains(&root().join(expected)),
            "{expected} not found among {files:?}"
        );
    }
    for file in &files {
        let out = nix_instantiate(&["--parse", &file.display().to_string()]);
        assert!(
            out.status.success(),
            "{} does not parse:\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn service_applies_the_fleet_for_the_host_with_its_ssh_host_keys() {
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
    let default = eval(&cp_config("{}"));
    let timer = &default["timer"];
    assert_eq!(timer["timerConfig"]["OnUnitActiveSec"], "5min");
    assert_eq!(timer["timerConfig"]["Unit"], "wgfleet.service");
    assert!(timer["timerConfig"]["OnBootSec"].is_string(), "{timer:#}");
    assert_eq!(strings(&timer["wantedBy"]), ["timers.target"]);

    let hourly = eval(&cp_config("{ services.wgfleet.interval = \"1h\"; }"));
    assert_eq!(hourly["timer"]["timerConfig"]["OnUnitActiveSec"], "1h");
}

/// The configuration docs/nixos.md shows: it evaluates, applies seed 000's fleet on cp, and
/// the fleet it writes is the example's.
#[test]
fn the_guides_host_configuration() {
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
    let fleet: Value = serde_json::from_str(r["fleetJson"].as_str().unwrap()).unwrap();
    assert_eq!(fleet, example_fleet());
}

#[test]
fn restart_triggers_follow_the_fleet_and_nothing_else() {
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
    assert!(unit.contains(
        "\nExecStart=/usr/local/bin/wgfleet apply --fleet /etc/wgfleet/fleet.json $WGFLEET_ARGS\n"
    ));
}

#[test]
fn assertion_no_fleet() {
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
    let r = eval("{ services.wgfleet.fleetFile = \"/etc/wgfleet/fleet.json\"; }");
    assert_eq!(r["enabled"], false);
    assert_eq!(r["failedAssertions"], serde_json::json!([]));
    assert!(r.get("service").is_none() && r.get("timer").is_none());
}

#[test]
fn library_examples_equal_the_json_examples() {
    for (nix, json) in [
        (
            "examples/seed-000/fleet-lib.nix",
            "examples/seed-000/fleet.json",
        ),
        (
            "examples/seed-004/fleet-lib.nix",
            "examples/seed-004/fleet.json",
        ),
    ] {
        let out = nix_instantiate(&["--eval", "--strict", "--json", nix]);
        assert!(
            out.status.success(),
            "{nix}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let value: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(value, json_file(json), "{nix} differs from {json}");
        // And wgfleet itself reads it as a valid fleet.
        let out = Command::new(env!("CARGO_BIN_EXE_wgfleet"))
            .args(["validate", "--fleet", nix])
            .current_dir(root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "wgfleet validate --fleet {nix}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn library_helpers() {
    let eval_lib = |expr: &str| -> Value {
        let expr = format!("let wg = import {}; in {expr}", repo_file("nix/lib.nix"));
        let out = nix_instantiate(&["--eval", "--strict", "--json", "-E", &expr]);
        assert!(
            out.status.success(),
            "{expr}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(
        eval_lib("wg.mkMembersFrom 10 [ \"a\" \"b\" ]"),
        serde_json::json!({"a": {"id": 10}, "b": {"id": 11}})
    );
    assert_eq!(
        eval_lib("wg.mkNumberedMembers \"node-\" [ 3 7 ]"),
        serde_json::json!({"node-3": {"id": 3}, "node-7": {"id": 7}})
    );
    assert_eq!(
        eval_lib(
            "wg.mkHosts { keyDir = \"k\"; } { a.publicKey = \"P\"; b = { publicKey = \"Q\"; privateKeyFile = \"/x.age\"; }; }"
        ),
        serde_json::json!({"a": {"publicKey": "P", "privateKeyFile": "k/a.age"},
                           "b": {"publicKey": "Q", "privateKeyFile": "/x.age"}})
    );
    assert_eq!(
        eval_lib("wg.merge [ { a.b = 1; a.l = [ 1 ]; } { a.c = 2; a.l = [ 2 ]; } ]"),
        serde_json::json!({"a": {"b": 1, "c": 2, "l": [2]}})
    );
    assert_eq!(
        eval_lib("[ wg.mesh (wg.hubAndSpoke [ \"h\" ]) ]"),
        serde_json::json!(["mesh", {"hubAndSpoke": {"hubs": ["h"]}}])
    );

    // mkFleet says what is wrong and how to fix it.
    let expr = format!(
        "let wg = import {}; in wg.mkFleet {{ hosts.a.publicKey = \"P\"; networks.wg0 = {{ \
           topology = wg.hubAndSpoke [ \"hub\" ]; members = wg.mkMembers [ \"a\" \"b\" ]; }}; }}",
        repo_file("nix/lib.nix")
    );
    let out = nix_instantiate(&["--eval", "--strict", "--json", "-E", &expr]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("networks.wg0.members: \"b\" not in hosts; add them to `hosts`")
            && err.contains("networks.wg0.topology.hubAndSpoke.hubs: \"hub\" not members of wg0"),
        "{err}"
    );
}
