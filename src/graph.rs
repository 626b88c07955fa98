//! The fleet as a picture: hosts, hubs and clients with their tunnel addresses and endpoints, the
//! tunnels WireGuard will really have (from the planned `[Peer]` tables, never from the topology
//! alone), the prefixes routed behind members, and the declared flows with their ports.
//!
//! Two outputs: Graphviz DOT for people who have Graphviz, and SVG laid out here, with no external
//! program. The layout is layered: hubs on top, spokes below, clients below them (rows wrap); a
//! small mesh sits on a circle. Text widths are estimated from an upper bound on a monospace
//! glyph's advance, so boxes always hold their text and never overlap; flow labels are placed
//! where they overlap no box and no other label.

use std::collections::{BTreeMap, HashMap};
use std::f64::consts::{PI, SQRT_2};
use std::fmt::Write as _;

use ipnet::IpNet;
use serde::Serialize;

use crate::fleet::model::{NetworkModel, Party, PeerKind, ValidFleet};
use crate::fleet::time::format_rfc3339;
use crate::plan;

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
    for pair in crate::access::pairs(net) {
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

// ---------------------------------------------------------------------------------------------
// Escaping

/// Text for XML content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A DOT double-quoted string (ID or label), quotes included.
pub fn dot_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------------
// DOT

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

/// Graphviz DOT: one cluster per network; tunnels undirected, routes dotted, flows as dashed
/// arrows labelled with their ports.
pub fn to_dot(g: &Graph) -> String {
    let mut o = String::new();
    o.push_str("// wgfleet graph: tunnels are the [Peer] entries WireGuard will have.\n");
    o.push_str("// Render with: dot -Tsvg fleet.dot > fleet.svg\n");
    o.push_str("digraph wgfleet {\n");
    o.push_str("  graph [fontname=\"monospace\", fontsize=12, compound=true, newrank=true, nodesep=0.4, ranksep=0.8];\n");
    o.push_str(
        "  node [fontname=\"monospace\", fontsize=12, shape=box, style=\"rounded,filled\"];\n",
    );
    o.push_str("  edge [fontname=\"monospace\", fontsize=10];\n");
    for net in &g.networks {
        let id = |name: &str| dot_quote(&format!("{}/{name}", net.name));
        let _ = writeln!(
            o,
            "  subgraph {} {{",
            dot_quote(&format!("cluster_{}", net.name))
        );
        let _ = writeln!(o, "    label={};", dot_quote(&net.title()));
        o.push_str("    labeljust=l;\n");
        if net.topology == "mesh" {
            o.push_str("    // mesh: every member peers with every other (try: circo)\n");
        }
        for n in &net.nodes {
            let (fill, stroke) = colors(n);
            let label: Vec<String> = n.lines().into_iter().map(|(l, _)| l).collect();
            let mut style = "rounded,filled".to_owned();
            if n.role == Role::Hub {
                style.push_str(",bold");
            }
            if n.expired {
                style.push_str(",dashed");
            }
            let _ = writeln!(
                o,
                "    {} [label={}, fillcolor=\"{fill}\", color=\"{stroke}\", style=\"{style}\"];",
                id(&n.name),
                dot_quote(&label.join("\n"))
            );
        }
        for p in &net.prefixes {
            let _ = writeln!(
                o,
                "    {} [label={}, shape=folder, style=filled, fillcolor=\"{PREFIX_FILL}\", color=\"{PREFIX_STROKE}\"];",
                id(&p.prefix.to_string()),
                dot_quote(&p.prefix.to_string())
            );
        }
        let ranks = [
            (Role::Hub, "min"),
            (Role::Spoke, "same"),
            (Role::Client, "same"),
        ];
        for (role, rank) in ranks {
            let members: Vec<String> = net
                .nodes
                .iter()
                .filter(|n| n.role == role)
                .map(|n| id(&n.name))
                .collect();
            if !members.is_empty() && net.topology != "mesh" {
                let _ = writeln!(o, "    {{ rank={rank}; {}; }}", members.join("; "));
            }
        }
        for l in &net.links {
            let mut attrs = format!("dir=none, color=\"{TUNNEL}\", penwidth=1.5");
            if l.one_sided() {
                let (has, lacks) = if l.a_allowed_ips.is_some() {
                    (&l.a, &l.b)
                } else {
                    (&l.b, &l.a)
                };
                let _ = write!(
                    attrs,
                    ", style=dashed, color=\"#dc2626\", tooltip={}",
                    dot_quote(&format!("only {has} has {lacks} as a peer"))
                );
            }
            let _ = writeln!(o, "    {} -> {} [{attrs}];", id(&l.a), id(&l.b));
        }
        for p in &net.prefixes {
            if let Some(behind) = &p.behind {
                let _ = writeln!(
                    o,
                    "    {} -> {} [dir=none, style=dotted, color=\"{PREFIX_STROKE}\"];",
                    id(behind),
                    id(&p.prefix.to_string())
                );
            }
        }
        for f in &net.flows {
            let label = if f.ports.is_empty() {
                "any".to_owned()
            } else {
                f.ports.join(", ")
            };
            let color = if f.expired { EXPIRED_STROKE } else { FLOW };
            let _ = writeln!(
                o,
                "    {} -> {} [label={}, color=\"{color}\", fontcolor=\"{color}\", style=dashed, constraint=false];",
                id(&f.from),
                id(&f.to),
                dot_quote(&label)
            );
        }
        o.push_str("  }\n");
    }
    if !g.unattached.is_empty() {
        o.push_str("  subgraph \"cluster_no_network\" {\n");
        o.push_str("    label=\"hosts in no network\";\n");
        for h in &g.unattached {
            let _ = writeln!(
                o,
                "    {} [label={}, fillcolor=\"{HOST_FILL}\", color=\"{HOST_STROKE}\"];",
                dot_quote(h),
                dot_quote(h)
            );
        }
        o.push_str("  }\n");
    }
    o.push_str("}\n");
    o
}

// ---------------------------------------------------------------------------------------------
// Geometry

/// Card text size in px.
pub const FONT_PX: f64 = 12.0;
/// An upper bound on the advance of one 12 px monospace glyph (DejaVu Sans Mono: 7.22 px,
/// Liberation Mono and Courier: 7.2 px): box widths are estimated from it.
pub const CHAR_W: f64 = 7.5;
/// Flow label text size, and its glyph advance bound.
pub const LABEL_FONT_PX: f64 = 11.0;
pub const LABEL_CHAR_W: f64 = 6.9;
const LINE_H: f64 = 16.0;
const PAD_X: f64 = 10.0;
const PAD_Y: f64 = 6.0;
const H_GAP: f64 = 40.0;
const ROW_GAP: f64 = 80.0;
const GROUP_GAP: f64 = 120.0;
const PREFIX_GAP: f64 = 18.0;
const MAX_ROW_W: f64 = 1160.0;
/// Meshes up to this size go on a circle with every tunnel drawn; larger ones go in rows.
const MESH_CIRCLE_MAX: usize = 24;
const MARGIN: f64 = 20.0;
const TITLE_H: f64 = 30.0;
const PANEL_GAP: f64 = 24.0;

/// Columns a string takes in a monospace font (East Asian wide characters and emoji take two).
pub fn columns(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let u = c as u32;
            let wide = matches!(u,
                0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF
                | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x1F300..=0x1FAFF
                | 0x20000..=0x3FFFD);
            if wide { 2 } else { 1 }
        })
        .sum()
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Rect {
    fn centered(cx: f64, cy: f64, w: f64, h: f64) -> Rect {
        Rect {
            x: cx - w / 2.0,
            y: cy - h / 2.0,
            w,
            h,
        }
    }
    fn cx(&self) -> f64 {
        self.x + self.w / 2.0
    }
    fn cy(&self) -> f64 {
        self.y + self.h / 2.0
    }
    fn right(&self) -> f64 {
        self.x + self.w
    }
    fn bottom(&self) -> f64 {
        self.y + self.h
    }
    fn overlaps(&self, o: &Rect, margin: f64) -> bool {
        self.x - margin < o.right()
            && o.x - margin < self.right()
            && self.y - margin < o.bottom()
            && o.y - margin < self.bottom()
    }
    fn shift(&self, dx: f64, dy: f64) -> Rect {
        Rect {
            x: self.x + dx,
            y: self.y + dy,
            ..*self
        }
    }
    /// Where the ray from the centre towards `(tx, ty)` leaves the box.
    fn border_towards(&self, tx: f64, ty: f64) -> (f64, f64) {
        let (cx, cy) = (self.cx(), self.cy());
        let (dx, dy) = (tx - cx, ty - cy);
        if dx.abs() < 1e-9 && dy.abs() < 1e-9 {
            return (cx, cy);
        }
        let sx = if dx.abs() > 1e-9 {
            self.w / 2.0 / dx.abs()
        } else {
            f64::INFINITY
        };
        let sy = if dy.abs() > 1e-9 {
            self.h / 2.0 / dy.abs()
        } else {
            f64::INFINITY
        };
        let s = sx.min(sy).min(1.0);
        (cx + dx * s, cy + dy * s)
    }
}

