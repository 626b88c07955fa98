//! The fleet as a picture: hosts, hubs and clients with their tunnel addresses and endpoints, the
//! tunnels WireGuard will really have (from the planned `[Peer]` tables, never from the topology
//! alone), the prefixes routed behind members, and the declared flows with their ports.
//!
//! Two outputs: Graphviz DOT for people who have Graphviz, and SVG laid out here, with no external
//! program. The layout is layered: hubs on top, spokes below, clients below them (rows wrap); a
//! small mesh sits on a circle. Text widths are estimated from an upper bound on a monospace
//! glyph's advance, so boxes always hold their text and never overlap; flow labels are placed
//! where they overlap no box and no other label.

mod dot;
mod layout;
mod svg;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use ipnet::IpNet;
use serde::Serialize;

use crate::fleet::model::{NetworkModel, Party, PeerKind, ValidFleet};
use crate::fleet::time::format_rfc3339;
use crate::plan;

pub use dot::{dot_quote, to_dot};
pub use layout::{CHAR_W, FONT_PX, LABEL_CHAR_W, LABEL_FONT_PX, columns};
pub use svg::{to_svg, xml_escape};

/// What `wgfleet graph` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT (`dot -Tsvg`, `dot -Tpng`, …)
    #[default]
    Dot,
    /// SVG, laid out by wgfleet itself
    Svg,
}

/// The whole picture: one graph per network, and the hosts that are in none.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Graph {
    pub networks: Vec<NetGraph>,
    /// Hosts of the fleet that are a member of no network (only when the whole fleet is drawn).
    pub unattached: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetGraph {
    pub name: String,
    /// `mesh` or `hubAndSpoke`.
    pub topology: &'static str,
    pub hubs: Vec<String>,
    pub subnets: Vec<IpNet>,
    pub listen_port: u16,
    /// Hubs first (in declared order), then the other members, then clients, each by address.
    pub nodes: Vec<Node>,
    /// Tunnels: a pair is linked when either side has the other as a `[Peer]`.
    pub links: Vec<Link>,
    /// Prefixes behind members (their routes) and prefixes that flows name.
    pub prefixes: Vec<Prefix>,
    pub flows: Vec<FlowEdge>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Hub,
    Spoke,
    /// A member of a mesh.
    Member,
    Client,
    /// A host of the fleet in no network.
    Idle,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Hub => "hub",
            Role::Spoke => "spoke",
            Role::Member => "member",
            Role::Client => "client",
            Role::Idle => "host",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub name: String,
    pub kind: PeerKind,
    pub role: Role,
    pub addresses: Vec<String>,
    /// Where the others dial it (`host:port`), for members with an endpoint.
    pub endpoint: Option<String>,
    /// Prefixes a spoke sends into the tunnel through its primary hub.
    pub reach: Vec<IpNet>,
    pub forwarding: bool,
    pub nat: bool,
    pub description: Option<String>,
    pub owner: Option<String>,
    /// RFC 3339.
    pub expires: Option<String>,
    /// An expired client is on no host: it has no tunnel.
    pub expired: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    /// The two ends, `a` before `b` in name order.
    pub a: String,
    pub b: String,
    /// `a`'s AllowedIPs for `b`; `None`: `a` does not have `b` as a peer (a one-sided tunnel).
    pub a_allowed_ips: Option<Vec<IpNet>>,
    pub b_allowed_ips: Option<Vec<IpNet>>,
    /// The ends that dial the other at its endpoint (the other learns the address from them).
    pub dialed_by: Vec<String>,
}

