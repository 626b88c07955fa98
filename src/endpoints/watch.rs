//! Which peers a run watches (dialled by a DNS name or at several endpoints), and when their
//! handshake is stale.

use std::net::SocketAddr;

use crate::diff::SESSION_SECS;
use crate::plan::InterfacePlan;

/// WireGuard's REKEY_TIMEOUT: a handshake that got no answer is retried after this.
pub const REKEY_TIMEOUT_SECS: u64 = 5;

/// A handshake older than this is stale, for a peer with this PersistentKeepalive (0: none).
/// A working link renews its session only when it sends: the initiator after REKEY_AFTER_TIME
/// (120 s) at its next packet, the other side by REJECT_AFTER_TIME ([`SESSION_SECS`], 180 s),
/// so a live handshake can be 180 s + one keepalive old, plus a retry.
pub fn stale_after_secs(keepalive: u64) -> u64 {
    SESSION_SECS + keepalive + REKEY_TIMEOUT_SECS
}

/// One peer that this host dials by name or at several endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialled {
    /// The interface on this host.
    pub network: String,
    pub peer: String,
    pub public_key: String,
    /// `host:port` texts, in order; the config dials the first.
    pub endpoints: Vec<String>,
    /// Its PersistentKeepalive in seconds (0: none): part of its staleness threshold.
    pub keepalive: u64,
}

impl Dialled {
    /// Its staleness threshold: `stale` when given (the testbed's shortened one), otherwise
    /// [`stale_after_secs`] of its keepalive.
    pub fn stale_after(&self, stale: Option<u64>) -> u64 {
        stale.unwrap_or_else(|| stale_after_secs(self.keepalive))
    }
}

/// The peers of `plan` worth watching: dialled by a DNS name, or at more than one endpoint. A
/// peer dialled at one IP address has nothing to follow.
pub fn dialled(plan: &InterfacePlan) -> impl Iterator<Item = Dialled> + '_ {
    plan.peers
        .iter()
        .filter(|p| watched(&p.endpoints))
        .map(|p| Dialled {
            network: plan.network.clone(),
            peer: p.name.clone(),
            public_key: p.public_key.clone(),
            endpoints: p.endpoints.clone(),
            keepalive: p.persistent_keepalive.map_or(0, u64::from),
        })
}

/// Whether a peer dialled at these endpoints is worth watching: a DNS name, or several.
pub fn watched(endpoints: &[String]) -> bool {
    endpoints.len() > 1 || endpoints.iter().any(|e| is_name(e))
}

/// Whether a `host:port` endpoint names its host (needs resolving) rather than giving an address.
pub fn is_name(endpoint: &str) -> bool {
    endpoint.parse::<SocketAddr>().is_err()
}

#[cfg(test)]
mod tests {
    use crate::endpoints::fixtures;

    #[test]
    fn only_names_and_lists_are_watched() {
        let iface = fixtures::spoke(vec![
            fixtures::hub_peer(vec!["192.0.2.1:51820".into()]),
            fixtures::hub_peer(vec!["[2001:db8::1]:51820".into()]),
            fixtures::hub_peer(vec!["hub.example.net:51820".into()]),
            fixtures::hub_peer(vec!["192.0.2.1:51820".into(), "192.0.2.2:51820".into()]),
            fixtures::hub_peer(Vec::new()),
        ]);
        let watched: Vec<Vec<String>> = super::dialled(&iface).map(|d| d.endpoints).collect();
        assert_eq!(
            watched,
            [
                vec!["hub.example.net:51820".to_owned()],
                vec!["192.0.2.1:51820".to_owned(), "192.0.2.2:51820".to_owned()]
            ]
        );
    }
}
