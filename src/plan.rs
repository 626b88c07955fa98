//! The desired state of one host: per network, its interface and its peers. Pure; planning one
//! host walks its networks' peers once (a spoke only its hubs), so it is O(fleet), never O(fleet²).

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::fleet::model::{NetworkModel, Peer, PeerKind, ValidFleet, fold_prefixes};

/// What one `wg-quick@<network>` on one host must be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InterfacePlan {
    /// The interface on this host (its file, its `wg-quick@` unit): the network's name, or the
    /// member's own `interface`.
    pub network: String,
    pub host: String,
    /// Addresses with the subnet's prefix length (`10.50.0.1/24`).
    pub addresses: Vec<IpNet>,
    /// `None`: no fixed port (WireGuard picks one).
    pub listen_port: Option<u16>,
    pub mtu: Option<u16>,
    /// The age file holding the private key, as written in the fleet.
    pub private_key_file: Option<String>,
    /// The public key the private key must match.
    pub public_key: String,
    /// No age file: the host keeps this key itself (`keyOnHost`, `secrets::local`).
    #[serde(default)]
    pub key_on_host: bool,
    pub forwarding: bool,
    /// Peers dial this host (it has an endpoint, and is a hub or in a mesh): its port is opened.
    pub dialable: bool,
    /// The interface to masquerade out of, when `nat` is on.
    pub nat: Option<String>,
    pub peers: Vec<PeerPlan>,
    /// With flows declared: what the firewall lets in and through; `None`: no policy.
    pub policy: Option<Policy>,
    /// This host's own staged key rotation (`hosts.NAME.nextPublicKey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<OwnRotation>,
}

/// A host's move to its next key, as the host itself sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnRotation {
    pub next_public_key: String,
    /// `None`: the host keeps its next key, as its current one (`keyOnHost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_private_key_file: Option<String>,
    /// Unix seconds (`nextSwitchAt`).
    pub switch_at: i64,
    pub stage: OwnStage,
}

/// Where a host's own rotation stands: set by the run that decrypts the next key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "kebab-case")]
pub enum OwnStage {
    /// Before `nextSwitchAt`: the current key stays, the peers stage the next one.
    Staged,
    /// The interface runs the next key (`privateKeyFile` is `nextPrivateKeyFile` here).
    Switched,
    /// `nextSwitchAt` has passed, but the next key cannot be used: the current key stays.
    Stuck { reason: String },
}

/// The flows that concern one host, as firewall rules on its tunnel interface.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Policy {
    /// Connections this host accepts: from these sources, on these ports.
    pub input: Vec<FlowRule>,
    /// Connections this host forwards between others (hubs, routers).
    pub forward: Vec<FlowRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowRule {
    pub src: IpNet,
    pub dst: Option<IpNet>,
    /// `None`: any port and protocol.
    pub port: Option<crate::fleet::syntax::PortSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerPlan {
    pub name: String,
    pub kind: PeerKind,
    pub public_key: String,
    pub allowed_ips: Vec<IpNet>,
    /// What the config dials: the first of `endpoints`.
    pub endpoint: Option<String>,
    /// Every endpoint this host may dial the peer at, in order (`host:port`); shown only when
    /// there are several. Empty when the peer is not dialled.
    #[serde(skip_serializing_if = "not_a_list", default)]
    pub endpoints: Vec<String>,
    pub persistent_keepalive: Option<u16>,
    pub preshared_key_file: Option<String>,
    pub description: Option<String>,
    pub owner: Option<String>,
    /// Unix seconds.
    pub expires: Option<i64>,
    /// The peer's staged key rotation (`hosts.NAME.nextPublicKey`), on its current entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<PeerRotation>,
    /// This entry is the peer's staged next key: it may handshake, and carries no traffic (it
    /// has no AllowedIPs) until a handshake after the switch time promotes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub staged: bool,
    /// The pair's staged preshared key (`presharedKeys[i].nextFile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psk_rotation: Option<PskRotation>,
}

/// A pair's move to its next preshared key, as one end sees it. Both ends change it at
/// `switchAt` and keep their session (a session outlives its PSK); the next handshake, on both
/// with the new key, confirms it. The lead end changes it `rotation::PSK_LEAD_SECS` later and
/// holds its change to a fresh handshake, so the pair knows at once; an end that sees no
/// handshake after its change goes back to the current key, and so does the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PskRotation {
    /// The preshared key file the fleet declares now (`file`).
    pub current_file: String,
    pub next_file: String,
    /// Unix seconds (`switchAt`).
    pub switch_at: i64,
    /// This end makes the handshake that confirms the change: it dials the peer and is no hub
    /// (of two such ends, the one with the later name).
    pub lead: bool,
    /// The other end leads: a handshake follows this end's change within seconds.
    pub peer_leads: bool,
    #[serde(flatten)]
    pub stage: PskStage,
}

