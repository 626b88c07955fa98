//! `wgfleet import` against hand-made wg-quick files: seeds 000 (hub with workers and a proxy),
//! 001 (VPS and homelab, PostUp lines) and 004 (mesh with a preshared key) are imported and
//! rendered back, section by section; the keys found are encrypted to a recipient made with the
//! real `age-keygen`, decrypt with the real `age` to exactly the keys of the files, and never
//! appear in plain text anywhere else. Every inconsistency the import reports is snapshotted from
//! a fixture of its own (tests/fixtures/import/inconsistent/).
//!
//! No private key is committed: fixtures name them as `<age:SEED/NAME>`, replaced here, in a
//! temporary directory, by the example keys decrypted with the public test identity.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wgfleet::wgconf::{self, WgConf};

/// The test identity's public key (secrets/test-identity.txt): encrypting to it is harmless.
const TEST_RECIPIENT: &str = "age1p5n7d9pff49z4nfuskszu7h9jp8yrk52q2g6qp6lr7eaw4u0kuyqf6wg2s";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(dir: &Path, program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (installed by tests/run-all.sh)"))
}

fn ok(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = run(dir, program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn wgfleet(dir: &Path, args: &[&str]) -> Output {
    run(dir, env!("CARGO_BIN_EXE_wgfleet"), args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A copy of a fixture directory with every `<age:SEED/NAME>` replaced by the example key it
/// names, decrypted by the `age` CLI. Returns the directory and the keys put in (for leak checks).
fn materialize(fixture: &str) -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    copy(
        &root().join("tests/fixtures/import").join(fixture),
        dir.path(),
        &mut keys,
    );
    (dir, keys.into_values().collect())
}

fn copy(from: &Path, to: &Path, keys: &mut BTreeMap<String, String>) {
    std::fs::create_dir_all(to).expect("mkdir");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(from)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy(&path, &target, keys);
            continue;
        }
        let mut body = std::fs::read_to_string(&path).expect("fixture");
        // `<key:NAME>` / `<pub:NAME>`: a test-only key pair made from the name (not a secret of
        // anything), its public key by the real `wg pubkey`.
        for (token, public) in [("<key:", false), ("<pub:", true)] {
            while let Some(start) = body.find(token) {
                let end = start + body[start..].find('>').expect("token end");
                let name = &body[start + 5..end];
                let key = test_key(name, public);
                keys.entry(format!("test/{name}"))
                    .or_insert_with(|| test_key(name, false));
                body.replace_range(start..=end, &key);
            }
        }
        while let Some(start) = body.find("<age:") {
            let end = start + body[start..].find('>').expect("token end");
            let name = body[start + 5..end].to_owned();
            let key = keys
                .entry(name.clone())
                .or_insert_with(|| {
                    let file = format!("secrets/examples/{name}.age");
                    ok(
                        root(),
                        "age",
                        &["-d", "-i", "secrets/test-identity.txt", &file],
                    )
                    .trim()
                    .to_owned()
                })
                .clone();
            body.replace_range(start..=end, &key);
        }
        std::fs::write(&target, body).expect("write fixture");
    }
}

/// A key made from a fixture's name: private (base64 of SHA-256 of the name) or its public key.
fn test_key(name: &str, public: bool) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let private = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(format!(
        "wgfleet import fixture {name}"
    )));
    if !public {
        return private;
    }
    let mut child = Command::new("wg")
        .arg("pubkey")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("wg (wireguard-tools)");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(private.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wg pubkey");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// The files of a `--dir` layout: (host, network).
fn configs(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for host in std::fs::read_dir(dir).expect("dir") {
        let host = host.expect("entry").path();
        if !host.is_dir() || host.ends_with("secrets") {
            continue;
        }
        for file in std::fs::read_dir(&host).expect("host dir") {
            let name = file
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            if let Some(net) = name.strip_suffix(".conf") {
                let h = host
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned();
                out.push((h, net.to_owned()));
            }
        }
    }
    out.sort();
    out
}

/// A file's meaning without the private key (compared through check-secrets and `age -d`), and
/// with a preshared key reduced to its presence (compared through `age -d`).
fn meaning(text: &str) -> WgConf {
    let mut conf = wgconf::parse(text);
    conf.interface.remove("privatekey");
    for p in conf.peers.values_mut() {
        if p.preshared_key.is_some() {
            p.preshared_key = Some("<present>".into());
        }
    }
    conf
}

fn value_of(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().to_owned())
    })
}