/// Occupied rectangles, bucketed on a grid so a collision test looks at a few neighbours only.
struct Occupancy {
    cell: f64,
    buckets: HashMap<(i64, i64), Vec<usize>>,
    rects: Vec<Rect>,
}

impl Occupancy {
    fn new() -> Self {
        Occupancy {
            cell: 128.0,
            buckets: HashMap::new(),
            rects: Vec::new(),
        }
    }
    fn cells(&self, r: &Rect) -> impl Iterator<Item = (i64, i64)> + use<> {
        let (x0, x1) = (
            (r.x / self.cell).floor() as i64,
            (r.right() / self.cell).floor() as i64,
        );
        let (y0, y1) = (
            (r.y / self.cell).floor() as i64,
            (r.bottom() / self.cell).floor() as i64,
        );
        (x0..=x1).flat_map(move |x| (y0..=y1).map(move |y| (x, y)))
    }
    fn insert(&mut self, r: Rect) {
        let i = self.rects.len();
        self.rects.push(r);
        let grown = Rect {
            x: r.x - 4.0,
            y: r.y - 4.0,
            w: r.w + 8.0,
            h: r.h + 8.0,
        };
        for c in self.cells(&grown).collect::<Vec<_>>() {
            self.buckets.entry(c).or_default().push(i);
        }
    }
    fn collides(&self, r: &Rect, margin: f64) -> bool {
        self.cells(r).any(|c| {
            self.buckets
                .get(&c)
                .is_some_and(|v| v.iter().any(|&i| self.rects[i].overlaps(r, margin)))
        })
    }
}

