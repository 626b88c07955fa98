//! Key rotation, the shell: what this host remembers of its rotations (`rotation.json` in the
//! state directory: its own, the staged keys it watches, the ones it promoted, its pairs'
//! changes of preshared key), the short-lived unit that watches handshakes while anything is
//! staged, the promotion itself (one `wg set`, audited), and the apply a preshared key's
//! switch time (or its going back) runs. The decisions are `crate::rotation`'s.
//!
//! A promotion is made under the run lock and recorded before the lock is let go, so an apply
//! either renders the promoted key or runs before the promotion: never a file that puts the
//! current key back over a promotion it did not see.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::desired::Desired;
use super::lock::RunLock;
use super::replay::Replay;
use super::systemd::Systemd;
use super::{audit, now};
use crate::error::{Error, Result};
use crate::fsutil::{ensure_private_dir, write_atomic};
use crate::paths::Paths;
use crate::plan::{InterfacePlan, OwnStage};
use crate::rotation::{Promoted, PskNext, PskRecord, Watch};

pub const FILE_NAME: &str = "rotation.json";
/// The unit that watches for handshakes from staged keys (`wgfleet promote --watch`).
pub const WATCH_UNIT: &str = "wgfleet-promote.service";
/// How long one watcher looks for staged host keys: apply starts another while any is still
/// staged, and the timer runs apply every 5 minutes, so the watches overlap. A preshared key's
/// change is watched until its end instead (its switch time can be far off), so that no gap
/// between watchers falls on it.
pub const WATCH_SECS: u64 = 900;
/// How often the watcher reads the handshakes: a promotion follows the next key's first
/// handshake within this (plus one `wg set`).
pub const POLL_EVERY: Duration = Duration::from_millis(250);

/// What this host remembers of its rotations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// This host's own rotations, as its last apply left them.
    #[serde(default)]
    pub own: Vec<Own>,
    /// Peers' staged keys not promoted yet.
    #[serde(default)]
    pub watching: Vec<Watch>,
    #[serde(default)]
    pub promoted: Vec<Promoted>,
    /// The pairs' changes of preshared key this host is an end of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub psk: Vec<PskRecord>,
    /// How the apply that wrote this ran: the watcher runs it again at a preshared key's
    /// switch time, and when it goes back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<Replay>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Own {
    pub interface: String,
    pub next_public_key: String,
    pub switch_at: i64,
    #[serde(flatten)]
    pub stage: OwnStage,
}

impl State {
    pub fn is_empty(&self) -> bool {
        self.own.is_empty()
            && self.watching.is_empty()
            && self.promoted.is_empty()
            && self.psk.is_empty()
    }

    /// The watcher has something to wait for.
    pub fn pending(&self) -> bool {
        !self.watching.is_empty() || self.psk.iter().any(crate::rotation::psk_pending)
    }
}

/// The state as the last writer left it; none (or unreadable) is no rotation.
pub fn load(state_dir: &Path) -> State {
    std::fs::read(state_dir.join(FILE_NAME))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn store(state_dir: &Path, state: &State) -> Result<()> {
    let path = state_dir.join(FILE_NAME);
    let werr = |source| Error::Write {
        path: path.clone(),
        source,
    };
    if state.is_empty() {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(werr(e)),
            _ => Ok(()),
        };
    }
    ensure_private_dir(state_dir).map_err(werr)?;
    let mut text =
        serde_json::to_string_pretty(state).map_err(|e| werr(std::io::Error::other(e)))?;
    text.push('\n');
    write_atomic(&path, text.as_bytes(), 0o600).map_err(werr)
}

/// After a run that began at `began` and ended well (under its lock): what this host now
/// watches and has promoted, and a watcher started while anything is staged. `switched`: the
/// interfaces that moved to this host's next key in this run; each peer gets one datagram, so
/// that its staged entry handshakes at once (a hub's switch is held to nothing, and its spokes
/// cannot reach the next key before they promote it).
pub fn after_run(
    paths: &Paths,
    host: &str,
    began: i64,
    desired: &[Desired],
    switched: &[&str],
    confirmed: &dyn Fn(&str, &str) -> bool,
    systemd: &Systemd,
) {
    let plans = || desired.iter().map(|d| &d.plan);
    for plan in plans().filter(|p| switched.contains(&p.network.as_str())) {
        poke(plan);
    }
    let before = load(&paths.state);
    let state = State {
        own: plans()
            .filter_map(|p| {
                let r = p.rotation.as_ref()?;
                Some(Own {
                    interface: p.network.clone(),
                    next_public_key: r.next_public_key.clone(),
                    switch_at: r.switch_at,
                    stage: r.stage.clone(),
                })
            })
            .collect(),
        watching: crate::rotation::watches(plans()),
        promoted: crate::rotation::still_staged(before.promoted.clone(), plans()),
        psk: crate::rotation::psk_records(plans(), &before.psk, began, confirmed),
        replay: None,
    };
    let state = match state.psk.is_empty() {
        true => state,
        false => State {
            replay: Replay::of_this_run(WATCH_UNIT),
            ..state
        },
    };
    if state != before {
        let _ = store(&paths.state, &state);
    }
    if state.pending() {
        let _ = start_watcher(systemd, host);
    }
}

