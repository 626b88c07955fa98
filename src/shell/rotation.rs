//! Key rotation, the shell: what this host remembers of its rotations (`rotation.json` in the
//! state directory: its own, the staged keys it watches, the ones it promoted), the short-lived
//! unit that watches handshakes while a key is staged, and the promotion itself (one `wg set`,
//! audited). The decisions are `crate::rotation`'s.
//!
//! A promotion is made under the run lock and recorded before the lock is let go, so an apply
//! either renders the promoted key or runs before the promotion: never a file that puts the
//! current key back over a promotion it did not see.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::desired::Desired;
use super::lock::RunLock;
use super::systemd::Systemd;
use super::{audit, now};
use crate::error::{Error, Result};
use crate::fsutil::{ensure_private_dir, write_atomic};
use crate::paths::Paths;
use crate::plan::{InterfacePlan, OwnStage};
use crate::rotation::{Promoted, Watch};

pub const FILE_NAME: &str = "rotation.json";
/// The unit that watches for handshakes from staged keys (`wgfleet promote --watch`).
pub const WATCH_UNIT: &str = "wgfleet-promote.service";
/// How long one watcher runs: apply starts another while anything is still staged, and the
/// timer runs apply every 5 minutes, so the watches overlap.
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
        self.own.is_empty() && self.watching.is_empty() && self.promoted.is_empty()
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

/// After a run that ended well (under its lock): what this host now watches and has promoted,
/// and a watcher started while anything is staged. `switched`: the interfaces that moved to
/// this host's next key in this run; each peer gets one datagram, so that its staged entry
/// handshakes at once (a hub's switch is held to nothing, and its spokes cannot reach the next
/// key before they promote it).
pub fn after_run(
    paths: &Paths,
    host: &str,
    desired: &[Desired],
    switched: &[&str],
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
    };
    if state != before {
        let _ = store(&paths.state, &state);
    }
    if !state.watching.is_empty() {
        let _ = start_watcher(systemd, host);
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
    let runtime_max = Duration::from_secs(WATCH_SECS + 60);
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
    loop {
        let state = load(&paths.state);
        let waiting = state.watching.len();
        if waiting > 0
            && let Some(pass) = promote_due(paths, host, &state)?
        {
            done.extend(pass);
        }
        // Read again, not counted down: an apply meanwhile may have staged or ended a rotation.
        let left = load(&paths.state).watching.len();
        match watch {
            Some(limit) if left > 0 && start.elapsed() < limit => std::thread::sleep(POLL_EVERY),
            _ => {
                return Ok(Pass {
                    promoted: done,
                    waiting: left,
                });
            }
        }
    }
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
fn handshakes(state: &State) -> Vec<(String, std::collections::BTreeMap<String, u64>)> {
    let mut ifaces: Vec<&str> = state
        .watching
        .iter()
        .map(|w| w.interface.as_str())
        .collect();
    ifaces.sort_unstable();
    ifaces.dedup();
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
