//! Routes without a process per peer (issue 15): wgfleet renders `Table = off` and its drop-in
//! adds the routes once `wg-quick up` is done (`routes-interface`, ExecStartPost) and after a
//! reload (`reload-interface`), each in one `ip -batch -`. On two nspawn hosts: cp (seed 000's
//! control plane, with 60 extra spokes that never run) and worker-1, which routes a LAN. A
//! test-only drop-in puts a counting `ip` first in the unit's PATH (and runs a copy of wg-quick
//! beside it, since wg-quick puts its own directory first), so every `ip` that wg-quick and
//! wgfleet run for the unit is logged to /x/ip.log.

#[path = "support/testbed.rs"]
mod testbed;
#[path = "support/wgfleet_on.rs"]
mod wgfleet_on;

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use testbed::Host;
use wgfleet_on::{apply, provision, seed000_fleet, seed000_hosts, set_fleet, wg_go_pid, wgfleet};

const EXTRA: usize = 60;
const LAN: &str = "192.168.77.0/24";
const LAN2: &str = "192.168.78.0/24";

/// Seed 000's cp and worker-1 (routing `LAN`), plus `EXTRA` spokes inside the subnet.
fn fleet() -> Value {
    let mut doc = seed000_fleet(&["worker-1"]);
    doc["networks"]["wg0"]["members"]["worker-1"]["routes"] = json!([LAN]);
    for i in 0..EXTRA {
        let name = format!("extra-{i}");
        let key = base64::engine::general_purpose::STANDARD
            .encode(Sha256::digest(format!("routes-testbed-{i}").as_bytes()));
        doc["hosts"][&name] =
            json!({ "publicKey": key, "privateKeyFile": format!("secrets/{name}.age") });
        doc["networks"]["wg0"]["members"][&name] = json!({ "id": 100 + i });
    }
    doc
}

fn ping(from: &Host, to: &str) {
    from.sh_ok(&format!("ping -c 1 -i 0.5 -w 30 {to}"))
        .unwrap_or_else(|e| panic!("{} cannot ping {to}: {e}", from.name()));
}

fn routes(host: &Host) -> String {
    host.sh_ok("ip -4 route show dev wg0").unwrap()
}

/// The `ip` commands logged since the last call (and the log emptied).
fn ip_calls(host: &Host) -> Vec<String> {
    let log = host
        .sh_ok("cat /x/ip.log 2>/dev/null; : > /x/ip.log")
        .unwrap();
    log.lines().map(str::to_owned).collect()
}

