//! The peers a peer-only change touches, so that `apply` sets just those live (one `wg set`)
//! instead of reloading the unit (`wg syncconf` reads and compares every peer of the live
//! interface and of the file). Pure: the desired file, the one it replaces, and the dump.

use serde::{Deserialize, Serialize};

use super::Live;
use super::joined::joined;
use crate::wgconf::{PeerConf, WgConf};

/// Above this many peers one `wg syncconf` costs no more than the delta (and the delta's
/// command line grows with it): the unit's reload does it.
pub const MAX_PEERS: usize = 1000;

/// Public keys to set as the desired file has them, and to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerDelta {
    pub set: Vec<String>,
    pub remove: Vec<String>,
}

impl PeerDelta {
    pub fn len(&self) -> usize {
        self.set.len() + self.remove.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What makes the running interface's peers the desired file's: the peers that differ live
/// (missing, other AllowedIPs, keepalive or PSK presence), that differ from the file they
/// replace (a PSK's value or an endpoint, which the dump does not show as the file has them),
/// and the live peers the file no longer has. `None` when a delta cannot say it: a peer key
/// `wg set` has no flag for, or more than `MAX_PEERS`.
pub fn peer_delta(new: &WgConf, old: &WgConf, live: &Live) -> Option<PeerDelta> {
    let mut delta = PeerDelta::default();
    // The desired peers that differ live, in key order, and the live ones it does not have.
    let mut differs = Vec::with_capacity(new.peers.len());
    for (key, want, have) in joined(&new.peers, &live.peers) {
        match (want, have) {
            (Some(want), Some(have)) => differs.push(
                have.allowed_ips != want.allowed_ips
                    || have.keepalive.as_deref() != keepalive(want)
                    || have.has_psk != want.preshared_key.is_some(),
            ),
            (Some(_), None) => differs.push(true),
            (None, _) => delta.remove.push(key.clone()),
        }
    }
    let mut differs = differs.into_iter();
    for (key, want, before) in joined(&new.peers, &old.peers) {
        let Some(want) = want else { continue };
        let changed = before != Some(want);
        if differs.next().unwrap_or(true) || changed {
            if !want.other.is_empty() {
                return None;
            }
            delta.set.push(key.clone());
        }
    }
    (delta.len() <= MAX_PEERS).then_some(delta)
}

/// The keepalive as the dump shows it (`None`: off).
fn keepalive(peer: &PeerConf) -> Option<&str> {
    peer.keepalive
        .as_deref()
        .filter(|k| *k != "0" && !k.eq_ignore_ascii_case("off"))
}

/// How a peer's preshared key is given to `wg set`.
#[derive(Debug, PartialEq, Eq)]
pub enum Psk<'c> {
    /// `/dev/null`: none (clears one the interface has).
    Clear,
    /// The key, to hand over through a pipe.
    Key(&'c str),
}

/// One `peer …` clause of `wg set`, the peer as the file has it.
#[derive(Debug, PartialEq, Eq)]
pub enum Clause<'c> {
    Remove(&'c str),
    Set {
        key: &'c str,
        psk: Psk<'c>,
        endpoint: Option<&'c str>,
        keepalive: &'c str,
        allowed_ips: String,
    },
}

/// The clauses of the delta, removals first (an AllowedIPs entry a removed peer held is then
/// free for the peer that takes it over). Keys the file does not have are skipped.
pub fn clauses<'c>(new: &'c WgConf, delta: &'c PeerDelta) -> Vec<Clause<'c>> {
    let removed = delta.remove.iter().map(|k| Clause::Remove(k));
    let set = delta.set.iter().filter_map(|key| {
        let p = new.peers.get(key)?;
        Some(Clause::Set {
            key,
            psk: p.preshared_key.as_deref().map_or(Psk::Clear, Psk::Key),
            endpoint: p.endpoint.as_deref(),
            keepalive: keepalive(p).unwrap_or("off"),
            allowed_ips: p.allowed_ips.iter().cloned().collect::<Vec<_>>().join(","),
        })
    });
    removed.chain(set).collect()
}

/// `wg set`'s arguments after the interface name; `psk_path(i)` names the file `wg` reads the
/// i-th preshared key from (in the order of `Psk::Key`s).
pub fn wg_set_args(
    clauses: &[Clause<'_>],
    mut psk_path: impl FnMut(usize) -> String,
) -> Vec<String> {
    let mut args = Vec::new();
    let mut psks = 0;
    for c in clauses {
        match c {
            Clause::Remove(key) => args.extend(["peer".into(), (*key).into(), "remove".into()]),
            Clause::Set {
                key,
                psk,
                endpoint,
                keepalive,
                allowed_ips,
            } => {
                args.extend(["peer".into(), (*key).into(), "preshared-key".into()]);
                args.push(match psk {
                    Psk::Clear => "/dev/null".into(),
                    Psk::Key(_) => {
                        psks += 1;
                        psk_path(psks - 1)
                    }
                });
                if let Some(e) = endpoint {
                    args.extend(["endpoint".into(), (*e).into()]);
                }
                args.extend(["persistent-keepalive".into(), (*keepalive).into()]);
                args.extend(["allowed-ips".into(), allowed_ips.clone()]);
            }
        }
    }
    args
}