/// Where this end's change of a preshared key stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "kebab-case")]
pub enum PskStage {
    /// Before this end's switch time: the current key.
    Staged,
    /// This end uses the next key.
    Switched,
    /// No handshake followed the change: this end is back on the current key.
    RolledBack { reason: String },
}

/// A peer's move to its next key, as this host sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerRotation {
    /// The key the fleet declares now (`publicKey`).
    pub current_public_key: String,
    pub next_public_key: String,
    /// Unix seconds: only a handshake from the next key after it promotes the key.
    pub switch_at: i64,
    /// This host has moved the peer's AllowedIPs to the next key (`wgfleet promote`).
    #[serde(default)]
    pub promoted: bool,
}

fn not_a_list(list: &[String]) -> bool {
    list.len() <= 1
}

/// Every network `host` is a member of, in interface-name order.
pub fn plan_host(fleet: &ValidFleet, host: &str, now: i64) -> Vec<InterfacePlan> {
    fleet
        .networks
        .values()
        .filter_map(|net| plan_interface(fleet, net, host, now))
        .collect()
}

/// The fleet's network an interface plan belongs to (its `network` is the host's interface name,
/// which a member's `interface` may make differ from the network's).
pub fn network_of<'a>(fleet: &'a ValidFleet, plan: &InterfacePlan) -> Option<&'a NetworkModel> {
    let renamed = fleet.networks.values().find(|n| {
        n.peers
            .get(&plan.host)
            .and_then(|p| p.interface.as_ref())
            .is_some_and(|i| *i == plan.network)
    });
    renamed.or_else(|| fleet.networks.get(&plan.network))
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

    let addresses = interface_addresses(net, me);
    let host_model = fleet.hosts.get(host);
    Some(InterfacePlan {
        network: me.interface.clone().unwrap_or_else(|| net.name.clone()),
        host: host.to_owned(),
        addresses,
        listen_port: me.listen_port,
        mtu: me.mtu,
        private_key_file: me.secret_file.clone(),
        public_key: me.public_key.clone(),
        key_on_host: me.secret_file.is_none() && host_model.is_some_and(|h| h.key_on_host),
        forwarding: me.forwarding,
        dialable: me.endpoint.is_some() && (net.is_mesh() || is_hub),
        policy: policy(net, me),
        nat: me
            .nat
            .then(|| host_model.and_then(|h| h.wan_interface.clone()))
            .flatten(),
        peers,
        rotation: me.next_key.as_ref().map(|next| OwnRotation {
            next_public_key: next.public_key.clone(),
            next_private_key_file: next.private_key_file.clone(),
            switch_at: next.switch_at,
            stage: OwnStage::Staged,
        }),
    })
}

/// How `me` sees `peer`: what it routes to it, and whether it dials it.
fn peer_plan(net: &NetworkModel, me: &Peer, peer: &Peer) -> PeerPlan {
    let me_is_spoke = !net.is_mesh() && !net.is_hub(&me.name);
    let allowed_ips = if me_is_spoke && net.hubs.first() == Some(&peer.name) {
        let extra = crate::flow_pairs::spoke_extra(net, &me.name);
        if extra.is_empty() {
            peer.advertised.clone()
        } else {
            fold_prefixes(peer.advertised.iter().chain(&extra).copied())
        }
    } else {
        peer.advertised.clone()
    };
    // Spokes dial hubs; in a mesh, and between hubs, whoever has an endpoint is dialled.
    // A hub never dials a spoke: it learns the spoke's address from its handshake.
    let dials = peer.kind == PeerKind::Host && (net.is_mesh() || net.is_hub(&peer.name));
    let port = peer.listen_port.unwrap_or(net.listen_port);
    let endpoints: Vec<String> = if dials {
        peer.endpoints.iter().map(|ep| ep.render(port)).collect()
    } else {
        Vec::new()
    };
    let endpoint = endpoints.first().cloned();
    let persistent_keepalive = endpoint.as_ref().and(me.keepalive.or(net.keepalive));
    PeerPlan {
        name: peer.name.clone(),
        kind: peer.kind,
        public_key: peer.public_key.clone(),
        allowed_ips,
        endpoint,
        endpoints,
        persistent_keepalive,
        preshared_key_file: match peer.kind {
            PeerKind::Client => peer.secret_file.clone(),
            PeerKind::Host => net.pair_psk(&me.name, &peer.name).cloned(),
        },
        description: peer.description.clone(),
        owner: peer.owner.clone(),
        expires: peer.expires,
        rotation: peer.next_key.as_ref().map(|next| PeerRotation {
            current_public_key: peer.public_key.clone(),
            next_public_key: next.public_key.clone(),
            switch_at: next.switch_at,
            promoted: false,
        }),
        staged: false,
        psk_rotation: match (peer.kind, net.pair_psk(&me.name, &peer.name)) {
            (PeerKind::Host, Some(current)) => {
                net.pair_next_psk(&me.name, &peer.name)
                    .map(|next| PskRotation {
                        current_file: current.clone(),
                        next_file: next.file.clone(),
                        switch_at: next.switch_at,
                        lead: psk_lead(net, me, peer),
                        peer_leads: psk_lead(net, peer, me),
                        stage: PskStage::Staged,
                    })
            }
            _ => None,
        },
    }
}

