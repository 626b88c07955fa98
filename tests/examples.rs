//! The bundled example fleets (examples/*/fleet.json), one per seed setup: each validates, every
//! host's config is snapshotted, seed 000's configs come out exactly as printed in the seed, and
//! the real `wg-quick strip` accepts every file and strips it as wgfleet's own reload does.

use std::path::{Path, PathBuf};
use std::process::Command;

const NOW: &str = "2026-11-23T00:00:00Z";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn wgfleet(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wgfleet"))
        .current_dir(root())
        .args(args)
        .args(["--now", NOW])
        .output()
        .expect("run wgfleet")
}

fn ok_stdout(args: &[&str]) -> String {
    let out = wgfleet(args);
    assert!(
        out.status.success(),
        "wgfleet {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn example_fleets() -> Vec<PathBuf> {
    let mut fleets: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/")
        .map(|e| e.expect("entry").path().join("fleet.json"))
        .filter(|p| p.exists())
        .collect();
    fleets.sort();
    assert!(fleets.len() >= 4, "one example per seed setup");
    fleets
}

fn hosts_of(fleet: &Path) -> Vec<String> {
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fleet).expect("read")).expect("json");
    doc["hosts"]
        .as_object()
        .expect("hosts")
        .keys()
        .cloned()
        .collect()
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root())
        .expect("inside the repo")
        .display()
        .to_string()
}

#[test]
fn every_example_validates() {
    for fleet in example_fleets() {
        let out = ok_stdout(&["validate", "--fleet", &rel(&fleet)]);
        assert!(out.contains(": valid: "), "{out}");
    }
}

#[test]
fn every_host_of_every_example_renders_as_snapshotted() {
    for fleet in example_fleets() {
        let example = fleet
            .parent()
            .and_then(|p| p.file_name())
            .expect("dir")
            .to_string_lossy()
            .into_owned();
        for host in hosts_of(&fleet) {
            let config = ok_stdout(&["render", "--fleet", &rel(&fleet), "--host", &host]);
            insta::assert_snapshot!(format!("{example}__{host}"), config);
        }
    }
}

