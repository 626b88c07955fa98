//! The plain-Nix part of the NixOS module (`modules/core.nix`) and the fleet helpers
//! (`nix/lib.nix`), evaluated with a bare `nix-instantiate`: no nixpkgs needed, so these run on
//! every machine. What the module derives from a fleet is checked against wgfleet's own plan.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[path = "support/nix.rs"]
mod nix;
use nix::{nix_instantiate, nix_str, root};

/// A file as a Nix path value (`/. + "/abs/path"`), as `./fleet.json` is in a configuration.
fn nix_path(path: &Path) -> String {
    format!("(/. + {})", nix_str(&path.display().to_string()))
}

/// Evaluates `expr` with `core` bound to modules/core.nix. Read-only mode: store paths are
/// computed, nothing is written to the store.
fn core(expr: &str) -> Value {
    let expr = format!(
        "let core = import {}; in {expr}",
        nix_path(&root().join("modules/core.nix"))
    );
    let out = nix_instantiate(&[
        "--eval",
        "--strict",
        "--json",
        "--readonly-mode",
        "-E",
        &expr,
    ]);
    assert!(
        out.status.success(),
        "{expr}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The service's command line for `services.wgfleet` settings (a Nix attribute set with
/// `fleet` or `fleetFile`), as the module builds it.
fn exec_start(settings: &str) -> String {
    let v = core(&format!(
        "let s = {settings}; source = core.fleetSource {{ fleet = s.fleet or null; fleetFile = s.fleetFile or null; }}; \
         in core.execLine (core.applyArgv {{ exe = \"/nix/store/00000000000000000000000000000000-wgfleet/bin/wgfleet\"; \
              fleet = core.serviceFleet builtins.toFile source; host = \"cp\"; }})"
    ));
    v.as_str().unwrap().to_owned()
}

/// The fleet JSON the module writes to the store for `settings`, or null.
fn generated_json(settings: &str) -> Value {
    let v = core(&format!(
        "let s = {settings}; source = core.fleetSource {{ fleet = s.fleet or null; fleetFile = s.fleetFile or null; }}; \
         in if source.json == null then null else builtins.toJSON source.json"
    ));
    match v {
        Value::String(s) => serde_json::from_str(&s).unwrap(),
        other => other,
    }
}

fn json_file(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(rel)).unwrap()).unwrap()
}

/// Every `privateKeyFile` of the fleet's hosts.
fn host_key_files(fleet: &Value) -> Vec<String> {
    fleet["hosts"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|h| h["privateKeyFile"].as_str().map(str::to_owned))
        .collect()
}

/// A directory of its own under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("wgfleet-nix-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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
        "modules/core.nix",
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

/// Defect: `fleetFile = ./fleet.json` reached the service as the evaluating machine's path
/// (`toString` copies nothing), so a remote host, or a moved checkout, had no fleet.
#[test]
fn a_fleet_file_given_as_a_nix_path_reaches_the_service_as_a_store_path() {
    for example in [
        "examples/seed-000/fleet.json",
        "examples/seed-000/fleet-lib.nix",
    ] {
        let settings = format!("{{ fleetFile = {}; }}", nix_path(&root().join(example)));
        let line = exec_start(&settings);
        let words: Vec<&str> = line.split(' ').collect();
        assert_eq!(words[1..3], ["apply", "--fleet"], "{line}");
        assert!(
            words[3].starts_with("/nix/store/") && words[3].ends_with("-wgfleet-fleet.json"),
            "{example}: the service gets {}",
            words[3]
        );
        assert!(
            !line.contains(&root().display().to_string()),
            "{example}: {line}"
        );

        // The fleet written to the store is the example, with its keys in the store too.
        let mut fleet = generated_json(&settings);
        for key in host_key_files(&fleet) {
            assert!(
                key.starts_with("/nix/store/") && key.ends_with(".age"),
                "{example}: {key}"
            );
        }
        let expected = json_file("examples/seed-000/fleet.json");
        for (name, host) in fleet["hosts"].as_object_mut().unwrap() {
            let file = host["privateKeyFile"].as_str().unwrap();
            assert!(file.ends_with(&format!("-{name}.age")), "{file}");
            host["privateKeyFile"] = expected["hosts"][name]["privateKeyFile"].clone();
        }
        assert_eq!(fleet, expected, "{example}");
    }

    // Files given as strings are used as they are: a store path (its directory was copied with
    // it) and a file on the host.
    let store = core(&format!(
        "(core.fleetSource {{ fleetFile = \"${{{}}}/fleet.json\"; }}).file",
        nix_path(&root().join("examples/seed-000"))
    ));
    let store = store.as_str().unwrap();
    assert!(
        store.starts_with("/nix/store/") && store.ends_with("-seed-000/fleet.json"),
        "{store}"
    );
    assert_eq!(
        exec_start("{ fleetFile = \"/etc/wgfleet/fleet.json\"; }"),
        "/nix/store/00000000000000000000000000000000-wgfleet/bin/wgfleet apply --fleet /etc/wgfleet/fleet.json --host cp"
    );
}