#[test]
fn start_restart_and_reload_add_routes_in_one_batch() {
    let bed = testbed::Testbed::new("routes").expect("testbed");
    let hosts = seed000_hosts(&bed, &["cp", "worker-1"]);
    let [cp, w1] = [&hosts[0], &hosts[1]];
    for h in &hosts {
        provision(h, &["cp", "worker-1"]);
        set_fleet(h, &fleet());
    }
    for h in [cp, w1] {
        let out = apply(h);
        assert!(out.contains("enable and start"), "{out}");
    }
    ping(w1, "10.50.0.1");

    // What apply wrote: `Table = off` (no default route here), and the drop-in's ExecStartPost.
    let conf = cp.sh_ok("cat /etc/wireguard/wg0.conf").unwrap();
    assert!(conf.contains("\nTable = off\n"), "{conf}");
    let post = cp
        .sh_ok("systemctl show -p ExecStartPost --value wg-quick@wg0")
        .unwrap();
    assert!(post.contains("routes-interface wg0"), "{post}");
    // The first start already added the LAN's route, and none for the spokes' /32s.
    let r = routes(cp);
    assert!(r.contains(LAN), "{r}");
    assert!(!r.contains("10.50.0.100"), "{r}");

    // Count every `ip` the unit runs from here on (test only: a drop-in of the test's own). wg-quick
    // puts its own directory first in PATH, so the unit runs a byte-for-byte copy of it from
    // beside the counting `ip`.
    cp.sh_ok(
        "mkdir -p /x/count && real=$(command -v ip) \
         && printf '#!/bin/sh\\necho \"$*\" >> /x/ip.log\\nexec %s \"$@\"\\n' \"$real\" > /x/count/ip \
         && chmod 755 /x/count/ip && cp \"$(readlink -f \"$(command -v wg-quick)\")\" /x/count/wg-quick \
         && printf '[Service]\\nEnvironment=PATH=/x/count:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\\nExecStart=\\nExecStart=/x/count/wg-quick up %%i\\nExecStop=\\nExecStop=/x/count/wg-quick down %%i\\n' \
            > /etc/systemd/system/wg-quick@.service.d/zz-test-count-ip.conf \
         && systemctl daemon-reload",
    )
    .unwrap();
    assert!(
        cp.sh_ok("cmp /x/count/wg-quick \"$(command -v wg-quick)\" && echo same")
            .unwrap()
            .contains("same")
    );
    ip_calls(cp);

    // A hand-run restart (what a reboot's start does too, before wgfleet runs): the tunnel works,
    // the LAN route is back, and `ip` ran a fixed number of times, not once per peer (stock
    // wg-quick runs `ip route show dev wg0 match` for each of the 61 peers' AllowedIPs).
    let pid = wg_go_pid(cp);
    cp.sh_ok("systemctl restart wg-quick@wg0").unwrap();
    assert_ne!(wg_go_pid(cp), pid, "restarted");
    ping(w1, "10.50.0.1");
    let r = routes(cp);
    assert!(
        r.contains(LAN),
        "no route to worker-1's LAN after a restart: {r}"
    );
    let calls = ip_calls(cp);
    eprintln!("a restart with Table = off ran `ip` {} times", calls.len());
    assert!(
        calls.iter().all(|c| !c.contains("match")),
        "wg-quick looked up routes per peer: {calls:#?}"
    );
    assert!(
        calls.len() < 20,
        "{} `ip` runs for a restart with {} peers: {calls:#?}",
        calls.len(),
        EXTRA + 1
    );
    assert_eq!(
        calls.iter().filter(|c| *c == "-batch -").count(),
        1,
        "{calls:#?}"
    );

    // A hand-run reload puts a lost route back, in one batch, without a restart.
    cp.sh_ok(&format!("ip route del {LAN} dev wg0")).unwrap();
    ip_calls(cp);
    let pid = wg_go_pid(cp);
    cp.sh_ok("systemctl reload wg-quick@wg0").unwrap();
    assert_eq!(wg_go_pid(cp), pid, "a reload keeps the interface");
    assert!(routes(cp).contains(LAN));
    let calls = ip_calls(cp);
    assert_eq!(
        calls,
        [
            "-4 -o route show dev wg0",
            "-6 -o route show dev wg0",
            "-batch -"
        ],
        "the reload's `ip` runs"
    );

    // A new out-of-subnet prefix reloads (apply's ReloadUnit) and gets its route.
    let mut more = fleet();
    more["networks"]["wg0"]["members"]["worker-1"]["routes"] = json!([LAN, LAN2]);
    set_fleet(cp, &more);
    let out = apply(cp);
    assert!(out.contains("reload"), "{out}");
    assert_eq!(wg_go_pid(cp), pid);
    assert!(routes(cp).contains(LAN2), "{}", routes(cp));
    assert!(ip_calls(cp).len() <= 3);
    set_fleet(cp, &fleet());
    apply(cp);

    // A file wgfleet wrote before it rendered `Table = off`: the routes are wg-quick's, and the
    // next apply hands them over by rewriting the file only (nothing live changes).
    cp.sh_ok("sed -i '/^Table = off$/d' /etc/wireguard/wg0.conf && systemctl restart wg-quick@wg0")
        .unwrap();
    assert!(routes(cp).contains(LAN));
    let calls = ip_calls(cp);
    eprintln!(
        "a restart of the same file without Table = off ran `ip` {} times",
        calls.len()
    );
    assert!(
        calls.iter().filter(|c| c.contains("match")).count() > EXTRA,
        "stock wg-quick looks routes up per peer: {calls:#?}"
    );
    let plan = wgfleet(cp, "plan");
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains("~ Table: (none) → off"), "{text}");
    let pid = wg_go_pid(cp);
    let out = apply(cp);
    assert!(out.contains("wg0: rewrite the file only"), "{out}");
    assert_eq!(wg_go_pid(cp), pid, "the hand-over keeps the interface");
    assert!(routes(cp).contains(LAN));
    assert_eq!(
        wgfleet(cp, "plan --detailed-exitcode").status.code(),
        Some(0)
    );
    ping(w1, "10.50.0.1");
}