/// After a run that began at `began` and whose held change no handshake confirmed (and was
/// rolled back): a preshared key this run tried to change on that interface as the lead end
/// goes back for good, so that the next run does not cut the link again; the other end goes
/// back when it sees no handshake either.
pub fn after_unconfirmed(paths: &Paths, began: i64, desired: &[Desired], error: &Error) {
    let (cause, restored) = match error {
        Error::RolledBack { error, .. } => (error, true),
        Error::RollbackFailed { error, .. } => (error, false),
        _ => return,
    };
    let Error::NotConfirmed { network, .. } = cause.as_ref() else {
        return;
    };
    let reason = format!("no handshake confirmed it: {cause}");
    let mut state = load(&paths.state);
    let Some(plan) = desired
        .iter()
        .map(|d| &d.plan)
        .find(|p| &p.network == network)
    else {
        return;
    };
    let led: Vec<&str> = plan
        .peers
        .iter()
        .filter(|p| p.psk_rotation.as_ref().is_some_and(|r| r.lead))
        .map(|p| p.name.as_str())
        .collect();
    let records = crate::rotation::psk_records([plan], &state.psk, began, &|_, _| false);
    let mut changed = false;
    for mut record in records {
        // This run made the change, as the lead (held to a handshake; no earlier run made it).
        let made_now = record.switched_at == Some(began)
            && led.contains(&record.peer.as_str())
            && record.rolled_back.is_none();
        if !made_now {
            continue;
        }
        record.rolled_back = Some(reason.clone());
        // The rollback restored the files and the interface: the current key is live.
        record.returned_at = restored.then_some(began);
        state
            .psk
            .retain(|x| !(x.interface == record.interface && x.peer == record.peer));
        state.psk.push(record);
        changed = true;
    }
    if changed {
        let _ = store(&paths.state, &state);
    }
}

/// One datagram to an address of each peer, through the tunnel.
fn poke(plan: &InterfacePlan) {
    let own: BTreeSet<IpAddr> = plan.addresses.iter().map(|a| a.addr()).collect();
    for peer in plan.peers.iter().filter(|p| !p.staged) {
        if let Some(address) = crate::confirm::probe_target(peer.allowed_ips.iter().copied(), &own)
        {
            super::handshake_wait::send_datagram(address, b"wgfleet: switched to the next key");
        }
    }
}

/// Starts `wgfleet promote --watch` as a transient unit; one already running is left alone.
fn start_watcher(systemd: &Systemd, host: &str) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| Error::System {
        what: WATCH_UNIT.into(),
        message: format!("cannot find this program: {e}"),
    })?;
    let exe = exe.to_string_lossy().into_owned();
    let argv = vec![
        exe.clone(),
        "promote".to_owned(),
        "--watch".to_owned(),
        WATCH_SECS.to_string(),
        "--host".to_owned(),
        host.to_owned(),
    ];
    // The unit starts with systemd's environment: `wg` is found where apply found it.
    let path = std::env::var("PATH").unwrap_or_default();
    let description = "wgfleet: promote staged WireGuard keys on their handshake";
    // No limit from systemd: the watcher ends by itself (`promote`), and one that a limit
    // stopped while apply found it running would leave a switch time unwatched.
    let runtime_max = Duration::MAX;
    let environment = vec![format!("PATH={path}")];
    match systemd.start_transient(
        WATCH_UNIT,
        description,
        &exe,
        argv,
        environment,
        runtime_max,
    ) {
        Err(e) if e.to_string().contains("already exists") => Ok(()),
        other => other.map_err(|source| Error::Systemd {
            what: WATCH_UNIT.into(),
            source,
        }),
    }
}

