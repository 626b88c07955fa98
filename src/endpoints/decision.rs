//! The outcome for one watched peer: the endpoint to set, the names that did not resolve, and
//! the line that says it.

use serde::Serialize;

use super::PeerState;

/// Why an endpoint is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The handshake is stale and the endpoint in use resolves elsewhere now.
    Moved,
    /// The handshake stayed stale: the next endpoint in the list.
    Next,
    /// On a backup, the primary's name resolves to a new address.
    PrimaryMoved,
}

impl Reason {
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Moved => "stale handshake; the name resolves elsewhere now",
            Reason::Next => "stale handshake; the next endpoint",
            Reason::PrimaryMoved => "back to the first endpoint: its name resolves elsewhere now",
        }
    }
}

/// An endpoint to set live: `wg set IFACE peer KEY endpoint ADDRESS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetEndpoint {
    /// The live endpoint it replaces.
    pub from: Option<String>,
    pub to: String,
    /// The endpoint (from the fleet) `to` is an address of, and its place in the list.
    pub endpoint: String,
    pub index: usize,
    pub reason: Reason,
}

/// A name that did not resolve: reported, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unresolved {
    pub endpoint: String,
    pub error: String,
}

/// The outcome for one watched peer whose handshake is stale or that is on a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub network: String,
    pub peer: String,
    pub public_key: String,
    /// Seconds since the latest handshake; `None`: never.
    pub handshake_age: Option<u64>,
    /// The endpoint in use before this run, as an index into the list.
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set: Option<SetEndpoint>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unresolved: Vec<Unresolved>,
    /// What to remember (`None`: keep what is remembered).
    #[serde(skip)]
    pub state: Option<PeerState>,
}

/// One line for `plan` and `apply`.
pub fn describe(d: &Decision) -> String {
    let mut text = String::new();
    if let Some(set) = &d.set {
        text.push_str(&format!(
            "  ~ peer {}: endpoint {} → {} ({}; {})\n",
            d.peer,
            set.from.as_deref().unwrap_or("(none)"),
            set.to,
            set.endpoint,
            set.reason.describe()
        ));
    }
    for u in &d.unresolved {
        text.push_str(&format!(
            "  ! peer {}: endpoint {} does not resolve ({})\n",
            d.peer, u.endpoint, u.error
        ));
    }
    text
}
