//! Graphviz DOT output: one cluster per network.

use std::fmt::Write as _;

use super::{
    EXPIRED_STROKE, FLOW, Graph, HOST_FILL, HOST_STROKE, PREFIX_FILL, PREFIX_STROKE, Role, TUNNEL,
    colors,
};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_quote_escapes_quotes_backslashes_and_newlines() {
        assert_eq!(dot_quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }
}
