//! `wgfleet probe` on real hosts (issue 27): seed 000's cp forwarding between worker-1 and
//! worker-2, with flows and tests. All green first (and nothing sent outside the tunnel
//! network, counted by iptables on the probing host); then what operators lose days to, each
//! made by hand and undone: a DROP forwarding policy and a Docker-style rule ahead of wgfleet's
//! chains, a path MTU black hole on the underlay, a deny test let through by a hand-added ACCEPT.

#[path = "support/testbed.rs"]
mod testbed;
#[path = "support/wgfleet_on.rs"]
mod wgfleet_on;

use serde_json::{Value, json};
use testbed::Host;
use wgfleet_on::{apply, provision, seed000_fleet, seed000_hosts, set_fleet};

const HOSTS: [&str; 3] = ["cp", "worker-1", "worker-2"];

fn fleet() -> Value {
    let mut doc = seed000_fleet(&["worker-1", "worker-2"]);
    let net = &mut doc["networks"]["wg0"];
    net["flows"] = json!([
        {"from": "group:workers", "to": "cp", "ports": ["icmp"]},
        {"from": "cp", "to": "group:workers", "ports": ["icmp"]},
        {"from": "worker-1", "to": "worker-2", "ports": ["8080/tcp"]},
    ]);
    net["tests"] = json!([
        {"from": "worker-1", "to": "worker-2", "port": "8080/tcp", "expect": "allow"},
        {"from": "worker-1", "to": "cp", "port": "2222/tcp", "expect": "deny"},
    ]);
    doc
}

/// `wgfleet ARGS` on `host` with its /x fleet (no identity: probe and status decrypt nothing).
fn run(host: &Host, args: &str) -> std::process::Output {
    host.sh(&format!(
        "/x/wgfleet {args} --fleet /x/fleet.json --host {}",
        host.name()
    ))
    .unwrap()
}

/// The finding lines docs/probe.md shows (`kind: message`): each must be what a run here prints.
fn documented_findings() -> Vec<String> {
    let doc = std::fs::read_to_string(wgfleet_on::root().join("docs/probe.md")).unwrap();
    let kinds = [
        "test-disagrees: ",
        "foreign-rule: ",
        "forward-policy: ",
        "mtu-black-hole: ",
    ];
    doc.lines()
        .filter(|l| kinds.iter().any(|k| l.starts_with(k)))
        .map(str::to_owned)
        .collect()
}

/// `wgfleet probe` on `host`, as a person reads it.
fn probe_text(host: &Host) -> String {
    wgfleet_on::printed(&run(host, "probe"))
}

/// `wgfleet probe --json` on `host`: its exit code and report.
fn probe(host: &Host) -> (i32, Value) {
    let out = run(host, "probe --json");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "probe on {}: {e}\n{}",
            host.name(),
            wgfleet_on::printed(&out)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn finding<'r>(report: &'r Value, kind: &str) -> &'r str {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == kind)
        .and_then(|f| f["message"].as_str())
        .unwrap_or_else(|| panic!("no {kind} finding: {report:#}"))
}

fn test_entry<'r>(report: &'r Value, to: &str) -> &'r Value {
    report["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["to"] == to)
        .unwrap_or_else(|| panic!("no test to {to}: {report:#}"))
}

/// Green: exit 0, every peer reached, every test agreeing, path MTU = the interface's.
fn assert_green(host: &Host) -> Value {
    let (code, r) = probe(host);
    assert_eq!(code, 0, "{} is not green: {r:#}", host.name());
    for p in r["peers"].as_array().unwrap() {
        assert_eq!(p["reachable"], true, "{r:#}");
        assert_eq!(p["pathMtu"], p["interfaceMtu"], "{r:#}");
    }
    for t in r["tests"].as_array().unwrap() {
        assert_eq!(t["agrees"], true, "{r:#}");
    }
    r
}

/// Counts, on `host`, every packet it sends that is neither to the tunnel network through wg0
/// nor WireGuard's own datagrams from its port, nor link-local multicast (systemd's IGMP, mDNS
/// and LLMNR; the probe sends only unicast): the last rule's count must stay 0 while it probes.
fn count_outside(host: &Host) {
    host.sh_ok(
        "for t in iptables ip6tables; do $t -N PROBE-COUNT && $t -I OUTPUT 1 -j PROBE-COUNT; done
         iptables -A PROBE-COUNT -o wg0 -d 10.50.0.0/24 -j RETURN
         for t in iptables ip6tables; do
           $t -A PROBE-COUNT -o lo -j RETURN
           $t -A PROBE-COUNT -p udp --sport 51821 -j RETURN
         done
         ip6tables -A PROBE-COUNT -d ff00::/8 -j RETURN
         iptables -A PROBE-COUNT -d 224.0.0.0/4 -j RETURN
         for t in iptables ip6tables; do $t -A PROBE-COUNT -j RETURN; done",
    )
    .unwrap();
}

