//! Property tests: random valid fleets validate without error, and every host's plan keeps the
//! invariants WireGuard needs; arbitrary input never panics the loader.

use std::collections::HashSet;
use std::path::Path;

use base64::Engine as _;
use proptest::prelude::*;
use serde_json::{Value, json};
use wgfleet::fleet::load::parse_json;
use wgfleet::fleet::validate::{Options, validate};
use wgfleet::plan::plan_host;
use wgfleet::render::render_config;

const NOW: i64 = 1_800_000_000;

#[derive(Debug, Clone)]
struct Shape {
    hosts: usize,
    /// 0 = mesh, otherwise the number of hubs.
    hubs: usize,
    dual_stack: bool,
    /// Per host: explicit address instead of id, a routed LAN, keepalive override.
    explicit: Vec<bool>,
    routed: Vec<bool>,
    reach: bool,
    /// Per client: expiry offset from NOW in days (negative: expired), hub restriction.
    clients: Vec<(i64, bool)>,
    id_offset: u64,
}

fn shape() -> impl Strategy<Value = Shape> {
    (1usize..25).prop_flat_map(|hosts| {
        (
            Just(hosts),
            0..=hosts.min(3),
            any::<bool>(),
            proptest::collection::vec(any::<bool>(), hosts),
            proptest::collection::vec(any::<bool>(), hosts),
            any::<bool>(),
            proptest::collection::vec((-30i64..30, any::<bool>()), 0..8),
            0u64..100,
        )
            .prop_map(
                |(hosts, hubs, dual_stack, explicit, routed, reach, clients, id_offset)| Shape {
                    hosts,
                    hubs,
                    dual_stack,
                    explicit,
                    routed,
                    reach,
                    clients,
                    id_offset,
                },
            )
    })
}

