//! The SVG layout: cards measured, placed in rows or on a circle, flows routed around them.
//!
//! Modules, one phase each: `cards` (the cards measured), `place` (units placed in rows or on a
//! circle), `lines` (tunnels, routes and flows between the boxes), `size` (the panel sized and
//! its content moved into place), on the shapes of `geometry`; here, the panel and the pipeline.

mod cards;
mod geometry;
mod lines;
mod place;
mod size;

use std::collections::HashMap;

use super::NetGraph;
pub(super) use cards::Card;
pub use cards::columns;
pub(super) use geometry::Rect;
use geometry::{Occupancy, Pt};

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

/// One network's picture: the cards measured and grouped into units, the units placed (a small
/// mesh on a circle, everything else in rows), tunnels, routes and flows drawn between the boxes,
/// and the panel sized around it all.
pub(super) fn layout_panel(net: &NetGraph) -> Panel {
    let (node_cards, prefix_cards) = cards::measure_cards(net);
    let node_index: HashMap<&str, usize> = net
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let units = place::group_units(net, &node_index, &node_cards, &prefix_cards);
    let mut notes = Vec::new();
    let (at, draw_tunnels) = place::place_units(net, &units, &node_cards, &mut notes);
    let (nodes, prefixes) = place::place_boxes(&units, &at, &node_cards, &prefix_cards);

    let mut occupied = Occupancy::new();
    for r in nodes.iter().chain(&prefixes) {
        occupied.insert(*r);
    }
    let tunnels = if draw_tunnels {
        lines::tunnel_lines(net, &node_index, &nodes)
    } else {
        Vec::new()
    };
    let routes = lines::route_lines(&units, &nodes, &prefixes);
    let flows = lines::flow_arrows(
        net,
        &node_index,
        &nodes,
        &prefixes,
        &mut occupied,
        &mut notes,
    );

    // In the content's own coordinates; size_panel sets the title and size and moves it.
    size::size_panel(
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