/// Defect: editing a fleet given as a Nix path did not change the units, so
/// `nixos-rebuild switch` did not re-run apply. Now the command line (the timer's restart
/// trigger) names the fleet's store file, which changes with the fleet and with its keys.
#[test]
fn editing_the_fleet_or_one_of_its_keys_changes_the_command_line() {
    let dir = TempDir::new("edit");
    let fleet_file = dir.0.join("fleet.json");
    let keys = dir.0.join("secrets");
    std::fs::create_dir(&keys).unwrap();
    let mut fleet = json_file("examples/seed-000/fleet.json");
    for (name, host) in fleet["hosts"].as_object_mut().unwrap() {
        std::fs::copy(
            root().join(format!("secrets/examples/seed-000/{name}.age")),
            keys.join(format!("{name}.age")),
        )
        .unwrap();
        host["privateKeyFile"] = format!("secrets/{name}.age").into();
    }
    let write = |fleet: &Value| {
        std::fs::write(&fleet_file, serde_json::to_string_pretty(fleet).unwrap()).unwrap()
    };
    let settings = format!("{{ fleetFile = {}; }}", nix_path(&fleet_file));

    write(&fleet);
    let first = exec_start(&settings);
    assert_eq!(exec_start(&settings), first, "not deterministic");

    fleet["networks"]["wg0"]["members"]["worker-3"] = serde_json::json!({ "id": 3 });
    fleet["hosts"]["worker-3"] =
        serde_json::json!({ "publicKey": "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXA=" });
    write(&fleet);
    let edited = exec_start(&settings);
    assert_ne!(edited, first, "an edited fleet must change the unit");

    // A re-encrypted key (rekey) changes it too: the fleet names the key by its store path.
    let mut key = std::fs::read(keys.join("cp.age")).unwrap();
    key.extend_from_slice(b"\n");
    std::fs::write(keys.join("cp.age"), key).unwrap();
    assert_ne!(
        exec_start(&settings),
        edited,
        "a changed key must change the unit"
    );
}

/// Defect: the project's own NixOS example wrote its fleet to the store with relative key
/// paths, which point at nothing there.
#[test]
fn the_example_host_configuration_finds_its_keys() {
    let example = nix_path(&root().join("examples/seed-000/nixos-host-cp.nix"));
    let v = core(&format!(
        "let s = (import {example}).services.wgfleet; \
             source = core.fleetSource {{ fleet = s.fleet or null; fleetFile = s.fleetFile or null; }}; \
         in {{ unresolved = core.unresolvedKeyFiles source; json = builtins.toJSON source.json; }}"
    ));
    assert_eq!(v["unresolved"], serde_json::json!([]), "{v:#}");
    let fleet: Value = serde_json::from_str(v["json"].as_str().unwrap()).unwrap();
    let keys = host_key_files(&fleet);
    assert_eq!(keys.len(), 4);
    for key in keys {
        assert!(key.starts_with("/nix/store/"), "{key}");
    }
}

