//! The SVG layout: cards measured, placed in rows or on a circle, flows routed around them.

use std::collections::HashMap;
use std::f64::consts::{PI, SQRT_2};

use super::{NetGraph, Role};

/// Card text size in px.
pub const FONT_PX: f64 = 12.0;
/// An upper bound on the advance of one 12 px monospace glyph (DejaVu Sans Mono: 7.22 px,
/// Liberation Mono and Courier: 7.2 px): box widths are estimated from it.
pub const CHAR_W: f64 = 7.5;
/// Flow label text size, and its glyph advance bound.
pub const LABEL_FONT_PX: f64 = 11.0;
pub const LABEL_CHAR_W: f64 = 6.9;
pub(super) const LINE_H: f64 = 16.0;
const PAD_X: f64 = 10.0;
pub(super) const PAD_Y: f64 = 6.0;
const H_GAP: f64 = 40.0;
const ROW_GAP: f64 = 80.0;
const GROUP_GAP: f64 = 120.0;
const PREFIX_GAP: f64 = 18.0;
const MAX_ROW_W: f64 = 1160.0;
/// Meshes up to this size go on a circle with every tunnel drawn; larger ones go in rows.
const MESH_CIRCLE_MAX: usize = 24;
pub(super) const MARGIN: f64 = 20.0;
const TITLE_H: f64 = 30.0;
pub(super) const PANEL_GAP: f64 = 24.0;

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

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct Rect {
    pub(super) x: f64,
    pub(super) y: f64,
    pub(super) w: f64,
    pub(super) h: f64,
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
    pub(super) fn cx(&self) -> f64 {
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
    pub(super) fn shift(&self, dx: f64, dy: f64) -> Rect {
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
pub(super) struct Card {
    pub(super) lines: Vec<(String, &'static str)>,
    pub(super) w: f64,
    pub(super) h: f64,
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
pub(super) struct Tunnel {
    pub(super) a: Pt,
    pub(super) b: Pt,
    pub(super) one_sided: bool,
    pub(super) title: String,
}

pub(super) struct FlowGeom {
    pub(super) from: (f64, f64),
    pub(super) ctrl: (f64, f64),
    pub(super) to: (f64, f64),
    pub(super) label: Option<(Rect, String)>,
    pub(super) expired: bool,
    pub(super) title: String,
}

/// One network's picture, in its own coordinates with (0, 0) at the panel's top left.
pub(super) struct Panel {
    pub(super) title: String,
    pub(super) net: String,
    pub(super) w: f64,
    pub(super) h: f64,
    pub(super) nodes: Vec<Rect>,
    pub(super) node_cards: Vec<Card>,
    pub(super) prefixes: Vec<Rect>,
    pub(super) prefix_cards: Vec<Card>,
    pub(super) tunnels: Vec<Tunnel>,
    pub(super) routes: Vec<((f64, f64), (f64, f64))>,
    pub(super) flows: Vec<FlowGeom>,
    pub(super) notes: Vec<String>,
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

/// One network's picture: the cards measured and grouped into units, the units placed (a small
/// mesh on a circle, everything else in rows), tunnels, routes and flows drawn between the boxes,
/// and the panel sized around it all.
pub(super) fn layout_panel(net: &NetGraph) -> Panel {
    let (node_cards, prefix_cards) = measure_cards(net);
    let node_index: HashMap<&str, usize> = net
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let units = group_units(net, &node_index, &node_cards, &prefix_cards);
    let mut notes = Vec::new();
    let (at, draw_tunnels) = place_units(net, &units, &node_cards, &mut notes);
    let (nodes, prefixes) = place_boxes(&units, &at, &node_cards, &prefix_cards);

    let mut occupied = Occupancy::new();
    for r in nodes.iter().chain(&prefixes) {
        occupied.insert(*r);
    }
    let tunnels = if draw_tunnels {
        tunnel_lines(net, &node_index, &nodes)
    } else {
        Vec::new()
    };
    let routes = route_lines(&units, &nodes, &prefixes);
    let flows = flow_arrows(
        net,
        &node_index,
        &nodes,
        &prefixes,
        &mut occupied,
        &mut notes,
    );

    // In the content's own coordinates; size_panel sets the title and size and moves it.
    size_panel(
        net,
        Panel {
            title: String::new(),
            net: net.name.clone(),
            w: 0.0,
            h: 0.0,
            nodes,
            node_cards,
            prefixes,
            prefix_cards,
            tunnels,
            routes,
            flows,
            notes,
        },
    )
}

/// The cards of the nodes and of the prefixes, each sized to hold its text.
fn measure_cards(net: &NetGraph) -> (Vec<Card>, Vec<Card>) {
    let node_cards = net.nodes.iter().map(|n| Card::new(n.lines())).collect();
    let prefix_cards = net
        .prefixes
        .iter()
        .map(|p| {
            let kind = if p.route { "routed prefix" } else { "prefix" };
            Card::new(vec![(p.prefix.to_string(), "name"), (kind.into(), "role")])
        })
        .collect();
    (node_cards, prefix_cards)
}

/// Units: each node with the prefixes behind it stacked below; prefixes behind nobody stand
/// alone. Each unit is as wide as its widest card and as tall as its stack.
fn group_units(
    net: &NetGraph,
    node_index: &HashMap<&str, usize>,
    node_cards: &[Card],
    prefix_cards: &[Card],
) -> Vec<Unit> {
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
    units
}

/// The top left corner of every unit: a mesh of up to `MESH_CIRCLE_MAX` members on a circle with
/// its clients in rows below; otherwise rows of hubs, then spokes (or members), then clients,
/// then prefixes behind nobody. Also whether tunnels are drawn one by one (not in a large mesh,
/// which gets a note instead).
fn place_units(
    net: &NetGraph,
    units: &[Unit],
    node_cards: &[Card],
    notes: &mut Vec<String>,
) -> (Vec<Pt>, bool) {
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
    if circle {
        let bottom = place_on_circle(&hosts, units, node_cards, &mut at);
        place_rows(&[clients, loose], units, bottom + GROUP_GAP, &mut at);
    } else {
        if mesh && hosts.len() > MESH_CIRCLE_MAX {
            notes.push(format!(
                "full mesh of {} members: {} tunnels, not drawn one by one",
                hosts.len(),
                hosts.len() * (hosts.len() - 1) / 2
            ));
        }
        place_rows(&[hubs, hosts, clients, loose], units, 0.0, &mut at);
    }
    (at, !mesh || circle)
}

/// Places the mesh members `hosts` on the smallest circle that keeps them a gap apart, the first
/// at the top; returns the y below the lowest unit.
fn place_on_circle(hosts: &[usize], units: &[Unit], node_cards: &[Card], at: &mut [Pt]) -> f64 {
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
    bottom
}

/// The boxes of the nodes and of the prefixes: in each placed unit, the node's card on top and
/// its prefixes' below, all centred on the unit.
fn place_boxes(
    units: &[Unit],
    at: &[Pt],
    node_cards: &[Card],
    prefix_cards: &[Card],
) -> (Vec<Rect>, Vec<Rect>) {
    let mut nodes = vec![Rect::default(); node_cards.len()];
    let mut prefixes = vec![Rect::default(); prefix_cards.len()];
    for (u, unit) in units.iter().enumerate() {
        let (x, mut y) = at[u];
        let cx = x + unit.w / 2.0;
        // The next card of the stack, below the one before.
        let mut stack = |card: &Card| {
            let r = Rect::centered(cx, y + card.h / 2.0, card.w, card.h);
            y += card.h + PREFIX_GAP;
            r
        };
        if let Some(i) = unit.node {
            nodes[i] = stack(&node_cards[i]);
        }
        for &j in &unit.prefixes {
            prefixes[j] = stack(&prefix_cards[j]);
        }
    }
    (nodes, prefixes)
}

/// A line between the borders of the two ends of every tunnel.
fn tunnel_lines(net: &NetGraph, node_index: &HashMap<&str, usize>, nodes: &[Rect]) -> Vec<Tunnel> {
    let mut tunnels = Vec::new();
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
    tunnels
}

/// In each unit, a route line from each box to the prefix below it.
fn route_lines(units: &[Unit], nodes: &[Rect], prefixes: &[Rect]) -> Vec<(Pt, Pt)> {
    let mut routes = Vec::new();
    for unit in units {
        let mut above = unit.node.map(|i| nodes[i]);
        for &j in &unit.prefixes {
            if let Some(r) = above {
                routes.push(((r.cx(), r.bottom()), (prefixes[j].cx(), prefixes[j].y)));
            }
            above = Some(prefixes[j]);
        }
    }
    routes
}

/// Flows: quadratic curves bent to their left, so the two directions of a pair separate, each
/// labelled with its ports where the label overlaps nothing (`occupied` grows by the labels; an
/// arrow with no room for its label gets a note).
fn flow_arrows(
    net: &NetGraph,
    node_index: &HashMap<&str, usize>,
    nodes: &[Rect],
    prefixes: &[Rect],
    occupied: &mut Occupancy,
    notes: &mut Vec<String>,
) -> Vec<FlowGeom> {
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
        let (from, ctrl, to, normal) = route_flow(&ra, &rb, occupied);
        let text = if f.ports.is_empty() {
            "any".to_owned()
        } else {
            f.ports.join(", ")
        };
        let label = place_label((from, ctrl, to), normal, &text, occupied);
        let title = format!("flow {} → {}: {text}", f.from, f.to);
        if label.is_none() {
            notes.push(format!("unlabelled arrow: {} → {}: {text}", f.from, f.to));
        }
        flows.push(FlowGeom {
            from,
            ctrl,
            to,
            label: label.map(|r| (r, text)),
            expired: f.expired,
            title,
        });
    }
    flows
}

/// Where a flow's label goes: the first spot along the curve (from its middle outwards), moved
/// along `normal` a little at a time, where it overlaps nothing; it is then occupied.
fn place_label(
    curve: (Pt, Pt, Pt),
    normal: Pt,
    text: &str,
    occupied: &mut Occupancy,
) -> Option<Rect> {
    let (from, ctrl, to) = curve;
    let (px, py) = normal;
    let (lw, lh) = (
        (columns(text) as f64 * LABEL_CHAR_W + 8.0).ceil(),
        LABEL_FONT_PX + 5.0,
    );
    for t in [
        0.5, 0.42, 0.58, 0.34, 0.66, 0.26, 0.74, 0.18, 0.82, 0.1, 0.9,
    ] {
        let (x, y) = bezier(from, ctrl, to, t);
        for off in [0.0, 12.0, -12.0, 24.0, -24.0, 36.0, -36.0, 48.0, -48.0] {
            let r = Rect::centered(x + px * off, y + py * off, lw, lh);
            if !occupied.collides(&r, 3.0) {
                occupied.insert(r);
                return Some(r);
            }
        }
    }
    None
}

/// The panel sized to its content and its title and notes, and the content moved below the
/// title (narrow content centred under a wide title).
fn size_panel(net: &NetGraph, p: Panel) -> Panel {
    // The content's extent.
    let mut min = (f64::MAX, f64::MAX);
    let mut max = (f64::MIN, f64::MIN);
    let mut grow = |x: f64, y: f64| {
        min = (min.0.min(x), min.1.min(y));
        max = (max.0.max(x), max.1.max(y));
    };
    for r in p.nodes.iter().chain(&p.prefixes).chain(
        p.flows
            .iter()
            .filter_map(|f| f.label.as_ref().map(|l| &l.0)),
    ) {
        grow(r.x, r.y);
        grow(r.right(), r.bottom());
    }
    for f in &p.flows {
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
    let notes_h = p.notes.len() as f64 * LINE_H;
    let text_w = std::iter::once(&title)
        .chain(&p.notes)
        .map(|t| columns(t) as f64 * CHAR_W)
        .fold(0.0, f64::max);
    let w = (content_w.max(text_w) + 2.0 * MARGIN).ceil();
    // Centre narrow content under a wide title.
    let dx = dx + ((w - 2.0 * MARGIN - content_w) / 2.0).max(0.0);
    let h = (TITLE_H + MARGIN + (max.1 - min.1) + MARGIN + notes_h).ceil();
    let mv = |p: (f64, f64)| (p.0 + dx, p.1 + dy);
    Panel {
        title,
        w,
        h,
        nodes: p.nodes.iter().map(|r| r.shift(dx, dy)).collect(),
        prefixes: p.prefixes.iter().map(|r| r.shift(dx, dy)).collect(),
        tunnels: p
            .tunnels
            .into_iter()
            .map(|t| Tunnel {
                a: mv(t.a),
                b: mv(t.b),
                ..t
            })
            .collect(),
        routes: p.routes.into_iter().map(|(a, b)| (mv(a), mv(b))).collect(),
        flows: p
            .flows
            .into_iter()
            .map(|f| FlowGeom {
                from: mv(f.from),
                ctrl: mv(f.ctrl),
                to: mv(f.to),
                label: f.label.map(|(r, t)| (r.shift(dx, dy), t)),
                ..f
            })
            .collect(),
        ..p
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

#[cfg(test)]
mod tests {
    use super::*;

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
