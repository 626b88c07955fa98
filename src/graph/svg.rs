//! SVG writing: the laid-out panels, cards, arrows and legend as one self-contained picture.

use std::fmt::Write as _;

use super::layout::{Card, LINE_H, MARGIN, PAD_Y, PANEL_GAP, Panel, Rect, layout_panel};
use super::{
    CLIENT_FILL, CLIENT_STROKE, EXPIRED_FILL, EXPIRED_STROKE, Graph, HOST_FILL, HOST_STROKE,
    HUB_FILL, HUB_STROKE, LABEL_CHAR_W, NetGraph, Node, PREFIX_FILL, PREFIX_STROKE, Role, colors,
    columns,
};
use crate::fleet::model::PeerKind;

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
        panels.push(idle_panel(&g.unattached));
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
        write_panel(&mut o, p, g.networks.get(pi), &g.unattached, width, y);
        y += p.h + PANEL_GAP;
    }
    write_legend(&mut o, y);
    o.push_str("</svg>\n");
    o
}

/// The panel of the hosts in no network.
fn idle_panel(unattached: &[String]) -> Panel {
    let idle = NetGraph {
        name: String::new(),
        topology: "none",
        hubs: Vec::new(),
        subnets: Vec::new(),
        listen_port: 0,
        nodes: unattached
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
    layout_panel(&idle)
}

/// One panel at `y`: its frame and title, tunnels, routes and flows below the cards, the cards,
/// the flow labels, and the notes. `net` is the panel's network (`None`: the hosts in none).
fn write_panel(
    o: &mut String,
    p: &Panel,
    net: Option<&NetGraph>,
    unattached: &[String],
    width: f64,
    y: f64,
) {
    // Content centred in a frame as wide as the widest panel.
    let (fx, oy) = (MARGIN, y);
    let ox = fx + ((width - 2.0 * MARGIN - p.w) / 2.0).max(0.0).floor();
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
                    o,
                    &r,
                    card,
                    &format!(
                        "node host idle\" data-name=\"{}\" data-network=\"\" data-kind=\"host\" data-role=\"host",
                        xml_escape(&unattached[i])
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
        write_card(o, &r, card, &attrs, fill, stroke, &title);
    }
    for (r, card) in p.prefixes.iter().zip(&p.prefix_cards) {
        let r = r.shift(ox, oy);
        let attrs = format!(
            "prefix\" data-network=\"{}\" data-prefix=\"{}",
            xml_escape(&p.net),
            xml_escape(&card.lines[0].0)
        );
        write_card(
            o,
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
}

/// The legend row at `y`: a swatch and a text for each kind of box and line.
fn write_legend(o: &mut String, y: f64) {
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
    o.push_str("</g>\n");
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
    fn xml_escapes_markup_and_quotes() {
        assert_eq!(xml_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
    }
}