#[test]
fn relative_key_paths_that_cannot_be_found_are_named() {
    // In an attribute set, a relative path has nothing to be relative to.
    let v = core(&format!(
        "core.unresolvedKeyFiles (core.fleetSource {{ fleet = import {}; }})",
        nix_path(&root().join("examples/seed-004/fleet-lib.nix"))
    ));
    let list: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        list.iter().any(|s| s
            .starts_with("networks.wg0.presharedKeys.0.file = \"../../secrets/examples/seed-004/")),
        "{list:?}"
    );
    assert!(
        list.contains(
            &"hosts.node-a.privateKeyFile = \"../../secrets/examples/seed-004/node-a.age\""
        ),
        "{list:?}"
    );

    // Relative to a fleet file given as a Nix path they resolve, the pair's PSK included;
    // a file that does not exist stays as written and is named.
    let dir = TempDir::new("missing");
    std::fs::write(
        dir.0.join("fleet.json"),
        r#"{"version":1,"hosts":{"a":{"publicKey":"j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=","privateKeyFile":"a.age"}},"networks":{}}"#,
    )
    .unwrap();
    let v = core(&format!(
        "core.unresolvedKeyFiles (core.fleetSource {{ fleetFile = {}; }})",
        nix_path(&dir.0.join("fleet.json"))
    ));
    assert_eq!(v, serde_json::json!(["hosts.a.privateKeyFile = \"a.age\""]));
    // A staged rotation's files are key files too.
    std::fs::write(
        dir.0.join("fleet.json"),
        r#"{"version":1,"hosts":{"a":{"publicKey":"j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=","nextPrivateKeyFile":"a.next.age"}},
            "networks":{"wg0":{"presharedKeys":[{"peers":["a","b"],"file":"p.age","nextFile":"p.next.age"}]}}}"#,
    )
    .unwrap();
    let v = core(&format!(
        "core.unresolvedKeyFiles (core.fleetSource {{ fleetFile = {}; }})",
        nix_path(&dir.0.join("fleet.json"))
    ));
    assert_eq!(
        v,
        serde_json::json!([
            "hosts.a.nextPrivateKeyFile = \"a.next.age\"",
            "networks.wg0.presharedKeys.0.file = \"p.age\"",
            "networks.wg0.presharedKeys.0.nextFile = \"p.next.age\""
        ])
    );
    let v = core(&format!(
        "core.unresolvedKeyFiles (core.fleetSource {{ fleetFile = {}; }})",
        nix_path(&root().join("examples/seed-004/fleet-lib.nix"))
    ));
    assert_eq!(v, serde_json::json!([]));

    // Absolute paths on the host are the user's business.
    let v = core(
        "core.unresolvedKeyFiles (core.fleetSource { fleet = { version = 1; \
           hosts.cp = { publicKey = \"j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=\"; \
           privateKeyFile = \"/var/lib/wgfleet/cp.age\"; }; networks = { }; }; })",
    );
    assert_eq!(v, serde_json::json!([]));
}

/// The endpoint timer's command line: `apply --endpoints-only`, without identities (it decrypts
/// nothing).
#[test]
fn the_endpoint_check_runs_apply_endpoints_only() {
    let v = core(
        "core.execLine (core.endpointsArgv { exe = \"/nix/store/x-wgfleet/bin/wgfleet\"; \
         fleet = \"/nix/store/y-fleet.json\"; host = \"cp\"; })",
    );
    assert_eq!(
        v,
        "/nix/store/x-wgfleet/bin/wgfleet apply --fleet /nix/store/y-fleet.json --host cp --endpoints-only"
    );
}

#[test]
fn arguments_are_quoted_for_systemd() {
    let v = core(
        "core.execLine [ \"/bin/wgfleet\" \"--root\" \"/srv/a b\" \"50% of $HOME\" \"a\\\"b\" \"plain-arg_1.x:y@z+,=\" ]",
    );
    assert_eq!(
        v,
        r#"/bin/wgfleet --root "/srv/a b" "50%% of $$HOME" "a\"b" plain-arg_1.x:y@z+,="#
    );
}

