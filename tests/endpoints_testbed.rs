//! Endpoints that follow DNS, on real systemd and real WireGuard (issue 17, part 1): a hub (cp)
//! and a spoke (worker-1) on a bridge the test creates; the spoke dials the hub by a name that
//! its own /etc/hosts resolves. The hub moves to another address on the bridge, its old address
//! dies, the spoke's handshake goes stale, and one run of wgfleet on the spoke sets the new
//! address live: no reload, no restart (wireguard-go's PID stays), no file write.
//!
//! Staleness is shortened to `STALE` seconds with the test hook WGFLEET_TEST_STALE_SECS (the
//! real threshold, 185 s plus the keepalive, would make each step wait minutes); nothing else
//! differs.

#[path = "support/testbed.rs"]
mod testbed;
#[path = "support/wgfleet_on.rs"]
mod wgfleet_on;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testbed::{Host, Testbed};
use wgfleet_on::{
    CP_IP, apply, file_id, printed, provision, seed000_fleet, seed000_hosts, set_fleet, wg_go_pid,
};

const STALE: u64 = 12;
const HOSTS: [&str; 2] = ["cp", "worker-1"];

/// `wgfleet ARGS` on the host (the fleet, host and identity options are added for the commands
/// that take them); `stale`: with the shortened threshold. Must succeed.
fn run(host: &Host, stale: bool, args: &str) -> String {
    let out = run_status(host, stale, args);
    let text = printed(&out);
    assert!(out.status.success(), "`{args}` on {}:\n{text}", host.name());
    text
}

fn run_status(host: &Host, stale: bool, args: &str) -> std::process::Output {
    let env = if stale {
        format!("WGFLEET_TEST_STALE_SECS={STALE} ")
    } else {
        String::new()
    };
    let opts = match args.split_whitespace().next() {
        Some("apply" | "plan") => format!(
            " --fleet /x/fleet.json --host {} -i /x/identity.txt",
            host.name()
        ),
        Some("status") => format!(" --fleet /x/fleet.json --host {}", host.name()),
        _ => String::new(),
    };
    host.sh(&format!("{env}/x/wgfleet {args}{opts}")).unwrap()
}

fn ping(from: &Host, to: &str) {
    from.sh_ok(&format!("ping -c 1 -i 0.5 -w 30 {to}"))
        .unwrap_or_else(|e| panic!("{} cannot ping {to}: {e}", from.name()));
}

