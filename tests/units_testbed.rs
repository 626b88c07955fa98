//! The plain systemd units (`systemd/wgfleet.service`, `systemd/wgfleet.timer`) installed by
//! `systemd/install.sh` on real systemd hosts (the nspawn testbed, DESIGN.md §8), with their
//! hardening as shipped. wgfleet is never run by hand here: the timer does everything.
//!
//! Two hosts of seed 000's fleet: `cp` (the hub, its endpoint at its testbed address) and
//! `worker-1`. Each gets the fleet and its encrypted keys in /etc/wgfleet, the test identity
//! through /etc/default/wgfleet (the units' documented knob), and a timer drop-in that runs
//! every 5 s instead of 5 min. Then: the timer brings the tunnel up; the endpoint check's unit
//! (`wgfleet-endpoints.service`, started once with systemctl) runs in its sandbox; an edited fleet
//! file (worker-2 joins) is applied by a later run, by a reload; a peer removed by hand on cp is
//! restored.

#[path = "support/testbed.rs"]
mod testbed;
#[path = "support/wgfleet_on.rs"]
mod wgfleet_on;

use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;
use testbed::{Host, Testbed};
use wgfleet_on::{provision, root, seed000_fleet, seed000_hosts, wg_go_pid};

/// A few timer periods (5 s) plus a run; generous for a loaded machine.
const TIMER_DEADLINE: Duration = Duration::from_secs(60);

