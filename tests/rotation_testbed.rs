//! Key rotation without an outage (issue 28), on real hosts: seed 000's cp as the hub of
//! worker-1 and worker-2, each spoke pinging cp 5 times a second throughout. A spoke's key, then
//! the hub's own, each rotated through every stage with the applies in the worst order (the
//! rotating host first, the hub last), on the same wireguard-go processes; lost replies are
//! counted. Someone holding a staged key early can handshake and carries nothing; a rotation
//! whose next key file is wrong promotes nothing, keeps the old key working, and says why. The
//! preshared key between cp and worker-2 changes at its switch time on both ends, confirmed by
//! a handshake; one worker-2 cannot agree on leaves neither end on it.

#[path = "support/testbed.rs"]
mod testbed;
#[path = "support/wgfleet_on.rs"]
mod wgfleet_on;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use testbed::Host;
use wgfleet_on::{apply, assert_in_sync, provision, root, seed000_fleet, seed000_hosts, wg_go_pid};

const HOSTS: [&str; 3] = ["cp", "worker-1", "worker-2"];
/// One echo every 200 ms: a lost reply is 0.2 s of outage.
const PING_EVERY: f64 = 0.2;

/// The operator's checkout: the fleet and its encrypted keys, edited by `wgfleet rekey`.
struct Operator {
    dir: PathBuf,
}

impl Operator {
    fn new() -> Operator {
        let dir = std::env::temp_dir().join(format!("wgfleet-rotation-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("secrets")).unwrap();
        for name in HOSTS {
            std::fs::copy(
                root().join(format!("secrets/examples/seed-000/{name}.age")),
                dir.join(format!("secrets/{name}.age")),
            )
            .unwrap();
        }
        let fleet = seed000_fleet(&["worker-1", "worker-2"]);
        std::fs::write(
            dir.join("fleet.json"),
            serde_json::to_string_pretty(&fleet).unwrap(),
        )
        .unwrap();
        Operator { dir }
    }

    fn fleet(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.join("fleet.json")).unwrap())
            .unwrap()
    }

