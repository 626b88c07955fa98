//! Endpoints that follow DNS, and backup endpoints: which peer this host dials gets which address
//! live. Pure: the live handshakes, what the names resolve to and what earlier runs chose come in
//! as values; `shell::endpoint_follow` resolves, runs `wg set` and keeps the state.
//!
//! WireGuard resolves an `Endpoint` name once, when the config is loaded. For every peer this
//! host dials by a DNS name or at several endpoints, a run looks at the latest handshake (from
//! the `wg show dump` apply reads anyway) and does nothing more while it is fresh. A stale peer:
//! 1. the endpoint in use is resolved again; if the live address is none of its addresses, the
//!    first one is set live (the name moved: a rebuilt VPS, a dynamic address). The new address
//!    gets a full staleness period if the peer had answered since the endpoint was chosen;
//!    otherwise it shares the period running (a name whose answers rotate cannot hold a dead
//!    peer on it);
//! 2. otherwise, or when that period is over without an answer, with several endpoints, once
//!    the one in use has had a full staleness period to answer, the next one that resolves is
//!    set, cyclically (after the last comes the first).
//!
//! A peer on a backup that answers stays there: moving a working link to probe the primary would
//! cut it for up to a staleness period. It goes back to the first endpoint when the cycle wraps,
//! when the primary's name resolves to none of the addresses it had when it was left
//! (what made it fail has likely been fixed: checked on every run while on a backup, one lookup),
//! and whenever the unit reloads or restarts (the config names the first).
//!
//! Modules: `watch` (which peers are watched, and when a handshake is stale), `state` (what
//! earlier runs chose), `decide` (the decision for one peer), `decision` (its outcome and the
//! line that says it); here, their public paths.

mod decide;
mod decision;
mod state;
mod watch;

pub use decide::{Resolution, decide, names_for};
pub use decision::{Decision, Reason, SetEndpoint, Unresolved, describe};
pub use state::{PeerState, State, remembered_in_use};
pub use watch::{Dialled, REKEY_TIMEOUT_SECS, dialled, is_name, stale_after_secs, watched};

#[cfg(test)]
pub(crate) mod fixtures;