fn key(seed: usize) -> String {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&(seed as u64 + 1).to_le_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn build(s: &Shape) -> Value {
    let name = |i: usize| format!("h{i}");
    let mut hosts = serde_json::Map::new();
    let mut members = serde_json::Map::new();
    for i in 0..s.hosts {
        let mut host = json!({"publicKey": key(i), "privateKeyFile": format!("secrets/h{i}.age")});
        if i < s.hubs.max(s.hosts) {
            host["endpoint"] = json!(format!("198.51.100.{}:{}", i % 250 + 1, 51820 + i));
        }
        hosts.insert(name(i), host);
        let id = s.id_offset + i as u64;
        let mut m = if s.explicit[i] {
            json!({"address": format!("10.1.{}.{}", id / 250, id % 250 + 1)})
        } else {
            json!({"id": id})
        };
        if s.explicit[i] && s.dual_stack {
            m["id"] = json!(id);
        }
        if s.routed[i] {
            m["routes"] = json!([format!("192.168.{i}.0/24")]);
        }
        // A dialled endpoint's port is its host's listen port: each its own.
        if i != 0 && i < s.hubs.max(s.hosts) {
            m["listenPort"] = json!(51820 + i);
        }
        if s.reach && s.hubs > 0 && i >= s.hubs {
            m["reach"] = json!(["10.1.0.0/16"]);
        }
        members.insert(name(i), m);
    }
    let mut clients = serde_json::Map::new();
    for (j, (days, restricted)) in s.clients.iter().enumerate() {
        let mut c = json!({
            "publicKey": key(1000 + j),
            "id": 1000 + j,
            "owner": format!("user{j}@example.com"),
            "expires": wgfleet::fleet::time::format_rfc3339(NOW + days * 86_400 + 1),
        });
        if *restricted && s.hosts > 0 {
            c["hubs"] = json!([name(0)]);
        }
        clients.insert(format!("c{j}"), c);
    }
    let topology = if s.hubs == 0 {
        json!("mesh")
    } else {
        json!({"hubAndSpoke": {"hubs": (0..s.hubs).map(name).collect::<Vec<_>>()}})
    };
    let mut net = json!({
        "subnet": "10.1.0.0/16",
        "listenPort": 51820,
        "persistentKeepalive": 25,
        "topology": topology,
        "members": members,
        "clients": clients,
    });
    if s.dual_stack {
        net["subnet6"] = json!("fd01::/64");
    }
    json!({"version": 1, "hosts": hosts, "networks": {"wg0": net}})
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn valid_fleets_plan_with_invariants(s in shape()) {
        let doc = build(&s);
        let fleet = parse_json(Path::new("gen.json"), &doc.to_string()).expect("generated fleet parses");
        let (valid, diags) = validate(&fleet, Options { now: NOW, expiry_warning: 0 });
        let errors: Vec<_> = diags.0.iter().filter(|d| d.severity == wgfleet::fleet::diag::Severity::Error).collect();
        prop_assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
        let valid = valid.expect("no errors, so a model");
        let subnet: ipnet::Ipv4Net = "10.1.0.0/16".parse().unwrap();

        let mut own_addresses = HashSet::new();
        for host in fleet.hosts.keys() {
            let plans = plan_host(&valid, host, NOW);
            prop_assert_eq!(plans.len(), 1);
            let plan = &plans[0];
            // Own address unique across the fleet and inside the subnet.
            for a in &plan.addresses {
                prop_assert!(own_addresses.insert(a.addr()), "address {} twice", a);
                if let ipnet::IpNet::V4(v4) = a { prop_assert!(subnet.contains(&v4.addr())); }
            }
            // No prefix on two peers, no key twice, never itself, no expired client.
            let mut prefixes = HashSet::new();
            let mut keys = HashSet::new();
            for peer in &plan.peers {
                prop_assert!(peer.name != *host);
                prop_assert!(keys.insert(peer.public_key.clone()), "key twice on {}", host);
                prop_assert!(peer.expires.is_none_or(|t| t > NOW), "expired {} on {}", peer.name, host);
                for p in &peer.allowed_ips {
                    prop_assert!(prefixes.insert(*p), "{} on two peers of {}", p, host);
                }
            }
            // Spokes peer with hubs only; with a hub, only spokes that dial it carry keepalive.
            let is_spoke = s.hubs > 0 && !(0..s.hubs).any(|i| format!("h{i}") == *host);
            if is_spoke {
                prop_assert_eq!(plan.peers.len(), s.hubs);
            }
            // Deterministic output.
            prop_assert_eq!(render_config(plan).unwrap(), render_config(plan).unwrap());
            // The probe goes only to the fleet's tunnel addresses, and only to its own peers.
            let net = &valid.networks["wg0"];
            let probes = wgfleet::probe::targets(&valid, &plans, NOW);
            for t in &probes.targets {
                prop_assert!(wgfleet::probe::in_tunnel(net, t.address), "{} outside", t.address);
                prop_assert!(plan.peers.iter().any(|p| p.name == t.peer));
            }
            for t in &probes.tests {
                prop_assert!(wgfleet::probe::in_tunnel(net, t.address), "{} outside", t.address);
            }
        }
    }

    #[test]
    fn arbitrary_firewall_text_never_panics_the_probe(lines in proptest::collection::vec(
        proptest::sample::select(vec![
            "*filter", "*nat", ":INPUT DROP [0:0]", ":FORWARD DROP [0:0]", ":", "-A", "-A INPUT",
            "-A INPUT -j WGFLEET-INPUT", "-A FORWARD -j DOCKER-USER", "-A DOCKER-USER -i wg+ -j DROP",
            "-A FORWARD ! -i", "-A INPUT -i wg0 -p udp --dport", "-A INPUT -j", "COMMIT", "-j ACCEPT",
            "-A FORWARD -j FORWARD", "-A INPUT -p udp --dport 51821 -j ACCEPT",
            "table inet firewalld {", "table ip", "chain filter_FORWARD {", "chain",
            "type filter hook forward priority filter + 10; policy drop;", "type filter hook ",
            "type filter hook input priority 0; policy", "}",
        ]).prop_map(str::to_owned).boxed().prop_union("\\PC{0,40}".boxed()),
        0..30,
    )) {
        let save = lines.join("\n");
        let facts = wgfleet::probe::HostFacts {
            iptables: Some(save.clone()),
            ip6tables: Some(save.clone()),
            nft_chains: Some(save),
            interfaces: vec![],
        };
        let doc: Value = serde_json::from_str(include_str!("../examples/seed-000-policy/fleet.json")).unwrap();
        let fleet = parse_json(Path::new("x.json"), &doc.to_string()).unwrap();
        let (valid, _) = validate(&fleet, Options { now: NOW, expiry_warning: 0 });
        let plans = plan_host(&valid.unwrap(), "cp", NOW);
        let _ = wgfleet::probe::host_findings(&facts, &plans);
    }

    #[test]
    fn arbitrary_text_never_panics_the_loader(text in "\\PC{0,300}") {
        if let Ok(fleet) = parse_json(Path::new("x.json"), &text) {
            let _ = validate(&fleet, Options { now: NOW, expiry_warning: 0 });
        }
    }

    #[test]
    fn mutated_examples_never_panic(edits in proptest::collection::vec((0usize..64, any::<u32>(), "\\PC{0,12}"), 1..6)) {
        let mut doc: Value = serde_json::from_str(include_str!("../examples/seed-002/fleet.json")).unwrap();
        for (pick, number, text) in edits {
            mutate(&mut doc, pick, number, &text);
        }
        if let Ok(fleet) = parse_json(Path::new("x.json"), &doc.to_string()) {
            let (valid, _) = validate(&fleet, Options { now: NOW, expiry_warning: 86_400 });
            if let Some(valid) = valid {
                for host in fleet.hosts.keys() {
                    for plan in plan_host(&valid, host, NOW) {
                        render_config(&plan).unwrap();
                    }
                }
            }
        }
    }
}

/// Replaces the `pick`-th scalar (in document order) by a number or a string.
fn mutate(v: &mut Value, pick: usize, number: u32, text: &str) {
    fn walk(v: &mut Value, n: &mut usize, pick: usize, number: u32, text: &str) -> bool {
        match v {
            Value::Object(m) => m.values_mut().any(|c| walk(c, n, pick, number, text)),
            Value::Array(a) => a.iter_mut().any(|c| walk(c, n, pick, number, text)),
            _ => {
                if *n == pick {
                    *v = if number.is_multiple_of(2) {
                        json!(number)
                    } else {
                        json!(text)
                    };
                    return true;
                }
                *n += 1;
                false
            }
        }
    }
    walk(v, &mut 0, pick, number, text);
}