fn public_key(name: &str) -> String {
    seed000_fleet(&["worker-1", "worker-2"])["hosts"][name]["publicKey"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Replaces /etc/wgfleet/fleet.json atomically (a run never reads half a file).
fn set_fleet(host: &Host, doc: &Value) {
    wgfleet_on::set_fleet(host, doc);
    host.sh_ok("cp /x/fleet.json /etc/wgfleet/.fleet.json.new && mv /etc/wgfleet/.fleet.json.new /etc/wgfleet/fleet.json")
        .unwrap();
}

/// What an operator does: the fleet and its keys in /etc/wgfleet, settings, then the one
/// install command. Only the identity (not the SSH host key) and the timer's pace are test
/// specific.
fn install(host: &Host) {
    provision(host, &["cp", "worker-1", "worker-2"]);
    let dir = host.dir().join("systemd");
    std::fs::create_dir_all(&dir).unwrap();
    for file in [
        "wgfleet.service",
        "wgfleet.timer",
        "wgfleet-endpoints.service",
        "wgfleet-endpoints.timer",
        "install.sh",
    ] {
        std::fs::copy(root().join("systemd").join(file), dir.join(file)).unwrap();
    }
    host.sh_ok(
        "install -d -m 0700 /etc/wgfleet /etc/wgfleet/secrets \
         && cp /x/secrets/*.age /etc/wgfleet/secrets/ \
         && install -m 0600 /x/identity.txt /etc/wgfleet/identity.txt \
         && echo 'WGFLEET_ARGS=\"--identity /etc/wgfleet/identity.txt\"' > /etc/default/wgfleet \
         && mkdir -p /etc/systemd/system/wgfleet.timer.d \
         && printf '[Timer]\\nOnBootSec=1s\\nOnUnitActiveSec=5s\\nAccuracySec=100ms\\nRandomizedDelaySec=0\\n' \
              > /etc/systemd/system/wgfleet.timer.d/fast.conf",
    )
    .unwrap();
    set_fleet(host, &seed000_fleet(&["worker-1"]));
    // /usr (hence /usr/local) is the machine's, read-only in the host: install under /opt.
    let out = host
        .sh_ok("sh /x/systemd/install.sh --binary /x/wgfleet --prefix /opt/wgfleet 2>&1")
        .unwrap();
    assert!(
        out.contains("wgfleet.timer enabled and started"),
        "{}: install.sh said:\n{out}",
        host.name()
    );
}

/// The units' state and the service's journal, for failure messages.
fn diagnose(host: &Host) -> String {
    let out = host
        .sh(
            "systemctl status --no-pager wgfleet.timer wgfleet.service 'wg-quick@wg0.service' 2>&1; \
             journalctl --no-pager -o cat -n 40 -u wgfleet.service 2>&1; wg show 2>&1",
        )
        .unwrap();
    format!(
        "--- {}:\n{}",
        host.name(),
        String::from_utf8_lossy(&out.stdout)
    )
}

/// Polls `check` every 250 ms until it holds or `TIMER_DEADLINE` passes.
fn wait_for(what: &str, hosts: &[&Host], mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > TIMER_DEADLINE {
            let diag: Vec<String> = hosts.iter().map(|h| diagnose(h)).collect();
            panic!("{what}: not within {TIMER_DEADLINE:?}\n{}", diag.join("\n"));
        }
        sleep(Duration::from_millis(250));
    }
    let took = start.elapsed();
    eprintln!("{what}: {:.1}s", took.as_secs_f64());
    took
}

fn succeeds(host: &Host, cmd: &str) -> bool {
    host.sh(cmd).is_ok_and(|o| o.status.success())
}

fn peers(host: &Host) -> String {
    host.sh("wg show wg0 peers 2>/dev/null")
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// How many times the service has been started so far.
fn runs(host: &Host) -> usize {
    host.sh_ok("journalctl --no-pager -o cat -u wgfleet.service | grep -c '^Starting ' || true")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn timer_keeps_hosts_in_line_with_the_fleet() {
    let bed = Testbed::new("units").expect("testbed");
    let hosts = seed000_hosts(&bed, &["cp", "worker-1"]);
    let [cp, w1] = [&hosts[0], &hosts[1]];
    for h in &hosts {
        install(h);
        assert_eq!(
            h.sh_ok("systemctl is-enabled wgfleet.timer")
                .unwrap()
                .trim(),
            "enabled"
        );
        let exec = h
            .sh_ok("systemctl show -p ExecStart --value wgfleet.service")
            .unwrap();
        assert!(exec.contains("/opt/wgfleet/bin/wgfleet"), "{exec}");
    }

    eprintln!("1. the timer applies the fleet and the tunnel comes up");
    wait_for("worker-1 pings cp through wg0", &[cp, w1], || {
        succeeds(w1, "ping -c 1 -W 1 10.50.0.1")
    });
    for h in [cp, w1] {
        assert!(runs(h) >= 1, "{}", diagnose(h));
        // Ran in its sandbox: the state directory systemd made for it, the audit log inside.
        let state = h
            .sh_ok("stat -c '%a' /var/lib/wgfleet && wc -l < /var/lib/wgfleet/audit.jsonl")
            .unwrap();
        let state: Vec<&str> = state.split_whitespace().collect();
        assert_eq!(state[0], "700", "{state:?}");
        assert!(state[1].parse::<u32>().unwrap() >= 1, "{state:?}");
        let result = h
            .sh_ok("systemctl show -p Result --value wgfleet.service")
            .unwrap();
        assert_eq!(result.trim(), "success", "{}", diagnose(h));
    }
    // The endpoint check is installed, enabled, and runs in its sandbox (seed 000 dials cp at an
    // address: nothing to follow, nothing written).
    for h in [cp, w1] {
        assert_eq!(
            h.sh_ok("systemctl is-enabled wgfleet-endpoints.timer")
                .unwrap()
                .trim(),
            "enabled"
        );
        h.sh_ok("systemctl start wgfleet-endpoints.service")
            .unwrap_or_else(|e| panic!("{e}\n{}", diagnose(h)));
        let journal = h
            .sh_ok("journalctl --no-pager -o cat -u wgfleet-endpoints.service -n 20")
            .unwrap();
        assert!(journal.contains("endpoints: nothing to do"), "{journal}");
        assert!(
            !succeeds(h, "test -e /var/lib/wgfleet/endpoints.json"),
            "{}",
            h.name()
        );
    }
    // Later runs have nothing to do: they do not touch the tunnel.
    let (pid, before) = (wg_go_pid(cp), runs(cp));
    wait_for("cp's timer runs again", &[cp], || runs(cp) >= before + 2);
    assert_eq!(wg_go_pid(cp), pid, "an idle run restarted the tunnel");
    let journal = cp
        .sh_ok("journalctl --no-pager -o cat -u wgfleet.service -n 30")
        .unwrap();
    assert!(journal.contains("nothing to do"), "{journal}");

    // Installing again upgrades binary and units and keeps the operator's settings.
    let again = w1
        .sh_ok("sh /x/systemd/install.sh --binary /x/wgfleet --prefix /opt/wgfleet 2>&1")
        .unwrap();
    assert!(!again.contains("created"), "{again}");
    assert!(
        w1.sh_ok("cat /etc/default/wgfleet")
            .unwrap()
            .contains("--identity /etc/wgfleet/identity.txt")
    );

    eprintln!("2. a changed fleet file is applied by the next run, by a reload");
    let worker2 = public_key("worker-2");
    assert!(!peers(cp).contains(&worker2));
    set_fleet(cp, &seed000_fleet(&["worker-1", "worker-2"]));
    wait_for("cp has worker-2's peer", &[cp], || {
        peers(cp).contains(&worker2)
    });
    assert_eq!(wg_go_pid(cp), pid, "adding a peer must reload, not restart");
    assert!(succeeds(w1, "ping -c 1 -W 2 10.50.0.1"), "{}", diagnose(cp));

    eprintln!("3. a peer removed by hand is restored by the next run");
    let worker1 = public_key("worker-1");
    cp.sh_ok(&format!("wg set wg0 peer {worker1} remove"))
        .unwrap();
    assert!(!peers(cp).contains(&worker1));
    wait_for("cp has worker-1's peer again", &[cp], || {
        peers(cp).contains(&worker1)
    });
    wait_for("worker-1 pings cp again", &[cp, w1], || {
        succeeds(w1, "ping -c 1 -W 1 10.50.0.1")
    });
}
