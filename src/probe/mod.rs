//! What `wgfleet probe` sends from one host over its tunnels, and what the answers mean. Pure:
//! the probes are derived from the fleet (`targets`), the verdicts and findings from what the
//! shell saw (`report`); `shell::probe` sends the packets.
//!
//! Every probe goes to a tunnel address of the fleet (a member's address, or a prefix a member
//! routes), out of the interface of its network: nothing is sent anywhere else.

mod firewall;
mod mtu;
mod report;

use std::collections::HashMap;
use std::net::IpAddr;

use crate::access::{Tables, Trace};
use crate::fleet::model::{NetworkModel, Party, PeerKind, ValidFleet};
use crate::fleet::syntax::PortSpec;
use crate::flow_pairs::pairs;
use crate::plan::{InterfacePlan, network_of};
use ipnet::IpNet;

pub use firewall::{HostFacts, InterfaceFacts, host_findings, route_checks};
pub use mtu::MtuSearch;
pub use report::{
    Answer, Finding, Observed, PeerObservation, PeerResult, ProbeReport, TestResult, Verdict,
    outcome_changes, report,
};

/// Probes sent in one run at most (peers and test pairs alike; the rest are reported skipped).
pub const MAX_PROBES: usize = 1024;

/// How a peer's reachability is asked: an ICMP echo, or a TCP connect that counts a SYN-ACK or
/// a RST as an answer (what the flows let this host open to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Icmp,
    Tcp(u16),
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Method::Icmp => f.write_str("icmp"),
            Method::Tcp(p) => write!(f, "{p}/tcp"),
        }
    }
}

/// One peer this host should reach, and how to ask.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub network: String,
    pub interface: String,
    pub peer: String,
    pub public_key: String,
    pub address: IpAddr,
    pub method: Method,
}

/// One fleet test whose `from` is this host, against one of its `to` parties.
#[derive(Debug, Clone, PartialEq)]
pub struct TestProbe {
    pub network: String,
    pub interface: String,
    pub from: String,
    pub to: String,
    pub address: IpAddr,
    pub port: PortSpec,
    pub expect: Verdict,
    pub static_verdict: Verdict,
    /// The hops of the request as the description sends it (this host first).
    pub path: Vec<String>,
    /// Where the description drops it, when it does.
    pub dropped: Option<String>,
}

/// What one run probes, and what it leaves out and why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probes {
    pub targets: Vec<Target>,
    pub tests: Vec<TestProbe>,
    pub skipped: Vec<Finding>,
}

/// The probes of `host` (its interface plans `plans`): each member peer that a flow lets it open
/// something to (clients come and go, so they are not probed), and each test from it.
pub fn targets(fleet: &ValidFleet, plans: &[InterfacePlan], now: i64) -> Probes {
    let mut probes = Probes::default();
    for plan in plans {
        let Some(net) = network_of(fleet, plan) else {
            continue;
        };
        let host = plan.host.as_str();
        let allowed = Allowed::new(net, host);
        let mut no_flow = Vec::new();
        for peer in plan.peers.iter().filter(|p| p.kind == PeerKind::Host) {
            let Some(address) = address_of(net, &peer.name, plan) else {
                continue;
            };
            match allowed.method(&peer.name, address) {
                Some(method) => probes.targets.push(Target {
                    network: net.name.clone(),
                    interface: plan.network.clone(),
                    peer: peer.name.clone(),
                    public_key: peer.public_key.clone(),
                    address,
                    method,
                }),
                None => no_flow.push(peer.name.as_str()),
            }
        }
        if !no_flow.is_empty() {
            probes.skipped.push(Finding::new(
                "not-probed",
                format!(
                    "{}: no flow lets {host} send ICMP or open TCP to {}: not probed",
                    plan.network,
                    listed(&no_flow)
                ),
            ));
        }
        tests_from(fleet, net, plan, now, &mut probes);
    }
    let total = probes.targets.len() + probes.tests.len();
    if total > MAX_PROBES {
        probes.skipped.push(Finding::new(
            "not-probed",
            format!("{total} probes asked for, {MAX_PROBES} sent: the rest are not probed"),
        ));
        probes.targets.truncate(MAX_PROBES);
        probes.tests.truncate(MAX_PROBES - probes.targets.len());
    }
    probes
}

