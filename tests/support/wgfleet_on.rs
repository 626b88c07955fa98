//! wgfleet on testbed hosts, as the system tests drive it: seed 000's fleet adapted to the
//! testbed, a host provisioned under /x, and what the tests observe on it. Include after the
//! testbed: `#[path = "support/testbed.rs"] mod testbed;` then
//! `#[path = "support/wgfleet_on.rs"] mod wgfleet_on;`.
#![allow(dead_code)]

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

use crate::testbed::{Host, Testbed};

/// The control plane's underlay address: where seed 000's fleet has cp dialled.
pub const CP_IP: &str = "192.0.2.10";

/// Seed 000's hosts and their underlay addresses (a /24), as its fleet and scripts have them.
pub const SEED000_IPS: [(&str, &str); 4] = [
    ("cp", CP_IP),
    ("worker-1", "192.0.2.11"),
    ("worker-2", "192.0.2.12"),
    ("proxy", "192.0.2.30"),
];

/// Adds seed 000's hosts `names` to the testbed, each at its underlay address, in that order.
pub fn seed000_hosts(bed: &Testbed, names: &[&str]) -> Vec<Host> {
    let specs: Vec<(&str, String)> = names
        .iter()
        .map(|name| {
            let (_, ip) = SEED000_IPS
                .iter()
                .find(|(host, _)| host == name)
                .unwrap_or_else(|| panic!("{name} is not one of seed 000's hosts"));
            (*name, format!("{ip}/24"))
        })
        .collect();
    let specs: Vec<(&str, &str)> = specs.iter().map(|(n, a)| (*n, a.as_str())).collect();
    bed.add_hosts(&specs).expect("hosts")
}

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Seed 000's fleet with its keys in `secrets/` beside it, cp dialled at [`CP_IP`] and nobody
/// else, and only cp and `members` in the network.
pub fn seed000_fleet(members: &[&str]) -> Value {
    let mut doc: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("examples/seed-000/fleet.json")).unwrap(),
    )
    .unwrap();
    for (name, host) in doc["hosts"].as_object_mut().unwrap() {
        host["privateKeyFile"] = json!(format!("secrets/{name}.age"));
        host.as_object_mut().unwrap().remove("endpoint");
    }
    doc["hosts"]["cp"]["endpoint"] = json!(CP_IP);
    doc["networks"]["wg0"]["members"]
        .as_object_mut()
        .unwrap()
        .retain(|name, _| name == "cp" || members.contains(&name.as_str()));
    let workers: Vec<&str> = members
        .iter()
        .copied()
        .filter(|m| m.starts_with("worker-"))
        .collect();
    doc["groups"]["workers"] = json!(workers);
    doc
}

/// Copies the binary, seed 000's encrypted keys (`hosts`) and the test identity into the
/// host's /x.
pub fn provision(host: &Host, hosts: &[&str]) {
    let dir = host.dir();
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_wgfleet"), dir.join("wgfleet")).unwrap();
    for name in hosts {
        std::fs::copy(
            root().join(format!("secrets/examples/seed-000/{name}.age")),
            dir.join(format!("secrets/{name}.age")),
        )
        .unwrap();
    }
    std::fs::copy(
        root().join("secrets/test-identity.txt"),
        dir.join("identity.txt"),
    )
    .unwrap();
}

/// Writes the host's /x/fleet.json.
pub fn set_fleet(host: &Host, doc: &Value) {
    std::fs::write(
        host.dir().join("fleet.json"),
        serde_json::to_string_pretty(doc).unwrap(),
    )
    .unwrap();
}

/// `wgfleet ARGS` on the host with its /x fleet and identity, whatever the exit code.
pub fn wgfleet(host: &Host, args: &str) -> Output {
    let cmd = format!(
        "/x/wgfleet {args} --fleet /x/fleet.json --host {} -i /x/identity.txt",
        host.name()
    );
    host.sh(&cmd).unwrap()
}

/// `wgfleet apply`, which must succeed; returns what it printed.
pub fn apply(host: &Host) -> String {
    let out = wgfleet(host, "apply");
    let text = printed(&out);
    assert!(
        out.status.success(),
        "apply on {} failed:\n{text}",
        host.name()
    );
    text
}

/// `wgfleet plan --detailed-exitcode` finds nothing to do (exit 0); else fails with its output.
pub fn assert_in_sync(host: &Host) {
    let plan = wgfleet(host, "plan --detailed-exitcode");
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
}

/// What a command printed: stdout, then stderr.
pub fn printed(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The PID of the host's `wireguard-go wg0`: unchanged means not restarted.
pub fn wg_go_pid(host: &Host) -> String {
    host.sh_ok("pgrep -f '^wireguard-go wg0'")
        .unwrap()
        .trim()
        .to_owned()
}

/// The config file's inode and mtime: equal means not written.
pub fn file_id(host: &Host) -> String {
    host.sh_ok("stat -c '%i %Y.%y' /etc/wireguard/wg0.conf")
        .unwrap()
}

/// iptables and ip6tables state without counters and timestamps.
pub fn firewall(host: &Host) -> String {
    host.sh_ok("{ iptables-save; ip6tables-save; } | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'")
        .unwrap()
}
