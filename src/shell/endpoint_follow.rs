//! The shell of `crate::endpoints`: resolve the names the decision needs (getaddrinfo, which
//! honours /etc/hosts), set an endpoint live with `wg set IFACE peer KEY endpoint ADDR` (no
//! reload, no restart, no file write), audit it, and remember the choice in `endpoints.json`
//! (0600, written atomically, only when something changed).

use std::collections::BTreeMap;
use std::net::ToSocketAddrs;
use std::path::Path;

use serde::Serialize;

use super::audit;
use super::observe::Step;
use crate::diff::Action;
use crate::diff::Live;
use crate::endpoints::{self, Decision, Dialled, Resolution, State};
use crate::error::{Error, Result};
use crate::fsutil::{ensure_private_dir, write_atomic};
use crate::paths::Paths;
use crate::plan::InterfacePlan;

pub const STATE_NAME: &str = "endpoints.json";

/// An override of every peer's staleness threshold (`None`: each peer's own,
/// [`endpoints::stale_after_secs`]). A test hook: `WGFLEET_TEST_STALE_SECS`, honoured only when
/// set, lets the testbed test shorten it rather than wait minutes for a handshake to go stale.
/// The release binary honours it too (it is read here, not behind `cfg(test)`, because the
/// testbed runs the built binary); it is not a user setting and is documented only as a test hook.
pub fn stale_override() -> Option<u64> {
    std::env::var("WGFLEET_TEST_STALE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
}

/// The remembered choices; a missing file is an empty state, and an unreadable one too (it is
/// only a cache of choices: the next stale run rebuilds it), with a warning.
pub fn load_state(dir: &Path) -> (State, Option<String>) {
    let path = dir.join(STATE_NAME);
    match std::fs::read(&path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(state) => (state, None),
            Err(e) => (
                State::default(),
                Some(format!(
                    "{}: unreadable ({e}); starting from the first endpoints",
                    path.display()
                )),
            ),
        },
        Err(_) => (State::default(), None),
    }
}

fn save_state(dir: &Path, state: &State) -> Result<()> {
    let path = dir.join(STATE_NAME);
    let werr = |source| Error::Write {
        path: path.clone(),
        source,
    };
    ensure_private_dir(dir).map_err(werr)?;
    let mut text =
        serde_json::to_string_pretty(state).map_err(|e| werr(std::io::Error::other(e)))?;
    text.push('\n');
    write_atomic(&path, text.as_bytes(), 0o600).map_err(werr)
}

/// What the check found: the decisions, and the state they were made against.
#[derive(Debug, Default)]
pub struct Checked {
    pub decisions: Vec<Decision>,
    pub state: State,
    /// Why the state file was ignored, if it was.
    pub warning: Option<String>,
}

impl Checked {
    pub fn changes_something(&self) -> bool {
        self.decisions.iter().any(|d| d.set.is_some())
    }
}

/// Decides for every watched peer of `plans` against its live state (`live`, by interface;
/// an interface without one is not checked). Reads the state file and resolves names (with
/// `resolve`: [`resolve`] outside tests) only for peers that need a look: with every watched
/// peer fresh and live at its first endpoint's text (one name, or a list whose first is an
/// address), nothing is read and nothing resolved. A fresh peer with a list whose first is a
/// name may be on a backup: the state file says, so it is read (nothing is resolved for it
/// unless it is on a backup).
pub fn check<'p>(
    plans: impl IntoIterator<Item = &'p InterfacePlan>,
    live: &dyn Fn(&str) -> Option<&'p Live>,
    resolve: &dyn Fn(&str) -> Resolution,
    state_dir: &Path,
    now: i64,
    stale: Option<u64>,
) -> Checked {
    let watched: Vec<(Dialled, &crate::diff::LivePeer)> = plans
        .into_iter()
        .flat_map(endpoints::dialled)
        .filter_map(|d| {
            let peer = live(&d.network)?.peers.get(&d.public_key)?;
            Some((d, peer))
        })
        .collect();
    let may_need = |(d, lp): &(Dialled, &crate::diff::LivePeer)| {
        !endpoints::names_for(d, lp, None, now, stale).is_empty()
            || (d.endpoints.len() > 1 && lp.endpoint.as_ref() != d.endpoints.first())
    };
    if !watched.iter().any(may_need) {
        return Checked::default();
    }
    let (state, warning) = load_state(state_dir);
    let mut resolved: BTreeMap<String, Resolution> = BTreeMap::new();
    let mut decisions = Vec::new();
    for (d, lp) in &watched {
        let remembered = state.get(&d.network, &d.peer);
        for name in endpoints::names_for(d, lp, remembered, now, stale) {
            if !resolved.contains_key(name) {
                resolved.insert(name.to_owned(), resolve(name));
            }
        }
        decisions.extend(endpoints::decide(d, lp, remembered, &resolved, now, stale));
    }
    Checked {
        decisions,
        state,
        warning,
    }
}

