//! The fleet after validation: addresses resolved, prefixes parsed and normalised, references
//! checked. Planning works only on this, so it never meets a value it has to doubt.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::Serialize;

use super::syntax::{Endpoint, PortSpec};

#[derive(Debug, Clone, Default)]
pub struct ValidFleet {
    pub hosts: BTreeMap<String, HostModel>,
    pub networks: BTreeMap<String, NetworkModel>,
}

#[derive(Debug, Clone)]
pub struct HostModel {
    pub public_key: String,
    pub private_key_file: Option<String>,
    /// The host keeps its own private key (`keyOnHost`).
    pub key_on_host: bool,
    pub wan_interface: Option<String>,
    /// The key the host rotates to (`nextPublicKey`).
    pub next_key: Option<NextKey>,
}

/// A preshared key a pair moves to, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextPsk {
    pub file: String,
    /// Unix seconds (`switchAt`).
    pub switch_at: i64,
}

/// A key a host rotates to, and when it moves to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextKey {
    pub public_key: String,
    /// `None`: the host keeps its next key itself, as its current one (`keyOnHost`).
    pub private_key_file: Option<String>,
    /// Unix seconds (`nextSwitchAt`).
    pub switch_at: i64,
}

#[derive(Debug, Clone)]
pub struct NetworkModel {
    pub name: String,
    pub subnet: Option<Ipv4Net>,
    pub subnet6: Option<Ipv6Net>,
    pub listen_port: u16,
    pub mtu: Option<u16>,
    pub keepalive: Option<u16>,
    /// DNS servers for the clients' files.
    pub client_dns: Vec<IpAddr>,
    /// Empty for a mesh; otherwise the hubs, the first being every spoke's primary hub.
    pub hubs: Vec<String>,
    /// Members and clients by name (the names are unique across both).
    pub peers: BTreeMap<String, Peer>,
    /// Preshared keys between two members, keyed by the pair in name order.
    pub pair_psks: BTreeMap<(String, String), String>,
    /// The preshared keys pairs move to, keyed as `pair_psks`.
    pub pair_next_psks: BTreeMap<(String, String), NextPsk>,
    /// Declared flows with their parties resolved; empty means "no policy": all may talk.
    pub flows: Vec<FlowModel>,
    pub tests: Vec<TestModel>,
}

/// One side of a flow: a member or client, or a prefix (a LAN behind a member).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Party {
    Peer(String),
    Cidr(IpNet),
}

