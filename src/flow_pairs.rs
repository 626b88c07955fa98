//! What the declared flows mean before any host is planned: the concrete (from, to) pairs, the
//! prefixes each party stands for, and what a spoke sends through its primary hub. Planning
//! (AllowedIPs, firewall rules), access tracing and validation all build on it; it builds only
//! on the validated model.

use ipnet::IpNet;
use serde::Serialize;

use crate::fleet::model::{NetworkModel, Party, fold_prefixes};
use crate::fleet::syntax::PortSpec;

/// One concrete flow: from one party to another, on some ports (empty: any).
#[derive(Debug, Clone, Serialize)]
pub struct Pair<'n> {
    pub from: &'n Party,
    pub to: &'n Party,
    pub ports: &'n [PortSpec],
    pub flow: usize,
}

/// Every (from, to) pair the flows declare, one party not talking to itself.
pub fn pairs(net: &NetworkModel) -> impl Iterator<Item = Pair<'_>> {
    net.flows.iter().flat_map(|f| {
        f.from.iter().flat_map(move |a| {
            f.to.iter().filter(move |b| a != *b).map(move |b| Pair {
                from: a,
                to: b,
                ports: &f.ports,
                flow: f.index,
            })
        })
    })
}

/// The prefixes a party stands for: a peer's addresses and routes, or the prefix itself.
pub fn prefixes(net: &NetworkModel, party: &Party) -> Vec<IpNet> {
    match party {
        Party::Peer(name) => net
            .peers
            .get(name)
            .map(|p| p.advertised.clone())
            .unwrap_or_default(),
        Party::Cidr(c) => vec![*c],
    }
}

/// What a spoke must send through its primary hub beyond the hub itself: its `reach`, and the
/// other end of every flow it takes part in (so that requests and replies route and pass the
/// receiver's cryptokey check).
pub fn spoke_extra(net: &NetworkModel, spoke: &str) -> Vec<IpNet> {
    let Some(me) = net.peers.get(spoke) else {
        return Vec::new();
    };
    let mut extra = me.reach.clone();
    let me_party = Party::Peer(spoke.to_owned());
    for pair in pairs(net) {
        if *pair.from == me_party {
            extra.extend(prefixes(net, pair.to));
        } else if *pair.to == me_party {
            extra.extend(prefixes(net, pair.from));
        }
    }
    let own = me.advertised.clone();
    fold_prefixes(extra.into_iter().filter(|p| !own.contains(p)))
}
