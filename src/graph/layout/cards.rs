//! Cards: the boxes of text that nodes and prefixes are drawn as, each sized to hold its lines.

use super::{CHAR_W, LINE_H, PAD_X, PAD_Y};
use crate::graph::NetGraph;

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

/// A card: lines of text in a box sized to hold them.
pub(in crate::graph) struct Card {
    pub(in crate::graph) lines: Vec<(String, &'static str)>,
    pub(in crate::graph) w: f64,
    pub(in crate::graph) h: f64,
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

/// The cards of the nodes and of the prefixes, each sized to hold its text.
pub(super) fn measure_cards(net: &NetGraph) -> (Vec<Card>, Vec<Card>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_wide_characters_twice() {
        assert_eq!(columns("cp"), 2);
        assert_eq!(columns("東京"), 4);
    }
}
