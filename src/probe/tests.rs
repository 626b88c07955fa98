use serde_json::json;

use super::*;
use crate::plan::plan_host;
use crate::plan::tests::valid;

const KEYS: [&str; 4] = [
    "j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=",
    "um/TOLbxUvqJwIOGdbFPn9uBh/Es4shlVXFlWyEYvng=",
    "cOW07yOnwkL6IrWiXjj2ZtKizAAu+k9RWgxFiIvoJwU=",
    "3jfcaaPzGrCH1/Gd5HofHAJOtpt+VChIBIH7v0SZnVo=",
];

/// A hub forwarding between two spokes; `flows` and `tests` as given.
fn hub(flows: serde_json::Value, tests: serde_json::Value) -> ValidFleet {
    valid(json!({
        "version": 1,
        "hosts": {
            "hub": {"publicKey": KEYS[0], "endpoint": "192.0.2.1"},
            "a": {"publicKey": KEYS[1]},
            "b": {"publicKey": KEYS[2]},
        },
        "networks": {"wg0": {
            "subnet": "10.60.0.0/24",
            "topology": {"hubAndSpoke": {"hubs": ["hub"]}},
            "members": {"hub": {"id": 1, "forwarding": true}, "a": {"id": 2}, "b": {"id": 3}},
            "clients": {"phone": {"publicKey": KEYS[3], "id": 9}},
            "flows": flows,
            "tests": tests,
        }}
    }))
}

fn probes_of(fleet: &ValidFleet, host: &str) -> Probes {
    targets(fleet, &plan_host(fleet, host, 0), 0)
}

#[test]
fn without_flows_every_member_peer_is_pinged_and_clients_are_not() {
    let fleet = hub(json!([]), json!([]));
    let p = probes_of(&fleet, "hub");
    let names: Vec<(&str, Method)> = p
        .targets
        .iter()
        .map(|t| (t.peer.as_str(), t.method))
        .collect();
    assert_eq!(names, [("a", Method::Icmp), ("b", Method::Icmp)]);
    assert_eq!(p.targets[0].address.to_string(), "10.60.0.3");
    let spoke = probes_of(&fleet, "a");
    assert_eq!(spoke.targets.len(), 1, "a spoke probes its hub: {spoke:?}");
    assert_eq!(spoke.targets[0].peer, "hub");
}

#[test]
fn with_flows_a_peer_is_asked_the_way_the_flows_allow_or_not_at_all() {
    let fleet = hub(
        json!([
            {"from": "a", "to": "hub", "ports": ["icmp", "22/tcp"]},
            {"from": "a", "to": "b", "ports": ["8080/tcp"]},
            {"from": "b", "to": "hub", "ports": ["443/tcp"]},
        ]),
        json!([
            {"from": "a", "to": "b", "port": "8080/tcp", "expect": "allow"},
            {"from": "a", "to": "b", "port": "22/tcp", "expect": "deny"},
            {"from": "a", "to": "b", "port": "53/udp", "expect": "deny"},
            {"from": "b", "to": "a", "port": "8080/tcp", "expect": "deny"},
        ]),
    );
    let a = probes_of(&fleet, "a");
    assert_eq!(a.targets.len(), 1);
    assert_eq!(a.targets[0].method, Method::Icmp);
    let tests: Vec<(String, String, Verdict)> = a
        .tests
        .iter()
        .map(|t| (t.to.clone(), t.port.to_string(), t.static_verdict))
        .collect();
    assert_eq!(
        tests,
        [
            ("b".to_owned(), "8080/tcp".to_owned(), Verdict::Allow),
            ("b".to_owned(), "22/tcp".to_owned(), Verdict::Deny),
        ]
    );
    assert_eq!(a.tests[0].path, ["a", "hub", "b"]);
    assert!(
        a.skipped.iter().any(|f| f.message.contains("53/udp")),
        "{a:?}"
    );
    let b = probes_of(&fleet, "b");
    assert_eq!(b.targets[0].method, Method::Tcp(443));
    // The hub may open nothing to its spokes: it probes none, and says so.
    let h = probes_of(&fleet, "hub");
    assert!(h.targets.is_empty());
    assert!(h.skipped[0].message.contains("a, b"), "{:?}", h.skipped);
}

fn seen(answers: Vec<Answer>, tests: Vec<Answer>, mtu: Option<u16>) -> Observed {
    Observed {
        peers: answers
            .into_iter()
            .map(|answer| PeerObservation {
                answer,
                handshake_age: Some(5),
                interface_mtu: Some(1420),
                path_mtu: mtu,
            })
            .collect(),
        tests,
        ..Default::default()
    }
}