/// Of a pair changing its preshared key, whether `me` leads: its change is held to a handshake
/// (it dials `peer`, and is no hub, whose changes are held to nothing); of two such ends, the
/// one with the later name, so that exactly one leads.
fn psk_lead(net: &NetworkModel, me: &Peer, peer: &Peer) -> bool {
    let held = |a: &Peer, b: &Peer| {
        !net.is_hub(&a.name) && (net.is_mesh() || net.is_hub(&b.name)) && !b.endpoints.is_empty()
    };
    held(me, peer) && !(held(peer, me) && me.name < peer.name)
}

/// What an agentless client's own wg-quick file holds (`wgfleet client-config`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientPlan {
    pub network: String,
    pub client: String,
    pub addresses: Vec<IpNet>,
    /// The network's MTU: a phone on an MTU-1280 network needs it too.
    pub mtu: Option<u16>,
    /// DNS servers (the client's `dns`, else the network's `clientDns`).
    pub dns: Vec<std::net::IpAddr>,
    pub preshared_key_file: Option<String>,
    pub peers: Vec<PeerPlan>,
}

/// A client's view: the members it connects to, each dialled at its endpoint with keepalive.
/// Its first hub carries the whole tunnel (subnets and every member's routes); any other hub
/// only its own prefixes, so no prefix sits on two peers.
pub fn plan_client(net: &NetworkModel, client: &str, now: i64) -> Option<ClientPlan> {
    let me = net
        .peers
        .get(client)
        .filter(|p| p.kind == PeerKind::Client && !p.is_expired(now))?;
    let candidates: Vec<&Peer> = if net.is_mesh() {
        net.peers
            .values()
            .filter(|p| p.kind == PeerKind::Host)
            .collect()
    } else {
        net.hubs.iter().filter_map(|h| net.peers.get(h)).collect()
    };
    let connected: Vec<&Peer> = candidates
        .into_iter()
        .filter(|p| me.connects_to(&p.name))
        .collect();
    let whole_tunnel = fold_prefixes(
        net.subnet
            .map(IpNet::V4)
            .into_iter()
            .chain(net.subnet6.map(IpNet::V6))
            .chain(
                net.peers
                    .values()
                    .filter(|p| p.kind == PeerKind::Host)
                    .flat_map(|p| p.advertised.iter().copied()),
            ),
    );
    let peers = connected
        .iter()
        .enumerate()
        .map(|(i, p)| PeerPlan {
            name: p.name.clone(),
            kind: PeerKind::Host,
            public_key: p.public_key.clone(),
            allowed_ips: if i == 0 && !net.is_mesh() {
                whole_tunnel.clone()
            } else {
                p.advertised.clone()
            },
            endpoint: p
                .endpoint
                .as_ref()
                .map(|ep| ep.render(p.listen_port.unwrap_or(net.listen_port))),
            endpoints: Vec::new(),
            persistent_keepalive: net.keepalive,
            preshared_key_file: me.secret_file.clone(),
            description: p.description.clone(),
            owner: None,
            expires: None,
            rotation: None,
            staged: false,
            psk_rotation: None,
        })
        .collect();
    let addresses = interface_addresses(net, me);
    Some(ClientPlan {
        network: net.name.clone(),
        client: client.to_owned(),
        addresses,
        mtu: net.mtu,
        dns: me.dns.clone(),
        preshared_key_file: me.secret_file.clone(),
        peers,
    })
}