/// (packets into the tunnel network, packets anywhere else) since `count_outside`.
fn counted(host: &Host) -> (u64, u64) {
    let packets = |t: &str| -> Vec<u64> {
        host.sh_ok(&format!("{t} -nvxL PROBE-COUNT"))
            .unwrap()
            .lines()
            .skip(2)
            .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
            .collect()
    };
    let v4 = packets("iptables");
    let v6 = packets("ip6tables");
    (v4[0], v4.last().unwrap() + v6.last().unwrap())
}

#[test]
fn the_data_plane_is_probed_live_and_each_breakage_is_named() {
    let bed = testbed::Testbed::new("probe").expect("testbed");
    let hosts = seed000_hosts(&bed, &HOSTS);
    let [cp, w1, w2] = [&hosts[0], &hosts[1], &hosts[2]];
    for h in &hosts {
        provision(h, &HOSTS);
        set_fleet(h, &fleet());
        apply(h);
    }
    w1.sh_ok("ping -c 1 -w 30 10.50.0.1").unwrap();
    w2.sh_ok("ping -c 1 -w 30 10.50.0.1").unwrap();

    // 1. All green, from a spoke and from the hub; nothing sent outside the tunnel network.
    count_outside(w1);
    let r = assert_green(w1);
    let (inside, outside) = counted(w1);
    assert_eq!(
        outside,
        0,
        "the probe sent {outside} packets outside 10.50.0.0/24:\n{}",
        w1.sh_ok("iptables -nvxL PROBE-COUNT; ip6tables -nvxL PROBE-COUNT")
            .unwrap()
    );
    assert!(
        inside >= r["packets"].as_u64().unwrap(),
        "{inside} counted: {r:#}"
    );
    assert_eq!(r["peers"][0]["name"], "cp");
    assert_eq!(r["peers"][0]["interfaceMtu"], 1420);
    let allow = test_entry(&r, "worker-2");
    assert_eq!(
        (&allow["static"], &allow["live"], &allow["expect"]),
        (&json!("allow"), &json!("allow"), &json!("allow"))
    );
    assert_eq!(test_entry(&r, "cp")["live"], "deny");
    let hub = assert_green(cp);
    assert_eq!(hub["peers"].as_array().unwrap().len(), 2, "{hub:#}");
    // The report is kept for status, and the first run is audited.
    let status = run(w1, "status --json");
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["probe"]["ok"], true, "{status:#}");
    let prom = w1
        .sh_ok("/x/wgfleet status --fleet /x/fleet.json --host worker-1 --prometheus /tmp/p.prom >/dev/null && cat /tmp/p.prom")
        .unwrap();
    for metric in [
        "wgfleet_probe_peer_reachable{host=\"worker-1\",network=\"wg0\",peer=\"cp\"} 1",
        "wgfleet_probe_path_mtu_bytes{host=\"worker-1\",network=\"wg0\",peer=\"cp\"} 1420",
        "wgfleet_probe_test_agrees{host=\"worker-1\",network=\"wg0\",from=\"worker-1\",to=\"worker-2\",port=\"8080/tcp\"} 1",
    ] {
        assert!(prom.contains(metric), "{metric} not in\n{prom}");
    }
    let audit = w1
        .sh_ok("grep '\"action\":\"probe\"' /var/lib/wgfleet/audit.jsonl")
        .unwrap();
    assert_eq!(audit.lines().count(), 1, "{audit}");

    // 2. The FORWARD policy DROP that Docker sets: wgfleet's chain, jumped to first, still
    // carries the fleet's flows, and the hub's probe says so.
    cp.sh_ok("iptables -P FORWARD DROP").unwrap();
    assert_green(w1);
    let (_, hub) = probe(cp);
    assert!(
        finding(&hub, "forward-policy").contains("accepted by WGFLEET-FORWARD"),
        "{hub:#}"
    );
    // What does break it: a rule ahead of wgfleet's (Docker's DOCKER-USER, as its docs tell
    // operators to fill). The allow test fails live and disagrees; the hub names the rule.
    cp.sh_ok(
        "iptables -N DOCKER-USER && iptables -A DOCKER-USER -i wg0 -j DROP \
         && iptables -I FORWARD 1 -j DOCKER-USER",
    )
    .unwrap();
    let mut shown = probe_text(w1) + &probe_text(cp);
    let (code, r) = probe(w1);
    assert_eq!(code, 6, "{r:#}");
    let t = test_entry(&r, "worker-2");
    assert_eq!(
        (&t["static"], &t["live"], &t["agrees"]),
        (&json!("allow"), &json!("deny"), &json!(false))
    );
    let why = finding(&r, "test-disagrees");
    assert!(
        why.contains("cp answers over the tunnel")
            && why.contains("at cp (forwarding) or at worker-2"),
        "{why}"
    );
    // The operator's page shows it too, from the host's kept report.
    let page = w1
        .sh_ok("/x/wgfleet report --fleet /x/fleet.json --probe /var/lib/wgfleet/probe.json --html /tmp/r.html >/dev/null && cat /tmp/r.html")
        .unwrap();
    assert!(
        page.contains("Live probes") && page.contains("✗ DISAGREES"),
        "{page}"
    );
    let (_, hub) = probe(cp);
    assert!(
        finding(&hub, "foreign-rule").contains("-A DOCKER-USER -i wg0 -j DROP"),
        "{hub:#}"
    );
    cp.sh_ok("iptables -D FORWARD -j DOCKER-USER && iptables -F DOCKER-USER && iptables -X DOCKER-USER && iptables -P FORWARD ACCEPT").unwrap();

    // Another tool's nftables table (firewalld's kind), not in iptables-save: its forward-hook
    // drop wins over WGFLEET-FORWARD's accept, and the hub's probe names the chain.
    cp.sh_ok(
        "nft add table inet testfw && nft add chain inet testfw forward_wg \
         '{ type filter hook forward priority 10; policy accept; }' \
         && nft add rule inet testfw forward_wg iifname wg0 oifname wg0 drop",
    )
    .unwrap();
    let (code, r) = probe(w1);
    assert_eq!(
        (code, &test_entry(&r, "worker-2")["agrees"]),
        (6, &json!(false)),
        "{r:#}"
    );
    let (_, hub) = probe(cp);
    assert!(
        finding(&hub, "nftables-chain")
            .contains("inet testfw has the base chain forward_wg on the forward hook"),
        "{hub:#}"
    );
    cp.sh_ok("nft delete table inet testfw").unwrap();
    assert_green(w1);
    let audit = w1
        .sh_ok("grep -c '\"action\":\"probe\"' /var/lib/wgfleet/audit.jsonl")
        .unwrap();
    assert_eq!(
        audit.trim(),
        "3",
        "audited when the outcome changed, and back"
    );

    // 3. A black hole on worker-1's underlay: its bridge port takes no frame over 1400 bytes
    // and says nothing (no ICMP from a switch).
    let port = bridge_port(w1);
    set_port_mtu(&port, 1400);
    shown.push_str(&probe_text(w1));
    let (code, r) = probe(w1);
    assert_eq!(code, 6, "{r:#}");
    let path = r["peers"][0]["pathMtu"].as_u64().unwrap();
    assert!((1300..1400).contains(&path), "{r:#}");
    let hint = finding(&r, "mtu-black-hole");
    assert!(
        hint.contains(&format!("\"mtu\": {path} on networks.wg0")),
        "{hint}"
    );
    // The fleet takes the advice; every host applies; the probes pass at that MTU.
    let mut fixed = fleet();
    fixed["networks"]["wg0"]["mtu"] = json!(path);
    for h in &hosts {
        set_fleet(h, &fixed);
        apply(h);
    }
    w1.sh_ok("ping -c 1 -w 30 10.50.0.1").unwrap();
    let r = assert_green(w1);
    assert_eq!(r["peers"][0]["pathMtu"], json!(path), "{r:#}");
    set_port_mtu(&port, 1500);

    // 4. A deny test let through by an ACCEPT added by hand on cp, ahead of wgfleet's chain.
    cp.sh_ok("iptables -I INPUT 1 -i wg0 -p tcp --dport 2222 -j ACCEPT")
        .unwrap();
    let (code, r) = probe(w1);
    assert_eq!(code, 6, "{r:#}");
    let t = test_entry(&r, "cp");
    assert_eq!(
        (&t["static"], &t["live"]),
        (&json!("deny"), &json!("allow")),
        "{r:#}"
    );
    assert!(
        finding(&r, "test-disagrees").contains("lets it through"),
        "{r:#}"
    );
    let (_, hub) = probe(cp);
    let rule = finding(&hub, "foreign-rule");
    assert!(
        rule.contains("--dport 2222 -j ACCEPT") && rule.contains("lets in"),
        "{rule}"
    );
    cp.sh_ok("iptables -D INPUT -i wg0 -p tcp --dport 2222 -j ACCEPT")
        .unwrap();
    assert_green(w1);

    // A route that takes a tunnel address out of the underlay, under strict rp_filter: the
    // probe, bound to wg0, still goes through the tunnel, but the answer is dropped on the way
    // in (its source is not routed back through wg0), and the finding says why.
    w1.sh_ok("ip route add 10.50.0.3/32 dev host0 && sysctl -qw net.ipv4.conf.all.rp_filter=1")
        .unwrap();
    let (code, r) = probe(w1);
    let route = finding(&r, "route");
    assert!(
        route.contains("the route to 10.50.0.3 (cp's 10.50.0.3/32) goes out of host0")
            && route.contains("rp_filter 1"),
        "{route}"
    );
    assert_eq!(code, 6, "{r:#}");
    let why = finding(&r, "test-disagrees");
    assert!(
        why.contains("likely dropped on this host: it routes 10.50.0.3 out of host0"),
        "{why}"
    );
    w1.sh_ok("ip route del 10.50.0.3/32 dev host0 && sysctl -qw net.ipv4.conf.all.rp_filter=0")
        .unwrap();

    // The timer's opt-in: `apply --probe` probes after its run, and fails (6) on a problem.
    let out = wgfleet_on::wgfleet(w1, "apply --probe --json");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (out.status.code(), &doc["probe"]["ok"]),
        (Some(0), &json!(true)),
        "{doc:#}"
    );
    cp.sh_ok("iptables -I INPUT 1 -i wg0 -p icmp -j DROP")
        .unwrap();
    let out = wgfleet_on::wgfleet(w1, "apply --probe");
    let text = wgfleet_on::printed(&out);
    assert_eq!(out.status.code(), Some(6), "{text}");
    assert!(
        text.contains("NOT reached by icmp") && text.contains("the handshake is fresh"),
        "{text}"
    );
    cp.sh_ok("iptables -D INPUT -i wg0 -p icmp -j DROP")
        .unwrap();

    // A host whose tunnel is down sends nothing and says so.
    w2.sh_ok("systemctl stop wg-quick@wg0").unwrap();
    let (code, r) = probe(w2);
    assert_eq!((code, &r["packets"]), (6, &json!(0)), "{r:#}");
    assert!(
        finding(&r, "interface-down").contains("no interface wg0"),
        "{r:#}"
    );
    assert_eq!(r["peers"][0]["reachable"], false, "{r:#}");

    let documented = documented_findings();
    assert_eq!(documented.len(), 4, "{documented:?}");
    for line in documented {
        assert!(
            shown.contains(&line),
            "docs/probe.md shows\n{line}\nbut probe printed\n{shown}"
        );
    }
}

