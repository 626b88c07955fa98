//! The panel sized to its content, title and notes, and the content moved below the title.

use super::cards::columns;
use super::geometry::bezier;
use super::{CHAR_W, FlowGeom, LINE_H, MARGIN, Panel, TITLE_H, Tunnel};
use crate::graph::NetGraph;

/// The panel sized to its content and its title and notes, and the content moved below the
/// title (narrow content centred under a wide title).
pub(super) fn size_panel(net: &NetGraph, p: Panel) -> Panel {
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
