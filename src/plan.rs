//! The desired state of one host: per network, its interface and its peers. Pure; planning one
//! host walks its networks' peers once (a spoke only its hubs), so it is O(fleet), never O(fleet²).

use ipnet::IpNet;
use serde::Serialize;

use crate::fleet::model::{NetworkModel, Peer, PeerKind, ValidFleet, fold_prefixes};

/// What one `wg-quick@<network>` on one host must be.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InterfacePlan {
    pub network: String,
    pub host: String,
    /// Addresses with the subnet's prefix length (`10.50.0.1/24`).
    pub addresses: Vec<IpNet>,
    pub listen_port: u16,
    pub mtu: Option<u16>,
    /// The age file holding the private key, as written in the fleet.
    pub private_key_file: Option<String>,
    /// The public key the private key must match.
    pub public_key: String,
    pub forwarding: bool,
    /// Peers dial this host (it has an endpoint, and is a hub or in a mesh): its port is opened.
    pub dialable: bool,
    /// The interface to masquerade out of, when `nat` is on.
    pub nat: Option<String>,
    pub peers: Vec<PeerPlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerPlan {
    pub name: String,
    pub kind: PeerKind,
    pub public_key: String,
    pub allowed_ips: Vec<IpNet>,
    pub endpoint: Option<String>,
    pub persistent_keepalive: Option<u16>,
    pub preshared_key_file: Option<String>,
    pub description: Option<String>,
    pub owner: Option<String>,
    /// Unix seconds.
    pub expires: Option<i64>,
}

/// Every network `host` is a member of, in interface-name order.
pub fn plan_host(fleet: &ValidFleet, host: &str, now: i64) -> Vec<InterfacePlan> {
    fleet
        .networks
        .values()
        .filter_map(|net| plan_interface(fleet, net, host, now))
        .collect()
}

/// `host`'s interface in `net`, or `None` when it is not a member.
pub fn plan_interface(
    fleet: &ValidFleet,
    net: &NetworkModel,
    host: &str,
    now: i64,
) -> Option<InterfacePlan> {
    let me = net.peers.get(host).filter(|p| p.kind == PeerKind::Host)?;
    let is_hub = net.is_hub(host);
    let live = |p: &&Peer| p.name != host && !p.is_expired(now);

    let mut chosen: Vec<&Peer> = if net.is_mesh() || is_hub {
        net.peers
            .values()
            .filter(live)
            .filter(|p| p.kind == PeerKind::Host || p.connects_to(host))
            .collect()
    } else {
        net.hubs
            .iter()
            .filter_map(|h| net.peers.get(h))
            .filter(live)
            .collect()
    };
    // Address order, as an operator lists peers (10.50.0.2, .3, .30); v6-only peers last.
    chosen.sort_by_key(|p| (p.address.is_none(), p.address, p.address6, &p.name));
    let peers = chosen.into_iter().map(|p| peer_plan(net, me, p)).collect();

    let addresses = me
        .address
        .zip(net.subnet)
        .map(|(a, s)| IpNet::new_assert(a.into(), s.prefix_len()))
        .into_iter()
        .chain(
            me.address6
                .zip(net.subnet6)
                .map(|(a, s)| IpNet::new_assert(a.into(), s.prefix_len())),
        )
        .collect();
    let host_model = fleet.hosts.get(host);
    Some(InterfacePlan {
        network: net.name.clone(),
        host: host.to_owned(),
        addresses,
        listen_port: net.listen_port,
        mtu: net.mtu,
        private_key_file: me.secret_file.clone(),
        public_key: me.public_key.clone(),
        forwarding: me.forwarding,
        dialable: me.endpoint.is_some() && (net.is_mesh() || is_hub),
        nat: me
            .nat
            .then(|| host_model.and_then(|h| h.wan_interface.clone()))
            .flatten(),
        peers,
    })
}

/// How `me` sees `peer`: what it routes to it, and whether it dials it.
fn peer_plan(net: &NetworkModel, me: &Peer, peer: &Peer) -> PeerPlan {
    let me_is_spoke = !net.is_mesh() && !net.is_hub(&me.name);
    let allowed_ips = if me_is_spoke && net.hubs.first() == Some(&peer.name) && !me.reach.is_empty()
    {
        fold_prefixes(peer.advertised.iter().chain(&me.reach).copied())
    } else {
        peer.advertised.clone()
    };
    // Spokes dial hubs; in a mesh, and between hubs, whoever has an endpoint is dialled.
    // A hub never dials a spoke: it learns the spoke's address from its handshake.
    let dials = peer.kind == PeerKind::Host && (net.is_mesh() || net.is_hub(&peer.name));
    let endpoint = peer
        .endpoint
        .as_ref()
        .filter(|_| dials)
        .map(|ep| ep.render(net.listen_port));
    let persistent_keepalive = endpoint.as_ref().and(me.keepalive.or(net.keepalive));
    PeerPlan {
        name: peer.name.clone(),
        kind: peer.kind,
        public_key: peer.public_key.clone(),
        allowed_ips,
        endpoint,
        persistent_keepalive,
        preshared_key_file: match peer.kind {
            PeerKind::Client => peer.secret_file.clone(),
            PeerKind::Host => net.pair_psk(&me.name, &peer.name).cloned(),
        },
        description: peer.description.clone(),
        owner: peer.owner.clone(),
        expires: peer.expires,
    }
}
