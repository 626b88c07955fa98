//! Confirmed apply, the pure half: whether a change must prove, by a fresh handshake, that this
//! host can still reach its hubs, and with which peers. A wrong hub key, endpoint or port pushed
//! to a remote spoke cuts it off from the network that would deliver the fix; such a change is
//! held to a handshake and rolled back without one (the shell is `shell::handshake_wait`).
//!
//! The rule, from the config on disk before the change, the new one and the handshakes seen
//! just before:
//! - the link to a peer this host dials (a spoke's hubs, a mesh member's peers) is touched by a
//!   change of this host's private key or addresses, or of that peer's public key, endpoint
//!   (address or port) or preshared key;
//! - a link worked when its latest handshake is younger than [`WORKING_LINK_SECS`];
//! - a change is held when it touches every link that worked; one working link it leaves alone
//!   keeps the host reachable, so nothing is held then. A hub (spokes dial it), a unit that was
//!   not running, and a host with no working link are not held either.
//! - it is confirmed by a handshake, after the change, with any peer the host dials.
//!
//! Here: what a step must prove and how it ended. `decide`: the decision and its input;
//! `probe`: where the datagram that makes WireGuard handshake goes; `handshake`: whether a
//! handshake confirmed the change.

mod decide;
mod handshake;
mod probe;

pub use decide::{Input, WorkedBefore, decide};
pub use handshake::{confirmed_by, parse_latest_handshakes};
pub use probe::probe_target;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// A session whose handshake is younger than this still carries data: WireGuard's
/// REJECT_AFTER_TIME. A spoke with PersistentKeepalive 25 rekeys at the first keepalive after
/// 120 s, so a working link's handshake is up to ~145 s old; 135 s would call it dead ~7% of
/// the time. `status --stale` defaults to the same 180 s.
pub const WORKING_LINK_SECS: u64 = crate::diff::SESSION_SECS;

/// How long apply waits for the handshake by default (`--confirm-timeout`).
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// What a step's change must prove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "held", rename_all = "camelCase")]
pub enum Confirmation {
    #[serde(rename = "no")]
    NotHeld { reason: NotHeld },
    #[serde(rename = "yes")]
    Held(Held),
}

/// Why a step is not held to a handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "why", rename_all = "kebab-case")]
pub enum NotHeld {
    /// The change touches no link this host dials (or nothing live changes).
    NoLinkChange,
    /// The unit was not running: there was no tunnel to lose.
    NotRunning,
    /// Spokes dial a hub; it dials nobody it depends on.
    Hub,
    /// No peer it dials had a handshake within [`WORKING_LINK_SECS`]: nothing to lose.
    NoWorkingLink,
    /// This working link is left as it was: the host stays reachable through it.
    LinkUntouched { peer: String },
    /// `apply --no-confirm`.
    Disabled,
}

impl NotHeld {
    /// Said in the output and the audit log; the silent ones are the common case of a change
    /// that has nothing to do with the links.
    pub fn is_silent(&self) -> bool {
        matches!(self, NotHeld::NoLinkChange | NotHeld::NotRunning)
    }
}

impl std::fmt::Display for NotHeld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotHeld::NoLinkChange => f.write_str("the change touches no link to a hub"),
            NotHeld::NotRunning => f.write_str("the tunnel was not running"),
            NotHeld::Hub => f.write_str("this host is a hub: spokes dial it"),
            NotHeld::NoWorkingLink => write!(
                f,
                "no hub had a handshake within {WORKING_LINK_SECS} s before the change"
            ),
            NotHeld::LinkUntouched { peer } => {
                write!(f, "the working link to {peer} is left as it was")
            }
            NotHeld::Disabled => f.write_str("--no-confirm"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    /// What in the change touches the links, one phrase each (never key material).
    pub because: Vec<String>,
    /// The peers it dials that had a working link before the change.
    pub worked: Vec<String>,
    /// Their public keys, for the pending record: a run that resumes this change holds it to
    /// exactly these links (never in the output: the names say it).
    #[serde(skip)]
    pub worked_keys: Vec<String>,
    /// Every peer it dials after the change: a handshake with any of them confirms it.
    pub confirm_with: Vec<Probe>,
    /// Public keys of peers whose session would survive the reload (same key): removed before
    /// it, so that the reload adds them afresh and their next handshake is a new one.
    pub renew: Vec<String>,
}

/// A peer whose handshake confirms the change, and an address inside its AllowedIPs (not this
/// host's own) that a datagram is sent to, so that WireGuard handshakes without waiting for
/// traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub peer: String,
    pub public_key: String,
    pub address: Option<IpAddr>,
}

/// How a step's confirmation ended: in the output, the `--json` outcomes and the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Verdict {
    #[serde(rename_all = "camelCase")]
    Confirmed {
        peer: String,
        after_ms: u64,
    },
    RolledBack {
        reason: String,
    },
    NotHeld {
        reason: String,
    },
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Confirmed { peer, after_ms } => write!(
                f,
                "confirmed by a handshake with {peer} {:.1} s after the change",
                *after_ms as f64 / 1000.0
            ),
            Verdict::RolledBack { reason } => write!(f, "rolled back: {reason}"),
            Verdict::NotHeld { reason } => write!(f, "not held to confirmation: {reason}"),
        }
    }
}

/// The line `plan` and `apply` print under a step's changes; none for the silent cases.
pub fn describe(c: &Confirmation) -> Option<String> {
    match c {
        Confirmation::Held(h) => {
            let peers: Vec<&str> = h.confirm_with.iter().map(|p| p.peer.as_str()).collect();
            Some(format!(
                "? confirm: a handshake with {} must follow, or the change is rolled back ({})",
                if peers.is_empty() {
                    "a hub".to_owned()
                } else {
                    peers.join(" or ")
                },
                h.because.join("; ")
            ))
        }
        Confirmation::NotHeld { reason } if !reason.is_silent() => {
            Some(format!("= confirm: not held ({reason})"))
        }
        Confirmation::NotHeld { .. } => None,
    }
}

/// `apply --no-confirm`: what was held is not.
pub fn disable<'a>(confirmations: impl Iterator<Item = &'a mut Confirmation>) {
    for c in confirmations {
        if matches!(c, Confirmation::Held(_)) {
            *c = Confirmation::NotHeld {
                reason: NotHeld::Disabled,
            };
        }
    }
}
