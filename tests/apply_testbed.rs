//! `wgfleet apply` on real systemd and real WireGuard: four nspawn hosts on a bridge the test
//! creates (DESIGN.md §8), seed 000's fleet, and the scenarios of the apply issue in order.
//! Each host gets the binary, the fleet, the encrypted keys and the test identity under /x.

#[path = "support/testbed.rs"]
mod testbed;
#[path = "support/wgfleet_on.rs"]
mod wgfleet_on;

use serde_json::json;
use testbed::{Host, Testbed};
use wgfleet_on::{
    apply, assert_in_sync, file_id, firewall, printed, provision, seed000_fleet, seed000_hosts,
    set_fleet, wg_go_pid, wgfleet,
};

const HOSTS: [&str; 4] = ["cp", "worker-1", "worker-2", "proxy"];

/// `apply`, which must fail with exit code `code` (1: error, 3: rolled back).
fn apply_fails(host: &Host, code: i32, why: &str) -> String {
    let out = wgfleet(host, "apply");
    let text = printed(&out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "apply on {} must fail ({why}):\n{text}",
        host.name()
    );
    text
}

fn plan_exit(host: &Host) -> Option<i32> {
    wgfleet(host, "plan --detailed-exitcode").status.code()
}

/// Reachable within 30 s: enough for a spoke to notice a lost session and handshake again
/// (WireGuard retries after 15 s without a reply).
fn ping(from: &Host, to: &str) {
    from.sh_ok(&format!("ping -c 1 -i 0.5 -w 30 {to}"))
        .unwrap_or_else(|e| panic!("{} cannot ping {to}: {e}", from.name()));
}

