//! `wgfleet graph` and `wgfleet report`: the DOT of every example and the report's data
//! (snapshots), and the geometry of wgfleet's own SVG layout read back from the SVG: no two boxes
//! overlap, every text fits its box, big fleets render quickly.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

const NOW: &str = "2026-11-23T00:00:00Z";
/// `NOW` as Unix seconds: the report's generation time, so its JSON is reproducible.
const SOURCE_DATE_EPOCH: &str = "1795392000";

/// Runs wgfleet in `dir`; returns the exit code, stdout and stderr.
fn wgfleet(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wgfleet"))
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
        .args(args)
        .args(["--now", NOW])
        .output()
        .expect("run wgfleet");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn examples() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(root.join("examples"))
        .expect("examples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("fleet.json").exists())
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn dot_of_every_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in examples() {
        let fleet = format!("examples/{name}/fleet.json");
        let (code, dot, err) = wgfleet(root, &["graph", "--fleet", &fleet]);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(dot.starts_with("// wgfleet graph") && dot.ends_with("}\n"));
        insta::assert_snapshot!(format!("dot-{name}"), dot);
        // --format dot is the default.
        let (_, explicit, _) = wgfleet(root, &["graph", "--fleet", &fleet, "--format", "dot"]);
        assert_eq!(explicit, dot);
    }
}

#[test]
fn report_data_of_every_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in examples() {
        let fleet = format!("examples/{name}/fleet.json");
        let (code, text, err) = wgfleet(root, &["report", "--fleet", &fleet, "--json"]);
        assert_eq!(code, 0, "{name}: {err}");
        let doc: Value = serde_json::from_str(&text).expect("report JSON");
        assert_eq!(doc["generatedAt"], NOW);
        assert_eq!(doc["evaluatedAt"], NOW);
        // The digest is the one validate prints.
        let (_, validated, _) = wgfleet(root, &["validate", "--fleet", &fleet, "--json"]);
        let validated: Value = serde_json::from_str(&validated).expect("validate JSON");
        assert_eq!(doc["digest"], validated["digest"]);
        // The access rows are access's rows.
        let (_, access, _) = wgfleet(root, &["access", "--fleet", &fleet, "--json"]);
        let access: Value = serde_json::from_str(&access).expect("access JSON");
        assert_eq!(
            doc["access"].as_array().map(Vec::len),
            access.as_array().map(Vec::len),
            "{name}"
        );
        insta::assert_snapshot!(format!("report-{name}"), text);
    }
}

#[test]
fn graph_of_one_network_and_errors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fleet = "examples/seed-002/fleet.json";
    let (code, text, err) = wgfleet(
        root,
        &["graph", "--fleet", fleet, "--network", "wg1", "--json"],
    );
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    let nets: Vec<&str> = doc["networks"]
        .as_array()
        .expect("networks")
        .iter()
        .map(|n| n["name"].as_str().expect("name"))
        .collect();
    assert_eq!(nets, ["wg1"]);
    let (code, _, err) = wgfleet(root, &["graph", "--fleet", fleet, "--network", "wg9"]);
    assert_eq!(code, 1);
    assert!(err.contains("no network \"wg9\""), "{err}");
    let (code, _, err) = wgfleet(root, &["graph", "--fleet", fleet, "--format", "png"]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = wgfleet(root, &["report", "--fleet", fleet]);
    assert_eq!(code, 1);
    assert!(err.contains("--html"), "{err}");
}

#[test]
fn hub_and_spoke_star_and_mesh_clique() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // seed-000: a star around cp.
    let (_, text, _) = wgfleet(
        root,
        &["graph", "--fleet", "examples/seed-000/fleet.json", "--json"],
    );
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    let links = doc["networks"][0]["links"].as_array().expect("links");
    assert_eq!(links.len(), 3);
    assert!(
        links.iter().all(|l| l["a"] == "cp" || l["b"] == "cp"),
        "{links:?}"
    );
    // Spokes dial the hub; the hub never dials a spoke.
    assert!(links.iter().all(|l| {
        l["dialedBy"]
            .as_array()
            .expect("dialedBy")
            .iter()
            .all(|d| d != "cp")
    }));
    // seed-004: a clique of three.
    let (_, text, _) = wgfleet(
        root,
        &["graph", "--fleet", "examples/seed-004/fleet.json", "--json"],
    );
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(
        doc["networks"][0]["links"].as_array().map(Vec::len),
        Some(3)
    );
    // seed-001: the homelab's LAN hangs behind it.
    let (_, dot, _) = wgfleet(root, &["graph", "--fleet", "examples/seed-001/fleet.json"]);
    assert!(dot.contains("\"wg0/homelab\" -> \"wg0/192.168.1.0/24\" [dir=none, style=dotted"));
}