/// getaddrinfo through std (honours /etc/hosts and nsswitch, as `wg` itself does).
pub fn resolve(endpoint: &str) -> Resolution {
    endpoint
        .to_socket_addrs()
        .map(Iterator::collect)
        .map_err(|e| e.to_string())
}

/// How one endpoint change ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub network: String,
    pub peer: String,
    pub from: Option<String>,
    pub to: String,
    pub ok: bool,
    pub result: String,
}

/// Who is acting, for the audit log.
pub struct Actor<'a> {
    pub state_dir: &'a Path,
    pub host: &'a str,
    pub digest: &'a str,
}

/// Sets every decided endpoint live, audits each, and saves the state when it changed. A failed
/// `wg set` does not stop the others; it is returned as an error after all were tried (and so is
/// a failed audit line, after the state is saved).
pub fn act(checked: &Checked, actor: &Actor<'_>, now: i64) -> Result<Vec<Applied>> {
    if checked.decisions.is_empty() {
        return Ok(Vec::new());
    }
    // Audit lines are appended below: the log rolls over like a full apply's.
    if checked.changes_something() {
        audit::roll_for_endpoints(actor.state_dir).map_err(|source| Error::Write {
            path: actor.state_dir.join(audit::LOG_NAME),
            source,
        })?;
    }
    let mut state = checked.state.clone();
    let mut applied = Vec::new();
    let mut failed = None;
    let mut audit_failed = None;
    for d in &checked.decisions {
        let mut ok = true;
        if let Some(set) = &d.set {
            let result = wg_set_endpoint(&d.network, &d.public_key, &set.to);
            ok = result.is_ok();
            let text = result
                .as_ref()
                .map_or_else(ToString::to_string, |()| "ok".to_owned());
            let entry = audit::EndpointEntry {
                time: crate::fleet::time::format_rfc3339(now),
                host: actor.host,
                fleet_digest: actor.digest,
                network: &d.network,
                action: "set-endpoint",
                peer: &d.peer,
                public_key: &d.public_key,
                from: set.from.as_deref(),
                to: &set.to,
                endpoint: &set.endpoint,
                reason: set.reason,
                result: text.clone(),
            };
            // The endpoint is set live already: a failed audit line must not lose the state
            // that says so; it is returned after the state is saved.
            if let Err(source) = audit::append_line(actor.state_dir, &entry) {
                audit_failed.get_or_insert(Error::Write {
                    path: actor.state_dir.join(audit::LOG_NAME),
                    source,
                });
            }
            applied.push(Applied {
                network: d.network.clone(),
                peer: d.peer.clone(),
                from: set.from.clone(),
                to: set.to.clone(),
                ok,
                result: text,
            });
            if let Err(e) = result {
                failed.get_or_insert(e);
            }
        }
        if ok && let Some(peer_state) = &d.state {
            state
                .networks
                .entry(d.network.clone())
                .or_default()
                .insert(d.peer.clone(), peer_state.clone());
        }
    }
    if state != checked.state {
        save_state(actor.state_dir, &state)?;
    }
    match failed.or(audit_failed) {
        Some(e) => Err(e),
        None => Ok(applied),
    }
}

fn wg_set_endpoint(iface: &str, public_key: &str, address: &str) -> Result<()> {
    super::live_set::wg_set(
        iface,
        &["peer", public_key, "endpoint", address],
        &format!("`wg set {iface} peer {public_key} endpoint {address}`"),
    )
}

/// What `plan` and `apply` print for the endpoint check (nothing when there is nothing to say).
pub fn describe(checked: &Checked) -> String {
    let mut by_network: BTreeMap<&str, String> = BTreeMap::new();
    for d in &checked.decisions {
        let text = endpoints::describe(d);
        if !text.is_empty() {
            by_network.entry(&d.network).or_default().push_str(&text);
        }
    }
    let mut out = String::new();
    if let Some(w) = &checked.warning {
        out.push_str(&format!("endpoints: {w}\n"));
    }
    for (network, lines) in by_network {
        out.push_str(&format!(
            "{network}: endpoints (wg set, no reload)\n{lines}"
        ));
    }
    out
}

/// The JSON of the check: what `plan --json` and `apply --json` carry as `endpoints`.
pub fn report(checked: &Checked, applied: Option<&[Applied]>) -> serde_json::Value {
    let unresolved: Vec<_> = checked
        .decisions
        .iter()
        .flat_map(|d| {
            d.unresolved.iter().map(|u| {
                serde_json::json!({"network": d.network, "peer": d.peer, "endpoint": u.endpoint, "error": u.error})
            })
        })
        .collect();
    serde_json::json!({
        "decisions": checked.decisions,
        "unresolved": unresolved,
        "applied": applied,
        "warning": checked.warning,
    })
}