/// Sections with their key/value pairs, comments and blank lines dropped.
fn sections(config: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in config
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if line.starts_with('[') {
            out.push((line.to_owned(), Vec::new()));
        } else {
            let (k, v) = line.split_once('=').expect("key = value");
            out.last_mut()
                .expect("a section")
                .1
                .push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

#[test]
fn seed_000_configs_are_exactly_the_seeds() {
    for host in ["cp", "worker-1", "proxy"] {
        let expected =
            std::fs::read_to_string(root().join(format!("tests/fixtures/seed-000/{host}.conf")))
                .expect("fixture");
        let rendered = ok_stdout(&[
            "render",
            "--fleet",
            "examples/seed-000/fleet.json",
            "--host",
            host,
        ]);
        // Exactly the seed, plus `Table = off`: wgfleet adds the routes itself, in one batch.
        let mut got = sections(&rendered);
        let before = got[0].1.len();
        got[0].1.retain(|(k, v)| !(k == "Table" && v == "off"));
        assert_eq!(before - got[0].1.len(), 1, "{host}: one `Table = off`");
        assert_eq!(got, sections(&expected), "{host}");
    }
}

#[test]
fn the_nix_fleet_is_the_json_fleet() {
    let digest = |f: &str| -> serde_json::Value {
        let doc: serde_json::Value =
            serde_json::from_str(&ok_stdout(&["validate", "--json", "--fleet", f])).expect("json");
        doc["digest"].clone()
    };
    assert_eq!(
        digest("examples/seed-000/fleet.nix"),
        digest("examples/seed-000/fleet.json")
    );
    for host in hosts_of(&root().join("examples/seed-000/fleet.json")) {
        assert_eq!(
            ok_stdout(&[
                "render",
                "--fleet",
                "examples/seed-000/fleet.nix",
                "--host",
                &host
            ]),
            ok_stdout(&[
                "render",
                "--fleet",
                "examples/seed-000/fleet.json",
                "--host",
                &host
            ]),
        );
    }
}

#[test]
fn rendering_is_deterministic() {
    let args = [
        "render",
        "--fleet",
        "examples/seed-002/fleet.json",
        "--host",
        "de-1",
    ];
    assert_eq!(ok_stdout(&args), ok_stdout(&args));
}

#[test]
fn real_wg_quick_strip_accepts_every_rendered_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    for fleet in example_fleets() {
        for host in hosts_of(&fleet) {
            let json: serde_json::Value = serde_json::from_str(&ok_stdout(&[
                "render",
                "--json",
                "--fleet",
                &rel(&fleet),
                "--host",
                &host,
            ]))
            .expect("json");
            for iface in json["interfaces"].as_array().expect("interfaces") {
                let name = iface["network"].as_str().expect("network");
                let path = dir.path().join(format!("{name}.conf"));
                std::fs::write(&path, iface["config"].as_str().expect("config")).expect("write");
                let out = Command::new("wg-quick")
                    .arg("strip")
                    .arg(&path)
                    .output()
                    .expect("wg-quick (wireguard-tools) installed");
                assert!(
                    out.status.success(),
                    "{host}/{name}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let stripped = String::from_utf8_lossy(&out.stdout);
                assert!(
                    !stripped.contains("Address")
                        && stripped.contains("[Peer]")
                            == iface["plan"]["peers"]
                                .as_array()
                                .is_some_and(|p| !p.is_empty())
                );
                assert_strips_alike(&path, &stripped);
            }
        }
    }
}

#[test]
fn unknown_host_and_network_are_clear_errors() {
    let out = wgfleet(&[
        "render",
        "--fleet",
        "examples/seed-000/fleet.json",
        "--host",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr));
    let out = wgfleet(&[
        "render",
        "--fleet",
        "examples/seed-000/fleet.json",
        "--host",
        "cp",
        "--network",
        "wg9",
    ]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr));
}

/// `wgconf::strip` (what `wgfleet reload-interface` feeds to `wg syncconf`) equals what the real
/// `wg-quick strip` prints for the same file, up to blank lines.
fn assert_strips_alike(path: &Path, by_wg_quick: &str) {
    let ours = wgfleet::wgconf::strip(&std::fs::read_to_string(path).expect("read"));
    let lines = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    };
    assert_eq!(lines(&ours), lines(by_wg_quick), "{}", path.display());
}

#[test]
fn strip_matches_wg_quick_on_hand_made_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files: Vec<PathBuf> = Vec::new();
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, found);
            } else if p.extension().is_some_and(|x| x == "conf") {
                found.push(p);
            }
        }
    }
    walk(&root().join("tests/fixtures/import"), &mut files);
    // What people write by hand: any case, comments everywhere, hooks holding `=` and `#`.
    let odd = dir.path().join("wg9.conf");
    std::fs::write(
        &odd,
        "# a hub\n[interface] # comment\n  address = 10.0.0.1/24, fd00::1/64\nprivatekey=aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=\n\
         ListenPort = 51820\nmtu=1380\nTable = off\nPostUp = iptables -A FORWARD -i %i -j ACCEPT # fw\n\
         PreDown = echo a=b\nSaveConfig = false\nFwMark = 0x1\n\n[Peer]\nPublicKey = um/TOLbxUvqJwIOGdbFPn9uBh/Es4shlVXFlWyEYvng=\n\
         # Address = not in the interface section\nAllowedIPs = 10.0.0.2/32\r\n[INTERFACE]\nDNS = 1.1.1.1\n",
    )
    .expect("write");
    files.push(odd);
    assert!(files.len() > 20, "{files:?}");
    for (i, file) in files.iter().enumerate() {
        // wg-quick wants the file named after an interface.
        let path = dir.path().join(format!("wgt{i}.conf"));
        std::fs::copy(file, &path).expect("copy");
        let out = Command::new("wg-quick")
            .arg("strip")
            .arg(&path)
            .output()
            .expect("wg-quick (wireguard-tools) installed");
        assert!(out.status.success(), "{}", file.display());
        assert_strips_alike(&path, &String::from_utf8_lossy(&out.stdout));
    }
}