/// Imports a seed's files, renders every host back and compares; `adjust` states the differences
/// the import reports on purpose (what wgfleet cannot or will not carry over).
fn round_trip(seed: &str, adjust: impl Fn(&str, &str, &mut WgConf)) {
    let (bed, keys) = materialize(seed);
    let dir = bed.path();
    ok(dir, "age-keygen", &["-o", "identity.txt"]);
    let recipient = ok(dir, "age-keygen", &["-y", "identity.txt"]);
    let out = wgfleet(
        dir,
        &[
            "import",
            "--dir",
            ".",
            "-r",
            recipient.trim(),
            "-o",
            "fleet.json",
        ],
    );
    let report = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(out.stdout.is_empty(), "with --out, nothing goes to stdout");
    let name = seed.replace('/', "-");
    insta::assert_snapshot!(format!("{name}-report"), report);
    let fleet = std::fs::read_to_string(dir.join("fleet.json")).expect("fleet");
    insta::assert_snapshot!(format!("{name}-fleet"), fleet);
    ok(
        dir,
        env!("CARGO_BIN_EXE_wgfleet"),
        &["validate", "--fleet", "fleet.json"],
    );

    let doc: serde_json::Value = serde_json::from_str(&fleet).expect("json");
    for (host, iface) in configs(dir) {
        // The fleet's network of this file: its name, or the one whose member keeps the file's
        // name as its `interface`.
        let net = doc["networks"]
            .as_object()
            .expect("networks")
            .iter()
            .find(|(_, n)| n["members"][&host]["interface"] == iface.as_str())
            .map_or(iface.clone(), |(name, _)| name.clone());
        let original =
            std::fs::read_to_string(dir.join(&host).join(format!("{iface}.conf"))).expect("conf");
        let rendered = ok(
            dir,
            env!("CARGO_BIN_EXE_wgfleet"),
            &[
                "render",
                "--fleet",
                "fleet.json",
                "--host",
                &host,
                "--network",
                &net,
            ],
        );
        let mut want = meaning(&original);
        adjust(&host, &net, &mut want);
        // wgfleet renders `Table = off` where it adds the routes itself (no default route): the
        // same routes as wg-quick's, in one batch.
        let mut got = meaning(&rendered);
        if wgconf::table_handover(want.interface.get("table"), got.interface.get("table")) {
            got.interface.remove("table");
        }
        assert_eq!(
            got, want,
            "{seed}: {host} ({net}) renders differently\n--- original\n{original}\n--- rendered\n{rendered}"
        );
        // The private key round-trips: it decrypts, with the identity made here, to exactly the
        // key of the file, and matches the declared public key.
        let checked = ok(
            dir,
            env!("CARGO_BIN_EXE_wgfleet"),
            &[
                "check-secrets",
                "--fleet",
                "fleet.json",
                "--host",
                &host,
                "-i",
                "identity.txt",
            ],
        );
        assert!(checked.contains("matches"), "{checked}");
        let age_file = doc["networks"][&net]["members"][&host]["privateKeyFile"]
            .as_str()
            .or(doc["hosts"][&host]["privateKeyFile"].as_str())
            .expect("a privateKeyFile")
            .to_owned();
        let decrypted = ok(dir, "age", &["-d", "-i", "identity.txt", &age_file]);
        assert_eq!(
            Some(decrypted.trim().to_owned()),
            value_of(&original, "PrivateKey"),
            "{host}'s key in {net}"
        );
        let mode = std::fs::metadata(dir.join(&age_file))
            .expect("age file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{age_file}");
        // A preshared key, likewise: a pair's or a client's.
        if let Some(psk) = value_of(&original, "PresharedKey") {
            let network = &doc["networks"][&net];
            let files: Vec<&str> = network["presharedKeys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["file"].as_str())
                .chain(
                    network["clients"]
                        .as_object()
                        .into_iter()
                        .flat_map(|c| c.values())
                        .filter_map(|c| c["presharedKeyFile"].as_str()),
                )
                .collect();
            assert!(
                files.iter().any(|file| {
                    ok(dir, "age", &["-d", "-i", "identity.txt", file]).trim() == psk
                }),
                "{host}'s PresharedKey in {net} is in none of {files:?}"
            );
        }
    }

    // No key in plain text anywhere but the input files.
    let mut outputs = vec![
        ("stdout".to_owned(), text(&out.stdout)),
        ("stderr".to_owned(), report),
        ("fleet.json".to_owned(), fleet),
    ];
    for entry in std::fs::read_dir(dir.join("secrets")).expect("secrets dir") {
        let path = entry.expect("entry").path();
        outputs.push((
            path.display().to_string(),
            text(&std::fs::read(&path).expect("read")),
        ));
    }
    for key in &keys {
        for (what, body) in &outputs {
            assert!(
                !body.contains(key.as_str()),
                "a key in plain text in {what}"
            );
        }
    }
}

#[test]
fn seed_000_control_plane_workers_and_proxy_round_trip() {
    round_trip("seed-000", |_, _, _| {});
}

#[test]
fn seed_001_vps_and_homelab_round_trip_and_post_up_is_reported() {
    round_trip("seed-001", |host, _, want| match host {
        // PostUp/PostDown are not imported (reported); forwarding: true replaces them.
        "vps" => {
            want.interface.remove("postup");
            want.interface.remove("postdown");
        }
        // No ListenPort (a random port) and nobody dials it: `listenPort: 0`, the same file.
        "homelab" => {}
        _ => unreachable!("{host}"),
    });
}

#[test]
fn seed_004_mesh_with_mtu_and_preshared_key_round_trips() {
    round_trip("seed-004", |_, _, _| {});
}

#[test]
fn two_networks_dual_stack_routes_and_a_key_per_network_round_trip() {
    round_trip("two-networks", |host, net, want| match (host, net) {
        ("cp", "wg0") => {
            want.interface.remove("dns");
        }
        ("cp", "wg1") => {
            want.interface.remove("postup");
            want.interface.remove("postdown");
        }
        _ => {}
    });
}

/// The report of an import of a fixture (the keys encrypted to the test identity).
fn report(fixture: &str) -> String {
    let (bed, _) = materialize(fixture);
    let dir = bed.path();
    let out = wgfleet(
        dir,
        &[
            "import",
            "--dir",
            ".",
            "-r",
            TEST_RECIPIENT,
            "-o",
            "fleet.json",
        ],
    );
    let report = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let valid = wgfleet(dir, &["validate", "--fleet", "fleet.json"]);
    assert!(
        valid.status.success(),
        "the imported fleet validates: {}",
        text(&valid.stderr)
    );
    report
}

#[test]
fn a_key_no_host_owns_is_a_leftover_imported_as_a_client() {
    let report = report("inconsistent/unknown-peer");
    assert!(
        report.contains("imported as client `unknown-1`"),
        "{report}"
    );
    insta::assert_snapshot!("unknown-peer", report);
}

#[test]
fn a_spoke_dialling_the_wrong_port_is_reported() {
    insta::assert_snapshot!("endpoint-port", report("inconsistent/endpoint-port"));
}

#[test]
fn allowed_ips_that_do_not_match_the_peers_address_are_reported() {
    insta::assert_snapshot!("allowed-ips", report("inconsistent/allowed-ips"));
}

#[test]
fn duplicate_addresses_are_reported_and_resolved() {
    insta::assert_snapshot!(
        "duplicate-address",
        report("inconsistent/duplicate-address")
    );
}

#[test]
fn a_private_key_whose_public_key_appears_nowhere_is_reported() {
    insta::assert_snapshot!("key-nowhere", report("inconsistent/key-nowhere"));
}

#[test]
fn a_peer_missing_on_the_hub_is_reported() {
    insta::assert_snapshot!("one-sided", report("inconsistent/one-sided"));
}

#[test]
fn a_one_sided_preshared_key_is_reported() {
    insta::assert_snapshot!("preshared-key", report("inconsistent/preshared-key"));
}

#[test]
fn without_recipients_keys_are_left_out_with_what_to_do() {
    let (bed, keys) = materialize("seed-000");
    let dir = bed.path();
    let out = wgfleet(dir, &["import", "--dir", "."]);
    let report = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let fleet: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the fleet on stdout");
    for (name, host) in fleet["hosts"].as_object().expect("hosts") {
        assert!(host.get("privateKeyFile").is_none(), "{name}: {host}");
    }
    assert!(!dir.join("secrets").exists(), "nothing written");
    for key in &keys {
        assert!(!report.contains(key.as_str()) && !text(&out.stdout).contains(key.as_str()));
    }
    insta::assert_snapshot!("no-recipients", report);
}

#[test]
fn json_output_holds_the_fleet_the_findings_and_their_lines() {
    let (bed, _) = materialize("inconsistent/unknown-peer");
    let dir = bed.path();
    let out = wgfleet(
        dir,
        &["import", "--dir", ".", "-r", TEST_RECIPIENT, "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["valid"], true);
    assert_eq!(
        doc["fleet"]["networks"]["wg0"]["clients"]["unknown-1"]["publicKey"],
        "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
    );
    assert_eq!(
        doc["fleet"]["hosts"]["cp"]["privateKeyFile"],
        "secrets/cp.age"
    );
    let unknown: Vec<&serde_json::Value> = doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["kind"] == "unknown-peer")
        .collect();
    assert_eq!(unknown.len(), 2, "{doc:#}");
    assert_eq!(unknown[0]["severity"], "warning");
    assert_eq!(unknown[0]["lines"][0]["file"], "cp/wg0.conf");
    assert_eq!(unknown[0]["lines"][0]["line"], 17);
    assert_eq!(doc["summary"]["warnings"], 2);
    assert_eq!(doc["secrets"].as_array().expect("secrets").len(), 3);
    assert!(dir.join("secrets/cp.age").exists());
}

#[test]
fn host_equals_path_arguments_give_the_same_fleet_as_a_directory() {
    let (bed, _) = materialize("seed-001");
    let dir = bed.path();
    let by_dir = wgfleet(dir, &["import", "--dir", "."]);
    let by_args = wgfleet(
        dir,
        &["import", "vps=vps/wg0.conf", "homelab:wg0=homelab/wg0.conf"],
    );
    assert_eq!(by_args.status.code(), Some(0), "{}", text(&by_args.stderr));
    assert_eq!(text(&by_args.stdout), text(&by_dir.stdout));
}

#[test]
fn a_recipients_file_encrypts_each_key_to_the_operators_and_its_host() {
    let (bed, _) = materialize("seed-000");
    let dir = bed.path();
    ok(dir, "age-keygen", &["-o", "cp-identity.txt"]);
    let cp = ok(dir, "age-keygen", &["-y", "cp-identity.txt"]);
    std::fs::write(
        dir.join("recipients.txt"),
        format!("# operators\n{TEST_RECIPIENT}\ncp {}", cp.trim()),
    )
    .expect("recipients");
    let out = wgfleet(
        dir,
        &[
            "import",
            "--dir",
            ".",
            "-R",
            "recipients.txt",
            "-o",
            "fleet.json",
        ],
    );
    let report = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(
        report.contains("no line for proxy, worker-1, worker-2"),
        "{report}"
    );
    // cp reads its own key; the operator reads all; cp reads no other host's.
    ok(
        dir,
        "age",
        &["-d", "-i", "cp-identity.txt", "secrets/cp.age"],
    );
    let operator = root().join("secrets/test-identity.txt");
    let operator = operator.to_str().expect("path");
    ok(dir, "age", &["-d", "-i", operator, "secrets/worker-1.age"]);
    let denied = run(
        dir,
        "age",
        &["-d", "-i", "cp-identity.txt", "secrets/worker-1.age"],
    );
    assert!(!denied.status.success());
}

#[test]
fn existing_files_are_not_overwritten_without_force() {
    let (bed, _) = materialize("seed-004");
    let dir = bed.path();
    let args = [
        "import",
        "--dir",
        ".",
        "-r",
        TEST_RECIPIENT,
        "-o",
        "fleet.json",
    ];
    assert_eq!(wgfleet(dir, &args).status.code(), Some(0));
    let again = wgfleet(dir, &args);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        text(&again.stderr),
        "wgfleet: fleet.json exists; pass --force to replace it\n"
    );
    std::fs::remove_file(dir.join("fleet.json")).expect("rm");
    let again = wgfleet(dir, &args);
    assert_eq!(again.status.code(), Some(1), "the age files exist too");
    assert!(text(&again.stderr).contains("secrets/node-a.age exists"));
    assert!(!dir.join("fleet.json").exists(), "nothing written");
    let mut forced = args.to_vec();
    forced.push("--force");
    assert_eq!(wgfleet(dir, &forced).status.code(), Some(0));
}

#[test]
fn unreadable_files_and_nothing_importable_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let out = wgfleet(dir, &["import", "cp=missing/wg0.conf"]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("error-unreadable", text(&out.stderr));

    std::fs::create_dir_all(dir.join("cp")).expect("mkdir");
    std::fs::write(dir.join("cp/wg0.conf"), "[Peer]\nPublicKey = x\n").expect("write");
    let out = wgfleet(dir, &["import", "--dir", "."]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("error-nothing-importable", text(&out.stderr));

    let out = wgfleet(dir, &["import", "cp"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("HOST=PATH"));
    let out = wgfleet(dir, &["import"]);
    assert_eq!(out.status.code(), Some(1));
}

// Setups in the shapes of public installers, wikis and tutorials (tests/fixtures/import/real-world/,
// written for these tests): each round-trips exactly, or is refused for a stated reason.

fn fleet_of(seed: &str) -> serde_json::Value {
    let (bed, _) = materialize(seed);
    let out = wgfleet(bed.path(), &["import", "--dir", ".", "-r", TEST_RECIPIENT]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the fleet on stdout")
}

#[test]
fn a_road_warrior_server_and_its_phones_round_trip_as_hub_and_clients() {
    round_trip("real-world/road-warrior", |_, _, _| {});
    let fleet = fleet_of("real-world/road-warrior");
    let wg0 = &fleet["networks"]["wg0"];
    assert_eq!(
        wg0["topology"]["hubAndSpoke"]["hubs"],
        serde_json::json!(["vpn"])
    );
    let clients: Vec<&String> = wg0["clients"]
        .as_object()
        .expect("clients")
        .keys()
        .collect();
    assert_eq!(
        clients,
        ["alice-phone", "bob-laptop"],
        "named without BEGIN_PEER"
    );
}

#[test]
fn a_pivpn_server_round_trips_and_its_clients_files_carry_the_mtu() {
    round_trip("real-world/pivpn", |_, _, _| {});
    let (bed, _) = materialize("real-world/pivpn");
    let dir = bed.path();
    let out = wgfleet(
        dir,
        &[
            "import",
            "--dir",
            ".",
            "-r",
            TEST_RECIPIENT,
            "-o",
            "fleet.json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let fleet: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("fleet.json")).expect("fleet"))
            .expect("json");
    let clients: Vec<&String> = fleet["networks"]["wg0"]["clients"]
        .as_object()
        .expect("clients")
        .keys()
        .collect();
    assert_eq!(
        clients,
        ["carol", "dave-tablet"],
        "named without `### begin`"
    );
    // The hub has no endpoint in its own file; client-config needs one, and says so.
    let identity = root().join("secrets/test-identity.txt");
    let identity = identity.to_str().expect("path");
    let refused = wgfleet(
        dir,
        &[
            "client-config",
            "carol",
            "--fleet",
            "fleet.json",
            "-i",
            identity,
        ],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr)
            .contains("pivpn has no endpoint, so client \"carol\" could not dial it"),
        "{}",
        text(&refused.stderr)
    );
    let mut doc = fleet.clone();
    doc["hosts"]["pivpn"]["endpoint"] = "vpn.example.net".into();
    std::fs::write(dir.join("fleet.json"), doc.to_string()).expect("write");
    let carol = wgfleet(
        dir,
        &[
            "client-config",
            "carol",
            "--fleet",
            "fleet.json",
            "-i",
            &root()
                .join("secrets/test-identity.txt")
                .display()
                .to_string(),
        ],
    );
    let conf = text(&carol.stdout);
    assert!(carol.status.success(), "{}", text(&carol.stderr));
    assert!(conf.contains("\nMTU = 1420\n"), "{conf}");
}

#[test]
fn per_host_mtu_and_a_roaming_spoke_without_a_port_round_trip() {
    round_trip("real-world/per-host", |_, _, _| {});
    let fleet = fleet_of("real-world/per-host");
    let wg0 = &fleet["networks"]["wg0"];
    assert_eq!(wg0["mtu"], 1420);
    assert_eq!(wg0["members"]["lte-router"]["mtu"], 1280);
    assert_eq!(wg0["members"]["lte-router"]["listenPort"], 0);
}

#[test]
fn a_mesh_node_on_its_own_port_round_trips() {
    round_trip("real-world/mesh-own-port", |_, _, _| {});
    let fleet = fleet_of("real-world/mesh-own-port");
    assert_eq!(
        fleet["networks"]["wg0"]["members"]["node-c"]["listenPort"],
        51821
    );
    assert_eq!(fleet["networks"]["wg0"]["topology"], "mesh");
}

#[test]
fn a_point_to_point_pair_on_a_31_round_trips() {
    round_trip("real-world/point-to-point", |_, _, _| {});
    let fleet = fleet_of("real-world/point-to-point");
    let wg0 = &fleet["networks"]["wg0"];
    assert_eq!(wg0["subnet"], "10.10.9.0/31");
    assert_eq!(wg0["members"]["beta"]["listenPort"], 51821);
    assert_eq!(wg0["members"]["beta"]["mtu"], 1412);
}

/// The report of a fixture the import refuses: exit 1, and the reason.
fn refused(fixture: &str) -> String {
    let (bed, _) = materialize(fixture);
    let out = wgfleet(
        bed.path(),
        &[
            "import",
            "--dir",
            ".",
            "-r",
            TEST_RECIPIENT,
            "-o",
            "fleet.json",
        ],
    );
    let report = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{report}");
    report
}

#[test]
fn one_tunnel_under_two_interface_names_round_trips_as_one_network() {
    round_trip("real-world/two-names", |_, _, _| {});
    let fleet = fleet_of("real-world/two-names");
    let wg_a = &fleet["networks"]["wgA"];
    assert_eq!(fleet["networks"].as_object().expect("networks").len(), 1);
    assert_eq!(wg_a["members"]["beta"]["interface"], "wgB");
    assert!(wg_a["members"]["alpha"].get("interface").is_none());
    assert_eq!(wg_a["subnet"], "10.10.9.0/31");
}

#[test]
fn two_hosts_with_one_private_key_are_refused_as_such() {
    let report = refused("real-world/cloned-key");
    assert!(
        report.contains("pi-1 and pi-2 have the same PrivateKey"),
        "{report}"
    );
    assert!(!report.contains("appears in no other file"), "{report}");
    assert!(!report.contains("has no [Peer] for"), "{report}");
    insta::assert_snapshot!("cloned-key", report);
}

#[test]
fn lines_wg_quick_refuses_are_errors_naming_file_and_line() {
    let report = refused("real-world/refused");
    for line in [
        "  gw/wg0.conf:5: ; the laptop of the on-call engineer",
        "  gw/wg0.conf:8: AllowedIP = 10.9.0.2/32",
        "  laptop/wg0.conf:10: Keepalive = 25",
    ] {
        assert!(report.contains(line), "{line}\n{report}");
    }
    insta::assert_snapshot!("refused", report);
}
