//! Whether a held change is confirmed: the peers' latest handshakes, read and matched against
//! the peers it may be confirmed by.

use std::collections::BTreeMap;

use super::{Held, Probe};

/// The peers' latest handshakes (`wg show IFACE latest-handshakes`): public key → unix seconds.
pub fn parse_latest_handshakes(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (key, secs) = l.split_once('\t')?;
            Some((key.trim().to_owned(), secs.trim().parse().ok()?))
        })
        .collect()
}

/// Whether the change is confirmed: a handshake with one of the peers since the change (their
/// sessions were all made new by it, so any handshake at all is one after it).
pub fn confirmed_by<'h>(held: &'h Held, handshakes: &BTreeMap<String, u64>) -> Option<&'h Probe> {
    held.confirm_with
        .iter()
        .find(|p| handshakes.get(&p.public_key).is_some_and(|t| *t > 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::confirm::Verdict;

    #[test]
    fn a_handshake_with_any_of_the_peers_confirms() {
        let held = Held {
            because: vec![],
            worked: vec![],
            worked_keys: vec![],
            confirm_with: vec![
                Probe {
                    peer: "cp".into(),
                    public_key: "HUB".into(),
                    address: None,
                },
                Probe {
                    peer: "nl".into(),
                    public_key: "NL".into(),
                    address: None,
                },
            ],
            renew: vec![],
        };
        let seen = parse_latest_handshakes("HUB\t0\nNL\t1700000000\nOTHER\t5\n");
        assert_eq!(
            confirmed_by(&held, &seen).map(|p| p.peer.as_str()),
            Some("nl")
        );
        assert_eq!(
            confirmed_by(&held, &parse_latest_handshakes("HUB\t0\n")),
            None
        );
        assert_eq!(
            Verdict::Confirmed {
                peer: "cp".into(),
                after_ms: 1250
            }
            .to_string(),
            "confirmed by a handshake with cp 1.2 s after the change"
        );
    }
}
