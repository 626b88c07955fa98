//! Reachability, from the description alone: every hop that can drop a packet, in both
//! directions and both address families, and the access state of every example (snapshots).

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

const NOW: &str = "2026-11-23T00:00:00Z";
const KEYS: [&str; 5] = [
    "j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=",
    "um/TOLbxUvqJwIOGdbFPn9uBh/Es4shlVXFlWyEYvng=",
    "cOW07yOnwkL6IrWiXjj2ZtKizAAu+k9RWgxFiIvoJwU=",
    "3jfcaaPzGrCH1/Gd5HofHAJOtpt+VChIBIH7v0SZnVo=",
    "iI2ZmO5eefo9vlswelinnSg8Nk8By3uenwaZliPRoDU=",
];

fn wgfleet(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wgfleet"))
        .current_dir(dir)
        .args(args)
        .args(["--now", NOW])
        .output()
        .expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A hub `hub` with spokes `a` and `b` and a client `phone`, in `family` ("v4" or "v6").
fn fleet(family: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let (subnet_key, subnet) = if family == "v4" {
        ("subnet", "10.7.0.0/24")
    } else {
        ("subnet6", "fd07::/64")
    };
    let mut doc = json!({
        "version": 1,
        "hosts": {
            "hub": {"publicKey": KEYS[0], "endpoint": "192.0.2.1"},
            "a": {"publicKey": KEYS[1]},
            "b": {"publicKey": KEYS[2]},
        },
        "networks": {"wg0": {
            subnet_key: subnet,
            "topology": {"hubAndSpoke": {"hubs": ["hub"]}},
            "members": {"hub": {"id": 0, "forwarding": true}, "a": {"id": 1}, "b": {"id": 2}},
            "clients": {"phone": {"publicKey": KEYS[4], "id": 9, "owner": "me@example.com"}},
        }}
    });
    edit(&mut doc);
    doc
}

/// Asks one question of a fleet; returns the exit code and the answer.
fn ask(doc: &Value, from: &str, to: &str, port: Option<&str>) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("fleet.json"), doc.to_string()).expect("write");
    let mut args = vec![
        "access",
        "--fleet",
        "fleet.json",
        "--from",
        from,
        "--to",
        to,
    ];
    if let Some(p) = port {
        args.extend(["--port", p]);
    }
    wgfleet(dir.path(), &args)
}

fn net(doc: &mut Value) -> &mut Value {
    &mut doc["networks"]["wg0"]
}

#[test]
fn every_hop_that_can_drop_a_packet() {
    for family in ["v4", "v6"] {
        // Spoke to spoke through the hub: no spoke routes the other into the tunnel.
        let (code, text) = ask(&fleet(family, |_| {}), "a", "b", None);
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains("dropped at a: no AllowedIPs entry covers"),
            "{family}: {text}"
        );

        // `reach` on a sends the subnet to the hub, but b's cryptokey check drops a's address.
        let reach = if family == "v4" {
            "10.7.0.0/24"
        } else {
            "fd07::/64"
        };
        let doc = fleet(family, |d| net(d)["members"]["a"]["reach"] = json!([reach]));
        let (code, text) = ask(&doc, "a", "b", None);
        assert_eq!(code, 1);
        assert!(
            text.contains("dropped at b: cryptokey check"),
            "{family}: {text}"
        );

        // A flow makes both directions route and pass the cryptokey checks...
        let flow = |d: &mut Value| {
            net(d)["flows"] = json!([{"from": "a", "to": "b", "ports": ["22/tcp"]}])
        };
        let (code, text) = ask(&fleet(family, flow), "a", "b", Some("22/tcp"));
        assert_eq!(code, 0, "{family}: {text}");
        assert!(text.contains("via a → hub → b"), "{text}");
        // ...but only that way, and only on that port: the firewall.
        let (code, text) = ask(&fleet(family, flow), "b", "a", Some("22/tcp"));
        assert_eq!(code, 1);
        assert!(text.contains("firewall"), "{family}: {text}");
        let (code, _) = ask(&fleet(family, flow), "a", "b", Some("23/tcp"));
        assert_eq!(code, 1);

        // The hub must forward.
        let no_forward = |d: &mut Value| {
            flow(d);
            net(d)["members"]["hub"]["forwarding"] = json!(false);
        };
        let (code, text) = ask(&fleet(family, no_forward), "a", "b", Some("22/tcp"));
        assert_eq!(code, 1);
        assert!(
            text.contains("dropped at hub") && text.contains("forwarding is off"),
            "{family}: {text}"
        );

        // A client reaches its hub directly.
        let (code, text) = ask(&fleet(family, |_| {}), "phone", "hub", None);
        assert_eq!(code, 0, "{family}: {text}");
    }
}

#[test]
fn a_flow_that_cannot_work_is_a_validation_error_naming_the_hop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = fleet("v4", |d| {
        net(d)["flows"] = json!([{"from": "a", "to": "b", "ports": ["22/tcp"]}]);
        net(d)["members"]["hub"]["forwarding"] = json!(false);
        net(d)["tests"] =
            json!([{"from": "phone", "to": "a", "port": "22/tcp", "expect": "allow"}]);
    });
    std::fs::write(
        dir.path().join("fleet.json"),
        serde_json::to_string_pretty(&doc).expect("json"),
    )
    .expect("write");
    let (code, text) = wgfleet(dir.path(), &["validate", "--fleet", "fleet.json"]);
    assert_eq!(code, 1);
    insta::assert_snapshot!(text);
}

#[test]
fn access_state_of_every_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut examples: Vec<_> = std::fs::read_dir(root.join("examples"))
        .expect("examples")
        .map(|e| e.expect("e").path())
        .collect();
    examples.sort();
    for dir in examples {
        let name = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let (code, text) = wgfleet(
            root,
            &["access", "--fleet", &format!("examples/{name}/fleet.json")],
        );
        assert_eq!(code, 0, "{text}");
        insta::assert_snapshot!(format!("access-{name}"), text);
    }
    // Is the contractor's access limited to what the flows say, until when?
    let (code, text) = wgfleet(
        root,
        &[
            "access",
            "--fleet",
            "examples/seed-000-policy/fleet.json",
            "--owner",
            "alice@contractor.example",
            "--json",
        ],
    );
    assert_eq!(code, 0);
    let rows: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows:#}");
    assert_eq!(rows[0]["to"], "cp");
    assert!(rows[0]["until"].is_number());
}
