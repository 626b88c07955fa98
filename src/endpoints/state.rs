//! What earlier runs chose for each peer (`endpoints.json`), and whether a choice still holds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What an earlier run chose for one peer (`endpoints.json` under the state directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerState {
    /// The endpoint in use, as an index into the peer's list and as its text (a changed list
    /// makes the record stale).
    pub index: usize,
    pub endpoint: String,
    /// The address set live.
    pub address: String,
    /// Unix seconds when this endpoint was chosen (it gets a staleness period to answer).
    pub since: i64,
    /// Unix seconds of the latest re-resolution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<i64>,
    /// On a backup: the addresses the primary had when it was left.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_addresses: Vec<String>,
}

/// Every remembered peer, by interface and peer name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub networks: BTreeMap<String, BTreeMap<String, PeerState>>,
}

impl State {
    pub fn get(&self, network: &str, peer: &str) -> Option<&PeerState> {
        self.networks.get(network)?.get(peer)
    }
}

/// The remembered choice, if it still holds: the list is unchanged and the live address is the
/// one it set.
pub fn remembered_in_use<'s>(
    endpoints: &[String],
    live_endpoint: Option<&String>,
    state: Option<&'s PeerState>,
) -> Option<&'s PeerState> {
    state.filter(|s| {
        endpoints.get(s.index) == Some(&s.endpoint) && live_endpoint == Some(&s.address)
    })
}
