//! Placing: each node grouped with the prefixes behind it into a unit, the units set in rows or
//! (a small mesh) on a circle, and the cards' boxes placed in them.

use std::collections::HashMap;
use std::f64::consts::{PI, SQRT_2};

use super::cards::Card;
use super::geometry::{Pt, Rect};
use super::{GROUP_GAP, H_GAP, MAX_ROW_W, MESH_CIRCLE_MAX, PREFIX_GAP, ROW_GAP};
use crate::graph::{NetGraph, Role};

/// A member with the prefixes behind it stacked below: placed as one block.
pub(super) struct Unit {
    pub(super) node: Option<usize>,
    pub(super) prefixes: Vec<usize>,
    w: f64,
    h: f64,
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

/// Units: each node with the prefixes behind it stacked below; prefixes behind nobody stand
/// alone. Each unit is as wide as its widest card and as tall as its stack.
pub(super) fn group_units(
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
pub(super) fn place_units(
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
pub(super) fn place_boxes(
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