/// The check for the interfaces this run leaves running as they are, against the live state
/// observed before acting (`apply` reads it anyway for drift: no extra `wg show`). An interface
/// that starts, restarts or reloads is skipped: the unit loads the config, whose names `wg`
/// resolves itself, and its peers get their first handshake before the next run judges them.
/// `observed_at`: when the live state was read (handshake ages are measured from then, not
/// from after the act, which can take a while).
pub fn check_steps(steps: &[Step<'_>], paths: &Paths, observed_at: i64) -> Checked {
    let untouched: Vec<&Step<'_>> = steps
        .iter()
        .filter(|s| {
            s.desired.is_some()
                && matches!(
                    s.ops.action,
                    Action::Nothing | Action::HostState | Action::WriteFile
                )
        })
        .collect();
    let live: BTreeMap<&str, &Live> = untouched
        .iter()
        .filter_map(|s| Some((s.diff.network.as_str(), s.live.as_ref()?)))
        .collect();
    check(
        untouched.iter().filter_map(|s| s.desired.map(|d| &d.plan)),
        &|iface| live.get(iface).copied(),
        &resolve,
        &paths.state,
        observed_at,
        stale_override(),
    )
}

/// Runs the check's decisions (after apply's own steps succeeded).
pub fn act_for(checked: &Checked, paths: &Paths, host: &str, digest: &str) -> Result<Vec<Applied>> {
    let actor = Actor {
        state_dir: &paths.state,
        host,
        digest,
    };
    act(checked, &actor, super::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::LivePeer;

    fn plan(endpoints: &[&str]) -> InterfacePlan {
        let endpoints = endpoints.iter().map(|e| (*e).to_owned()).collect();
        crate::endpoints::fixtures::spoke(vec![crate::endpoints::fixtures::hub_peer(endpoints)])
    }

    fn live(endpoint: &str, handshake: u64) -> Live {
        let mut live = Live::default();
        live.peers.insert(
            "K".into(),
            LivePeer {
                endpoint: Some(endpoint.into()),
                latest_handshake: handshake,
                ..LivePeer::default()
            },
        );
        live
    }

    /// No real lookup in a unit test: IP addresses parse, every name fails.
    fn fake(endpoint: &str) -> Resolution {
        endpoint
            .parse()
            .map(|a| vec![a])
            .map_err(|_| "Name or service not known".to_owned())
    }

    /// All fresh: the state file is not even read (an unreadable one says nothing), and no name
    /// is looked up (the fake resolver fails every name: a lookup would show as `unresolved`).
    #[test]
    fn a_fresh_peer_reads_and_resolves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_NAME), "not json").unwrap();
        let plans = [plan(&["hub.invalid:51820"])];
        let now = 1_000_000;
        let l = live("192.0.2.1:51820", now as u64 - 10);
        let checked = check(&plans, &|_| Some(&l), &fake, dir.path(), now, None);
        assert!(checked.decisions.is_empty() && checked.warning.is_none());
        // Stale, the same fleet: now the name is looked up and reported, and the bad file too.
        let l = live("192.0.2.1:51820", now as u64 - 500);
        let checked = check(&plans, &|_| Some(&l), &fake, dir.path(), now, None);
        assert_eq!(
            checked.decisions[0].unresolved[0].endpoint,
            "hub.invalid:51820"
        );
        assert!(checked.warning.is_some());
        assert!(describe(&checked).contains("does not resolve"));
    }

    /// A stale peer with two addresses moves to the second; the state round-trips through its
    /// file, 0600.
    #[test]
    fn a_stale_peer_moves_on_and_the_choice_is_remembered() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plans = [plan(&["192.0.2.1:51820", "192.0.2.2:51820"])];
        let now = 1_000_000;
        let l = live("192.0.2.1:51820", now as u64 - 500);
        let checked = check(&plans, &|_| Some(&l), &fake, dir.path(), now, None);
        let set = checked.decisions[0].set.clone().unwrap();
        assert_eq!((set.index, set.to.as_str()), (1, "192.0.2.2:51820"));
        let mut state = checked.state.clone();
        state
            .networks
            .entry("wg0".into())
            .or_default()
            .insert("hub".into(), checked.decisions[0].state.clone().unwrap());
        save_state(dir.path(), &state).unwrap();
        let path = dir.path().join(STATE_NAME);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load_state(dir.path()), (state, None));
    }

    /// A fresh peer live at the first of its list (an address): no state is read either.
    #[test]
    fn a_fresh_peer_on_its_first_address_reads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_NAME), "not json").unwrap();
        let plans = [plan(&["192.0.2.1:51820", "backup.invalid:51820"])];
        let now = 1_000_000;
        let l = live("192.0.2.1:51820", now as u64 - 10);
        let checked = check(&plans, &|_| Some(&l), &fake, dir.path(), now, None);
        assert!(checked.decisions.is_empty() && checked.warning.is_none());
    }
}
