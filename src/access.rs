//! Access as a state, derived from the description alone: who can reach what, through which hub,
//! until when. A packet is followed hop by hop through what WireGuard and the firewall will
//! really do: the sender's cryptokey routing (AllowedIPs), the receiver's cryptokey check of the
//! source, forwarding on each hub, the flows' firewall rules, and the same for the reply.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::fleet::model::{NetworkModel, Party, PeerKind, ValidFleet};
use crate::fleet::syntax::PortSpec;
use crate::fleet::time::format_rfc3339;
use crate::flow_pairs::pairs;
use crate::plan::{self, PeerPlan};

/// Whether the flows let `from` open a connection to `to` on `port` (no flows: everything).
pub fn flow_allows(
    net: &NetworkModel,
    from: &str,
    to_addr: IpAddr,
    to: &str,
    port: Option<PortSpec>,
) -> bool {
    if net.flows.is_empty() {
        return true;
    }
    let matches = |party: &Party, name: &str, addr: Option<IpAddr>| match party {
        Party::Peer(n) => n == name,
        Party::Cidr(c) => addr.is_some_and(|a| c.contains(&a)),
    };
    let from_addr = net
        .peers
        .get(from)
        .and_then(|p| p.address.map(IpAddr::V4).or(p.address6.map(IpAddr::V6)));
    pairs(net).any(|p| {
        matches(p.from, from, from_addr)
            && matches(p.to, to, Some(to_addr))
            && (p.ports.is_empty() || port.is_none_or(|q| p.ports.iter().any(|s| covers(s, &q))))
    })
}

fn covers(spec: &PortSpec, q: &PortSpec) -> bool {
    match (spec, q) {
        (PortSpec::Tcp(lo, hi), PortSpec::Tcp(a, b))
        | (PortSpec::Udp(lo, hi), PortSpec::Udp(a, b)) => lo <= a && b <= hi,
        (PortSpec::Icmp, PortSpec::Icmp) => true,
        _ => false,
    }
}

/// Where a packet ends, and the hops it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Trace {
    Delivered {
        path: Vec<String>,
    },
    Dropped {
        path: Vec<String>,
        at: String,
        reason: String,
    },
}

impl Trace {
    pub fn ok(&self) -> bool {
        matches!(self, Trace::Delivered { .. })
    }
}

/// The peer tables of the network's parties, built once per question set.
pub struct Tables<'f> {
    fleet: &'f ValidFleet,
    net: &'f NetworkModel,
    now: i64,
    cache: HashMap<String, Vec<PeerPlan>>,
}

impl<'f> Tables<'f> {
    pub fn new(fleet: &'f ValidFleet, net: &'f NetworkModel, now: i64) -> Self {
        Tables {
            fleet,
            net,
            now,
            cache: HashMap::new(),
        }
    }

    /// The `[Peer]` entries `name` has: a host's plan, or a client's config.
    fn of(&mut self, name: &str) -> &[PeerPlan] {
        if !self.cache.contains_key(name) {
            let peers = match self.net.peers.get(name).map(|p| p.kind) {
                Some(PeerKind::Host) => {
                    plan::plan_interface(self.fleet, self.net, name, self.now).map(|p| p.peers)
                }
                Some(PeerKind::Client) => {
                    plan::plan_client(self.net, name, self.now).map(|c| c.peers)
                }
                None => None,
            };
            self.cache
                .insert(name.to_owned(), peers.unwrap_or_default());
        }
        &self.cache[name]
    }