/// The firewall side of the flows for `me`: what is addressed to it, and, when it forwards, what
/// passes through it between others.
fn policy(net: &NetworkModel, me: &Peer) -> Option<Policy> {
    use crate::fleet::model::Party;
    use crate::flow_pairs::{pairs, prefixes};
    if net.flows.is_empty() {
        return None;
    }
    let mine = |party: &Party| match party {
        Party::Peer(n) => *n == me.name,
        Party::Cidr(c) => me.advertised.iter().any(|a| a.contains(c)),
    };
    let ports =
        |list: &[crate::fleet::syntax::PortSpec]| -> Vec<Option<crate::fleet::syntax::PortSpec>> {
            if list.is_empty() {
                vec![None]
            } else {
                list.iter().copied().map(Some).collect()
            }
        };
    let mut policy = Policy::default();
    for pair in pairs(net) {
        if mine(pair.to) {
            for src in prefixes(net, pair.from) {
                for port in ports(pair.ports) {
                    policy.input.push(FlowRule {
                        src,
                        dst: None,
                        port,
                    });
                }
            }
        } else if me.forwarding && !mine(pair.from) {
            for src in prefixes(net, pair.from) {
                for dst in prefixes(net, pair.to) {
                    for port in ports(pair.ports) {
                        policy.forward.push(FlowRule {
                            src,
                            dst: Some(dst),
                            port,
                        });
                    }
                }
            }
        }
    }
    Some(policy)
}

/// A peer's tunnel addresses with their subnet's prefix length (`10.50.0.1/24`).
fn interface_addresses(net: &NetworkModel, me: &Peer) -> Vec<IpNet> {
    let v4 = me
        .address
        .zip(net.subnet)
        .map(|(a, s)| IpNet::new_assert(a.into(), s.prefix_len()));
    let v6 = me
        .address6
        .zip(net.subnet6)
        .map(|(a, s)| IpNet::new_assert(a.into(), s.prefix_len()));
    v4.into_iter().chain(v6).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fleet::validate::{Options, validate};

    /// A fleet from JSON, validated at time 0; panics with the diagnostics if it is not valid.
    pub(crate) fn valid(json: serde_json::Value) -> ValidFleet {
        let fleet: crate::fleet::Fleet = serde_json::from_value(json).expect("fleet");
        let (valid, d) = validate(
            &fleet,
            Options {
                now: 0,
                expiry_warning: 0,
            },
        );
        valid.unwrap_or_else(|| panic!("{:?}", d.0))
    }

    /// A road-warrior server's phone: the network's MTU and DNS go into its file, as installers'
    /// client files have them; a client's own `dns` replaces the network's.
    #[test]
    fn a_client_file_carries_the_networks_mtu_and_dns() {
        let fleet = valid(serde_json::json!({
            "version": 1,
            "hosts": {"vpn": {"publicKey": "j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=",
                              "endpoint": "203.0.113.5"}},
            "networks": {"wg0": {
                "subnet": "10.7.0.0/24", "mtu": 1280, "clientDns": ["10.7.0.1", "fd07::1"],
                "topology": {"hubAndSpoke": {"hubs": ["vpn"]}},
                "members": {"vpn": {"id": 0}},
                "clients": {
                    "alice-phone": {"publicKey": "um/TOLbxUvqJwIOGdbFPn9uBh/Es4shlVXFlWyEYvng=", "id": 1},
                    "bob-laptop": {"publicKey": "cOW07yOnwkL6IrWiXjj2ZtKizAAu+k9RWgxFiIvoJwU=", "id": 2,
                                   "dns": ["9.9.9.9"]}}}}
        }));
        let net = &fleet.networks["wg0"];
        let alice =
            crate::render::render_client_config(&plan_client(net, "alice-phone", 0).unwrap())
                .unwrap();
        assert!(
            alice.contains("\nMTU = 1280\nDNS = 10.7.0.1, fd07::1\n"),
            "{alice}"
        );
        let bob = crate::render::render_client_config(&plan_client(net, "bob-laptop", 0).unwrap())
            .unwrap();
        assert!(bob.contains("\nMTU = 1280\nDNS = 9.9.9.9\n"), "{bob}");
        // The server itself gets no DNS line: clientDns is for the clients' files.
        let server =
            crate::render::render_config(&plan_interface(&fleet, net, "vpn", 0).unwrap()).unwrap();
        assert!(!server.contains("DNS"), "{server}");
    }
}
