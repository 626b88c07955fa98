//! Confirmed apply on real systemd and real WireGuard (wireguard-go): a hub and a spoke on a
//! bridge the test creates (DESIGN.md §8), seed 000's fleet. A fleet with a wrong key for the
//! hub is rolled back on the spoke because no handshake follows it; a change that is right on
//! both sides (the hub's port) is confirmed by one; `--no-confirm` applies the wrong key anyway.

#[path = "support/testbed.rs"]
mod testbed;
#[path = "support/wgfleet_on.rs"]
mod wgfleet_on;

use std::time::Instant;

use serde_json::{Value, json};
use testbed::{Host, Testbed};
use wgfleet_on::{
    apply, printed, provision, seed000_fleet, seed000_hosts, set_fleet, wg_go_pid, wgfleet,
};

const CP_TUNNEL: &str = "10.50.0.1";

fn ping(from: &Host, to: &str) {
    from.sh_ok(&format!("ping -c 1 -i 0.5 -w 30 {to}"))
        .unwrap_or_else(|e| panic!("{} cannot ping {to}: {e}", from.name()));
}

fn last_audit(host: &Host) -> Value {
    serde_json::from_str(
        &host
            .sh_ok("tail -n 1 /var/lib/wgfleet/audit.jsonl")
            .unwrap(),
    )
    .unwrap()
}

fn wg0(host: &Host) -> String {
    host.sh_ok("cat /etc/wireguard/wg0.conf").unwrap()
}