impl std::fmt::Display for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Party::Peer(name) => f.write_str(name),
            Party::Cidr(net) => write!(f, "{net}"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FlowModel {
    /// Index in the fleet's `flows`, for messages.
    pub index: usize,
    pub from: Vec<Party>,
    pub to: Vec<Party>,
    /// Empty: any port.
    pub ports: Vec<PortSpec>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TestModel {
    pub index: usize,
    pub from: Vec<Party>,
    pub to: Vec<Party>,
    pub port: Option<PortSpec>,
    pub allow: bool,
}

impl NetworkModel {
    pub fn is_mesh(&self) -> bool {
        self.hubs.is_empty()
    }

    pub fn is_hub(&self, name: &str) -> bool {
        self.hubs.iter().any(|h| h == name)
    }

    /// The age file of the preshared key between two members, if the fleet declares one.
    pub fn pair_psk(&self, a: &str, b: &str) -> Option<&String> {
        self.pair_psks.get(&pair_key(a, b))
    }

    /// The preshared key two members move to, if a rotation of theirs is staged.
    pub fn pair_next_psk(&self, a: &str, b: &str) -> Option<&NextPsk> {
        self.pair_next_psks.get(&pair_key(a, b))
    }
}

/// A pair of names in name order.
pub fn pair_key(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerKind {
    Host,
    Client,
}

/// A member or client of one network, as every other peer sees it.
#[derive(Debug, Clone)]
pub struct Peer {
    pub name: String,
    pub kind: PeerKind,
    pub public_key: String,
    pub address: Option<Ipv4Addr>,
    pub address6: Option<Ipv6Addr>,
    /// What the others put in their AllowedIPs for this peer: its addresses and `routes`, or the
    /// `allowedIPs` override; normalised and with contained prefixes folded away.
    pub advertised: Vec<IpNet>,
    /// Prefixes a spoke sends through its primary hub.
    pub reach: Vec<IpNet>,
    /// The first of `endpoints`: what the rendered config dials.
    pub endpoint: Option<Endpoint>,
    /// Where the peer is dialled, in order of preference (`endpoint` or `endpoints`).
    pub endpoints: Vec<Endpoint>,
    pub keepalive: Option<u16>,
    /// The port a member listens on (its own or the network's); `None`: no fixed port.
    /// Clients: `None`.
    pub listen_port: Option<u16>,
    /// A member's MTU (its own or the network's).
    pub mtu: Option<u16>,
    /// A client's DNS servers (its own or the network's `clientDns`).
    pub dns: Vec<IpAddr>,
    /// A member's own name for the interface (`None`: the network's name).
    pub interface: Option<String>,
    pub forwarding: bool,
    pub nat: bool,
    /// The age file of the member's private key (hosts) or of the preshared key (clients).
    pub secret_file: Option<String>,
    /// The key a member rotates to (its host's `nextPublicKey`, unless the member overrides
    /// `publicKey` in this network).
    pub next_key: Option<NextKey>,
    pub description: Option<String>,
    pub owner: Option<String>,
    /// Unix seconds.
    pub expires: Option<i64>,
    /// For clients: the members it connects to (`None`: all hubs, or all members of a mesh).
    pub hubs: Option<Vec<String>>,
}

impl Peer {
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires.is_some_and(|t| t <= now)
    }

    /// The peer's own tunnel addresses as host prefixes (/32, /128).
    pub fn host_prefixes(&self) -> Vec<IpNet> {
        let v4 = self.address.map(|a| IpNet::V4(Ipv4Net::from(a)));
        let v6 = self.address6.map(|a| IpNet::V6(Ipv6Net::from(a)));
        v4.into_iter().chain(v6).collect()
    }

    /// Whether a client connects to `member` (members always list themselves as reachable).
    pub fn connects_to(&self, member: &str) -> bool {
        self.hubs
            .as_ref()
            .is_none_or(|hubs| hubs.iter().any(|h| h == member))
    }
}

/// Sorts, removes duplicates and drops prefixes contained in another one of the list
/// (`10.50.0.1/32` disappears next to `10.50.0.0/24`), as a person would write AllowedIPs.
pub fn fold_prefixes(prefixes: impl IntoIterator<Item = IpNet>) -> Vec<IpNet> {
    let mut all: Vec<IpNet> = prefixes.into_iter().map(|p| p.trunc()).collect();
    // Broader prefixes first at each start address. Prefixes either nest or are disjoint, so the
    // kept ones are disjoint and sorted: only the last kept one can contain the next.
    all.sort_by_key(|p| (p.network(), p.prefix_len()));
    let mut kept: Vec<IpNet> = Vec::with_capacity(all.len());
    for p in all {
        if !kept.last().is_some_and(|k| k.contains(&p)) {
            kept.push(p);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn folds_contained_prefixes() {
        let folded = fold_prefixes(nets(&[
            "10.50.0.1/32",
            "10.50.0.0/24",
            "fd50::1/128",
            "10.50.0.0/24",
        ]));
        assert_eq!(folded, nets(&["10.50.0.0/24", "fd50::1/128"]));
        let folded = fold_prefixes(nets(&["10.0.0.0/8", "192.168.1.0/24", "10.1.2.3/32"]));
        assert_eq!(folded, nets(&["10.0.0.0/8", "192.168.1.0/24"]));
    }
}