/// A card: lines of text in a box sized to hold them.
struct Card {
    lines: Vec<(String, &'static str)>,
    w: f64,
    h: f64,
}

impl Card {
    fn new(lines: Vec<(String, &'static str)>) -> Card {
        let cols = lines.iter().map(|(l, _)| columns(l)).max().unwrap_or(0);
        Card {
            w: (cols as f64 * CHAR_W + 2.0 * PAD_X).ceil(),
            h: lines.len() as f64 * LINE_H + 2.0 * PAD_Y,
            lines,
        }
    }
}

/// A member with the prefixes behind it stacked below: placed as one block.
struct Unit {
    node: Option<usize>,
    prefixes: Vec<usize>,
    w: f64,
    h: f64,
}

type Pt = (f64, f64);

/// A tunnel line between two node borders.
struct Tunnel {
    a: Pt,
    b: Pt,
    one_sided: bool,
    title: String,
}

struct FlowGeom {
    from: (f64, f64),
    ctrl: (f64, f64),
    to: (f64, f64),
    label: Option<(Rect, String)>,
    expired: bool,
    title: String,
}

/// One network's picture, in its own coordinates with (0, 0) at the panel's top left.
struct Panel {
    title: String,
    net: String,
    w: f64,
    h: f64,
    nodes: Vec<Rect>,
    node_cards: Vec<Card>,
    prefixes: Vec<Rect>,
    prefix_cards: Vec<Card>,
    tunnels: Vec<Tunnel>,
    routes: Vec<((f64, f64), (f64, f64))>,
    flows: Vec<FlowGeom>,
    notes: Vec<String>,
}

fn rows_of(units: &[usize], all: &[Unit]) -> Vec<Vec<usize>> {
    let mut rows: Vec<Vec<usize>> = Vec::new();
    let mut width = 0.0;
    for &u in units {
        let w = all[u].w;
        match rows.last_mut() {
            Some(row) if width + H_GAP + w <= MAX_ROW_W => {
                row.push(u);
                width += H_GAP + w;
            }
            _ => {
                rows.push(vec![u]);
                width = w;
            }
        }
    }
    rows
}

/// Places groups of units in centred rows from `y`; returns the y below the last row.
fn place_rows(groups: &[Vec<usize>], units: &[Unit], y: f64, at: &mut [(f64, f64)]) -> f64 {
    let mut y = y;
    let mut first = true;
    for group in groups.iter().filter(|g| !g.is_empty()) {
        if !first {
            y += GROUP_GAP - ROW_GAP;
        }
        for row in rows_of(group, units) {
            if !first {
                y += ROW_GAP;
            }
            first = false;
            let width: f64 =
                row.iter().map(|&u| units[u].w).sum::<f64>() + H_GAP * (row.len() - 1) as f64;
            let mut x = -width / 2.0;
            let mut height: f64 = 0.0;
            for &u in &row {
                at[u] = (x, y);
                x += units[u].w + H_GAP;
                height = height.max(units[u].h);
            }
            y += height;
        }
    }
    y
}

fn layout_panel(net: &NetGraph) -> Panel {
    let node_cards: Vec<Card> = net.nodes.iter().map(|n| Card::new(n.lines())).collect();
    let prefix_cards: Vec<Card> = net
        .prefixes
        .iter()
        .map(|p| {
            let kind = if p.route { "routed prefix" } else { "prefix" };
            Card::new(vec![(p.prefix.to_string(), "name"), (kind.into(), "role")])
        })
        .collect();
    let node_index: HashMap<&str, usize> = net
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();

    // Units: each node with the prefixes behind it; prefixes behind nobody stand alone.
    let mut units: Vec<Unit> = net
        .nodes
        .iter()
        .enumerate()
        .map(|(i, _)| Unit {
            node: Some(i),
            prefixes: Vec::new(),
            w: 0.0,
            h: 0.0,
        })
        .collect();
    for (j, p) in net.prefixes.iter().enumerate() {
        match p.behind.as_deref().and_then(|b| node_index.get(b)) {
            Some(&i) => units[i].prefixes.push(j),
            None => units.push(Unit {
                node: None,
                prefixes: vec![j],
                w: 0.0,
                h: 0.0,
            }),
        }
    }
    for u in &mut units {
        let mut w: f64 = 0.0;
        let mut h: f64 = 0.0;
        if let Some(i) = u.node {
            w = node_cards[i].w;
            h = node_cards[i].h;
        }
        for &j in &u.prefixes {
            w = w.max(prefix_cards[j].w);
            if h > 0.0 {
                h += PREFIX_GAP;
            }
            h += prefix_cards[j].h;
        }
        u.w = w;
        u.h = h;
    }

    let role_of = |u: &Unit| u.node.map(|i| net.nodes[i].role);
    let pick = |f: &dyn Fn(Option<Role>) -> bool| -> Vec<usize> {
        (0..units.len())
            .filter(|&u| f(role_of(&units[u])))
            .collect()
    };
    let hubs = pick(&|r| r == Some(Role::Hub));
    let hosts = pick(&|r| matches!(r, Some(Role::Spoke | Role::Member | Role::Idle)));
    let clients = pick(&|r| r == Some(Role::Client));
    let loose = pick(&|r| r.is_none());

    let mut at = vec![(0.0, 0.0); units.len()];
    let mesh = net.topology == "mesh";
    let circle = mesh && (2..=MESH_CIRCLE_MAX).contains(&hosts.len());
    let mut notes = Vec::new();
    if circle {
        let n = hosts.len() as f64;
        // Each node's centre goes on the circle; its unit (with the prefixes below it) fits in a
        // box centred there, as wide as the unit and twice as tall as its lower part.
        let node_h = |u: usize| units[u].node.map_or(0.0, |i| node_cards[i].h);
        let m = hosts
            .iter()
            .map(|&u| units[u].w.max(2.0 * (units[u].h - node_h(u) / 2.0)))
            .fold(0.0, f64::max);
        // Centres at least √2·(widest side) + gap apart: then along x or y they are separated
        // by more than any two half-widths, so no two boxes overlap. That bound is loose; the
        // boxes only move apart as the radius grows, so search the smallest radius that keeps
        // every pair a gap apart, below it.
        let unit_at = |u: usize, k: usize, r: f64| {
            let a = -PI / 2.0 + 2.0 * PI * k as f64 / n;
            Rect {
                x: r * a.cos() - units[u].w / 2.0,
                y: r * a.sin() - node_h(u) / 2.0,
                w: units[u].w,
                h: units[u].h,
            }
        };
        let fits = |r: f64| {
            let placed: Vec<Rect> = hosts
                .iter()
                .enumerate()
                .map(|(k, &u)| unit_at(u, k, r))
                .collect();
            placed
                .iter()
                .enumerate()
                .all(|(i, a)| placed[i + 1..].iter().all(|b| !a.overlaps(b, H_GAP * 0.75)))
        };
        let (mut lo, mut hi) = (
            60.0,
            ((SQRT_2 * m + H_GAP) / (2.0 * (PI / n).sin())).max(90.0),
        );
        for _ in 0..40 {
            let mid = (lo + hi) / 2.0;
            if fits(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        let r = hi.ceil();
        let mut bottom: f64 = f64::MIN;
        for (k, &u) in hosts.iter().enumerate() {
            let a = -PI / 2.0 + 2.0 * PI * k as f64 / n;
            let (cx, cy) = (r * a.cos(), r * a.sin());
            at[u] = (cx - units[u].w / 2.0, cy - node_h(u) / 2.0);
            bottom = bottom.max(cy - node_h(u) / 2.0 + units[u].h);
        }
        place_rows(&[clients, loose], &units, bottom + GROUP_GAP, &mut at);
    } else {
        if mesh && hosts.len() > MESH_CIRCLE_MAX {
            notes.push(format!(
                "full mesh of {} members: {} tunnels, not drawn one by one",
                hosts.len(),
                hosts.len() * (hosts.len() - 1) / 2
            ));
        }
        place_rows(&[hubs, hosts, clients, loose], &units, 0.0, &mut at);
    }

    // Concrete boxes.
    let mut nodes = vec![
        Rect {
            x: 0.0,
            y: 0.0,
            w: 0.0,
            h: 0.0
        };
        net.nodes.len()
    ];
    let mut prefixes = vec![
        Rect {
            x: 0.0,
            y: 0.0,
            w: 0.0,
            h: 0.0
        };
        net.prefixes.len()
    ];
    for (u, unit) in units.iter().enumerate() {
        let (x, mut y) = at[u];
        let cx = x + unit.w / 2.0;
        if let Some(i) = unit.node {
            nodes[i] = Rect::centered(
                cx,
                y + node_cards[i].h / 2.0,
                node_cards[i].w,
                node_cards[i].h,
            );
            y += node_cards[i].h + PREFIX_GAP;
        }
        for &j in &unit.prefixes {
            prefixes[j] = Rect::centered(
                cx,
                y + prefix_cards[j].h / 2.0,
                prefix_cards[j].w,
                prefix_cards[j].h,
            );
            y += prefix_cards[j].h + PREFIX_GAP;
        }
    }

    let mut occupied = Occupancy::new();
    for r in nodes.iter().chain(&prefixes) {
        occupied.insert(*r);
    }

    let draw_tunnels = !mesh || circle;
    let mut tunnels = Vec::new();
    if draw_tunnels {
        for l in &net.links {
            let (Some(&a), Some(&b)) = (node_index.get(l.a.as_str()), node_index.get(l.b.as_str()))
            else {
                continue;
            };
            let (ra, rb) = (nodes[a], nodes[b]);
            let title = if l.one_sided() {
                let (has, lacks) = if l.a_allowed_ips.is_some() {
                    (&l.a, &l.b)
                } else {
                    (&l.b, &l.a)
                };
                format!("one-sided: only {has} has {lacks} as a peer")
            } else {
                format!("tunnel {} ↔ {}", l.a, l.b)
            };
            tunnels.push(Tunnel {
                a: ra.border_towards(rb.cx(), rb.cy()),
                b: rb.border_towards(ra.cx(), ra.cy()),
                one_sided: l.one_sided(),
                title,
            });
        }
    }
    let mut routes = Vec::new();
    for unit in &units {
        let mut above = unit.node.map(|i| nodes[i]);
        for &j in &unit.prefixes {
            if let Some(r) = above {
                routes.push(((r.cx(), r.bottom()), (prefixes[j].cx(), prefixes[j].y)));
            }
            above = Some(prefixes[j]);
        }
    }

    // Flows: quadratic curves bent to their left, so the two directions of a pair separate.
    let rect_of = |id: &str| -> Option<Rect> {
        if let Some(&i) = node_index.get(id) {
            return Some(nodes[i]);
        }
        net.prefixes
            .iter()
            .position(|p| p.prefix.to_string() == id)
            .map(|j| prefixes[j])
    };
    let mut flows = Vec::new();
    for f in &net.flows {
        let (Some(ra), Some(rb)) = (rect_of(&f.from), rect_of(&f.to)) else {
            continue;
        };
        let (from, ctrl, to, (px, py)) = route_flow(&ra, &rb, &occupied);
        let text = if f.ports.is_empty() {
            "any".to_owned()
        } else {
            f.ports.join(", ")
        };
        let (lw, lh) = (
            (columns(&text) as f64 * LABEL_CHAR_W + 8.0).ceil(),
            LABEL_FONT_PX + 5.0,
        );
        let mut label = None;
        'search: for t in [
            0.5, 0.42, 0.58, 0.34, 0.66, 0.26, 0.74, 0.18, 0.82, 0.1, 0.9,
        ] {
            let (x, y) = bezier(from, ctrl, to, t);
            for off in [0.0, 12.0, -12.0, 24.0, -24.0, 36.0, -36.0, 48.0, -48.0] {
                let r = Rect::centered(x + px * off, y + py * off, lw, lh);
                if !occupied.collides(&r, 3.0) {
                    occupied.insert(r);
                    label = Some((r, text.clone()));
                    break 'search;
                }
            }
        }
        let title = format!("flow {} → {}: {text}", f.from, f.to);
        if label.is_none() {
            notes.push(format!("unlabelled arrow: {} → {}: {text}", f.from, f.to));
        }
        flows.push(FlowGeom {
            from,
            ctrl,
            to,
            label,
            expired: f.expired,
            title,
        });
    }

    // The content's extent, then everything moved below the title.
    let mut min = (f64::MAX, f64::MAX);
    let mut max = (f64::MIN, f64::MIN);
    let mut grow = |x: f64, y: f64| {
        min = (min.0.min(x), min.1.min(y));
        max = (max.0.max(x), max.1.max(y));
    };
    for r in nodes
        .iter()
        .chain(&prefixes)
        .chain(flows.iter().filter_map(|f| f.label.as_ref().map(|l| &l.0)))
    {
        grow(r.x, r.y);
        grow(r.right(), r.bottom());
    }
    for f in &flows {
        for i in 0..=16 {
            let (x, y) = bezier(f.from, f.ctrl, f.to, f64::from(i) / 16.0);
            grow(x, y);
        }
    }
    if min.0 > max.0 {
        min = (0.0, 0.0);
        max = (0.0, 0.0);
    }
    let title = if net.name.is_empty() {
        "hosts in no network".to_owned()
    } else {
        net.title()
    };
    let (dx, dy) = (MARGIN - min.0, TITLE_H + MARGIN - min.1);
    let content_w = max.0 - min.0;
    let notes_h = notes.len() as f64 * LINE_H;
    let text_w = std::iter::once(&title)
        .chain(&notes)
        .map(|t| columns(t) as f64 * CHAR_W)
        .fold(0.0, f64::max);
    let w = (content_w.max(text_w) + 2.0 * MARGIN).ceil();
    // Centre narrow content under a wide title.
    let dx = dx + ((w - 2.0 * MARGIN - content_w) / 2.0).max(0.0);
    let h = (TITLE_H + MARGIN + (max.1 - min.1) + MARGIN + notes_h).ceil();
    let mv = |p: (f64, f64)| (p.0 + dx, p.1 + dy);
    Panel {
        title,
        net: net.name.clone(),
        w,
        h,
        nodes: nodes.iter().map(|r| r.shift(dx, dy)).collect(),
        node_cards,
        prefixes: prefixes.iter().map(|r| r.shift(dx, dy)).collect(),
        prefix_cards,
        tunnels: tunnels
            .into_iter()
            .map(|t| Tunnel {
                a: mv(t.a),
                b: mv(t.b),
                ..t
            })
            .collect(),
        routes: routes.into_iter().map(|(a, b)| (mv(a), mv(b))).collect(),
        flows: flows
            .into_iter()
            .map(|f| FlowGeom {
                from: mv(f.from),
                ctrl: mv(f.ctrl),
                to: mv(f.to),
                label: f.label.map(|(r, t)| (r.shift(dx, dy), t)),
                ..f
            })
            .collect(),
        notes,
    }
}

fn bezier(p0: (f64, f64), c: (f64, f64), p2: (f64, f64), t: f64) -> (f64, f64) {
    let s = 1.0 - t;
    (
        s * s * p0.0 + 2.0 * s * t * c.0 + t * t * p2.0,
        s * s * p0.1 + 2.0 * s * t * c.1 + t * t * p2.1,
    )
}

/// A flow arrow from box `a` to box `b`: a quadratic curve bent to its left (so the two
/// directions of a pair separate), or more, or to the other side, until it crosses no other box.
/// Returns the start, control point, end, and the unit normal it was bent along.
fn route_flow(a: &Rect, b: &Rect, occupied: &Occupancy) -> (Pt, Pt, Pt, Pt) {
    let (ax, ay, bx, by) = (a.cx(), a.cy(), b.cx(), b.cy());
    let (dx, dy) = (bx - ax, by - ay);
    let len = (dx * dx + dy * dy).sqrt().max(1.0);
    let (px, py) = (dy / len, -dx / len);
    let base = (0.18 * len).clamp(24.0, 90.0);
    let mut best = None;
    for k in [1.0, -1.0, 1.8, -1.8, 2.8, -2.8, 4.0, -4.0] {
        let bend = base * k;
        let (mx, my) = ((ax + bx) / 2.0 + px * bend, (ay + by) / 2.0 + py * bend);
        let from = a.border_towards(mx, my);
        let to = b.border_towards(mx, my);
        // The control point that makes the curve pass through (mx, my) at t = 0.5.
        let ctrl = (
            2.0 * mx - (from.0 + to.0) / 2.0,
            2.0 * my - (from.1 + to.1) / 2.0,
        );
        let hits = (1..40)
            .map(|i| bezier(from, ctrl, to, f64::from(i) / 40.0))
            .filter(|&(x, y)| {
                let dot = Rect::centered(x, y, 2.0, 2.0);
                !dot.overlaps(a, 4.0) && !dot.overlaps(b, 4.0) && occupied.collides(&dot, 2.0)
            })
            .count();
        let sign = k.signum();
        if hits == 0 {
            return (from, ctrl, to, (px * sign, py * sign));
        }
        if best.as_ref().is_none_or(|(h, _)| hits < *h) {
            best = Some((hits, (from, ctrl, to, (px * sign, py * sign))));
        }
    }
    best.map(|(_, r)| r)
        .unwrap_or(((ax, ay), (ax, ay), (bx, by), (px, py)))
}

fn n(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

const SVG_STYLE: &str = "
svg.wgfleet { background: #ffffff; }
svg.wgfleet text { font-family: 'DejaVu Sans Mono', 'Liberation Mono', Menlo, Consolas, monospace; font-size: 12px; fill: #111827; }
svg.wgfleet .panel > rect.frame { fill: #ffffff; stroke: #cbd5e1; stroke-width: 1; }
svg.wgfleet .panel > text.title { font-weight: bold; font-size: 13px; }
svg.wgfleet .panel > text.note { fill: #475569; font-style: italic; }
svg.wgfleet .node rect, svg.wgfleet .prefix rect { stroke-width: 1.5; }
svg.wgfleet .node.hub rect { stroke-width: 3; }
svg.wgfleet .node.client rect { stroke-dasharray: 6 3; }
svg.wgfleet .node.expired rect { stroke-dasharray: 2 3; }
svg.wgfleet .node.expired text { fill: #6b7280; }
svg.wgfleet text.name { font-weight: bold; }
svg.wgfleet text.role, svg.wgfleet text.meta { fill: #374151; }
svg.wgfleet text.desc { font-style: italic; fill: #374151; }
svg.wgfleet .tunnel { stroke: #475569; stroke-width: 1.5; fill: none; }
svg.wgfleet .tunnel.one-sided { stroke: #dc2626; stroke-dasharray: 5 4; }
svg.wgfleet .route { stroke: #6d28d9; stroke-width: 1.5; stroke-dasharray: 2 3; fill: none; }
svg.wgfleet .flow path { stroke: #c2410c; stroke-width: 1.5; stroke-dasharray: 7 4; fill: none; }
svg.wgfleet .flow.expired path { stroke: #9ca3af; }
svg.wgfleet .label rect { fill: #fff7ed; stroke: #c2410c; stroke-width: 0.8; }
svg.wgfleet .label text { font-size: 11px; fill: #9a3412; }
svg.wgfleet .legend text { font-size: 11px; }
";

/// The legend row: (class of the swatch, text).
const LEGEND: [(&str, &str); 8] = [
    ("hub", "hub"),
    ("host", "spoke / mesh member"),
    ("client", "client"),
    ("expired", "expired client"),
    ("prefix", "routed prefix"),
    ("tunnel", "tunnel"),
    ("route", "route"),
    ("flow", "flow (ports)"),
];

/// The SVG picture of the graph, laid out here. Every node is a
/// `<g class="node" data-x data-y data-w data-h>` (its box), every flow label a
/// `<g class="label" …>` likewise, so tools and tests can read the geometry back.
pub fn to_svg(g: &Graph) -> String {
    let mut panels: Vec<Panel> = g.networks.iter().map(layout_panel).collect();
    if !g.unattached.is_empty() {
        let idle = NetGraph {
            name: String::new(),
            topology: "none",
            hubs: Vec::new(),
            subnets: Vec::new(),
            listen_port: 0,
            nodes: g
                .unattached
                .iter()
                .map(|h| Node {
                    name: h.clone(),
                    kind: PeerKind::Host,
                    role: Role::Idle,
                    addresses: Vec::new(),
                    endpoint: None,
                    reach: Vec::new(),
                    forwarding: false,
                    nat: false,
                    description: None,
                    owner: None,
                    expires: None,
                    expired: false,
                })
                .collect(),
            links: Vec::new(),
            prefixes: Vec::new(),
            flows: Vec::new(),
        };
        panels.push(layout_panel(&idle));
    }
    let legend_w: f64 = LEGEND
        .iter()
        .map(|(_, t)| 34.0 + columns(t) as f64 * LABEL_CHAR_W + 18.0)
        .sum();
    let width = panels
        .iter()
        .map(|p| p.w)
        .fold(legend_w + 2.0 * MARGIN, f64::max)
        .ceil()
        + 2.0 * MARGIN;
    let panels_h: f64 = panels.iter().map(|p| p.h + PANEL_GAP).sum();
    let height = (MARGIN + panels_h + 30.0 + MARGIN).ceil();

    let hosts: usize = g
        .networks
        .iter()
        .flat_map(|n| &n.nodes)
        .filter(|n| n.kind == PeerKind::Host)
        .map(|n| &n.name)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        + g.unattached.len();
    let clients = g
        .networks
        .iter()
        .flat_map(|n| &n.nodes)
        .filter(|n| n.kind == PeerKind::Client)
        .count();
    let tunnels: usize = g.networks.iter().map(|n| n.links.len()).sum();
    let flows: usize = g.networks.iter().map(|n| n.flows.len()).sum();

    let mut o = String::with_capacity(4096 + 700 * (hosts + clients) + 200 * tunnels);
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"wgfleet\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-labelledby=\"wgfleet-graph-title wgfleet-graph-desc\">",
        w = n(width),
        h = n(height)
    );
    let _ = writeln!(
        o,
        "<title id=\"wgfleet-graph-title\">WireGuard fleet topology</title>\n<desc id=\"wgfleet-graph-desc\">{} network(s), {hosts} host(s), {clients} client(s), {tunnels} tunnel(s), {flows} flow arrow(s). Hubs on top, spokes below, clients at the bottom; a mesh on a circle.</desc>",
        g.networks.len()
    );
    let _ = writeln!(o, "<style>{SVG_STYLE}</style>");
    o.push_str("<defs><marker id=\"wgfleet-arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#c2410c\"/></marker>");
    o.push_str("<marker id=\"wgfleet-arrow-expired\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#9ca3af\"/></marker></defs>\n");
    let _ = writeln!(
        o,
        "<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>",
        n(width),
        n(height)
    );

    let mut y = MARGIN;
    for (pi, p) in panels.iter().enumerate() {
        // Content centred in a frame as wide as the widest panel.
        let (fx, oy) = (MARGIN, y);
        let ox = fx + ((width - 2.0 * MARGIN - p.w) / 2.0).max(0.0).floor();
        let net = g.networks.get(pi);
        let _ = writeln!(
            o,
            "<g class=\"panel\" data-network=\"{}\">",
            xml_escape(&p.net)
        );
        let _ = writeln!(
            o,
            "<rect class=\"frame\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\"/>",
            n(fx),
            n(oy),
            n(width - 2.0 * MARGIN),
            n(p.h)
        );
        let _ = writeln!(
            o,
            "<text class=\"title\" x=\"{}\" y=\"{}\">{}</text>",
            n(fx + MARGIN),
            n(oy + 20.0),
            xml_escape(&p.title)
        );
        for t in &p.tunnels {
            let _ = writeln!(
                o,
                "<line class=\"tunnel{}\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"><title>{}</title></line>",
                if t.one_sided { " one-sided" } else { "" },
                n(t.a.0 + ox),
                n(t.a.1 + oy),
                n(t.b.0 + ox),
                n(t.b.1 + oy),
                xml_escape(&t.title)
            );
        }
        for (a, b) in &p.routes {
            let _ = writeln!(
                o,
                "<line class=\"route\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
                n(a.0 + ox),
                n(a.1 + oy),
                n(b.0 + ox),
                n(b.1 + oy)
            );
        }
        for f in &p.flows {
            let _ = writeln!(
                o,
                "<g class=\"flow{}\"><title>{}</title><path d=\"M{},{} Q{},{} {},{}\" marker-end=\"url(#wgfleet-arrow{})\"/></g>",
                if f.expired { " expired" } else { "" },
                xml_escape(&f.title),
                n(f.from.0 + ox),
                n(f.from.1 + oy),
                n(f.ctrl.0 + ox),
                n(f.ctrl.1 + oy),
                n(f.to.0 + ox),
                n(f.to.1 + oy),
                if f.expired { "-expired" } else { "" },
            );
        }
        for (i, (r, card)) in p.nodes.iter().zip(&p.node_cards).enumerate() {
            let node: &Node = match net {
                Some(net) => &net.nodes[i],
                None => {
                    // The panel of hosts in no network.
                    let r = r.shift(ox, oy);
                    write_card(
                        &mut o,
                        &r,
                        card,
                        &format!(
                            "node host idle\" data-name=\"{}\" data-network=\"\" data-kind=\"host\" data-role=\"host",
                            xml_escape(&g.unattached[i])
                        ),
                        HOST_FILL,
                        HOST_STROKE,
                        "host in no network",
                    );
                    continue;
                }
            };
            let r = r.shift(ox, oy);
            let (fill, stroke) = colors(node);
            let kind = match node.kind {
                PeerKind::Host => "host",
                PeerKind::Client => "client",
            };
            let classes = format!(
                "node {}{}",
                node.role.as_str(),
                if node.expired { " expired" } else { "" }
            );
            let attrs = format!(
                "{classes}\" data-name=\"{}\" data-network=\"{}\" data-kind=\"{kind}\" data-role=\"{}",
                xml_escape(&node.name),
                xml_escape(&p.net),
                node.role.as_str()
            );
            let mut title = format!("{} ({} in {})", node.name, node.role.as_str(), p.net);
            if let Some(d) = &node.description {
                let _ = write!(title, ": {d}");
            }
            write_card(&mut o, &r, card, &attrs, fill, stroke, &title);
        }
        for (r, card) in p.prefixes.iter().zip(&p.prefix_cards) {
            let r = r.shift(ox, oy);
            let attrs = format!(
                "prefix\" data-network=\"{}\" data-prefix=\"{}",
                xml_escape(&p.net),
                xml_escape(&card.lines[0].0)
            );
            write_card(
                &mut o,
                &r,
                card,
                &attrs,
                PREFIX_FILL,
                PREFIX_STROKE,
                &card.lines[0].0,
            );
        }
        for f in &p.flows {
            if let Some((r, text)) = &f.label {
                let r = r.shift(ox, oy);
                let _ = writeln!(
                    o,
                    "<g class=\"label\" data-x=\"{}\" data-y=\"{}\" data-w=\"{}\" data-h=\"{}\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"3\"/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>",
                    n(r.x),
                    n(r.y),
                    n(r.w),
                    n(r.h),
                    n(r.x),
                    n(r.y),
                    n(r.w),
                    n(r.h),
                    n(r.cx()),
                    n(r.y + r.h - 4.5),
                    xml_escape(text)
                );
            }
        }
        for (k, note) in p.notes.iter().enumerate() {
            let _ = writeln!(
                o,
                "<text class=\"note\" x=\"{}\" y=\"{}\">{}</text>",
                n(fx + MARGIN),
                n(oy + p.h - MARGIN / 2.0 - (p.notes.len() - 1 - k) as f64 * LINE_H),
                xml_escape(note)
            );
        }
        o.push_str("</g>\n");
        y += p.h + PANEL_GAP;
    }

    // Legend.
    let _ = writeln!(o, "<g class=\"legend\">");
    let mut x = MARGIN;
    let ly = y + 6.0;
    for (kind, text) in LEGEND {
        let swatch = match kind {
            "tunnel" => format!(
                "<line class=\"tunnel\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
                n(x),
                n(ly + 7.0),
                n(x + 26.0),
                n(ly + 7.0)
            ),
            "route" => format!(
                "<line class=\"route\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
                n(x),
                n(ly + 7.0),
                n(x + 26.0),
                n(ly + 7.0)
            ),
            "flow" => format!(
                "<g class=\"flow\"><path d=\"M{},{} L{},{}\" marker-end=\"url(#wgfleet-arrow)\"/></g>",
                n(x),
                n(ly + 7.0),
                n(x + 26.0),
                n(ly + 7.0)
            ),
            _ => {
                let (fill, stroke, class) = match kind {
                    "hub" => (HUB_FILL, HUB_STROKE, "hub"),
                    "client" => (CLIENT_FILL, CLIENT_STROKE, "client"),
                    "expired" => (EXPIRED_FILL, EXPIRED_STROKE, "client expired"),
                    "prefix" => (PREFIX_FILL, PREFIX_STROKE, "prefix-swatch"),
                    _ => (HOST_FILL, HOST_STROKE, "spoke"),
                };
                format!(
                    "<g class=\"swatch {class}\"><rect x=\"{}\" y=\"{}\" width=\"26\" height=\"14\" rx=\"3\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.5\"/></g>",
                    n(x),
                    n(ly)
                )
            }
        };
        o.push_str(&swatch);
        let _ = writeln!(
            o,
            "<text x=\"{}\" y=\"{}\">{}</text>",
            n(x + 32.0),
            n(ly + 11.0),
            xml_escape(text)
        );
        x += 34.0 + columns(text) as f64 * LABEL_CHAR_W + 18.0;
    }
    o.push_str("</g>\n</svg>\n");
    o
}

fn write_card(
    o: &mut String,
    r: &Rect,
    card: &Card,
    attrs: &str,
    fill: &str,
    stroke: &str,
    title: &str,
) {
    let _ = write!(
        o,
        "<g class=\"{attrs}\" data-x=\"{}\" data-y=\"{}\" data-w=\"{}\" data-h=\"{}\"><title>{}</title><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"5\" fill=\"{fill}\" stroke=\"{stroke}\"/>",
        n(r.x),
        n(r.y),
        n(r.w),
        n(r.h),
        xml_escape(title),
        n(r.x),
        n(r.y),
        n(r.w),
        n(r.h),
    );
    for (k, (line, class)) in card.lines.iter().enumerate() {
        let _ = write!(
            o,
            "<text class=\"{class}\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            n(r.cx()),
            n(r.y + PAD_Y + k as f64 * LINE_H + 12.0),
            xml_escape(line)
        );
    }
    o.push_str("</g>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(xml_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(dot_quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }

    #[test]
    fn columns_count_wide_characters_twice() {
        assert_eq!(columns("cp"), 2);
        assert_eq!(columns("東京"), 4);
    }

    #[test]
    fn border_points_lie_on_the_box() {
        let r = Rect {
            x: 0.0,
            y: 0.0,
            w: 100.0,
            h: 20.0,
        };
        assert_eq!(r.border_towards(50.0, 100.0), (50.0, 20.0));
        assert_eq!(r.border_towards(500.0, 10.0), (100.0, 10.0));
    }
}