/// What the module opens and declares for a host, derived in Nix, equals what wgfleet's own
/// plan says for every host of every example (and of fleets with a default route and IPv6).
#[test]
fn host_needs_agree_with_wgfleets_plan() {
    let dir = TempDir::new("needs");
    let exit = dir.0.join("exit.json");
    std::fs::write(
        &exit,
        r#"{"version":1,
            "hosts":{"gw":{"publicKey":"j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=","endpoint":"203.0.113.1"},
                     "laptop":{"publicKey":"um/TOLbxUvqJwIOGdbFPn9uBh/Es4shlVXFlWyEYvng="}},
            "networks":{"wg7":{"subnet":"10.9.0.0/24","subnet6":"fd09::/64","listenPort":443,
              "topology":{"hubAndSpoke":{"hubs":["gw"]}},
              "members":{"gw":{"id":1,"forwarding":true},"laptop":{"id":2,"reach":["0.0.0.0/0","::/0"]}}}}}"#,
    )
    .unwrap();
    // Hubs dialled by a DNS name and at a list of endpoints (the endpoint check's work).
    let named = dir.0.join("named.json");
    std::fs::write(
        &named,
        r#"{"version":1,
            "hosts":{"a":{"publicKey":"j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=","endpoint":"hub-a.example.net:51820"},
                     "b":{"publicKey":"um/TOLbxUvqJwIOGdbFPn9uBh/Es4shlVXFlWyEYvng=","endpoints":["192.0.2.2","[2001:db8::2]"]},
                     "c":{"publicKey":"cOW07yOnwkL6IrWiXjj2ZtKizAAu+k9RWgxFiIvoJwU=","endpoint":"2001:db8::3"},
                     "s":{"publicKey":"s6jcbwR3U2RIZ7fmLHmBpWcsn4jSwyq27QNr3c/TLnw="}},
            "networks":{"wg1":{"subnet":"10.8.0.0/24","topology":{"hubAndSpoke":{"hubs":["a","b"]}},
                                "members":{"a":{"id":1},"b":{"id":2},"s":{"id":3}}},
                        "wg2":{"subnet":"10.7.0.0/24","topology":"mesh",
                                "members":{"c":{"id":1},"s":{"id":2,"endpoint":"192.0.2.9"}}}}}"#,
    )
    .unwrap();
    let mut fleets: Vec<PathBuf> = [
        "examples/seed-000",
        "examples/seed-000-policy",
        "examples/seed-001",
        "examples/seed-002",
        "examples/seed-004",
        "examples/site-to-site",
    ]
    .iter()
    .map(|d| root().join(d).join("fleet.json"))
    .collect();
    fleets.push(exit);
    fleets.push(named);

    let mut checked = 0;
    for file in &fleets {
        let fleet: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        for host in fleet["hosts"].as_object().unwrap().keys() {
            let out = Command::new(env!("CARGO_BIN_EXE_wgfleet"))
                .args([
                    "render",
                    "--json",
                    "--now",
                    "2026-01-01T00:00:00Z",
                    "--host",
                    host,
                ])
                .arg("--fleet")
                .arg(file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let rendered: Value = serde_json::from_slice(&out.stdout).unwrap();
            let plans: Vec<&Value> = rendered["interfaces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| &i["plan"])
                .collect();
            let names = |keep: &dyn Fn(&Value) -> bool| -> Vec<String> {
                plans
                    .iter()
                    .filter(|p| keep(p))
                    .map(|p| p["network"].as_str().unwrap().to_owned())
                    .collect()
            };
            let mut ports: Vec<u64> = plans
                .iter()
                .filter(|p| p["dialable"] == true)
                .map(|p| p["listenPort"].as_u64().unwrap())
                .collect();
            ports.sort();
            ports.dedup();
            let default_route = |p: &Value| {
                p["peers"].as_array().unwrap().iter().any(|peer| {
                    peer["allowedIps"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|a| a == "0.0.0.0/0" || a == "::/0")
                })
            };
            let v6 = |p: &Value| {
                p["addresses"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a.as_str().unwrap().contains(':'))
            };
            let expected = serde_json::json!({
                "interfaces": names(&|_| true),
                "udpPorts": ports,
                "policyInterfaces": names(&|p| !p["policy"].is_null()),
                "forwarding": {
                    "ipv4": plans.iter().any(|p| p["forwarding"] == true),
                    "ipv6": plans.iter().any(|p| p["forwarding"] == true && v6(p)),
                },
                "defaultRouteInterfaces": names(&default_route),
                "followsEndpoints": plans.iter().any(|p| {
                    p["peers"].as_array().unwrap().iter().any(|peer| {
                        peer["endpoints"].as_array().is_some_and(|l| l.len() > 1)
                            || peer["endpoint"]
                                .as_str()
                                .is_some_and(|e| e.parse::<std::net::SocketAddr>().is_err())
                    })
                }),
            });
            let mut needs = core(&format!(
                "core.hostNeeds (core.fleetSource {{ fleetFile = {}; }}).fleet {}",
                nix_path(file),
                nix_str(host)
            ));
            let ports = needs["udpPorts"].as_array_mut().unwrap();
            ports.sort_by_key(|p| p.as_u64());
            assert_eq!(needs, expected, "{} host {host}", file.display());
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} hosts checked");
    let follows = |host: &str| {
        core(&format!(
            "(core.hostNeeds (core.fleetSource {{ fleetFile = {}; }}).fleet {}).followsEndpoints",
            nix_path(&dir.0.join("named.json")),
            nix_str(host)
        ))
    };
    // s dials a by name and b at two addresses; a (a hub) dials b; c dials s at an address.
    assert_eq!(
        ["a", "b", "c", "s"].map(follows),
        [true, true, false, true].map(Value::Bool)
    );
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
            .args(["validate", "--fleet", nix, "--nix-allow", "nix"])
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
        let expr = format!(
            "let wg = import {}; in {expr}",
            nix_path(&root().join("nix/lib.nix"))
        );
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
        nix_path(&root().join("nix/lib.nix"))
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