fn audit_lines(host: &Host) -> usize {
    host.sh_ok("cat /var/lib/wgfleet/audit.jsonl 2>/dev/null | wc -l")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn apply_reconciles_real_hosts() {
    let bed = Testbed::new("apply").expect("testbed");
    let hosts = seed000_hosts(&bed, &HOSTS);
    let [cp, w1, w2, proxy] = [&hosts[0], &hosts[1], &hosts[2], &hosts[3]];
    for h in &hosts {
        provision(h, &HOSTS);
        set_fleet(h, &seed000_fleet(&["worker-1", "proxy"]));
    }

    eprintln!("scenario 1");
    // 1. The fleet applied on cp, worker-1 and the proxy: each reaches the control plane.
    for h in [cp, w1, proxy] {
        let out = apply(h);
        assert!(out.contains("enable and start"), "{out}");
    }
    ping(w1, "10.50.0.1");
    ping(proxy, "10.50.0.1");
    let handshakes = cp.sh_ok("wg show wg0 latest-handshakes").unwrap();
    assert_eq!(
        handshakes.lines().filter(|l| !l.ends_with("\t0")).count(),
        2,
        "{handshakes}"
    );
    cp.sh_ok("iptables -A INPUT -p tcp --dport 2222 -j ACCEPT")
        .unwrap(); // another tool's rule
    let fw = firewall(cp);
    for rule in [
        "-A INPUT -j WGFLEET-INPUT",
        "-A WGFLEET-INPUT -p udp -m udp --dport 51821 -j ACCEPT",
        "-A FORWARD -j WGFLEET-FORWARD",
        "-A WGFLEET-FORWARD -i wg0 -j ACCEPT",
    ] {
        let count = fw.matches(&format!("{rule}\n")).count();
        assert_eq!(count, 2, "{rule} in iptables and ip6tables on cp:\n{fw}");
    }
    assert!(
        !firewall(w1).contains("WGFLEET-INPUT -p udp"),
        "workers expose no port"
    );
    assert_eq!(
        cp.sh_ok("cat /proc/sys/net/ipv4/ip_forward")
            .unwrap()
            .trim(),
        "1"
    );
    assert!(
        cp.sh_ok("cat /etc/sysctl.d/90-wgfleet.conf")
            .unwrap()
            .contains("net.ipv4.ip_forward = 1")
    );
    let mode = cp
        .sh_ok("stat -c '%a' /etc/wireguard/wg0.conf /etc/wireguard")
        .unwrap();
    assert_eq!(
        mode.split_whitespace().collect::<Vec<_>>(),
        ["600", "700"],
        "{mode}"
    );

    eprintln!("scenario 2");
    // 2. A second apply changes nothing: no write, no job, same wireguard-go, plan says 0; the
    // audit log stays byte for byte as it was, and last-run.json says the host is in sync.
    let audit_sum = |h: &Host| h.sh_ok("sha256sum /var/lib/wgfleet/audit.jsonl").unwrap();
    for h in [cp, w1, proxy] {
        let (file, pid, fw) = (file_id(h), wg_go_pid(h), firewall(h));
        let audit = audit_sum(h);
        // The first run recorded the interface's peers in full: wgfleet began managing it.
        let first = h.sh_ok("tail -n 1 /var/lib/wgfleet/audit.jsonl").unwrap();
        assert!(first.contains("\"peers\":["), "{first}");
        let journal = h
            .sh_ok("journalctl -u wg-quick@wg0 -q --no-pager | wc -l")
            .unwrap();
        let out = apply(h);
        assert!(out.contains("wg0: nothing to do"), "{out}");
        assert_in_sync(h);
        // The first run's desired state was reused (shell::cache); --no-cache computes it.
        let cached = |args: &str| {
            let plan: serde_json::Value = serde_json::from_slice(&wgfleet(h, args).stdout).unwrap();
            plan["desiredStateCached"].clone()
        };
        assert_eq!(cached("plan --json"), json!(true));
        assert_eq!(cached("plan --json --no-cache"), json!(false));
        assert_eq!(
            (file_id(h), wg_go_pid(h), firewall(h), audit_sum(h)),
            (file, pid, fw, audit),
            "{} was touched",
            h.name()
        );
        let last: serde_json::Value =
            serde_json::from_str(&h.sh_ok("cat /var/lib/wgfleet/last-run.json").unwrap()).unwrap();
        assert_eq!(
            (&last["inSync"], &last["networks"][0]["action"]),
            (&serde_json::json!(true), &serde_json::json!("nothing")),
            "{last:#}"
        );
        assert_eq!(
            h.sh_ok("journalctl -u wg-quick@wg0 -q --no-pager | wc -l")
                .unwrap(),
            journal,
            "a D-Bus job ran on {}",
            h.name()
        );
    }

    eprintln!("scenario 3");
    // 3. A worker joins: cp reloads with its wireguard-go and its sessions intact.
    let pid = wg_go_pid(cp);
    for h in &hosts {
        set_fleet(h, &seed000_fleet(&HOSTS));
    }
    assert_eq!(plan_exit(cp), Some(2));
    // plan --json lists the operations apply runs, and how a failure is undone.
    let plan: serde_json::Value =
        serde_json::from_slice(&wgfleet(cp, "plan --json").stdout).unwrap();
    let wg0 = &plan["networks"][0]["operations"];
    let ops: Vec<&str> = wg0["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["op"].as_str().unwrap())
        .collect();
    // A change of peers alone is set live, one `wg set` of the peer that changed: no job.
    assert_eq!(ops, ["write-config", "set-peers", "audit"], "{wg0}");
    let w2_key = seed000_fleet(&HOSTS)["hosts"]["worker-2"]["publicKey"].clone();
    assert_eq!(wg0["ops"][1]["set"], json!([w2_key]), "{wg0}");
    assert_eq!(wg0["onFailure"]["rollback"], "restore-previous");
    assert_eq!(wg0["onFailure"]["restart"], "wg-quick@wg0.service");
    let pinger = w1.spawn("ping -c 40 -i 0.1 -W 1 10.50.0.1").unwrap();
    let journal = |h: &Host| {
        h.sh_ok("journalctl -u wg-quick@wg0 -q --no-pager | wc -l")
            .unwrap()
    };
    let jobs = journal(cp);
    let out = apply(cp);
    assert!(
        out.contains("reload: 1 peer set and 0 peers removed live by one `wg set`")
            && out.contains("+ peer worker-2"),
        "{out}"
    );
    assert_eq!(journal(cp), jobs, "a peer change ran a D-Bus job");
    apply(w2);
    let pinged = pinger.wait_with_output().unwrap();
    let summary = String::from_utf8_lossy(&pinged.stdout);
    assert!(
        summary.contains(" 0% packet loss"),
        "pings lost across the reload:\n{summary}"
    );
    assert_eq!(
        wg_go_pid(cp),
        pid,
        "the reload must keep the wireguard-go process"
    );
    ping(w2, "10.50.0.1");
    // The audit entry says what changed, not the whole peer list again.
    let entry: serde_json::Value =
        serde_json::from_str(&cp.sh_ok("tail -n 1 /var/lib/wgfleet/audit.jsonl").unwrap()).unwrap();
    assert_eq!(entry["added"], json!([{"name": "worker-2"}]), "{entry:#}");
    assert!(entry.get("peers").is_none(), "{entry:#}");
    // The reload ran wgfleet's ExecReload (the file stripped in process, fed to `wg syncconf`),
    // not `wg-quick strip`; a new prefix outside the subnet (a LAN behind worker-2) gets its
    // route, still without a restart.
    let exec_reload = cp
        .sh_ok("systemctl show -p ExecReload --value wg-quick@wg0")
        .unwrap();
    assert!(
        exec_reload.contains("reload-interface wg0") && !exec_reload.contains("wg-quick strip"),
        "{exec_reload}"
    );
    let mut lan = seed000_fleet(&HOSTS);
    lan["networks"]["wg0"]["members"]["worker-2"]["routes"] = json!(["192.168.77.0/24"]);
    set_fleet(cp, &lan);
    let out = apply(cp);
    assert!(out.contains("set and 0 peers removed live"), "{out}");
    assert_eq!(wg_go_pid(cp), pid);
    let routes = || cp.sh_ok("ip -4 route show dev wg0").unwrap();
    assert!(
        routes().contains("192.168.77.0/24"),
        "no route for worker-2's LAN"
    );
    assert_eq!(journal(cp), jobs, "a peer change ran a D-Bus job");
    // Should `wg set` fail (the test-only fault: no real fault fails it and not `wg syncconf`),
    // the unit's reload does the change instead.
    lan["networks"]["wg0"]["members"]["worker-2"]["routes"] = json!(["192.168.78.0/24"]);
    set_fleet(cp, &lan);
    let out = cp
        .sh("WGFLEET_TEST_WG_SET_FAILS=1 /x/wgfleet apply --fleet /x/fleet.json --host cp -i /x/identity.txt 2>&1")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("reloading wg-quick@wg0.service instead"),
        "{text}"
    );
    assert!(routes().contains("192.168.78.0/24"), "{text}");
    assert!(journal(cp) > jobs, "the fallback is the unit's reload");
    assert_eq!((wg_go_pid(cp), plan_exit(cp)), (pid, Some(0)));
    set_fleet(cp, &seed000_fleet(&HOSTS));
    apply(cp);

    // The drop-in applies to every wg-quick@ unit: a hand-made interface (its own routing table)
    // reloads as with the stock ExecReload, and gets no route in the main table.
    cp.sh_ok(
        "umask 077; k=$(wg genkey); p=$(wg genkey | wg pubkey); q=$(wg genkey | wg pubkey); \
         printf '[Interface]\\nAddress = 10.99.0.1/24\\nPrivateKey = %s\\nTable = 1234\\n\\n[Peer]\\nPublicKey = %s\\nAllowedIPs = 10.98.0.0/24\\n' \"$k\" \"$p\" > /etc/wireguard/wg1.conf \
         && systemctl start wg-quick@wg1 \
         && printf '\\n[Peer]\\nPublicKey = %s\\nAllowedIPs = 10.97.0.0/24\\n' \"$q\" >> /etc/wireguard/wg1.conf \
         && systemctl reload wg-quick@wg1",
    )
    .unwrap();
    assert_eq!(cp.sh_ok("wg show wg1 peers | wc -l").unwrap().trim(), "2");
    let main_routes = cp.sh_ok("ip -4 route show table main").unwrap();
    assert!(
        !main_routes.contains("10.98.0.0") && !main_routes.contains("10.97.0.0"),
        "{main_routes}"
    );
    cp.sh_ok("systemctl stop wg-quick@wg1 && rm /etc/wireguard/wg1.conf")
        .unwrap();

    eprintln!("scenario 4");
    // 4. An interface-level change (MTU) restarts the unit, and the tunnel comes back.
    let mut mtu = seed000_fleet(&HOSTS);
    mtu["networks"]["wg0"]["mtu"] = json!(1380);
    set_fleet(w1, &mtu);
    let pid = wg_go_pid(w1);
    let out = apply(w1);
    assert!(out.contains("restart") && out.contains("MTU"), "{out}");
    assert_ne!(wg_go_pid(w1), pid);
    assert!(w1.sh_ok("ip link show wg0").unwrap().contains("mtu 1380"));
    ping(w1, "10.50.0.1");

    eprintln!("scenario 5");
    // 5. Bad input leaves the running tunnel alone.
    let (file, pid) = (file_id(w1), wg_go_pid(w1));
    std::fs::write(w1.dir().join("fleet.json"), "{ \"version\": 1, ").unwrap();
    apply_fails(w1, 1, "invalid fleet");
    let mut wrong_key = mtu.clone();
    wrong_key["hosts"]["worker-1"]["publicKey"] = mtu["hosts"]["worker-2"]["publicKey"].clone();
    wrong_key["hosts"]["worker-2"]["publicKey"] = mtu["hosts"]["worker-1"]["publicKey"].clone();
    set_fleet(w1, &wrong_key);
    let out = apply_fails(w1, 1, "key does not match");
    assert!(out.contains("belongs to public key"), "{out}");
    set_fleet(w1, &mtu);
    w1.sh_ok("age-keygen -o /x/other-identity.txt 2>/dev/null")
        .unwrap();
    let out = w1
        .sh(&format!(
            "/x/wgfleet apply --fleet /x/fleet.json --host {} -i /x/other-identity.txt",
            w1.name()
        ))
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "wrong identity");
    assert_eq!(
        (file_id(w1), wg_go_pid(w1)),
        (file, pid),
        "bad input touched the tunnel"
    );
    eprintln!("scenario 5: a config wg-quick cannot apply");
    // A config wg-quick cannot apply (its new port is taken): rolled back (exit code 3), tunnel
    // up, audited.
    w1.sh_ok("wireguard-go wgblock && wg set wgblock listen-port 51999")
        .unwrap();
    let mut busy_port = mtu.clone();
    busy_port["networks"]["wg0"]["listenPort"] = json!(51999);
    set_fleet(w1, &busy_port);
    let before = audit_lines(w1);
    let out = apply_fails(w1, 3, "port in use");
    assert!(out.contains("restored"), "{out}");
    assert!(
        w1.sh_ok("cat /etc/wireguard/wg0.conf")
            .unwrap()
            .contains("ListenPort = 51821")
    );
    assert!(audit_lines(w1) > before);
    ping(w1, "10.50.0.1");
    w1.sh_ok("ip link del wgblock").unwrap();
    set_fleet(w1, &mtu);

    eprintln!("scenario 6");
    // 6. Drift is healed: a peer removed by hand, the unit stopped by hand.
    let w1_key = mtu["hosts"]["worker-1"]["publicKey"]
        .as_str()
        .unwrap()
        .to_owned();
    // A run that finds cp in sync records its desired state (shell::cache) ...
    let out = apply(cp);
    assert!(out.contains("wg0: nothing to do"), "{out}");
    cp.sh_ok(&format!("wg set wg0 peer {w1_key} remove"))
        .unwrap();
    assert_eq!(plan_exit(cp), Some(2));
    // ... and drift is found from it too: the record spares the fleet's computation, never the
    // look at the live interface.
    let plan: serde_json::Value =
        serde_json::from_slice(&wgfleet(cp, "plan --json").stdout).unwrap();
    assert_eq!(
        (&plan["desiredStateCached"], &plan["changes"]),
        (&json!(true), &json!(true)),
        "{plan:#}"
    );
    let out = apply(cp);
    assert!(out.contains("drift") && out.contains("worker-1"), "{out}");
    assert!(cp.sh_ok("wg show wg0 peers").unwrap().contains(&w1_key));
    ping(w1, "10.50.0.1");
    cp.sh_ok("iptables -F WGFLEET-INPUT && iptables -D FORWARD -j WGFLEET-FORWARD")
        .unwrap();
    let out = apply(cp);
    assert!(
        out.contains("+ -A WGFLEET-INPUT") && out.contains("+ jump filter/FORWARD"),
        "{out}"
    );
    let fw = firewall(cp);
    assert!(
        fw.contains("--dport 51821 -j ACCEPT")
            && fw.matches("-A FORWARD -j WGFLEET-FORWARD\n").count() == 2,
        "{fw}"
    );
    // As after a reboot: the chains are gone, and the interface starts before wgfleet runs.
    cp.sh_ok("iptables -D INPUT -j WGFLEET-INPUT && iptables -F WGFLEET-INPUT && iptables -X WGFLEET-INPUT").unwrap();
    cp.sh_ok("systemctl restart wg-quick@wg0").unwrap();
    assert_eq!(
        firewall(cp),
        fw,
        "the wg-quick@ drop-in restores the chains"
    );
    assert_eq!(
        fw.matches("--dport 2222 -j ACCEPT").count(),
        1,
        "another tool's rule is untouched:\n{fw}"
    );
    ping(w1, "10.50.0.1");
    proxy.sh_ok("systemctl stop wg-quick@wg0").unwrap();
    let out = apply(proxy);
    assert!(out.contains("inactive"), "{out}");
    ping(proxy, "10.50.0.1");

    eprintln!("scenario 7");
    // 7. apply killed with SIGKILL at several points leaves the old or the new file, never a
    // torn one, and the next apply converges.
    let cmd = "/x/wgfleet apply --fleet /x/fleet.json --host worker-1 -i /x/identity.txt";
    for (i, delay_ms) in [0, 2, 5, 10, 20, 40, 80, 160].into_iter().enumerate() {
        let old = w1.sh_ok("cat /etc/wireguard/wg0.conf").unwrap();
        let mut variant = mtu.clone();
        variant["networks"]["wg0"]["mtu"] = json!(1300 + 10 * (i as u64 % 2));
        set_fleet(w1, &variant);
        let sleep = format!("{}.{:03}", delay_ms / 1000, delay_ms % 1000);
        w1.sh(&format!(
            "{cmd} >/dev/null 2>&1 & pid=$!; sleep {sleep}; kill -9 $pid; wait"
        ))
        .unwrap();
        let seen = w1.sh_ok("cat /etc/wireguard/wg0.conf").unwrap();
        apply(w1);
        let new = w1.sh_ok("cat /etc/wireguard/wg0.conf").unwrap();
        assert!(
            seen == old || seen == new,
            "killed after {delay_ms} ms, the file is neither old nor new:\n{seen}"
        );
        assert_eq!(
            plan_exit(w1),
            Some(0),
            "converged after the kill at {delay_ms} ms"
        );
    }
    set_fleet(w1, &mtu);
    apply(w1);
    ping(w1, "10.50.0.1");

    eprintln!("scenario 7b");
    // 7b. Killed right after writing an MTU change, before the restart (the test-only fault
    // hook: no timing hits that point reliably). The file already matches the fleet; the step's
    // record under /var/lib/wgfleet makes the next run restart, and so does the live MTU alone
    // (the record removed by hand).
    let mtu_of = |h: &Host| {
        h.sh_ok("cat /sys/class/net/wg0/mtu")
            .unwrap()
            .trim()
            .to_owned()
    };
    for (keep_record, new_mtu) in [(true, 1340), (false, 1350)] {
        let mut variant = mtu.clone();
        variant["networks"]["wg0"]["mtu"] = json!(new_mtu);
        set_fleet(w1, &variant);
        let killed = w1
            .sh_ok(&format!(
                "WGFLEET_TEST_KILL_AFTER_WRITE=1 {cmd} >/dev/null 2>&1; echo $?"
            ))
            .unwrap();
        assert_eq!(killed.trim(), "137", "apply was killed by SIGKILL");
        assert!(
            w1.sh_ok("cat /etc/wireguard/wg0.conf")
                .unwrap()
                .contains(&format!("MTU = {new_mtu}")),
            "the new file was written"
        );
        assert_eq!(mtu_of(w1), "1380", "the restart did not happen");
        let record = w1.sh_ok("cat /var/lib/wgfleet/pending.json").unwrap();
        assert!(
            record.contains("\"restart\"") && !record.contains("PrivateKey"),
            "{record}"
        );
        if !keep_record {
            w1.sh_ok("rm /var/lib/wgfleet/pending.json").unwrap();
        }
        assert_eq!(plan_exit(w1), Some(2), "the interrupted restart is pending");
        let out = apply(w1);
        let why = if keep_record {
            "interrupted"
        } else {
            "drift: MTU is 1380 live"
        };
        assert!(out.contains("restart") && out.contains(why), "{out}");
        assert_eq!(mtu_of(w1), new_mtu.to_string());
        assert!(
            w1.sh("test -e /var/lib/wgfleet/pending.json")
                .unwrap()
                .status
                .code()
                == Some(1),
            "the record is gone once the step ended"
        );
        assert_eq!(plan_exit(w1), Some(0));
        ping(w1, "10.50.0.1");
        set_fleet(w1, &mtu);
        // An apply whose reader went away still acts, and ends quietly with 0.
        let closed = w1
            .sh_ok(&format!(
                "bash -c '{cmd} | (exec 0<&-; true); echo ${{PIPESTATUS[0]}}'"
            ))
            .unwrap();
        assert_eq!(closed.trim(), "0");
        assert_eq!(mtu_of(w1), "1380");
    }

    eprintln!("scenario 8");
    // 8. Two applies at once serialise; both succeed; the audit log has the one that changed
    // something, and the other, which found nothing to do, appended nothing.
    set_fleet(w2, &mtu);
    let before = audit_lines(w2);
    let cmd = "/x/wgfleet apply --fleet /x/fleet.json --host worker-2 -i /x/identity.txt";
    let (a, b) = (w2.spawn(cmd).unwrap(), w2.spawn(cmd).unwrap());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success(), "{a:?}\n{b:?}");
    let outputs = format!(
        "{}{}",
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout)
    );
    assert_eq!(
        outputs.matches("restart").count(),
        1,
        "exactly one of them restarts:\n{outputs}"
    );
    assert_eq!(audit_lines(w2), before + 1);

    eprintln!("scenario 9");
    // 9. The proxy leaves the network: unit stopped and disabled, its file gone.
    let mut without_proxy = mtu.clone();
    without_proxy["networks"]["wg0"]["members"]
        .as_object_mut()
        .unwrap()
        .remove("proxy");
    set_fleet(proxy, &without_proxy);
    let out = apply(proxy);
    assert!(out.contains("stop, disable and remove"), "{out}");
    assert_eq!(
        proxy
            .sh_ok("systemctl is-active wg-quick@wg0 || true")
            .unwrap()
            .trim(),
        "inactive"
    );
    assert_eq!(
        proxy
            .sh_ok("systemctl is-enabled wg-quick@wg0 || true")
            .unwrap()
            .trim(),
        "disabled"
    );
    assert!(proxy.sh_ok("ls /etc/wireguard").unwrap().trim().is_empty());
    assert!(
        !firewall(proxy).contains("WGFLEET"),
        "nothing of wgfleet's is left in the firewall"
    );
    assert!(
        proxy
            .sh("ls /etc/systemd/system/wg-quick@.service.d/wgfleet-firewall.conf")
            .unwrap()
            .status
            .code()
            != Some(0)
    );
}
