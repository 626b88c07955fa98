//! The takeover (issue 8, adoption) on real systemd and real WireGuard: cp and worker-1 are set up
//! by hand the way seed 000's script does it (keys from `wg genkey`, a 0600 wg0.conf written with
//! comments and its own key order, UDP 51821 opened with iptables, `systemctl enable --now
//! wg-quick@wg0`), a ping runs from worker-1 to cp, the two files are imported, and `wgfleet apply`
//! takes each host over: the first apply only rewrites the file (same wireguard-go, no packet
//! lost), the hand-made iptables rule is left alone, and the second apply does nothing. A
//! site-to-site pair (wgA.conf on one host, wgB.conf on the other, a /31) is taken over likewise.

#[path = "support/testbed.rs"]
mod testbed;
#[path = "support/wgfleet_on.rs"]
mod wgfleet_on;

use std::path::Path;
use std::process::Command;

use testbed::{Host, Testbed};
use wgfleet_on::{
    CP_IP, apply, assert_in_sync, file_id, firewall, printed, seed000_hosts, wg_go_pid,
};

const HAND_RULE: &str = "-A INPUT -p udp -m udp --dport 51821 -j ACCEPT";

/// Seed 000's script, by hand: a key pair (kept if it exists), the file (mode 0600, keys in an order of its own,
/// comments), the firewall rule guarded by `-C`, and the unit enabled and started.
fn set_up_by_hand(host: &Host, interface: &str, peer: &str) {
    let role = if host.name() == "cp" { "cp" } else { "worker" };
    host.sh_ok(&format!(
        "set -e; umask 077; mkdir -p /etc/wireguard; chmod 700 /etc/wireguard; \
         [ -f /etc/wireguard/{role}_private.key ] || wg genkey > /etc/wireguard/{role}_private.key; \
         wg pubkey < /etc/wireguard/{role}_private.key > /etc/wireguard/{role}_public.key"
    ))
    .unwrap();
    // The key goes from its file into wg0.conf inside the host; it never passes through the test.
    let conf = format!(
        "set -e; umask 077; cat > /etc/wireguard/wg0.conf <<EOF\n\
         # /etc/wireguard/wg0.conf on {name}: written by hand (see the wiki page)\n\
         {interface}\nEOF\n\
         cat >> /etc/wireguard/wg0.conf <<'EOF'\n{peer}\nEOF\n\
         chmod 600 /etc/wireguard/wg0.conf",
        name = host.name()
    );
    host.sh_ok(&conf).unwrap();
    host.sh_ok(
        "iptables -C INPUT -p udp --dport 51821 -j ACCEPT 2>/dev/null || \
         iptables -A INPUT -p udp --dport 51821 -j ACCEPT",
    )
    .unwrap();
    host.sh_ok("systemctl enable --now wg-quick@wg0").unwrap();
}

fn public_key(host: &Host, role: &str) -> String {
    host.sh_ok(&format!("cat /etc/wireguard/{role}_public.key"))
        .unwrap()
        .trim()
        .to_owned()
}

fn ok(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let text = printed(&out);
    assert!(out.status.success(), "{program} {args:?}: {text}");
    text
}

