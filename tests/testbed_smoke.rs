//! Smoke test of the testbed harness itself: two real systemd hosts form a WireGuard tunnel
//! with wg-quick (wireguard-go, as there is no kernel module), and a reload keeps the
//! interface's process. Needs root, systemd-nspawn, wireguard-tools and wireguard-go.

#[path = "support/testbed.rs"]
mod testbed;

use testbed::{Host, PING, Testbed};

/// Generates a key pair inside the host; returns (private, public).
fn keypair(host: &Host) -> (String, String) {
    let private = host.sh_ok("wg genkey").unwrap().trim().to_string();
    let public = host
        .sh_ok(&format!("echo '{private}' | wg pubkey"))
        .unwrap()
        .trim()
        .to_string();
    (private, public)
}

/// Installs wg0.conf into the host's /etc/wireguard (dir 0700, file 0600) via its /x dir.
fn install_conf(host: &Host, conf: &str) {
    std::fs::write(host.dir().join("wg0.conf"), conf).unwrap();
    host.sh_ok(
        "install -d -m 0700 /etc/wireguard && install -m 0600 /x/wg0.conf /etc/wireguard/wg0.conf \
         && rm /x/wg0.conf",
    )
    .unwrap();
}

fn conf(private: &str, address: &str, peers: &[(&str, &str, Option<String>)]) -> String {
    let mut s =
        format!("[Interface]\nAddress = {address}\nListenPort = 51820\nPrivateKey = {private}\n");
    for (public, allowed, endpoint) in peers {
        s += &format!("\n[Peer]\nPublicKey = {public}\nAllowedIPs = {allowed}\n");
        if let Some(e) = endpoint {
            s += &format!("Endpoint = {e}\n");
        }
    }
    s
}

fn wireguard_go_pid(host: &Host) -> String {
    // wg-quick runs `wireguard-go wg0`, which daemonises; there must be exactly one.
    let pids = host.sh_ok("pgrep -f '^wireguard-go wg0$'").unwrap();
    assert_eq!(
        pids.lines().count(),
        1,
        "wireguard-go processes on {}: {pids}",
        host.name()
    );
    pids.trim().to_string()
}

#[test]
fn two_hosts_form_a_tunnel() {
    let tb = Testbed::new("two_hosts_form_a_tunnel").unwrap();
    let hosts = tb
        .add_hosts(&[("a", "192.0.2.11/24"), ("b", "192.0.2.12/24")])
        .unwrap();
    let (a, b) = (&hosts[0], &hosts[1]);
    assert_eq!(a.sh_ok("hostname").unwrap().trim(), "a");

    let (a_priv, a_pub) = keypair(a);
    let (b_priv, b_pub) = keypair(b);
    let endpoint = |h: &Host| Some(format!("{}:51820", h.ip()));
    install_conf(
        a,
        &conf(
            &a_priv,
            "10.99.0.1/24",
            &[(&b_pub, "10.99.0.2/32", endpoint(b))],
        ),
    );
    install_conf(
        b,
        &conf(
            &b_priv,
            "10.99.0.2/24",
            &[(&a_pub, "10.99.0.1/32", endpoint(a))],
        ),
    );
    for h in [a, b] {
        h.sh_ok("systemctl start wg-quick@wg0").unwrap();
    }

    let ping = a.sh_ok(&format!("{PING} -c 3 -W 2 10.99.0.2")).unwrap();
    eprintln!("{ping}");
    let handshakes = a.sh_ok("wg show wg0 latest-handshakes").unwrap();
    let latest: u64 = handshakes
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(latest > 0, "no handshake on a: {handshakes}");

    // Reload with an added peer: wg syncconf must apply it to the running interface.
    let before = wireguard_go_pid(a);
    let (_, extra_pub) = keypair(a);
    install_conf(
        a,
        &conf(
            &a_priv,
            "10.99.0.1/24",
            &[
                (&b_pub, "10.99.0.2/32", endpoint(b)),
                (&extra_pub, "10.99.0.100/32", None),
            ],
        ),
    );
    a.sh_ok("systemctl reload wg-quick@wg0").unwrap();
    assert_eq!(wireguard_go_pid(a), before, "reload restarted wireguard-go");
    let peers = a.sh_ok("wg show wg0 peers").unwrap();
    assert!(
        peers.contains(&extra_pub) && peers.contains(&b_pub),
        "peers after reload: {peers}"
    );
    a.sh_ok(&format!("{PING} -c 1 -W 2 10.99.0.2")).unwrap();
}