    /// `wgfleet rekey ARGS` on the operator's checkout; returns what it printed.
    fn rekey(&self, args: &str) -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgfleet"))
            .current_dir(&self.dir)
            .args(["rekey", "--fleet", "fleet.json", "-R"])
            .arg(root().join("secrets/recipients.txt"))
            .args(args.split_whitespace())
            .output()
            .unwrap();
        let text = wgfleet_on::printed(&out);
        assert!(out.status.success(), "rekey {args}:\n{text}");
        text
    }

    /// The fleet and every key file, copied to a host's /x (as a deploy or a pull would).
    fn deploy(&self, host: &Host) {
        std::fs::copy(self.dir.join("fleet.json"), host.dir().join("fleet.json")).unwrap();
        for entry in std::fs::read_dir(self.dir.join("secrets")).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(
                &path,
                host.dir().join("secrets").join(path.file_name().unwrap()),
            )
            .unwrap();
        }
    }

    fn edit(&self, change: impl FnOnce(&mut Value)) {
        let mut fleet = self.fleet();
        change(&mut fleet);
        std::fs::write(
            self.dir.join("fleet.json"),
            serde_json::to_string_pretty(&fleet).unwrap(),
        )
        .unwrap();
    }

    /// A new preshared key in `file` (relative to the checkout), as an operator makes one.
    fn keygen_psk(&self, file: &str) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgfleet"))
            .current_dir(&self.dir)
            .args(["keygen", "--psk", "--force", "-o", file, "-R"])
            .arg(root().join("secrets/recipients.txt"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", wgfleet_on::printed(&out));
    }

    /// The pair's staged preshared key switch time (`switchAt`), waited for, plus `extra`.
    fn wait_for_psk_switch(&self, extra: u64) {
        let at = self.fleet()["networks"]["wg0"]["presharedKeys"][0]["switchAt"]
            .as_str()
            .unwrap()
            .to_owned();
        let at = wgfleet::fleet::time::parse_rfc3339(&at).unwrap();
        let now = unix_now();
        assert!(
            now < at,
            "the switch time {at} passed before both ends applied"
        );
        std::thread::sleep(Duration::from_secs((at - now) as u64 + extra));
    }

    fn next_public(&self, host: &str) -> String {
        self.fleet()["hosts"][host]["nextPublicKey"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Waits until the staged rotation of `host` is due (its nextSwitchAt has passed).
    fn wait_for_switch(&self, host: &str) {
        let at = self.fleet()["hosts"][host]["nextSwitchAt"]
            .as_str()
            .unwrap()
            .to_owned();
        let at = wgfleet::fleet::time::parse_rfc3339(&at).unwrap();
        let now = unix_now();
        assert!(
            now < at,
            "the switch time {at} passed before every host applied"
        );
        std::thread::sleep(Duration::from_secs((at - now + 1) as u64));
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An age file decrypted with the test identity.
fn decrypt(file: &Path) -> String {
    let out = std::process::Command::new("age")
        .args(["-d", "-i"])
        .arg(root().join("secrets/test-identity.txt"))
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The preshared key `host` has live for the peer with public key `key`.
fn live_psk(host: &Host, key: &str) -> String {
    host.sh_ok("wg show wg0 preshared-keys")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('\t').map(str::to_owned))
        .unwrap_or_else(|| panic!("{key} has no entry on {}", host.name()))
}

/// Waits up to `secs` for `host`'s change of preshared key with `peer` to reach `state`;
/// returns its message.
fn wait_for_psk_state(host: &Host, peer: &str, state: &str, secs: u64) -> String {
    let start = std::time::Instant::now();
    loop {
        let s = status(host, "");
        let r = s["rotations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "presharedKey" && r["host"] == peer)
            .unwrap_or_else(|| panic!("no preshared key rotation on {}: {s:#}", host.name()))
            .clone();
        if r["state"] == state {
            return r["message"].as_str().unwrap().to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "{}: the preshared key with {peer} is {} after {secs} s, not {state}: {}\n{}",
            host.name(),
            r["state"],
            r["message"],
            host.sh("journalctl -u wgfleet-promote.service --no-pager | tail -30; cat /var/lib/wgfleet/rotation.json")
                .map(|o| wgfleet_on::printed(&o))
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn fleet_on(host: &Host, args: &str) -> std::process::Output {
    wgfleet_on::wgfleet(host, args)
}

/// The packaged wgfleet.service on `host`, as systemd/install.sh sets it up (the program from
/// /x): the fleet and the flags come from /etc/default/wgfleet, not from the command line.
fn install_packaged_unit(host: &Host) {
    std::fs::copy(
        root().join("systemd/wgfleet.service"),
        host.dir().join("wgfleet.service"),
    )
    .unwrap();
    host.sh_ok(&format!(
        "cp /x/wgfleet.service /etc/systemd/system/ && \
         mkdir -p /etc/systemd/system/wgfleet.service.d && \
         printf '[Service]\\nExecStart=\\nExecStart=/x/wgfleet apply $WGFLEET_ARGS\\n' \
           > /etc/systemd/system/wgfleet.service.d/x.conf && \
         printf 'WGFLEET_FLEET=/x/fleet.json\\nWGFLEET_ARGS=\"--host {} -i /x/identity.txt\"\\n' \
           > /etc/default/wgfleet && systemctl daemon-reload",
        host.name()
    ))
    .unwrap();
}

/// One run of the packaged unit, which must succeed; returns its journal.
fn unit_apply(host: &Host) -> String {
    let out = host.sh("systemctl start wgfleet.service").unwrap();
    let journal = host
        .sh_ok("journalctl -u wgfleet.service --no-pager -o cat | tail -40")
        .unwrap_or_default();
    assert!(
        out.status.success(),
        "wgfleet.service on {} failed: {}\n{journal}",
        host.name(),
        wgfleet_on::printed(&out)
    );
    journal
}

/// Pings cp from `host` every 200 ms until `lost` stops it.
fn start_pinging(host: &Host) -> Child {
    host.spawn("exec ping -n -i 0.2 -W 1 10.50.0.1").unwrap()
}

/// Stops the ping and returns the seconds of replies lost: echoes between the first and the
/// last answered one that got no answer (the one in flight when ping stops is not lost).
fn lost(host: &Host, pinger: Child) -> f64 {
    host.sh("pkill -INT -x ping").unwrap();
    let out = pinger.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut answered: Vec<u64> = text
        .lines()
        .filter_map(|l| l.split("icmp_seq=").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    answered.sort_unstable();
    answered.dedup();
    let (Some(first), Some(last)) = (answered.first(), answered.last()) else {
        panic!("no echo answered on {}:\n{text}", host.name());
    };
    let missing = (last - first + 1) - answered.len() as u64;
    eprintln!(
        "{}: echoes {first}..={last}, {} answered, {missing} lost",
        host.name(),
        answered.len()
    );
    missing as f64 * PING_EVERY
}

/// `wg show wg0 allowed-ips` on `host`: public key → its AllowedIPs ("(none)" for none).
fn allowed_ips(host: &Host) -> Vec<(String, String)> {
    host.sh_ok("wg show wg0 allowed-ips")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (k, ips) = l.split_once('\t')?;
            Some((k.to_owned(), ips.to_owned()))
        })
        .collect()
}

fn ips_of(host: &Host, key: &str) -> Option<String> {
    allowed_ips(host)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, ips)| ips)
}

/// Waits up to 5 s for the host's watcher to audit a promotion.
fn wait_for_promotion(host: &Host) {
    host.sh_ok("for i in $(seq 50); do grep -q '\"action\":\"promote\"' /var/lib/wgfleet/audit.jsonl && exit 0; sleep 0.1; done; exit 1")
        .unwrap();
}

fn audit_actions(host: &Host, action: &str) -> Vec<Value> {
    host.sh_ok("cat /var/lib/wgfleet/audit.jsonl")
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["action"] == action)
        .collect()
}

fn status(host: &Host, extra: &str) -> Value {
    let out = host
        .sh(&format!(
            "/x/wgfleet status --json {extra} --fleet /x/fleet.json --host {}",
            host.name()
        ))
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status on {}: {e}\n{}",
            host.name(),
            wgfleet_on::printed(&out)
        )
    })
}

fn rotation_state(host: &Host, rotating: &str, extra: &str) -> (String, String) {
    let s = status(host, extra);
    let r = s["rotations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["host"] == rotating)
        .unwrap_or_else(|| panic!("no rotation of {rotating} on {}: {s:#}", host.name()))
        .clone();
    (
        r["state"].as_str().unwrap().to_owned(),
        r["message"].as_str().unwrap().to_owned(),
    )
}

/// Someone on worker-2 who holds worker-1's staged key brings up an interface of their own
/// with it and worker-1's address: the handshake with cp's staged entry succeeds, and not one
/// packet gets through, because the staged entry has no AllowedIPs.
fn staged_key_carries_nothing(cp: &Host, w2: &Host, next_key_file: &Path, next_public: &str) {
    let key = decrypt(next_key_file);
    std::fs::write(w2.dir().join("stolen.key"), format!("{key}\n")).unwrap();
    let cp_key = seed000_fleet(&HOSTS)["hosts"]["cp"]["publicKey"]
        .as_str()
        .unwrap()
        .to_owned();
    w2.sh_ok(&format!(
        "chmod 600 /x/stolen.key && wireguard-go wg9 2>/dev/null \
         && for i in $(seq 50); do wg set wg9 private-key /x/stolen.key peer {cp_key} \
              endpoint {}:51821 allowed-ips 10.50.0.1/32 persistent-keepalive 1 2>/dev/null \
              && break; sleep 0.1; done \
         && ip address add 10.50.0.2/32 dev wg9 && ip link set wg9 up",
        wgfleet_on::CP_IP
    ))
    .unwrap();
    let pinged = w2.sh("ping -n -c 5 -i 0.3 -W 1 -I wg9 10.50.0.1").unwrap();
    let handshakes = cp.sh_ok("wg show wg0 latest-handshakes").unwrap();
    let wg9 = w2.sh_ok("wg show wg9 transfer").unwrap();
    w2.sh("ip link del wg9; rm -f /x/stolen.key").unwrap();
    assert!(
        !pinged.status.success(),
        "a staged key carried traffic:\n{}",
        String::from_utf8_lossy(&pinged.stdout)
    );
    let seen = handshakes
        .lines()
        .find(|l| l.starts_with(next_public))
        .and_then(|l| l.split('\t').nth(1))
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(seen > 0, "the staged key did not handshake:\n{handshakes}");
    // What came back to the holder: handshake responses and keepalives, not one echo reply
    // (each would be 128 bytes of transport data and more).
    eprintln!("wg9 transfer with the staged key: {wg9}");
    assert_eq!(ips_of(cp, next_public).as_deref(), Some("(none)"));
}

#[test]
fn keys_rotate_with_at_most_two_seconds_of_loss_and_a_wrong_key_promotes_nothing() {
    let bed = testbed::Testbed::new("rotation").expect("testbed");
    let hosts = seed000_hosts(&bed, &HOSTS);
    let [cp, w1, w2] = [&hosts[0], &hosts[1], &hosts[2]];
    let op = Operator::new();
    for h in &hosts {
        provision(h, &HOSTS);
        op.deploy(h);
        apply(h);
    }
    w1.sh_ok("ping -c 1 -w 30 10.50.0.1").unwrap();
    w2.sh_ok("ping -c 1 -w 30 10.50.0.1").unwrap();
    let mut pids: Vec<String> = hosts.iter().map(wg_go_pid).collect();
    let same_processes = |pids: &[String]| {
        let now: Vec<String> = hosts.iter().map(wg_go_pid).collect();
        assert_eq!(now, pids, "a wireguard-go process was restarted");
    };
    let public = |host: &str| {
        op.fleet()["hosts"][host]["publicKey"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // 1. worker-1's key: staged, switched, promoted, finished.
    let (p1, p2) = (start_pinging(w1), start_pinging(w2));
    let w1_old = public("worker-1");
    op.rekey("--rotate worker-1 --switch-after 40s");
    let w1_next = op.next_public("worker-1");
    for h in [w1, w2, cp] {
        op.deploy(h);
        apply(h);
    }
    let plan = wgfleet_on::printed(&fleet_on(cp, "plan"));
    assert!(plan.contains("~ rotation of worker-1 (staged)"), "{plan}");
    let plan = wgfleet_on::printed(&fleet_on(w1, "plan"));
    assert!(
        plan.contains("~ rotation of worker-1 (staged): this host moves"),
        "{plan}"
    );
    assert_eq!(ips_of(cp, &w1_next).as_deref(), Some("(none)"));
    assert_eq!(ips_of(cp, &w1_old).as_deref(), Some("10.50.0.2/32"));
    cp.sh_ok("systemctl is-active wgfleet-promote.service")
        .unwrap();
    let confined = cp
        .sh_ok("systemctl show -p ProtectSystem -p NoNewPrivileges wgfleet-promote.service")
        .unwrap();
    assert!(
        confined.contains("ProtectSystem=strict") && confined.contains("NoNewPrivileges=yes"),
        "{confined}"
    );
    staged_key_carries_nothing(cp, w2, &op.dir.join("secrets/worker-1.next.age"), &w1_next);
    op.wait_for_switch("worker-1");
    // The early handshake is older than the switch time: still nothing promoted.
    assert_eq!(ips_of(cp, &w1_old).as_deref(), Some("10.50.0.2/32"));
    let out = apply(w1);
    assert!(out.contains("confirmed by a handshake with cp"), "{out}");
    wait_for_promotion(cp);
    assert_eq!(ips_of(cp, &w1_next).as_deref(), Some("10.50.0.2/32"));
    assert_eq!(ips_of(cp, &w1_old), None, "the old key is still on cp");
    apply(w2);
    apply(cp);
    let (state, _) = rotation_state(cp, "worker-1", "");
    assert_eq!(state, "promoted");
    let (state, _) = rotation_state(w1, "worker-1", "");
    assert_eq!(state, "switched");
    for h in &hosts {
        assert_in_sync(h);
    }
    op.rekey("--finish worker-1");
    assert_eq!(public("worker-1"), w1_next);
    for h in [w1, w2, cp] {
        op.deploy(h);
        apply(h);
    }
    for h in &hosts {
        assert_in_sync(h);
    }
    same_processes(&pids);
    let promote = &audit_actions(cp, "promote")[0];
    assert_eq!(promote["peer"], "worker-1");
    assert_eq!(promote["publicKey"], w1_next.as_str());
    assert_eq!(promote["replaces"], w1_old.as_str());
    let (lost_w1, lost_w2) = (lost(w1, p1), lost(w2, p2));
    eprintln!(
        "worker-1's key rotated: {lost_w1:.1} s lost on worker-1, {lost_w2:.1} s on worker-2"
    );
    assert!(lost_w1 <= 2.0 && lost_w2 <= 2.0, "{lost_w1} s, {lost_w2} s");

    // 2. The hub's own key: both spokes stage it, cp switches first, each spoke promotes.
    let (p1, p2) = (start_pinging(w1), start_pinging(w2));
    let cp_old = public("cp");
    op.rekey("--rotate cp --switch-after 20s");
    let cp_next = op.next_public("cp");
    for h in [cp, w1, w2] {
        op.deploy(h);
        apply(h);
    }
    let mut carried = Vec::new();
    for w in [w1, w2] {
        assert_eq!(ips_of(w, &cp_next).as_deref(), Some("(none)"));
        carried.push(ips_of(w, &cp_old).unwrap());
    }
    op.wait_for_switch("cp");
    apply(cp);
    for (w, carried) in [w1, w2].into_iter().zip(&carried) {
        wait_for_promotion(w);
        assert_eq!(ips_of(w, &cp_next).as_ref(), Some(carried));
        assert_eq!(ips_of(w, &cp_old), None);
    }
    apply(w1);
    apply(w2);
    op.rekey("--finish cp");
    for h in [cp, w1, w2] {
        op.deploy(h);
        apply(h);
    }
    for h in &hosts {
        assert_in_sync(h);
    }
    same_processes(&pids);
    let (lost_w1, lost_w2) = (lost(w1, p1), lost(w2, p2));
    eprintln!("cp's key rotated: {lost_w1:.1} s lost on worker-1, {lost_w2:.1} s on worker-2");
    assert!(lost_w1 <= 2.0 && lost_w2 <= 2.0, "{lost_w1} s, {lost_w2} s");

    // 3. The preshared key between cp and worker-2: both ends change it at switchAt keeping
    // their session, worker-2 (which dials cp) 2 s later with the handshake that confirms both;
    // the applies before it in the worst order (worker-2 first). worker-2 runs the packaged
    // unit, its fleet and flags in /etc/default/wgfleet: its watcher starts that unit at the
    // switch time. cp applies from a shell: its watcher runs the same command again.
    install_packaged_unit(w2);
    let psk = "secrets/cp-worker-2.psk.age";
    op.keygen_psk(psk);
    op.edit(|f| {
        f["networks"]["wg0"]["presharedKeys"] = json!([{"peers": ["cp", "worker-2"], "file": psk}])
    });
    op.deploy(cp);
    apply(cp);
    op.deploy(w2);
    unit_apply(w2);
    w2.sh_ok("ping -c 1 -w 30 10.50.0.1").unwrap();
    let (cp_key, w2_key) = (public("cp"), public("worker-2"));
    let p2 = start_pinging(w2);
    op.rekey("--rotate-psk cp:worker-2 --switch-after 20s");
    op.deploy(w2);
    unit_apply(w2);
    op.deploy(cp);
    apply(cp);
    let replay = |h: &Host| -> Value {
        serde_json::from_str::<Value>(&h.sh_ok("cat /var/lib/wgfleet/rotation.json").unwrap())
            .unwrap()["replay"]
            .clone()
    };
    assert_eq!(replay(w2), json!({"unit": "wgfleet.service"}));
    let on_cp = replay(cp);
    assert_eq!(on_cp["args"][0], "apply", "{on_cp}");
    let next_file = "secrets/cp-worker-2.psk.next.age";
    let plan = wgfleet_on::printed(&fleet_on(w2, "plan"));
    assert!(
        plan.contains(&format!(
            "~ preshared key with cp (staged): this host changes to {next_file} at"
        )),
        "{plan}"
    );
    let plan = wgfleet_on::printed(&fleet_on(cp, "plan"));
    assert!(
        plan.contains("~ preshared key with worker-2 (staged)")
            && plan.contains("(keeping its session)"),
        "{plan}"
    );
    for h in [cp, w2] {
        h.sh_ok("systemctl is-active wgfleet-promote.service")
            .unwrap();
    }
    let (old_psk, next_psk) = (decrypt(&op.dir.join(psk)), decrypt(&op.dir.join(next_file)));
    op.wait_for_psk_switch(0);
    let on_cp = wait_for_psk_state(cp, "worker-2", "confirmed", 40);
    let on_w2 = wait_for_psk_state(w2, "cp", "confirmed", 40);
    // worker-2's change was made by its unit, started by its watcher.
    let journal = w2
        .sh_ok("journalctl -u wgfleet.service --no-pager -o cat | tail -40")
        .unwrap();
    assert!(journal.contains("PresharedKey"), "{journal}");
    eprintln!(
        "cp: {on_cp}
worker-2: {on_w2}"
    );
    assert_eq!(live_psk(cp, &w2_key), next_psk);
    assert_eq!(live_psk(w2, &cp_key), next_psk);
    assert_ne!(old_psk, next_psk);
    let confirm = &audit_actions(cp, "psk-confirm")[0];
    assert_eq!(confirm["peer"], "worker-2");
    // worker-2's change, held to a handshake with cp, and confirmed.
    let audit = w2.sh_ok("cat /var/lib/wgfleet/audit.jsonl").unwrap();
    assert!(
        audit.lines().any(|l| l.contains("PresharedKey changed")
            && l.contains(r#""confirmation":{"status":"confirmed","peer":"cp""#)),
        "{audit}"
    );
    for h in [cp, w2] {
        assert_in_sync(h);
    }
    op.rekey("--finish cp:worker-2");
    op.deploy(cp);
    apply(cp);
    op.deploy(w2);
    unit_apply(w2);
    for h in &hosts {
        assert_in_sync(h);
    }
    assert_eq!(live_psk(cp, &w2_key), next_psk);
    same_processes(&pids);
    let lost_w2 = lost(w2, p2);
    eprintln!("the preshared key of cp and worker-2 rotated: {lost_w2:.1} s lost on worker-2");
    assert!(lost_w2 <= 2.0, "{lost_w2} s");

    // 3b. A preshared key the ends cannot agree on (worker-2's copy of the next file holds
    // another key): worker-2's held change is not confirmed and goes back, cp sees no
    // handshake and goes back too (after waiting as long as a late lead could take); neither
    // is left on it, both say why, and `rekey --abandon` drops it.
    let p2 = start_pinging(w2);
    op.rekey("--rotate-psk cp:worker-2 --switch-after 15s");
    let other = "secrets/other.psk.age";
    op.keygen_psk(other);
    for h in [w2, cp] {
        op.deploy(h);
    }
    std::fs::copy(op.dir.join(other), w2.dir().join(next_file)).unwrap();
    unit_apply(w2);
    apply(cp);
    op.wait_for_psk_switch(0);
    let on_w2 = wait_for_psk_state(w2, "cp", "stuck", 60);
    let on_cp = wait_for_psk_state(cp, "worker-2", "stuck", 300);
    eprintln!(
        "cp: {on_cp}
worker-2: {on_w2}"
    );
    // As docs/rotation.md shows them.
    let again = "; `wgfleet rekey --abandon cp:worker-2` drops it, then `--rotate-psk cp:worker-2` stages it anew";
    assert_eq!(
        on_w2,
        format!(
            "back on {psk}, because no handshake confirmed it: network wg0: no handshake with cp \
             within 30 s of the change (cp's preshared key changed); it would cut this host off{again}"
        )
    );
    assert!(
        on_cp.starts_with(&format!(
            "back on {psk}, because no handshake with worker-2 came within 270 s of the change at "
        )) && on_cp.ends_with(again),
        "{on_cp}"
    );
    assert_eq!(live_psk(cp, &w2_key), next_psk);
    assert_eq!(live_psk(w2, &cp_key), next_psk);
    w2.sh_ok("ping -c 1 -w 20 10.50.0.1").unwrap();
    assert_eq!(audit_actions(cp, "psk-roll-back").len(), 1);
    // The operator drops the rotation: both ends stay as they are.
    op.rekey("--abandon cp:worker-2");
    assert!(!op.dir.join(next_file).exists());
    assert_eq!(
        op.fleet()["networks"]["wg0"]["presharedKeys"],
        json!([{"peers": ["cp", "worker-2"], "file": psk}])
    );
    for h in [cp, w2] {
        op.deploy(h);
        apply(h);
        assert_in_sync(h);
    }
    // worker-2's unconfirmed change was rolled back as any is: its file restored and its
    // interface restarted. cp, which only went back, kept its process.
    assert_eq!(wg_go_pid(cp), pids[0], "cp's wireguard-go was restarted");
    pids = hosts.iter().map(wg_go_pid).collect();
    let lost_w2 = lost(w2, p2);
    eprintln!("a preshared key the ends could not agree on: {lost_w2:.1} s lost on worker-2");
    assert!(lost_w2 <= 300.0, "{lost_w2} s");

    // 4. worker-2's next key file holds another key: it never switches, nothing is promoted,
    // the old key goes on working, and both ends say so.
    let p2 = start_pinging(w2);
    let w2_old = public("worker-2");
    op.rekey("--rotate worker-2 --switch-after 15s");
    std::fs::copy(
        op.dir.join("secrets/worker-1.age"),
        op.dir.join("secrets/worker-2.next.age"),
    )
    .unwrap();
    for h in [w2, w1, cp] {
        op.deploy(h);
        apply(h);
    }
    op.wait_for_switch("worker-2");
    let out = apply(w2);
    assert!(
        !out.contains("PrivateKey"),
        "worker-2 switched to a wrong key:\n{out}"
    );
    let plan = wgfleet_on::printed(&fleet_on(w2, "plan"));
    assert!(
        plan.contains("~ rotation of worker-2 (stuck): the current key stays, because"),
        "{plan}"
    );
    let (state, why) = rotation_state(w2, "worker-2", "");
    assert_eq!(state, "stuck");
    assert!(why.contains("belongs to public key"), "{why}");
    apply(cp);
    assert_eq!(ips_of(cp, &w2_old).as_deref(), Some("10.50.0.3/32"));
    let (state, _) = rotation_state(cp, "worker-2", "");
    assert_eq!(state, "due");
    let later = wgfleet::fleet::time::format_rfc3339(
        wgfleet::fleet::time::parse_rfc3339(
            op.fleet()["hosts"]["worker-2"]["nextSwitchAt"]
                .as_str()
                .unwrap(),
        )
        .unwrap()
            + 700,
    );
    let (state, why) = rotation_state(cp, "worker-2", &format!("--now {later}"));
    assert_eq!(state, "stuck", "{why}");
    assert!(
        why.contains("no handshake from worker-2's next key"),
        "{why}"
    );
    assert!(
        audit_actions(cp, "promote").len() == 1,
        "cp promoted worker-2's wrong key"
    );
    let lost_w2 = lost(w2, p2);
    eprintln!("worker-2's stuck rotation: {lost_w2:.1} s lost");
    assert!(lost_w2 <= 0.2, "{lost_w2} s");
    same_processes(&pids);
}