#[test]
fn import_takes_over_a_hand_made_setup_without_a_restart() {
    let bed = Testbed::new("import").expect("testbed");
    let hosts = seed000_hosts(&bed, &["cp", "worker-1"]);
    let (cp, w1) = (&hosts[0], &hosts[1]);

    // 1. By hand, as seed 000's script does it. The worker's key first, so that the CP's
    // [Peer] block can be pasted in.
    w1.sh_ok("set -e; umask 077; mkdir -p /etc/wireguard; wg genkey > /etc/wireguard/worker_private.key; wg pubkey < /etc/wireguard/worker_private.key > /etc/wireguard/worker_public.key").unwrap();
    let w1_key = public_key(w1, "worker");
    set_up_by_hand(
        cp,
        "[Interface]\n\
         PrivateKey = $(cat /etc/wireguard/cp_private.key)\n\
         ListenPort = 51821\n\
         Address = 10.50.0.1/24\n\
         # Add a [Peer] block per worker (re-run this script with role=worker\n\
         # on each worker, then paste the worker's public key + endpoint here).",
        &format!("\n[Peer]\n# worker-1\nAllowedIPs = 10.50.0.2/32\nPublicKey = {w1_key}"),
    );
    let cp_key = public_key(cp, "cp");
    set_up_by_hand(
        w1,
        "[Interface]\n\
         Address = 10.50.0.2/24\n\
         PrivateKey = $(cat /etc/wireguard/worker_private.key)\n\
         ListenPort = 51821",
        &format!(
            "\n[Peer]\n# control plane\nEndpoint = {CP_IP}:51821\nPersistentKeepalive = 25\nPublicKey = {cp_key}\nAllowedIPs = 10.50.0.1/32"
        ),
    );
    w1.sh_ok("ping -c 1 -i 0.5 -w 30 10.50.0.1")
        .expect("the hand-made tunnel works");
    let mode = cp.sh_ok("stat -c %a /etc/wireguard/wg0.conf").unwrap();
    assert_eq!(mode.trim(), "600");
    let pids = [wg_go_pid(cp), wg_go_pid(w1)];
    for h in [cp, w1] {
        assert_eq!(firewall(h).matches(HAND_RULE).count(), 1, "{}", firewall(h));
    }

    // 2. A continuous ping across the whole takeover (stopped with SIGINT at the end).
    let pinger = w1
        .sh_ok("ping -i 0.02 -W 1 10.50.0.1 > /run/takeover-ping.log 2>&1 & echo $!")
        .unwrap()
        .trim()
        .to_owned();

    // 3. The operator collects the two files and imports them.
    let work = tempfile::tempdir().expect("tempdir");
    let work = work.path();
    for h in [cp, w1] {
        h.sh_ok("install -m 600 /etc/wireguard/wg0.conf /x/wg0.conf")
            .unwrap();
    }
    ok(work, "age-keygen", &["-o", "identity.txt"]);
    let recipient = ok(work, "age-keygen", &["-y", "identity.txt"]);
    let cp_file = format!("cp={}", cp.dir().join("wg0.conf").display());
    let w1_file = format!("worker-1={}", w1.dir().join("wg0.conf").display());
    let report = ok(
        work,
        env!("CARGO_BIN_EXE_wgfleet"),
        &[
            "import",
            &cp_file,
            &w1_file,
            "-r",
            recipient.trim(),
            "-o",
            "fleet.json",
        ],
    );
    eprintln!("import:\n{report}");
    for h in [cp, w1] {
        std::fs::remove_file(h.dir().join("wg0.conf")).expect("remove the plain copy");
    }
    assert!(
        report.contains("the fleet renders back the same sections, keys and values"),
        "{report}"
    );
    assert!(
        report.contains("once applied, wgfleet opens UDP 51821 on cp in its own chain"),
        "the import warns about hand-made port rules: {report}"
    );
    assert!(!report.contains("wgfleet apply` will change"), "{report}");
    let fleet: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("fleet.json")).unwrap()).unwrap();
    assert_eq!(fleet["hosts"]["cp"]["endpoint"], CP_IP);
    assert_eq!(
        fleet["networks"]["wg0"]["topology"]["hubAndSpoke"]["hubs"][0],
        "cp"
    );

    // 4. Each host gets the binary, the fleet, the encrypted keys and the identity.
    for h in [cp, w1] {
        let x = h.dir();
        std::fs::copy(env!("CARGO_BIN_EXE_wgfleet"), x.join("wgfleet")).unwrap();
        std::fs::copy(work.join("fleet.json"), x.join("fleet.json")).unwrap();
        std::fs::copy(work.join("identity.txt"), x.join("identity.txt")).unwrap();
        std::fs::create_dir_all(x.join("secrets")).unwrap();
        for name in ["cp", "worker-1"] {
            let f = format!("secrets/{name}.age");
            std::fs::copy(work.join(&f), x.join(&f)).unwrap();
        }
    }

    // 5. The first apply: a file rewrite at most, never a reload or restart.
    let mut first = Vec::new();
    for (h, pid) in [cp, w1].into_iter().zip(&pids) {
        let out = apply(h);
        eprintln!("first apply on {}:\n{out}", h.name());
        assert!(
            out.contains("wg0: rewrite the file only") || out.contains("wg0: nothing to do"),
            "{out}"
        );
        for word in ["reload", "restart", "enable and start"] {
            assert!(!out.contains(&format!("wg0: {word}")), "{out}");
        }
        assert_eq!(
            &wg_go_pid(h),
            pid,
            "{}: the same wireguard-go process",
            h.name()
        );
        let head = h
            .sh_ok("head -c 20 /etc/wireguard/wg0.conf; stat -c ' %a' /etc/wireguard/wg0.conf")
            .unwrap();
        assert_eq!(head, "# Managed by wgfleet 600\n", "{}", h.name());
        first.push(out);
    }

    // 6. The hand-made rule: left alone, never duplicated in INPUT. wgfleet opens the port in its
    // own chain on cp (a hub peers dial).
    for h in [cp, w1] {
        let fw = firewall(h);
        assert_eq!(fw.matches(HAND_RULE).count(), 1, "{}:\n{fw}", h.name());
    }
    let cp_fw = firewall(cp);
    assert!(
        cp_fw.contains("-A WGFLEET-INPUT -p udp -m udp --dport 51821 -j ACCEPT"),
        "{cp_fw}"
    );
    // ... and reported on both hosts, so the operator can remove it.
    for (h, out) in [cp, w1].into_iter().zip(&first) {
        assert!(
            out.contains("note: a rule outside wgfleet's chains") && out.contains(HAND_RULE),
            "{}: {out}",
            h.name()
        );
    }

    // 7. The second apply does nothing, and plan agrees.
    for (h, pid) in [cp, w1].into_iter().zip(&pids) {
        let (file, fw) = (file_id(h), firewall(h));
        let out = apply(h);
        assert!(out.contains("wg0: nothing to do"), "{out}");
        assert!(out.contains("firewall and sysctls: nothing to do"), "{out}");
        assert_eq!(
            (file_id(h), firewall(h)),
            (file, fw),
            "{} was touched",
            h.name()
        );
        assert_eq!(&wg_go_pid(h), pid);
        assert_in_sync(h);
    }

    // 8. Not one ping lost.
    let log = w1
        .sh_ok(&format!(
            "kill -INT {pinger}; while kill -0 {pinger} 2>/dev/null; do sleep 0.1; done; cat /run/takeover-ping.log"
        ))
        .unwrap();
    let summary = log.lines().rev().take(2).collect::<Vec<_>>().join("\n");
    let sent: usize = summary
        .split(" packets transmitted")
        .next()
        .and_then(|s| s.rsplit('\n').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    assert!(sent >= 20, "the ping ran across the takeover: {log}");
    eprintln!("ping worker-1 → cp during the takeover: {summary}");
    eprintln!("wireguard-go PIDs (cp, worker-1): {pids:?}, unchanged");
    // SIGINT can catch the last echo in flight, which ping counts as lost: judge by the replies,
    // every sequence number up to the last one answered, and at most that last one missing.
    let replied: std::collections::BTreeSet<usize> = log
        .lines()
        .filter_map(|l| l.split("icmp_seq=").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    let last = replied.last().copied().unwrap_or(0);
    let gaps: Vec<usize> = (1..=last).filter(|n| !replied.contains(n)).collect();
    assert!(gaps.is_empty(), "pings lost: {gaps:?}\n{summary}");
    assert!(sent <= last + 1, "pings lost at the end: {summary}");
}

/// A site-to-site pair as a server guide writes it (issue 16): `wgA.conf` on alpha, `wgB.conf` on
/// beta, a /31 transfer net that both ends list in AllowedIPs, beta on its own port and MTU. The
/// two files are imported as one network (beta keeps `wgB` as its member's `interface`), and the
/// first apply on each host rewrites the file only: the same wireguard-go keeps running.
#[test]
fn a_site_to_site_pair_with_two_interface_names_is_taken_over_without_a_restart() {
    let bed = Testbed::new("import-p2p").expect("testbed");
    let hosts = bed
        .add_hosts(&[("alpha", "192.0.2.21/24"), ("beta", "192.0.2.22/24")])
        .expect("hosts");
    let (alpha, beta) = (&hosts[0], &hosts[1]);
    for h in [alpha, beta] {
        h.sh_ok("set -e; umask 077; mkdir -p /etc/wireguard; wg genkey > /etc/wireguard/private.key; wg pubkey < /etc/wireguard/private.key > /etc/wireguard/public.key").unwrap();
    }
    let key = |h: &Host| {
        h.sh_ok("cat /etc/wireguard/public.key")
            .unwrap()
            .trim()
            .to_owned()
    };
    let (alpha_key, beta_key) = (key(alpha), key(beta));
    let write = |h: &Host, iface: &str, interface: &str, peer: &str| {
        h.sh_ok(&format!(
            "set -e; umask 077; cat > /etc/wireguard/{iface}.conf <<EOF\n{interface}\nPrivateKey = $(cat /etc/wireguard/private.key)\n\n{peer}\nEOF\nsystemctl enable --now wg-quick@{iface}"
        ))
        .unwrap();
    };
    write(
        alpha,
        "wgA",
        "[Interface]\nAddress = 10.10.9.0/31\nListenPort = 51820",
        &format!(
            "[Peer]\n# beta\nPublicKey = {beta_key}\nAllowedIPs = 10.10.9.0/31\nEndpoint = 192.0.2.22:51821"
        ),
    );
    write(
        beta,
        "wgB",
        "[Interface]\nAddress = 10.10.9.1/31\nListenPort = 51821\nMTU = 1412",
        &format!(
            "[Peer]\n# alpha\nPublicKey = {alpha_key}\nAllowedIPs = 10.10.9.0/31\nEndpoint = 192.0.2.21:51820\nPersistentKeepalive = 25"
        ),
    );
    beta.sh_ok("ping -c 1 -i 0.5 -w 30 10.10.9.0")
        .expect("the hand-made tunnel works");
    let pid = |h: &Host, iface: &str| {
        h.sh_ok(&format!("pgrep -f '^wireguard-go {iface}'"))
            .unwrap()
            .trim()
            .to_owned()
    };
    let pids = [pid(alpha, "wgA"), pid(beta, "wgB")];

    let work = tempfile::tempdir().expect("tempdir");
    let work = work.path();
    for (h, iface) in [(alpha, "wgA"), (beta, "wgB")] {
        h.sh_ok(&format!(
            "install -m 600 /etc/wireguard/{iface}.conf /x/{iface}.conf"
        ))
        .unwrap();
    }
    ok(work, "age-keygen", &["-o", "identity.txt"]);
    let recipient = ok(work, "age-keygen", &["-y", "identity.txt"]);
    let a_file = format!("alpha={}", alpha.dir().join("wgA.conf").display());
    let b_file = format!("beta={}", beta.dir().join("wgB.conf").display());
    let report = ok(
        work,
        env!("CARGO_BIN_EXE_wgfleet"),
        &[
            "import",
            &a_file,
            &b_file,
            "-r",
            recipient.trim(),
            "-o",
            "fleet.json",
        ],
    );
    eprintln!("import:\n{report}");
    std::fs::remove_file(alpha.dir().join("wgA.conf")).expect("remove the plain copy");
    std::fs::remove_file(beta.dir().join("wgB.conf")).expect("remove the plain copy");
    assert!(!report.contains("wgfleet apply` will change"), "{report}");
    let fleet: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("fleet.json")).unwrap()).unwrap();
    let net = &fleet["networks"]["wgA"];
    assert_eq!(net["subnet"], "10.10.9.0/31");
    assert_eq!(net["members"]["beta"]["interface"], "wgB");
    assert_eq!(net["members"]["beta"]["listenPort"], 51821);
    assert_eq!(net["members"]["beta"]["mtu"], 1412);

    for h in [alpha, beta] {
        let x = h.dir();
        std::fs::copy(env!("CARGO_BIN_EXE_wgfleet"), x.join("wgfleet")).unwrap();
        std::fs::copy(work.join("fleet.json"), x.join("fleet.json")).unwrap();
        std::fs::copy(work.join("identity.txt"), x.join("identity.txt")).unwrap();
        std::fs::create_dir_all(x.join("secrets")).unwrap();
        for name in ["alpha", "beta"] {
            let f = format!("secrets/{name}.age");
            std::fs::copy(work.join(&f), x.join(&f)).unwrap();
        }
    }
    for ((h, iface), before) in [(alpha, "wgA"), (beta, "wgB")].into_iter().zip(&pids) {
        let out = apply(h);
        eprintln!("first apply on {}:\n{out}", h.name());
        assert!(
            out.contains(&format!("{iface}: rewrite the file only")),
            "{out}"
        );
        assert_eq!(
            &pid(h, iface),
            before,
            "{}: the same wireguard-go",
            h.name()
        );
        let head = h
            .sh_ok(&format!("head -c 20 /etc/wireguard/{iface}.conf"))
            .unwrap();
        assert_eq!(head, "# Managed by wgfleet", "{}", h.name());
        let again = apply(h);
        assert!(
            again.contains(&format!("{iface}: nothing to do")),
            "{again}"
        );
    }
    let mtu = beta.sh_ok("cat /sys/class/net/wgB/mtu").unwrap();
    assert_eq!(mtu.trim(), "1412");
    beta.sh_ok("ping -c 1 -i 0.5 -w 10 10.10.9.0")
        .expect("the tunnel still works");
}
