//! Access on real hosts: a contractor's laptop (plain wg-quick, no wgfleet) brought up with the
//! file `wgfleet client-config --generate` made, reaching only what the flows allow; the
//! contractor's expiry passing and the next apply removing the laptop; `status` and `audit`
//! reporting it.

#[path = "support/testbed.rs"]
mod testbed;
#[path = "support/wgfleet_on.rs"]
mod wgfleet_on;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use testbed::{Host, Testbed};
use wgfleet_on::{CP_IP, apply, provision, root};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// RFC 3339 for Unix seconds, through the binary's own `--now` parser's inverse: `date`.
fn rfc3339(unix: u64) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{unix}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Seed 000 with policy, cut to cp, worker-1 and the contractor's laptop.
fn fleet(expires: &str) -> Value {
    let text = std::fs::read_to_string(root().join("examples/seed-000-policy/fleet.json")).unwrap();
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    for name in ["worker-2", "proxy"] {
        doc["hosts"].as_object_mut().unwrap().remove(name);
        doc["networks"]["wg0"]["members"]
            .as_object_mut()
            .unwrap()
            .remove(name);
    }
    for (name, host) in doc["hosts"].as_object_mut().unwrap() {
        host["privateKeyFile"] = json!(format!("secrets/{name}.age"));
    }
    doc["hosts"]["cp"]["endpoint"] = json!(CP_IP);
    doc["groups"]["workers"] = json!(["worker-1"]);
    let net = &mut doc["networks"]["wg0"];
    net["clients"]["alice-laptop"]["expires"] = json!(expires);
    net["flows"] = json!([
        {"from": "group:workers", "to": "cp", "ports": ["8081/tcp"]},
        {"from": "owner:alice@contractor.example", "to": "cp", "ports": ["8081/tcp"]},
    ]);
    net["tests"] =
        json!([{"from": "alice-laptop", "to": "worker-1", "port": "2222/tcp", "expect": "deny"}]);
    doc
}

/// Whether a TCP connection to `addr:port` opens within 3 s.
fn connects(from: &Host, addr: &str, port: u16) -> bool {
    let cmd = format!("timeout 3 bash -c 'exec 3<>/dev/tcp/{addr}/{port}'");
    from.sh(&cmd).unwrap().status.success()
}

/// Polls `check` up to `secs` seconds.
fn eventually(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..secs * 2 {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}

#[test]
fn a_contractor_reaches_what_flows_allow_until_expiry() {
    let bed = Testbed::new("access").expect("testbed");
    let hosts = bed
        .add_hosts(&[
            ("cp", "192.0.2.10/24"),
            ("worker-1", "192.0.2.11/24"),
            ("laptop", "192.0.2.50/24"),
        ])
        .expect("hosts");
    let [cp, w1, laptop] = [&hosts[0], &hosts[1], &hosts[2]];

    // The operator makes the laptop's config on their own machine: a new key pair, the public
    // half written into the fleet, the private half only into the laptop's file.
    let expires_at = now() + 45;
    let work = tempfile::tempdir().unwrap();
    let fleet_file = work.path().join("fleet.json");
    std::fs::write(
        &fleet_file,
        serde_json::to_string_pretty(&fleet(&rfc3339(expires_at))).unwrap(),
    )
    .unwrap();
    let before = std::fs::read_to_string(&fleet_file).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgfleet"))
        .args(["client-config", "alice-laptop", "--generate", "-o"])
        .arg(laptop.dir().join("wg0.conf"))
        .arg("--fleet")
        .arg(&fleet_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        std::fs::read_to_string(&fleet_file).unwrap(),
        before,
        "the new public key is in the fleet"
    );
    let config = std::fs::read_to_string(laptop.dir().join("wg0.conf")).unwrap();
    assert!(
        config.contains("Endpoint = 192.0.2.10:51821") && !config.contains("<private key"),
        "{config}"
    );

    for h in [cp, w1] {
        provision(h, &["cp", "worker-1"]);
        std::fs::copy(&fleet_file, h.dir().join("fleet.json")).unwrap();
        apply(h);
    }
    laptop
        .sh_ok("install -m 0600 /x/wg0.conf /etc/wireguard/wg0.conf && wg-quick up wg0")
        .unwrap();
    let mut servers = [
        cp.spawn("/usr/bin/python3 -m http.server 8081 --bind 10.50.0.1")
            .unwrap(),
        w1.spawn("/usr/bin/python3 -m http.server 2222 --bind 10.50.0.2")
            .unwrap(),
        cp.spawn("/usr/bin/python3 -m http.server 8082 --bind 10.50.0.1")
            .unwrap(),
    ];

    // What a flow allows answers; what none allows does not, though it listens.
    assert!(
        eventually(10, || connects(laptop, "10.50.0.1", 8081)),
        "the laptop reaches cp:8081"
    );
    assert!(connects(w1, "10.50.0.1", 8081), "worker-1 reaches cp:8081");
    assert!(
        !connects(laptop, "10.50.0.2", 2222),
        "no flow lets the laptop reach worker-1"
    );
    assert!(
        connects(w1, "10.50.0.2", 2222),
        "worker-1's own service is up"
    );
    // cp's firewall accepts from the tunnel only what a flow addresses to it.
    assert!(
        !connects(laptop, "10.50.0.1", 8082),
        "cp:8082 listens, but no flow allows it"
    );
    let fw = cp.sh_ok("iptables-save").unwrap();
    assert!(fw.contains("-A WGFLEET-INPUT -i wg0 -j DROP"), "{fw}");

    let status = cp
        .sh_ok("/x/wgfleet status --fleet /x/fleet.json --host cp --json")
        .unwrap();
    let status: Value = serde_json::from_str(&status).unwrap();
    let alice = status["networks"][0]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer"] == "alice-laptop")
        .cloned();
    assert_eq!(
        alice.as_ref().map(|a| a["verdict"].clone()),
        Some(json!("ok")),
        "{status:#}"
    );

    // The contract ends: the next apply (what the timer runs) removes the laptop from cp.
    while now() <= expires_at {
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = apply(cp);
    assert!(out.contains("- peer alice-laptop"), "{out}");
    let alice_key = config
        .lines()
        .find_map(|l| l.strip_prefix("PrivateKey = "))
        .unwrap()
        .to_owned();
    let alice_public = laptop
        .sh_ok(&format!("echo {alice_key} | wg pubkey"))
        .unwrap();
    assert!(
        !cp.sh_ok("wg show wg0 peers")
            .unwrap()
            .contains(alice_public.trim())
    );
    assert!(
        !connects(laptop, "10.50.0.1", 8081),
        "the expired laptop is cut off"
    );

    let audit = cp
        .sh_ok("/x/wgfleet audit --client alice-laptop --json")
        .unwrap();
    let audit: Value = serde_json::from_str(&audit).unwrap();
    let interval = &audit[0];
    assert_eq!(
        (interval["host"].clone(), interval["owner"].clone()),
        (json!("cp"), json!("alice@contractor.example")),
        "{audit:#}"
    );
    assert!(
        interval["until"].is_string(),
        "the interval is closed: {audit:#}"
    );
    for server in &mut servers {
        let _ = server.kill();
        let _ = server.wait();
    }
}