#[test]
fn a_report_names_each_failure_and_where_it_is_likely_dropped() {
    let fleet = hub(
        json!([
            {"from": "a", "to": "hub", "ports": ["icmp"]},
            {"from": "a", "to": "b", "ports": ["8080/tcp"]},
        ]),
        json!([
            {"from": "a", "to": "b", "port": "8080/tcp", "expect": "allow"},
            {"from": "a", "to": "b", "port": "22/tcp", "expect": "deny"},
        ]),
    );
    let plans = plan_host(&fleet, "a", 0);
    let probes = targets(&fleet, &plans, 0);
    let green = seen(
        vec![Answer::Reply(1.0)],
        vec![Answer::Reset, Answer::Silent],
        Some(1420),
    );
    let r = report("a", "t".into(), &plans, &probes, &green);
    assert!(r.ok && r.findings.is_empty(), "{r:#?}");
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["peers"][0]["pathMtu"], 1420);
    assert_eq!(v["tests"][0]["static"], "allow");
    assert_eq!(v["tests"][1]["live"], "deny");

    // The hub drops what it should forward; a deny is let through; the path MTU is lower.
    let broken = seen(
        vec![Answer::Reply(1.0)],
        vec![Answer::Silent, Answer::Connected],
        Some(1328),
    );
    let r = report("a", "t".into(), &plans, &probes, &broken);
    assert!(!r.ok);
    let kinds: Vec<&str> = r.findings.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["mtu-black-hole", "test-disagrees", "test-disagrees"]
    );
    assert!(
        r.findings[0]
            .message
            .contains("\"mtu\": 1328 on networks.wg0"),
        "{}",
        r.findings[0].message
    );
    assert!(
        r.findings[1]
            .message
            .contains("hub answers over the tunnel"),
        "{}",
        r.findings[1].message
    );
    assert!(
        r.findings[1]
            .message
            .contains("at hub (forwarding) or at b"),
        "{}",
        r.findings[1].message
    );
    assert!(
        r.findings[2].message.contains("lets it through"),
        "{}",
        r.findings[2].message
    );

    // The audit records what changed, once.
    let before = report("a", "t".into(), &plans, &probes, &green);
    let changes = outcome_changes(Some(&before), &r);
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert!(outcome_changes(Some(&r), &r).is_empty());
}

#[test]
fn a_silent_peer_is_told_apart_by_its_handshake() {
    let fleet = hub(json!([]), json!([]));
    let plans = plan_host(&fleet, "a", 0);
    let probes = targets(&fleet, &plans, 0);
    let mut s = seen(vec![Answer::Silent], vec![], None);
    let r = report("a", "t".into(), &plans, &probes, &s);
    assert!(
        r.findings[0].message.contains("the handshake is fresh"),
        "{r:?}"
    );
    s.peers[0].handshake_age = None;
    let r = report("a", "t".into(), &plans, &probes, &s);
    assert!(r.findings[0].message.contains("no handshake yet"), "{r:?}");
}

#[test]
fn only_the_fleets_own_addresses_count_as_tunnel_addresses() {
    let fleet = hub(json!([]), json!([]));
    let net = &fleet.networks["wg0"];
    assert!(in_tunnel(net, "10.60.0.7".parse().unwrap()));
    assert!(!in_tunnel(net, "192.0.2.1".parse().unwrap()));
    assert!(!in_tunnel(net, "8.8.8.8".parse().unwrap()));
}

#[test]
fn the_flow_index_agrees_with_access_flow_allows() {
    let text = include_str!("../../examples/seed-000-policy/fleet.json");
    let fleet = valid(serde_json::from_str(text).unwrap());
    let mut seen = 0;
    for net in fleet.networks.values() {
        for from in net.peers.keys() {
            let allowed = Allowed::new(net, from);
            for (to, p) in &net.peers {
                let Some(addr) = p.address.map(IpAddr::V4) else {
                    continue;
                };
                let icmp = crate::access::flow_allows(net, from, addr, to, Some(PortSpec::Icmp));
                let method = allowed.method(to, addr);
                assert_eq!(method == Some(Method::Icmp), icmp, "{from} → {to}");
                if method.is_none() {
                    let tcp_ports =
                        net.flows
                            .iter()
                            .flat_map(|f| &f.ports)
                            .filter_map(|s| match *s {
                                PortSpec::Tcp(lo, _) => Some(lo),
                                _ => None,
                            });
                    for port in tcp_ports {
                        let tcp = Some(PortSpec::Tcp(port, port));
                        assert!(
                            !crate::access::flow_allows(net, from, addr, to, tcp),
                            "{from} → {to} {port}"
                        );
                    }
                }
                if let Some(Method::Tcp(port)) = method {
                    let tcp = Some(PortSpec::Tcp(port, port));
                    assert!(
                        crate::access::flow_allows(net, from, addr, to, tcp),
                        "{from} → {to}"
                    );
                    seen += 1;
                }
            }
        }
    }
    assert!(seen > 0, "some pair is asked by TCP");
}