/// What one look at the handshakes did.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pass {
    pub promoted: Vec<Promoted>,
    /// Staged keys still waited for.
    pub waiting: usize,
}

/// Promotes every watched key whose handshake has come; with `watch`, goes on looking every
/// `POLL_EVERY` until nothing is staged or `watch` has passed.
pub fn promote(paths: &Paths, host: &str, watch: Option<Duration>) -> Result<Pass> {
    let start = Instant::now();
    let mut done = Vec::new();
    let mut applied: Option<Instant> = None;
    loop {
        let state = load(&paths.state);
        if !state.watching.is_empty()
            && let Some(pass) = promote_due(paths, host, &state)?
        {
            done.extend(pass);
        }
        if state.psk.iter().any(crate::rotation::psk_pending) {
            psk_due(paths, host, &state, &mut applied)?;
        }
        // Read again, not counted down: an apply meanwhile may have staged or ended a rotation.
        let left = load(&paths.state);
        let watching = |limit| {
            (!left.watching.is_empty() && start.elapsed() < limit)
                || left.psk.iter().any(|r| {
                    crate::rotation::psk_pending(r) && now() <= r.deadline() + PSK_WATCH_AFTER
                })
        };
        match watch {
            Some(limit) if watching(limit) => std::thread::sleep(POLL_EVERY),
            _ => {
                return Ok(Pass {
                    promoted: done,
                    waiting: left.watching.len()
                        + left
                            .psk
                            .iter()
                            .filter(|r| crate::rotation::psk_pending(r))
                            .count(),
                });
            }
        }
    }
}

/// How often the watcher may run an apply for a preshared key (one that failed is retried).
const APPLY_EVERY: Duration = Duration::from_secs(30);
/// How long the watcher stays after a preshared key's deadline, for the apply of its going
/// back to be retried.
const PSK_WATCH_AFTER: i64 = 300;

/// One look at the pairs' changes of preshared key: a switch time come runs an apply (which
/// changes the key, as the fleet says from then on); a handshake after the change confirms it;
/// none in time sends this end back to the current key, recorded first so that the apply it
/// runs renders that key.
fn psk_due(paths: &Paths, host: &str, state: &State, applied: &mut Option<Instant>) -> Result<()> {
    let now = now();
    // Before the first switch time there is nothing to look at.
    if state
        .psk
        .iter()
        .all(|r| !crate::rotation::psk_pending(r) || now < r.switch_time)
    {
        return Ok(());
    }
    let mut ifaces: Vec<&str> = state.psk.iter().map(|r| r.interface.as_str()).collect();
    ifaces.sort_unstable();
    ifaces.dedup();
    let handshakes = latest_handshakes(ifaces);
    let seen = |handshakes: &[(String, BTreeMap<String, u64>)], record: &PskRecord| {
        handshakes
            .iter()
            .find(|(iface, _)| *iface == record.interface)
            .and_then(|(_, h)| h.get(&record.peer_public_key).copied())
            .unwrap_or(0)
    };
    let mut apply = false;
    for record in state.psk.iter().filter(|r| crate::rotation::psk_pending(r)) {
        match crate::rotation::psk_next(record, now, seen(&handshakes, record)) {
            PskNext::Nothing => continue,
            PskNext::Apply => {
                apply = true;
                continue;
            }
            PskNext::Confirm(_) | PskNext::RollBack(_) => {}
        }
        let Some(_lock) = RunLock::try_acquire(&paths.lock).map_err(|source| Error::Write {
            path: paths.lock.clone(),
            source,
        })?
        else {
            return Ok(());
        };
        // Under the lock, the state and the handshake again: an apply that ran meanwhile may
        // have moved on, and a handshake that came meanwhile confirms instead.
        let mut state = load(&paths.state);
        let Some(r) = state.psk.iter_mut().find(|r| *r == record) else {
            continue;
        };
        let now = super::now();
        let handshake = seen(&latest_handshakes([r.interface.as_str()]), r);
        let (action, handshake, reason) = match crate::rotation::psk_next(r, now, handshake) {
            PskNext::Confirm(h) => {
                r.confirmed = Some(h);
                let at = crate::fleet::time::format_rfc3339(i64::try_from(h).unwrap_or(0));
                ("psk-confirm", Some(at), None)
            }
            PskNext::RollBack(reason) => {
                r.rolled_back = Some(reason.clone());
                apply = true;
                ("psk-roll-back", None, Some(reason))
            }
            PskNext::Nothing | PskNext::Apply => continue,
        };
        let entry = PskEntry {
            time: crate::fleet::time::format_rfc3339(now),
            host,
            network: &record.interface,
            action,
            peer: &record.peer,
            next_file: &record.next_file,
            handshake,
            reason,
        };
        let _ = audit::append_line(&paths.state, &entry);
        store(&paths.state, &state)?;
    }
    if apply && applied.is_none_or(|t| t.elapsed() >= APPLY_EVERY) {
        *applied = Some(Instant::now());
        // Its output goes to its unit's journal (or this one's); a failed one is retried, as
        // the records say until a run has made the change.
        match load(&paths.state).replay {
            Some(replay) => {
                if let Err(why) = replay.run() {
                    eprintln!(
                        "wgfleet promote: the apply for a preshared key did not end well: {why}"
                    );
                }
            }
            None => eprintln!(
                "wgfleet promote: a preshared key's change waits for the next apply (the last one cannot be run again: it was given a password on its command line)"
            ),
        }
    }
    Ok(())
}