impl Link {
    pub fn one_sided(&self) -> bool {
        self.a_allowed_ips.is_none() || self.b_allowed_ips.is_none()
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Prefix {
    pub prefix: IpNet,
    /// The member the others route it to (`None`: no peer advertises it).
    pub behind: Option<String>,
    /// A route of `behind` (its `routes` or `allowedIPs`), rather than only named by a flow.
    pub route: bool,
}

/// Declared flows between two parties, merged; `from`/`to` name a node or a prefix.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowEdge {
    pub from: String,
    pub to: String,
    /// `8080/tcp`, `icmp`, …; empty: any port.
    pub ports: Vec<String>,
    /// Indexes of the flows in the fleet's `flows`.
    pub flows: Vec<usize>,
    /// One end is an expired client: the flow has no effect.
    pub expired: bool,
}

/// The graph of one network (`only`), or of the whole fleet.
pub fn build(fleet: &ValidFleet, only: Option<&str>, now: i64) -> Graph {
    let networks = fleet
        .networks
        .values()
        .filter(|n| only.is_none_or(|o| o == n.name))
        .map(|n| network(fleet, n, now))
        .collect();
    let unattached = if only.is_some() {
        Vec::new()
    } else {
        fleet
            .hosts
            .keys()
            .filter(|h| {
                !fleet
                    .networks
                    .values()
                    .any(|n| n.peers.get(*h).is_some_and(|p| p.kind == PeerKind::Host))
            })
            .cloned()
            .collect()
    };
    Graph {
        networks,
        unattached,
    }
}

fn network(fleet: &ValidFleet, net: &NetworkModel, now: i64) -> NetGraph {
    let mut peers: Vec<_> = net.peers.values().collect();
    let hub_rank = |name: &str| net.hubs.iter().position(|h| h == name);
    peers.sort_by_key(|p| {
        (
            hub_rank(&p.name).unwrap_or(usize::MAX),
            p.kind == PeerKind::Client,
            p.address.is_none(),
            p.address,
            p.address6,
            p.name.clone(),
        )
    });
    let nodes: Vec<Node> = peers
        .iter()
        .map(|p| {
            let role = match p.kind {
                PeerKind::Client => Role::Client,
                PeerKind::Host if net.is_mesh() => Role::Member,
                PeerKind::Host if net.is_hub(&p.name) => Role::Hub,
                PeerKind::Host => Role::Spoke,
            };
            let addresses = p
                .address
                .map(|a| a.to_string())
                .into_iter()
                .chain(p.address6.map(|a| a.to_string()))
                .collect();
            Node {
                name: p.name.clone(),
                kind: p.kind,
                role,
                addresses,
                endpoint: p
                    .endpoint
                    .as_ref()
                    .filter(|_| p.kind == PeerKind::Host)
                    .map(|e| e.render(p.listen_port.unwrap_or(net.listen_port))),
                reach: p.reach.clone(),
                forwarding: p.forwarding,
                nat: p.nat,
                description: p.description.clone(),
                owner: p.owner.clone(),
                expires: p.expires.map(format_rfc3339),
                expired: p.is_expired(now),
            }
        })
        .collect();

    // The tunnels, from the peer tables each side really gets.
    let mut links: BTreeMap<(String, String), Link> = BTreeMap::new();
    for p in &peers {
        let table = match p.kind {
            PeerKind::Host => plan::plan_interface(fleet, net, &p.name, now).map(|i| i.peers),
            PeerKind::Client => plan::plan_client(net, &p.name, now).map(|c| c.peers),
        };
        for other in table.into_iter().flatten() {
            let me_first = p.name <= other.name;
            let key = if me_first {
                (p.name.clone(), other.name.clone())
            } else {
                (other.name.clone(), p.name.clone())
            };
            let link = links.entry(key.clone()).or_insert_with(|| Link {
                a: key.0.clone(),
                b: key.1.clone(),
                a_allowed_ips: None,
                b_allowed_ips: None,
                dialed_by: Vec::new(),
            });
            if me_first {
                link.a_allowed_ips = Some(other.allowed_ips.clone());
            } else {
                link.b_allowed_ips = Some(other.allowed_ips.clone());
            }
            if other.endpoint.is_some() {
                link.dialed_by.push(p.name.clone());
                link.dialed_by.sort();
            }
        }
    }

    // Routed prefixes: what the others route to a member beyond its own addresses.
    let mut prefixes: Vec<Prefix> = Vec::new();
    for p in &peers {
        let own = p.host_prefixes();
        for adv in p.advertised.iter().filter(|a| !own.contains(a)) {
            prefixes.push(Prefix {
                prefix: *adv,
                behind: Some(p.name.clone()),
                route: true,
            });
        }
    }
    let owner_of = |c: &IpNet| {
        net.peers
            .values()
            .filter_map(|p| {
                p.advertised
                    .iter()
                    .filter(|a| a.contains(c))
                    .map(|a| a.prefix_len())
                    .max()
                    .map(|len| (len, p.name.clone()))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, name)| name)
    };
    let mut flows: Vec<FlowEdge> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    let mut any_port: Vec<bool> = Vec::new();
    let expired = |party: &Party| match party {
        Party::Peer(n) => net.peers.get(n).is_some_and(|p| p.is_expired(now)),
        Party::Cidr(_) => false,
    };
    for pair in crate::flow_pairs::pairs(net) {
        for party in [pair.from, pair.to] {
            if let Party::Cidr(c) = party
                && !prefixes.iter().any(|p| p.prefix == *c)
            {
                prefixes.push(Prefix {
                    prefix: *c,
                    behind: owner_of(c),
                    route: false,
                });
            }
        }
        let key = (pair.from.to_string(), pair.to.to_string());
        let i = *index.entry(key.clone()).or_insert_with(|| {
            flows.push(FlowEdge {
                from: key.0.clone(),
                to: key.1.clone(),
                ports: Vec::new(),
                flows: Vec::new(),
                expired: false,
            });
            flows.len() - 1
        });
        if any_port.len() <= i {
            any_port.push(false);
        }
        let edge = &mut flows[i];
        if !edge.flows.contains(&pair.flow) {
            edge.flows.push(pair.flow);
        }
        edge.expired |= expired(pair.from) || expired(pair.to);
        // A flow on any port makes the pair "any".
        any_port[i] |= pair.ports.is_empty();
        if any_port[i] {
            edge.ports.clear();
        } else {
            for port in pair.ports.iter().map(ToString::to_string) {
                if !edge.ports.contains(&port) {
                    edge.ports.push(port);
                }
            }
        }
    }

    NetGraph {
        name: net.name.clone(),
        topology: if net.is_mesh() { "mesh" } else { "hubAndSpoke" },
        hubs: net.hubs.clone(),
        subnets: net
            .subnet
            .map(IpNet::V4)
            .into_iter()
            .chain(net.subnet6.map(IpNet::V6))
            .collect(),
        listen_port: net.listen_port,
        nodes,
        links: links.into_values().collect(),
        prefixes,
        flows,
    }
}

impl NetGraph {
    fn title(&self) -> String {
        let topology = if self.topology == "mesh" {
            "mesh".to_owned()
        } else {
            format!("hub-and-spoke (hubs: {})", self.hubs.join(", "))
        };
        let subnets: Vec<String> = self.subnets.iter().map(ToString::to_string).collect();
        let mut t = format!("{} · {topology}", self.name);
        if !subnets.is_empty() {
            let _ = write!(t, " · {}", subnets.join(" "));
        }
        let _ = write!(t, " · UDP {}", self.listen_port);
        t
    }
}

impl Node {
    /// The lines of the node's card: name, role, addresses, endpoint, owner, expiry, description.
    fn lines(&self) -> Vec<(String, &'static str)> {
        let mut role = self.role.as_str().to_owned();
        if self.forwarding {
            role.push_str(" · forwarding");
        }
        if self.nat {
            role.push_str(" · nat");
        }
        let mut lines = vec![(self.name.clone(), "name"), (role, "role")];
        lines.extend(self.addresses.iter().map(|a| (a.clone(), "addr")));
        if let Some(ep) = &self.endpoint {
            lines.push((format!("endpoint {ep}"), "meta"));
        }
        for r in &self.reach {
            lines.push((format!("reach {r}"), "meta"));
        }
        if let Some(o) = &self.owner {
            lines.push((format!("owner {o}"), "meta"));
        }
        if let Some(e) = &self.expires {
            let word = if self.expired { "EXPIRED" } else { "expires" };
            lines.push((format!("{word} {e}"), "meta"));
        }
        if let Some(d) = &self.description {
            lines.push((truncate(d, 44), "desc"));
        }
        lines
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

// The palette, shared by DOT and SVG.

const HUB_FILL: &str = "#dbeafe";
const HUB_STROKE: &str = "#1d4ed8";
const HOST_FILL: &str = "#ecfdf5";
const HOST_STROKE: &str = "#047857";
const CLIENT_FILL: &str = "#fef3c7";
const CLIENT_STROKE: &str = "#b45309";
const EXPIRED_FILL: &str = "#f3f4f6";
const EXPIRED_STROKE: &str = "#6b7280";
const PREFIX_FILL: &str = "#f5f3ff";
const PREFIX_STROKE: &str = "#6d28d9";
const TUNNEL: &str = "#475569";
const FLOW: &str = "#c2410c";

fn colors(n: &Node) -> (&'static str, &'static str) {
    if n.expired {
        return (EXPIRED_FILL, EXPIRED_STROKE);
    }
    match n.role {
        Role::Hub => (HUB_FILL, HUB_STROKE),
        Role::Client => (CLIENT_FILL, CLIENT_STROKE),
        Role::Spoke | Role::Member | Role::Idle => (HOST_FILL, HOST_STROKE),
    }
}
