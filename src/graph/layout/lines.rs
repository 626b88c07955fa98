//! What is drawn between the boxes: tunnel lines, route lines down each unit, and flow arrows
//! bent around the boxes with their labels set where they overlap nothing.

use std::collections::HashMap;

use super::cards::columns;
use super::geometry::{Occupancy, Pt, Rect, bezier};
use super::place::Unit;
use super::{FlowGeom, LABEL_CHAR_W, LABEL_FONT_PX, Tunnel};
use crate::graph::NetGraph;

/// A line between the borders of the two ends of every tunnel.
pub(super) fn tunnel_lines(
    net: &NetGraph,
    node_index: &HashMap<&str, usize>,
    nodes: &[Rect],
) -> Vec<Tunnel> {
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
pub(super) fn route_lines(units: &[Unit], nodes: &[Rect], prefixes: &[Rect]) -> Vec<(Pt, Pt)> {
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
pub(super) fn flow_arrows(
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