/// An IPv6-only network is probed the same way: echoes and connects to its addresses, the path
/// MTU searched with IPv6's header sizes, ip6tables read.
#[test]
fn an_ipv6_only_network_is_probed_alike() {
    let bed = testbed::Testbed::new("probe6").expect("testbed");
    let hosts = seed000_hosts(&bed, &HOSTS);
    let [cp, w1] = [&hosts[0], &hosts[1]];
    let mut doc = fleet();
    let net = &mut doc["networks"]["wg0"];
    net.as_object_mut().unwrap().remove("subnet");
    net["subnet6"] = json!("fd50::/64");
    for h in &hosts {
        provision(h, &HOSTS);
        set_fleet(h, &doc);
        apply(h);
    }
    w1.sh_ok("ping -c 1 -w 30 fd50::1").unwrap();
    let r = assert_green(w1);
    assert_eq!(
        (&r["peers"][0]["address"], &r["peers"][0]["pathMtu"]),
        (&json!("fd50::1"), &json!(1420)),
        "{r:#}"
    );
    assert_eq!(test_entry(&r, "worker-2")["address"], "fd50::3", "{r:#}");
    assert_green(cp);
    // The same black hole as over IPv4: the underlay is IPv4 either way.
    let port = bridge_port(w1);
    set_port_mtu(&port, 1400);
    let (code, r) = probe(w1);
    set_port_mtu(&port, 1500);
    assert_eq!(
        (code, &r["peers"][0]["pathMtu"]),
        (6, &json!(1328)),
        "{r:#}"
    );
}

/// The testbed bridge's port that `host`'s underlay (host0) is plugged into.
fn bridge_port(host: &Host) -> String {
    let index = host.sh_ok("cat /sys/class/net/host0/iflink").unwrap();
    let links = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&links.stdout)
        .lines()
        .find(|l| l.starts_with(&format!("{}: ", index.trim())))
        .and_then(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_owned())
        .expect("the host's bridge port")
}

fn set_port_mtu(port: &str, mtu: u16) {
    let status = std::process::Command::new("ip")
        .args(["link", "set", port, "mtu", &mtu.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "ip link set {port} mtu {mtu}");
}