/// The spoke's live endpoint for the hub.
fn live_endpoint(spoke: &Host) -> String {
    spoke
        .sh_ok("wg show wg0 endpoints")
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

/// Waits until the spoke's latest handshake with the hub is older than the threshold, and the
/// endpoint set last (at `since`) has had the threshold's time to answer. (A session outlives an
/// endpoint change: the ping through the new endpoint needs no new handshake, so the handshake
/// age alone says nothing about the endpoint set a moment ago with the shortened threshold.)
fn wait_stale(spoke: &Host, since: Instant) {
    let wait = Duration::from_secs(STALE + 1).saturating_sub(since.elapsed());
    std::thread::sleep(wait);
    let deadline = Instant::now() + Duration::from_secs(STALE + 60);
    loop {
        let age: u64 = spoke
            .sh_ok("echo $(( $(date +%s) - $(wg show wg0 latest-handshakes | cut -f2) ))")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        if age > STALE {
            return;
        }
        assert!(Instant::now() < deadline, "the handshake never went stale");
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn main_pid(host: &Host) -> String {
    host.sh_ok("systemctl show -p MainPID --value wg-quick@wg0")
        .unwrap()
        .trim()
        .to_owned()
}

fn set_hosts(spoke: &Host, ip: &str) {
    spoke
        .sh_ok(&format!(
            "sed -i '/hub.test/d' /etc/hosts && echo '{ip} hub.test' >> /etc/hosts"
        ))
        .unwrap();
}

/// What the spoke's WireGuard and wgfleet's state say, for a failure's message.
fn debug(spoke: &Host) -> String {
    spoke
        .sh_ok(
            "date +%s; wg show wg0 dump | cut -f1,3,5; cat /var/lib/wgfleet/endpoints.json; \
             cat /etc/hosts | grep hub",
        )
        .unwrap_or_else(|e| e)
}

fn audit_endpoint_lines(host: &Host) -> Vec<Value> {
    host.sh_ok("cat /var/lib/wgfleet/audit.jsonl")
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["action"] == "set-endpoint")
        .collect()
}

#[test]
fn a_spoke_follows_its_hub_by_name_without_a_restart() {
    let bed = Testbed::new("endpoints").expect("testbed");
    let hosts = seed000_hosts(&bed, &["cp", "worker-1"]);
    let [cp, spoke] = [&hosts[0], &hosts[1]];
    let mut fleet = seed000_fleet(&["worker-1"]);
    fleet["hosts"]["cp"]["endpoint"] = json!("hub.test");
    for h in &hosts {
        provision(h, &HOSTS);
        set_fleet(h, &fleet);
    }
    // Names come from the spoke's /etc/hosts and nowhere else: no DNS query leaves the host,
    // also when the name is gone from the file (the last step).
    spoke
        .sh_ok("sed -i 's/^hosts:.*/hosts: files/' /etc/nsswitch.conf")
        .unwrap();
    set_hosts(spoke, CP_IP);
    apply(cp);
    apply(spoke);
    ping(spoke, "10.50.0.1");
    assert_eq!(live_endpoint(spoke), format!("{CP_IP}:51821"));

    // A fresh link: nothing to do, nothing resolved, nothing remembered.
    let out = run(spoke, false, "apply");
    assert!(out.contains("wg0: nothing to do"), "{out}");
    assert!(!out.contains("endpoint"), "{out}");
    assert!(
        spoke
            .sh_ok("test -e /var/lib/wgfleet/endpoints.json && echo yes || echo no")
            .unwrap()
            .contains("no")
    );

    eprintln!("the hub moves to 192.0.2.20; the name follows; the old address dies");
    // Without it, deleting the subnet's first address deletes the others in it too.
    cp.sh_ok("echo 1 > /proc/sys/net/ipv4/conf/host0/promote_secondaries")
        .unwrap();
    cp.sh_ok("ip addr add 192.0.2.20/24 dev host0").unwrap();
    set_hosts(spoke, "192.0.2.20");
    cp.sh_ok(&format!("ip addr del {CP_IP}/24 dev host0"))
        .unwrap();
    let (pid, unit_pid, file) = (wg_go_pid(spoke), main_pid(spoke), file_id(spoke));
    wait_stale(spoke, Instant::now());
    let planned = run_status(spoke, true, "plan --detailed-exitcode");
    let plan = printed(&planned);
    assert_eq!(planned.status.code(), Some(2), "{plan}");
    assert!(
        plan.contains(&format!(
            "~ peer cp: endpoint {CP_IP}:51821 → 192.0.2.20:51821"
        )),
        "{plan}"
    );
    let out = run(spoke, true, "apply");
    let mut set_at = Instant::now();
    assert!(
        out.contains("wg0: peer cp endpoint 192.0.2.20:51821: set"),
        "{out}"
    );
    assert_eq!(live_endpoint(spoke), "192.0.2.20:51821");
    ping(spoke, "10.50.0.1");
    assert_eq!(wg_go_pid(spoke), pid, "wireguard-go was restarted");
    assert_eq!(main_pid(spoke), unit_pid, "the unit was restarted");
    assert_eq!(file_id(spoke), file, "wg0.conf was written");
    let lines = audit_endpoint_lines(spoke);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["from"], format!("{CP_IP}:51821"));
    assert_eq!(lines[0]["to"], "192.0.2.20:51821");
    assert_eq!(lines[0]["reason"], "moved");
    assert_eq!(lines[0]["result"], "ok");
    let mode = spoke
        .sh_ok("stat -c %a /var/lib/wgfleet/endpoints.json")
        .unwrap();
    assert_eq!(mode.trim(), "600");
    let status: Value = serde_json::from_str(&run(spoke, false, "status --json")).unwrap();
    let peer = &status["networks"][0]["peers"][0];
    assert_eq!(peer["dialledAt"], "hub.test:51821", "{status:#}");
    assert_eq!(peer["endpoint"], "192.0.2.20:51821", "{status:#}");
    assert!(peer["resolvedAt"].is_string(), "{status:#}");
    // `audit` still reads the log.
    run(
        spoke,
        false,
        "audit --log /var/lib/wgfleet/audit.jsonl --client nobody",
    );
    // Fresh again (by the real threshold): the next run does nothing.
    let out = run(spoke, false, "apply --endpoints-only");
    assert!(out.contains("endpoints: nothing to do"), "{out}");
    assert_eq!(audit_endpoint_lines(spoke).len(), 1);

    eprintln!("a list: hub.test, then 192.0.2.30; hub.test's address dies");
    fleet["hosts"]["cp"]
        .as_object_mut()
        .unwrap()
        .remove("endpoint");
    fleet["hosts"]["cp"]["endpoints"] = json!(["hub.test", "192.0.2.30"]);
    set_fleet(spoke, &fleet);
    let out = run(spoke, false, "apply");
    assert!(
        out.contains("wg0: nothing to do"),
        "same first endpoint, same file: {out}"
    );
    cp.sh_ok("ip addr add 192.0.2.30/24 dev host0").unwrap();
    cp.sh_ok("ip addr del 192.0.2.20/24 dev host0").unwrap();
    wait_stale(spoke, set_at);
    let out = run(spoke, true, "apply --endpoints-only");
    set_at = Instant::now();
    assert!(
        out.contains("wg0: peer cp endpoint 192.0.2.30:51821: set"),
        "{out}\n{}",
        debug(spoke)
    );
    assert_eq!(live_endpoint(spoke), "192.0.2.30:51821");
    ping(spoke, "10.50.0.1");

    eprintln!("the backup dies and the first comes back: the cycle wraps to it");
    cp.sh_ok("ip addr add 192.0.2.20/24 dev host0").unwrap();
    cp.sh_ok("ip addr del 192.0.2.30/24 dev host0").unwrap();
    wait_stale(spoke, set_at);
    let json: Value =
        serde_json::from_str(&run(spoke, true, "apply --endpoints-only --json")).unwrap();
    set_at = Instant::now();
    let applied = &json["endpoints"]["applied"][0];
    assert_eq!(applied["to"], "192.0.2.20:51821", "{json:#}");
    assert_eq!(live_endpoint(spoke), "192.0.2.20:51821");
    ping(spoke, "10.50.0.1");
    assert_eq!(wg_go_pid(spoke), pid, "wireguard-go was restarted");
    assert_eq!(file_id(spoke), file, "wg0.conf was written");
    let reasons: Vec<Value> = audit_endpoint_lines(spoke)
        .iter()
        .map(|l| l["reason"].clone())
        .collect();
    assert_eq!(reasons, [json!("moved"), json!("next"), json!("next")]);

    eprintln!("a name that does not resolve is reported, not fatal");
    spoke.sh_ok("sed -i '/hub.test/d' /etc/hosts").unwrap();
    cp.sh_ok("ip addr del 192.0.2.20/24 dev host0").unwrap();
    wait_stale(spoke, set_at);
    let json: Value =
        serde_json::from_str(&run(spoke, true, "apply --endpoints-only --json")).unwrap();
    let unresolved = &json["endpoints"]["unresolved"];
    assert_eq!(unresolved[0]["endpoint"], "hub.test:51821", "{json:#}");
}