/// The promotions of one look; `None` when an apply holds the lock (the next look tries again).
fn promote_due(paths: &Paths, host: &str, state: &State) -> Result<Option<Vec<Promoted>>> {
    let handshakes = handshakes(state);
    let due: Vec<(&Watch, u64)> = state
        .watching
        .iter()
        .map(|w| {
            let seen = handshakes
                .iter()
                .find(|(iface, _)| *iface == w.interface)
                .and_then(|(_, h)| h.get(&w.next_public_key).copied())
                .unwrap_or(0);
            (w, seen)
        })
        .filter(|&(w, seen)| crate::rotation::promotes(w, seen))
        .collect();
    if due.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let Some(_lock) = RunLock::try_acquire(&paths.lock).map_err(|source| Error::Write {
        path: paths.lock.clone(),
        source,
    })?
    else {
        return Ok(None);
    };
    // Under the lock, the state again: an apply that ran meanwhile may have moved on.
    let mut state = load(&paths.state);
    let mut promoted = Vec::new();
    for (w, handshake) in due {
        let Some(i) = state.watching.iter().position(|x| x == w) else {
            continue;
        };
        let result = super::live_set::wg_set(
            &w.interface,
            &crate::rotation::promote_args(w),
            "promoting the next key",
        );
        let entry = PromoteEntry {
            time: crate::fleet::time::format_rfc3339(now()),
            host,
            network: &w.interface,
            action: "promote",
            peer: &w.peer,
            public_key: &w.next_public_key,
            replaces: &w.current_public_key,
            handshake: crate::fleet::time::format_rfc3339(handshake as i64),
            result: match &result {
                Ok(()) => "ok".to_owned(),
                Err(e) => e.to_string(),
            },
        };
        let _ = audit::append_line(&paths.state, &entry);
        result?;
        let p = Promoted {
            interface: w.interface.clone(),
            peer: w.peer.clone(),
            next_public_key: w.next_public_key.clone(),
            at: now(),
            handshake,
        };
        state.watching.remove(i);
        state.promoted.push(p.clone());
        store(&paths.state, &state)?;
        promoted.push(p);
    }
    Ok(Some(promoted))
}

/// `wg show IFACE latest-handshakes` of each watched interface (an interface that is down has
/// none).
fn handshakes(state: &State) -> Vec<(String, BTreeMap<String, u64>)> {
    let mut ifaces: Vec<&str> = state
        .watching
        .iter()
        .map(|w| w.interface.as_str())
        .collect();
    ifaces.sort_unstable();
    ifaces.dedup();
    latest_handshakes(ifaces)
}

fn latest_handshakes<'i>(
    ifaces: impl IntoIterator<Item = &'i str>,
) -> Vec<(String, BTreeMap<String, u64>)> {
    ifaces
        .into_iter()
        .map(|iface| {
            let text = super::host::run("wg", &["show", iface, "latest-handshakes"], None)
                .unwrap_or_default();
            (
                iface.to_owned(),
                crate::confirm::parse_latest_handshakes(&text),
            )
        })
        .collect()
}

/// The audit line of a preshared key's change confirmed, or gone back from.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PskEntry<'a> {
    time: String,
    host: &'a str,
    network: &'a str,
    action: &'static str,
    peer: &'a str,
    next_file: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    handshake: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// The audit line of a promotion.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PromoteEntry<'a> {
    time: String,
    host: &'a str,
    network: &'a str,
    action: &'static str,
    peer: &'a str,
    public_key: &'a str,
    replaces: &'a str,
    handshake: String,
    result: String,
}