    /// Follows one packet from `from` to `to_addr` (which `to` owns).
    pub fn trace(
        &mut self,
        from: &str,
        to: &str,
        to_addr: IpAddr,
        port: Option<PortSpec>,
        reply: bool,
    ) -> Trace {
        let net = self.net;
        let src = match self.address_of(from, to_addr.is_ipv4()) {
            Some(a) => a,
            None => {
                return Trace::Dropped {
                    path: vec![from.into()],
                    at: from.into(),
                    reason: "has no address of this family".into(),
                };
            }
        };
        let mut path = vec![from.to_owned()];
        let mut current = from.to_owned();
        for _ in 0..4 {
            let hop = longest_match(self.of(&current), to_addr).map(|p| p.name.clone());
            let Some(next) = hop else {
                let reason =
                    format!("no AllowedIPs entry covers {to_addr}: it is not sent into the tunnel");
                return Trace::Dropped {
                    path,
                    at: current,
                    reason,
                };
            };
            let accepted = self
                .of(&next)
                .iter()
                .any(|p| p.name == current && p.allowed_ips.iter().any(|n| n.contains(&src)));
            if !accepted {
                let reason = format!(
                    "cryptokey check: {src} is not in its AllowedIPs for {current}, so the packet is discarded"
                );
                return Trace::Dropped {
                    path,
                    at: next,
                    reason,
                };
            }
            path.push(next.clone());
            let owns = next == to
                || net
                    .peers
                    .get(&next)
                    .is_some_and(|p| p.advertised.iter().any(|n| n.contains(&to_addr)));
            if owns {
                if next != to && !net.peers.get(&next).is_some_and(|p| p.forwarding) {
                    return Trace::Dropped {
                        path,
                        at: next,
                        reason: format!("{to_addr} is routed behind it, but forwarding is off"),
                    };
                }
                if !reply && !flow_allows(net, from, to_addr, to, port) {
                    return Trace::Dropped {
                        path,
                        at: next,
                        reason: "firewall: no flow allows this connection".into(),
                    };
                }
                return Trace::Delivered { path };
            }
            let peer = net.peers.get(&next);
            if !peer.is_some_and(|p| p.kind == PeerKind::Host && p.forwarding) {
                return Trace::Dropped {
                    path,
                    at: next,
                    reason: "it would have to forward the packet, but forwarding is off".into(),
                };
            }
            if !reply && !flow_allows(net, from, to_addr, to, port) {
                return Trace::Dropped {
                    path,
                    at: next,
                    reason: "firewall: no flow lets this connection through".into(),
                };
            }
            current = next;
        }
        Trace::Dropped {
            at: current,
            path,
            reason: "routing loop".into(),
        }
    }

    fn address_of(&self, name: &str, v4: bool) -> Option<IpAddr> {
        let p = self.net.peers.get(name)?;
        if v4 {
            p.address.map(IpAddr::V4)
        } else {
            p.address6.map(IpAddr::V6)
        }
    }

    /// A connection from `from` to `to`: the request, then the reply.
    pub fn connect(
        &mut self,
        from: &str,
        to: &Party,
        port: Option<PortSpec>,
    ) -> (Trace, Option<Trace>) {
        let (to_name, to_addr) = match to {
            Party::Peer(name) => {
                let both = [self.address_of(name, true), self.address_of(name, false)];
                let from_v4 = self.address_of(from, true).is_some();
                let pick = if from_v4 {
                    both[0].or(both[1])
                } else {
                    both[1].or(both[0])
                };
                match pick {
                    Some(a) => (name.clone(), a),
                    None => {
                        return (
                            Trace::Dropped {
                                path: vec![],
                                at: name.clone(),
                                reason: "has no address".into(),
                            },
                            None,
                        );
                    }
                }
            }
            Party::Cidr(c) => {
                let owner = self
                    .net
                    .peers
                    .values()
                    .find(|p| p.advertised.iter().any(|n| n.contains(c)));
                let addr = c.hosts().next().unwrap_or(c.addr());
                (
                    owner.map_or_else(|| c.to_string(), |p| p.name.clone()),
                    addr,
                )
            }
        };
        let there = self.trace(from, &to_name, to_addr, port, false);
        if !there.ok() || matches!(to, Party::Cidr(_)) {
            return (there, None);
        }
        let from_addr = self.address_of(from, to_addr.is_ipv4());
        let back = match from_addr {
            Some(a) => self.trace(&to_name, from, a, port, true),
            None => Trace::Dropped {
                path: vec![],
                at: from.into(),
                reason: "has no address".into(),
            },
        };
        (there, Some(back))
    }
}