#[test]
fn a_change_that_cuts_a_spoke_off_its_hub_is_rolled_back() {
    let bed = Testbed::new("confirm").expect("testbed");
    let hosts = seed000_hosts(&bed, &["cp", "worker-1"]);
    let [cp, w1] = [&hosts[0], &hosts[1]];
    let good = seed000_fleet(&["worker-1"]);
    for h in [cp, w1] {
        provision(h, &["cp", "worker-1"]);
        set_fleet(h, &good);
        apply(h);
    }
    // A working tunnel: the spoke's handshake with the hub is fresh.
    ping(w1, CP_TUNNEL);
    let cp_key = good["hosts"]["cp"]["publicKey"]
        .as_str()
        .unwrap()
        .to_owned();

    eprintln!("1. a wrong key for the hub: no handshake follows, rolled back");
    let wrong_key = w1.sh_ok("wg genkey | wg pubkey").unwrap().trim().to_owned();
    let mut wrong = good.clone();
    wrong["hosts"]["cp"]["publicKey"] = json!(wrong_key);
    set_fleet(w1, &wrong);
    let plan = printed(&wgfleet(w1, "plan"));
    assert!(
        plan.contains("? confirm: a handshake with cp must follow"),
        "{plan}"
    );
    let started = Instant::now();
    let out = wgfleet(w1, "apply");
    let waited = started.elapsed().as_secs_f64();
    let text = printed(&out);
    eprintln!("{text}");
    assert_eq!(out.status.code(), Some(3), "rolled back:\n{text}");
    assert!(
        text.contains("no handshake with cp within 30 s of the change")
            && text.contains("cp's public key is new")
            && text.contains("the previous config was restored and the tunnel is back up"),
        "{text}"
    );
    assert!(
        (30.0..60.0).contains(&waited),
        "waited {waited:.1} s (30 s by default)"
    );
    let conf = wg0(w1);
    assert!(
        conf.contains(&cp_key) && !conf.contains(&wrong_key),
        "the old config is back:\n{conf}"
    );
    ping(w1, CP_TUNNEL);
    let entry = last_audit(w1);
    assert_eq!(entry["confirmation"]["status"], "rolled-back", "{entry:#}");
    assert!(
        entry["confirmation"]["reason"]
            .as_str()
            .unwrap()
            .contains("no handshake with cp"),
        "{entry:#}"
    );
    let audit = w1.sh_ok("/x/wgfleet audit").unwrap();
    assert!(
        audit.contains("worker-1 wg0: rolled back: network wg0: no handshake with cp"),
        "{audit}"
    );

    eprintln!("1b. a wrong port for the hub: its session is renewed, so no handshake follows");
    let mut wrong_port = good.clone();
    wrong_port["networks"]["wg0"]["members"]["cp"]["listenPort"] = json!(51999);
    set_fleet(w1, &wrong_port);
    let started = Instant::now();
    let out = wgfleet(w1, "apply --confirm-timeout 5 --json");
    let waited = started.elapsed().as_secs_f64();
    assert_eq!(
        out.status.code(),
        Some(3),
        "rolled back:\n{}",
        printed(&out)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["networks"][0]["confirmation"]["held"], "yes", "{doc:#}");
    assert_eq!(doc["confirmation"]["status"], "rolled-back", "{doc:#}");
    let reason = doc["confirmation"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("no handshake with cp within 5 s of the change")
            && reason.contains("cp's endpoint 192.0.2.10:51821 → 192.0.2.10:51999"),
        "{doc:#}"
    );
    assert!(waited < 25.0, "waited {waited:.1} s (--confirm-timeout 5)");
    assert!(wg0(w1).contains("Endpoint = 192.0.2.10:51821"));
    ping(w1, CP_TUNNEL);
    set_fleet(w1, &wrong);

    eprintln!("1c. killed while it waits: the next run holds the change again and rolls it back");
    w1.sh(
        "/x/wgfleet apply --fleet /x/fleet.json --host worker-1 -i /x/identity.txt \
         >/dev/null 2>&1 & pid=$!; sleep 5; kill -9 $pid; wait",
    )
    .unwrap();
    assert!(wg0(w1).contains(&wrong_key), "killed after the reload");
    let record = w1.sh_ok("cat /var/lib/wgfleet/pending.json").unwrap();
    assert!(record.contains("\"held\": true"), "{record}");
    // It names the link it held (cp, by its public key): the next run holds the change to it.
    assert!(
        record.contains("\"worked\"") && record.contains(&cp_key),
        "{record}"
    );
    // Nothing live says the link worked now (the wrong key never had a handshake): only the
    // record does.
    let out = wgfleet(w1, "apply --confirm-timeout 5");
    let text = printed(&out);
    eprintln!("{text}");
    assert_eq!(out.status.code(), Some(3), "rolled back:\n{text}");
    assert!(
        text.contains("an earlier run was interrupted") && text.contains("no handshake with cp"),
        "{text}"
    );
    assert!(wg0(w1).contains(&cp_key) && !wg0(w1).contains(&wrong_key));
    ping(w1, CP_TUNNEL);

    eprintln!("2. --no-confirm applies the wrong key");
    let out = wgfleet(w1, "apply --no-confirm");
    let text = printed(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("wg0: done, not held to confirmation: --no-confirm"),
        "{text}"
    );
    assert!(wg0(w1).contains(&wrong_key));
    assert_eq!(last_audit(w1)["confirmation"]["status"], "not-held");

    eprintln!("3. the right key again: the link was dead, so nothing to confirm against");
    set_fleet(w1, &good);
    let out = apply(w1);
    assert!(
        out.contains("not held to confirmation: no hub had a handshake"),
        "{out}"
    );
    ping(w1, CP_TUNNEL);

    eprintln!("4. the hub's port changes on both sides: the spoke confirms it");
    // Without PersistentKeepalive nothing but wgfleet's datagram into the tunnel makes the
    // renewed peer handshake.
    let mut moved = good.clone();
    moved["networks"]["wg0"]["listenPort"] = json!(51822);
    moved["networks"]["wg0"]
        .as_object_mut()
        .unwrap()
        .remove("persistentKeepalive");
    set_fleet(cp, &moved);
    let out = apply(cp);
    assert!(!out.contains("confirm"), "a hub is not held:\n{out}");
    set_fleet(w1, &moved);
    let pid = wg_go_pid(w1);
    let out = apply(w1);
    eprintln!("{out}");
    assert!(
        out.contains("? confirm: a handshake with cp must follow")
            && out.contains("cp's endpoint 192.0.2.10:51821 → 192.0.2.10:51822")
            && out.contains("PersistentKeepalive 25 → (none)")
            && out.contains("wg0: done, confirmed by a handshake with cp"),
        "{out}"
    );
    assert_eq!(wg_go_pid(w1), pid, "confirmed on a reload, not a restart");
    let entry = last_audit(w1);
    assert_eq!(entry["confirmation"]["status"], "confirmed", "{entry:#}");
    assert_eq!(entry["confirmation"]["peer"], "cp", "{entry:#}");
    ping(w1, CP_TUNNEL);
    let events: Value =
        serde_json::from_str(&w1.sh_ok("/x/wgfleet audit --confirmations --json").unwrap())
            .unwrap();
    let statuses: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "rolled-back",
            "rolled-back",
            "rolled-back",
            "not-held",
            "not-held",
            "confirmed"
        ],
        "{events:#}"
    );

    eprintln!("5. nothing changed: no wait, no confirmation");
    let started = Instant::now();
    let out = apply(w1);
    assert!(
        out.contains("wg0: nothing to do") && !out.contains("confirm"),
        "{out}"
    );
    assert!(started.elapsed().as_secs() < 10);
}