#[test]
fn names_and_descriptions_are_escaped() {
    let doc = json!({
        "version": 1,
        "hosts": {
            "hub": {"publicKey": key(1), "endpoint": "192.0.2.1",
                    "description": "a \"quoted\" <tag> & 'x' \\ back"},
            "a": {"publicKey": key(2)},
        },
        "networks": {"wg0": {
            "subnet": "10.9.0.0/24",
            "topology": {"hubAndSpoke": {"hubs": ["hub"]}},
            "members": {"hub": {"id": 0}, "a": {"id": 1}},
        }}
    });
    let dir = write_fleet(&doc);
    let (code, dot, err) = wgfleet(dir.path(), &["graph", "--fleet", "fleet.json"]);
    assert_eq!(code, 0, "{err}");
    assert!(dot.contains(r#"a \"quoted\" <tag> & 'x' \\ back"#), "{dot}");
    let (_, svg, _) = wgfleet(
        dir.path(),
        &["graph", "--fleet", "fleet.json", "--format", "svg"],
    );
    assert!(svg.contains("a &quot;quoted&quot; &lt;tag&gt; &amp; &#39;x&#39; \\ back"));
    assert!(!svg.contains("<tag>"));
}

// ---------------------------------------------------------------------------------------------
// Generated fleets and SVG geometry

/// A distinct, well-formed WireGuard public key.
fn key(i: u32) -> String {
    let mut bytes = [0x5au8; 32];
    bytes[..4].copy_from_slice(&i.to_be_bytes());
    STANDARD.encode(bytes)
}

fn write_fleet(doc: &Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("fleet.json"),
        serde_json::to_string_pretty(doc).expect("json"),
    )
    .expect("write fleet");
    dir
}

/// Two hubs, `hosts - 2` spokes (every tenth routes a LAN, some with descriptions), `clients`
/// clients with owners, and flows between them.
fn hub_and_spoke(hosts: usize, clients: usize) -> Value {
    let mut host_map = serde_json::Map::new();
    let mut members = serde_json::Map::new();
    for i in 0..hosts {
        let (name, member) = if i < 2 {
            (format!("hub-{i}"), json!({"id": i, "forwarding": true}))
        } else if i % 10 == 0 {
            (
                format!("spoke-{i:04}"),
                json!({"id": i, "forwarding": true,
                       "routes": [format!("192.168.{}.0/24", i / 10)]}),
            )
        } else {
            (format!("spoke-{i:04}"), json!({"id": i}))
        };
        let mut host = json!({"publicKey": key(i as u32)});
        if i < 2 {
            host["endpoint"] = json!(format!("198.51.100.{}", i + 1));
        }
        if i % 7 == 3 {
            host["description"] = json!(format!("rack {} in the east wing, row {}", i % 13, i));
        }
        host_map.insert(name.clone(), host);
        members.insert(name, member);
    }
    let mut client_map = serde_json::Map::new();
    for c in 0..clients {
        client_map.insert(
            format!("laptop-{c}"),
            json!({
                "publicKey": key(100_000 + c as u32),
                "id": hosts + 10 + c,
                "owner": format!("user{c}@example.com"),
                "expires": if c % 2 == 0 { "2027-01-01T00:00:00Z" } else { "2026-11-01T00:00:00Z" },
            }),
        );
    }
    let web: Vec<String> = (2..8.min(hosts)).map(|i| format!("spoke-{i:04}")).collect();
    json!({
        "version": 1,
        "hosts": host_map,
        "groups": {"web": web},
        "networks": {"wg0": {
            "subnet": "10.60.0.0/20",
            "persistentKeepalive": 25,
            "topology": {"hubAndSpoke": {"hubs": ["hub-0", "hub-1"]}},
            "members": members,
            "clients": client_map,
            "flows": [
                {"from": "group:web", "to": "spoke-0010", "ports": ["5432/tcp"]},
                {"from": "group:web", "to": "192.168.1.0/24", "ports": ["443/tcp", "80/tcp"]},
                {"from": "laptop-0", "to": "hub-0", "ports": ["22/tcp"]},
                {"from": "hub-0", "to": "group:web", "ports": ["9100/tcp"]},
            ],
        }}
    })
}

fn mesh(hosts: usize, clients: usize) -> Value {
    let mut host_map = serde_json::Map::new();
    let mut members = serde_json::Map::new();
    for i in 0..hosts {
        let name = format!("node-{i:02}");
        let mut host = json!({"publicKey": key(i as u32), "endpoint": format!("node-{i:02}.mesh.example.net")});
        if i % 4 == 1 {
            host["description"] = json!("storage node with a long description");
        }
        host_map.insert(name.clone(), host);
        let mut member = json!({"id": i, "forwarding": true});
        if i % 5 == 0 {
            member["routes"] = json!([format!("172.16.{i}.0/24")]);
        }
        members.insert(name, member);
    }
    let mut client_map = serde_json::Map::new();
    for c in 0..clients {
        client_map.insert(
            format!("phone-{c}"),
            json!({"publicKey": key(50_000 + c as u32), "id": 200 + c, "owner": "ops@example.com"}),
        );
    }
    json!({
        "version": 1,
        "hosts": host_map,
        "networks": {"wg0": {
            "subnet": "10.70.0.0/24",
            "topology": "mesh",
            "members": members,
            "clients": client_map,
            "flows": [
                {"from": "node-01", "to": ["node-02", "node-07", "node-10"], "ports": ["6379/tcp"]},
                {"from": "node-07", "to": "node-01", "ports": ["9100/tcp"]},
                {"from": "phone-0", "to": "node-03", "ports": ["443/tcp"]},
                {"from": "node-04", "to": "172.16.5.0/24", "ports": ["53/udp", "icmp"]},
            ],
        }}
    })
}

#[derive(Debug, Clone)]
struct Box_ {
    class: String,
    name: String,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    /// The texts inside the box's group.
    texts: Vec<String>,
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_owned())
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Every `<g>` with a `data-x` (nodes, prefixes, flow labels): its class, box and texts.
fn boxes(svg: &str) -> Vec<Box_> {
    let mut out = Vec::new();
    for (at, _) in svg.match_indices("<g class=\"") {
        let tag_end = at + svg[at..].find('>').expect("tag end");
        let tag = &svg[at..tag_end];
        let Some(x) = attr(tag, "data-x") else {
            continue;
        };
        let num = |n: &str| -> f64 { attr(tag, n).expect(n).parse().expect("number") };
        let body_end = tag_end + svg[tag_end..].find("</g>").expect("</g>");
        let body = &svg[tag_end..body_end];
        let texts = body
            .match_indices("<text")
            .map(|(t, _)| {
                let open = t + body[t..].find('>').expect(">") + 1;
                let close = open + body[open..].find("</text>").expect("</text>");
                unescape(&body[open..close])
            })
            .collect();
        out.push(Box_ {
            class: attr(tag, "class").expect("class"),
            name: attr(tag, "data-name")
                .or_else(|| attr(tag, "data-prefix"))
                .unwrap_or_default(),
            x: x.parse().expect("x"),
            y: num("data-y"),
            w: num("data-w"),
            h: num("data-h"),
            texts,
        });
    }
    out
}

fn overlap(a: &Box_, b: &Box_) -> bool {
    a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h
}

/// No two boxes overlap (sweep over y), and each box holds its text at the font's advance.
fn assert_geometry(svg: &str) -> Vec<Box_> {
    let mut all = boxes(svg);
    assert!(!all.is_empty());
    all.sort_by(|a, b| a.y.total_cmp(&b.y));
    for (i, a) in all.iter().enumerate() {
        for b in all[i + 1..].iter().take_while(|b| b.y < a.y + a.h) {
            assert!(!overlap(a, b), "boxes overlap:\n{a:?}\n{b:?}");
        }
        // 12 px monospace cards at ≤ 7.5 px a glyph (DejaVu Sans Mono: 7.22), 11 px labels at 6.9.
        let (advance, pad) = if a.class == "label" {
            (6.9, 8.0)
        } else {
            (7.5, 20.0)
        };
        for t in &a.texts {
            let need = t.chars().count() as f64 * advance + pad;
            assert!(need <= a.w + 0.5, "{t:?} does not fit in {a:?}");
        }
        let lines = a.texts.len() as f64;
        assert!(lines * 11.0 <= a.h, "{a:?}");
    }
    all
}

fn svg_of(doc: &Value) -> String {
    let dir = write_fleet(doc);
    let (code, svg, err) = wgfleet(
        dir.path(),
        &["graph", "--fleet", "fleet.json", "--format", "svg"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.trim_end().ends_with("</svg>"));
    svg
}

#[test]
fn fifty_host_hub_and_spoke_has_no_overlapping_labels() {
    let svg = svg_of(&hub_and_spoke(50, 6));
    let all = assert_geometry(&svg);
    let nodes: Vec<&Box_> = all.iter().filter(|b| b.class.starts_with("node")).collect();
    assert_eq!(nodes.len(), 56, "one box per host and client");
    assert_eq!(all.iter().filter(|b| b.class == "prefix").count(), 4);
    // Each flow arrow is labelled (4 flows: 6 + 6 + 1 + 6 arrows; +1 in the legend).
    assert_eq!(svg.matches("<g class=\"flow").count() - 1, 19);
    assert_eq!(all.iter().filter(|b| b.class == "label").count(), 19);
    // Hubs on top, spokes below them, clients at the bottom.
    let top = |c: &str| {
        nodes
            .iter()
            .filter(|b| b.class.starts_with(c))
            .map(|b| b.y)
            .fold(f64::MAX, f64::min)
    };
    let bottom = |c: &str| {
        nodes
            .iter()
            .filter(|b| b.class.starts_with(c))
            .map(|b| b.y + b.h)
            .fold(f64::MIN, f64::max)
    };
    assert!(bottom("node hub") < top("node spoke"));
    assert!(bottom("node spoke") < top("node client"));
    // Spokes and clients peer with both hubs, hubs with each other: 48·2 + 1 + 3 live clients·2.
    assert_eq!(
        svg.matches("<line class=\"tunnel").count() - 1,
        48 * 2 + 1 + 3 * 2
    );
    // Expired clients are drawn as such, without a tunnel.
    assert_eq!(svg.matches("class=\"node client expired\"").count(), 3);
}

#[test]
fn twelve_host_mesh_sits_on_a_circle_without_overlaps() {
    let svg = svg_of(&mesh(12, 2));
    let all = assert_geometry(&svg);
    let members: Vec<&Box_> = all
        .iter()
        .filter(|b| b.class.starts_with("node member"))
        .collect();
    let mut names: Vec<&str> = members.iter().map(|b| b.name.as_str()).collect();
    names.sort();
    let expected: Vec<String> = (0..12).map(|i| format!("node-{i:02}")).collect();
    assert_eq!(names, expected);
    // A clique: 66 tunnels between members, 2·12 to the clients (+1 legend line).
    assert_eq!(svg.matches("<line class=\"tunnel").count() - 1, 66 + 24);
    // The members' centres are equidistant from their common centre.
    let c: Vec<(f64, f64)> = members
        .iter()
        .map(|b| (b.x + b.w / 2.0, b.y + b.h / 2.0))
        .collect();
    let (mx, my) = (
        c.iter().map(|p| p.0).sum::<f64>() / 12.0,
        c.iter().map(|p| p.1).sum::<f64>() / 12.0,
    );
    let r: Vec<f64> = c.iter().map(|p| (p.0 - mx).hypot(p.1 - my)).collect();
    let (lo, hi) = (
        r.iter().copied().fold(f64::MAX, f64::min),
        r.iter().copied().fold(f64::MIN, f64::max),
    );
    assert!(hi - lo < 1.0, "radii {r:?}");
    assert_eq!(all.iter().filter(|b| b.class == "label").count(), 6);
}

#[test]
fn thousand_hosts_render_quickly() {
    let doc = hub_and_spoke(1000, 20);
    let dir = write_fleet(&doc);
    let start = Instant::now();
    let (code, svg, err) = wgfleet(
        dir.path(),
        &["graph", "--fleet", "fleet.json", "--format", "svg"],
    );
    let took = start.elapsed();
    assert_eq!(code, 0, "{err}");
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "bench: wgfleet graph --format svg, 1000 hosts + 20 clients ({profile} build, load + validate + layout): {} ms, {} KiB of SVG",
        took.as_millis(),
        svg.len() / 1024
    );
    // Generous: a release build takes well under a second; this only catches a blow-up.
    assert!(took.as_secs_f64() < 5.0, "took {took:?}");
    let all = assert_geometry(&svg);
    assert_eq!(
        all.iter().filter(|b| b.class.starts_with("node")).count(),
        1020
    );
}