fn tests_from(
    fleet: &ValidFleet,
    net: &NetworkModel,
    plan: &InterfacePlan,
    now: i64,
    probes: &mut Probes,
) {
    let host = plan.host.as_str();
    let me = Party::Peer(host.to_owned());
    let live = |party: &Party| match party {
        Party::Peer(n) => net.peers.get(n).is_some_and(|p| !p.is_expired(now)),
        Party::Cidr(_) => true,
    };
    let mut tables = Tables::new(fleet, net, now);
    for test in net.tests.iter().filter(|t| t.from.contains(&me)) {
        for to in test.to.iter().filter(|to| **to != me && live(to)) {
            let Some(port) = test.port else {
                probes.skipped.push(Finding::new(
                    "not-probed",
                    format!(
                        "{host} → {to}: a test without a port is not probed live (give it one)"
                    ),
                ));
                continue;
            };
            if matches!(port, PortSpec::Udp(..)) {
                probes.skipped.push(Finding::new(
                    "not-probed",
                    format!(
                        "{host} → {to} {port}: a UDP port cannot be told open from dropped, so it is not probed live"
                    ),
                ));
                continue;
            }
            let address = match to {
                Party::Peer(name) => address_of(net, name, plan),
                Party::Cidr(c) => Some(c.hosts().next().unwrap_or(c.addr())),
            };
            let Some(address) = address.filter(|a| in_tunnel(net, *a)) else {
                probes.skipped.push(Finding::new(
                    "not-probed",
                    format!("{host} → {to}: no tunnel address of the fleet to probe"),
                ));
                continue;
            };
            let (there, back) = tables.connect(host, to, Some(port));
            let works = there.ok() && back.as_ref().is_none_or(Trace::ok);
            let path = match &there {
                Trace::Delivered { path } | Trace::Dropped { path, .. } => path.clone(),
            };
            let dropped = match (&there, &back) {
                (Trace::Dropped { at, reason, .. }, _) => Some(format!("at {at}: {reason}")),
                (_, Some(Trace::Dropped { at, reason, .. })) => {
                    Some(format!("the reply, at {at}: {reason}"))
                }
                _ => None,
            };
            probes.tests.push(TestProbe {
                network: net.name.clone(),
                interface: plan.network.clone(),
                from: host.to_owned(),
                to: to.to_string(),
                address,
                port,
                expect: Verdict::of(test.allow),
                static_verdict: Verdict::of(works),
                path,
                dropped,
            });
        }
    }
}

/// The peer's tunnel address in the family this host has (IPv4 first).
fn address_of(net: &NetworkModel, name: &str, plan: &InterfacePlan) -> Option<IpAddr> {
    let p = net.peers.get(name)?;
    let has = |v4: bool| plan.addresses.iter().any(|a| a.addr().is_ipv4() == v4);
    let v4 = p.address.filter(|_| has(true)).map(IpAddr::V4);
    v4.or(p.address6.filter(|_| has(false)).map(IpAddr::V6))
}

/// Whether `addr` is the fleet's own: in the network's subnet or in a prefix a member routes
/// (never a default route: that is the internet behind an exit).
pub fn in_tunnel(net: &NetworkModel, addr: IpAddr) -> bool {
    let subnets = [net.subnet.map(IpNet::V4), net.subnet6.map(IpNet::V6)];
    subnets.iter().flatten().any(|s| s.contains(&addr))
        || net
            .peers
            .values()
            .flat_map(|p| &p.advertised)
            .any(|n| n.prefix_len() > 0 && n.contains(&addr))
}

/// What the flows let one host open, by destination, read from the flows' pairs once a network
/// (asking `access::flow_allows` a peer at a time walks every pair for each: at 10,000 spokes
/// with flows, seconds).
struct Allowed<'n> {
    /// No flows: everything.
    all: bool,
    /// (pair index, ports; empty: any) by destination peer, and for destination prefixes.
    to_peer: HashMap<&'n str, Vec<(usize, &'n [PortSpec])>>,
    to_cidr: Vec<(usize, IpNet, &'n [PortSpec])>,
}

impl<'n> Allowed<'n> {
    /// What `from` may open, as `flow_allows` matches a pair's source: the peer itself, or a
    /// prefix holding its address.
    fn new(net: &'n NetworkModel, from: &str) -> Self {
        let me = net.peers.get(from);
        let from_addr = me.and_then(|p| p.address.map(IpAddr::V4).or(p.address6.map(IpAddr::V6)));
        let mut allowed = Allowed {
            all: net.flows.is_empty(),
            to_peer: HashMap::new(),
            to_cidr: Vec::new(),
        };
        for (i, pair) in pairs(net).enumerate() {
            let mine = match pair.from {
                Party::Peer(n) => n == from,
                Party::Cidr(c) => from_addr.is_some_and(|a| c.contains(&a)),
            };
            match pair.to {
                _ if !mine => {}
                Party::Peer(n) => allowed.to_peer.entry(n).or_default().push((i, pair.ports)),
                Party::Cidr(c) => allowed.to_cidr.push((i, *c, pair.ports)),
            }
        }
        allowed
    }

    /// ICMP where the flows allow it (or there are none), else the first TCP port they allow,
    /// in the flows' order.
    fn method(&self, to: &str, to_addr: IpAddr) -> Option<Method> {
        if self.all {
            return Some(Method::Icmp);
        }
        let mut ports: Vec<(usize, &[PortSpec])> =
            self.to_peer.get(to).cloned().unwrap_or_default();
        ports.extend(
            self.to_cidr
                .iter()
                .filter(|(_, c, _)| c.contains(&to_addr))
                .map(|(i, _, p)| (*i, *p)),
        );
        ports.sort_by_key(|(i, _)| *i);
        if ports
            .iter()
            .any(|(_, p)| p.is_empty() || p.contains(&PortSpec::Icmp))
        {
            return Some(Method::Icmp);
        }
        ports
            .iter()
            .flat_map(|(_, p)| p.iter())
            .find_map(|s| match *s {
                PortSpec::Tcp(port, _) => Some(Method::Tcp(port)),
                _ => None,
            })
    }
}

/// `a, b and c`, or the first few and a count.
fn listed(names: &[&str]) -> String {
    const SHOWN: usize = 5;
    let shown = names[..names.len().min(SHOWN)].join(", ");
    match names.len() {
        n if n > SHOWN => format!("{shown} and {} more", n - SHOWN),
        _ => shown,
    }
}

/// The payload of an echo of `size` bytes in all (IP and ICMP headers included).
pub fn echo_payload(size: u16, v6: bool) -> u16 {
    size.saturating_sub(if v6 { 48 } else { 28 })
}

#[cfg(test)]
mod tests;