fn longest_match(peers: &[PeerPlan], dst: IpAddr) -> Option<&PeerPlan> {
    peers
        .iter()
        .filter_map(|p| {
            p.allowed_ips
                .iter()
                .filter(|n| n.contains(&dst))
                .map(|n| n.prefix_len())
                .max()
                .map(|len| (len, p))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, p)| p)
}

/// One row of the access state: who reaches what, how, until when. `Until` is how the expiry is
/// written: Unix seconds (`wgfleet access --json`), or RFC 3339 text (the report).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row<Until = i64> {
    pub network: String,
    pub from: String,
    pub owner: Option<String>,
    pub to: String,
    /// Empty: any port.
    pub ports: Vec<String>,
    pub via: Vec<String>,
    /// The earlier expiry of the two ends.
    pub until: Option<Until>,
    pub works: bool,
    /// Where and why a packet or its reply is dropped.
    pub dropped: Option<String>,
}

impl Row {
    /// The row with its expiry as RFC 3339 text, as the report shows it.
    pub fn with_rfc3339_until(self) -> Row<String> {
        Row {
            network: self.network,
            from: self.from,
            owner: self.owner,
            to: self.to,
            ports: self.ports,
            via: self.via,
            until: self.until.map(format_rfc3339),
            works: self.works,
            dropped: self.dropped,
        }
    }
}

/// The access state of one network: every declared flow pair, or (without flows) every pair of
/// peers where the sender routes the other into the tunnel, each checked end to end.
pub fn matrix(fleet: &ValidFleet, net: &NetworkModel, now: i64) -> Vec<Row> {
    let mut tables = Tables::new(fleet, net, now);
    let live = |name: &str| net.peers.get(name).is_some_and(|p| !p.is_expired(now));
    let mut wanted: Vec<(String, Party, Vec<PortSpec>)> = Vec::new();
    if net.flows.is_empty() {
        for a in net.peers.values().filter(|p| live(&p.name)) {
            for b in net
                .peers
                .values()
                .filter(|p| p.name != a.name && live(&p.name))
            {
                wanted.push((a.name.clone(), Party::Peer(b.name.clone()), Vec::new()));
            }
        }
    } else {
        for pair in pairs(net) {
            if let Party::Peer(a) = pair.from
                && live(a)
                && !matches!(pair.to, Party::Peer(b) if !live(b))
            {
                wanted.push((a.clone(), pair.to.clone(), pair.ports.to_vec()));
            }
        }
    }
    let policy = !net.flows.is_empty();
    wanted
        .into_iter()
        .filter_map(|(from, to, ports)| {
            let port = ports.first().copied();
            let (there, back) = tables.connect(&from, &to, port);
            // Without a policy, a packet its sender never puts into the tunnel is no access at
            // all, not a broken one: leave it out.
            if !policy && matches!(&there, Trace::Dropped { path, at, .. } if path.len() == 1 && *at == from) {
                return None;
            }
            let (works, dropped, via) = match (&there, &back) {
                (Trace::Delivered { path }, None | Some(Trace::Delivered { .. })) => (true, None, middle(path)),
                (Trace::Dropped { at, reason, .. }, _) => (false, Some(format!("request dropped at {at}: {reason}")), vec![]),
                (Trace::Delivered { path }, Some(Trace::Dropped { at, reason, .. })) => {
                    (false, Some(format!("reply dropped at {at}: {reason}")), middle(path))
                }
            };
            let expiry = |n: &str| net.peers.get(n).and_then(|p| p.expires);
            let to_name = to.to_string();
            let until = [expiry(&from), expiry(&to_name)].into_iter().flatten().min();
            let owner = net.peers.get(&from).and_then(|p| p.owner.clone());
            Some(Row {
                network: net.name.clone(),
                from,
                owner,
                to: to_name,
                ports: ports.iter().map(ToString::to_string).collect(),
                via,
                until,
                works,
                dropped,
            })
        })
        .collect()
}

fn middle(path: &[String]) -> Vec<String> {
    if path.len() > 2 {
        path[1..path.len() - 1].to_vec()
    } else {
        Vec::new()
    }
}
