//! What differs between the desired state of one interface and what is live, and the least
//! disruptive action that fixes it. Pure: everything observed comes in as values.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::secrets::keys::SecretKey;
use crate::wgconf::{self, RELOADABLE_INTERFACE_KEYS, WgConf};
use joined::joined;

mod delta;
mod host;
mod joined;
mod live;

pub use delta::{Clause, MAX_PEERS, PeerDelta, Psk, clauses, peer_delta, wg_set_args};
pub use host::{HostDiff, describe_host};
pub use live::{Live, LivePeer, SESSION_SECS, UnitState, parse_addresses, parse_dump};

/// Actions, from least to most disruptive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Nothing differs: no write, no D-Bus job.
    Nothing,
    /// Host-wide state only (wgfleet's chains, sysctls, boot files): no tunnel is touched.
    HostState,
    /// Only the file differs, not its meaning (comments, order): rewrite it, touch nothing live.
    WriteFile,
    /// Peers, keys or listen port: live sessions survive. A change of peers alone is set live
    /// (one `wg set` of the peers that changed); the rest reloads the unit (`wg syncconf`).
    Reload,
    /// Interface-level fields (Address, MTU, DNS, hooks): `RestartUnit`.
    Restart,
    /// The unit is not running: enable and start it.
    Start,
    /// The network no longer includes this host: stop, disable, remove file and rules.
    Remove,
}

impl Action {
    pub fn describe(self) -> &'static str {
        match self {
            Action::Nothing => "nothing to do",
            Action::HostState => "update the firewall, sysctls and boot files (no tunnel touched)",
            Action::WriteFile => "rewrite the file only (same meaning; nothing live changes)",
            Action::Reload => "reload (wg syncconf: live sessions survive)",
            Action::Restart => "restart the interface (interface-level change)",
            Action::Start => "enable and start the unit",
            Action::Remove => "stop, disable and remove",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum Change {
    FileMissing,
    FileRewritten,
    PeerAdded {
        peer: String,
        public_key: String,
        allowed_ips: Vec<String>,
    },
    PeerRemoved {
        peer: String,
        public_key: String,
    },
    PeerChanged {
        peer: String,
        public_key: String,
        fields: Vec<String>,
    },
    /// An `[Interface]` key; values are shown except for the private key.
    InterfaceChanged {
        key: String,
        from: Option<String>,
        to: Option<String>,
    },
    UnitNotActive {
        state: String,
    },
    UnitNotEnabled,
    /// The running interface differs from an unchanged file (someone ran `wg set`).
    LiveDrift {
        detail: String,
    },
    NetworkRemoved,
    /// An earlier run wrote the file but was killed before its job finished (its record is
    /// under the state directory): this run does the job.
    Interrupted {
        action: Action,
    },
}

/// What one interface needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkDiff {
    pub network: String,
    pub action: Action,
    /// The file on disk is to be (re)written.
    pub write_file: bool,
    /// The unit is to be enabled (so it comes up at boot).
    pub enable: bool,
    pub changes: Vec<Change>,
    /// For a reload that changes peers alone: the peers to set live, one `wg set` (no job).
    #[serde(skip)]
    pub delta: Option<PeerDelta>,
    /// The files as the diff parsed them, for the confirmation and the delta's `wg set`: a
    /// 65,000-peer file takes ~60 ms to parse.
    #[serde(skip)]
    pub parsed: Option<Parsed>,
}

/// The desired file and the one on disk, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// `None`: the file on disk is the desired one.
    pub old: Option<WgConf>,
    pub new: WgConf,
}

/// Compares the desired file (secrets filled in) with what is on disk and live.
/// `names` maps public keys to peer names for readable changes.
pub fn diff_network(
    network: &str,
    desired: &str,
    on_disk: Option<&str>,
    live: Option<&Live>,
    unit: &UnitState,
    names: &BTreeMap<String, String>,
) -> NetworkDiff {
    let mut changes = Vec::new();
    let file_equal = on_disk == Some(desired);
    let mut needs_restart = false;
    let mut meaning_changed = false;
    // The files as parsed for the comparison (the delta needs them again); `None` for the
    // file on disk: it is the desired one.
    let mut parsed: Option<Parsed> = None;
    match on_disk {
        None => changes.push(Change::FileMissing),
        Some(_) if file_equal => {}
        Some(old_text) => {
            let (old, new) = (wgconf::parse(old_text), wgconf::parse(desired));
            let (iface, restart) = interface_changes(&old, &new);
            needs_restart = restart;
            let peers = peer_changes(&old, &new, names);
            // Table absent → off changes nothing live: the routes wg-quick added at `up` stay,
            // and from the next start on wgfleet's drop-in adds them (`routes-interface`).
            meaning_changed = iface.iter().any(|c| !is_table_handover(c)) || !peers.is_empty();
            if iface.is_empty() && peers.is_empty() {
                changes.push(Change::FileRewritten);
            }
            changes.extend(iface);
            changes.extend(peers);
            parsed = Some(Parsed {
                old: Some(old),
                new,
            });
        }
    }
    let running = unit.is_running();
    if !running {
        changes.push(Change::UnitNotActive {
            state: unit.active_state.clone(),
        });
    }
    if !unit.enabled {
        changes.push(Change::UnitNotEnabled);
    }
    let mut drift = false;
    if running
        && file_equal
        && let Some(live) = live
    {
        let (found, restart) = if peers_match(desired, live) {
            // Only the interface's keys are left to compare: no model of every peer is built.
            interface_drift(&wgconf::parse(interface_part(desired)), live)
        } else {
            let conf = wgconf::parse(desired);
            let found = live_drift(&conf, live, names);
            parsed = Some(Parsed {
                old: None,
                new: conf,
            });
            found
        };
        drift = !found.is_empty();
        needs_restart |= restart;
        changes.extend(found);
    }
    let action = if !running {
        Action::Start
    } else if needs_restart {
        Action::Restart
    } else if meaning_changed || drift {
        Action::Reload
    } else if !file_equal {
        Action::WriteFile
    } else {
        Action::Nothing
    };
    let delta = match (action, &parsed, live) {
        (Action::Reload, Some(Parsed { old, new }), Some(live)) => peers_only(&changes, new, live)
            .then(|| peer_delta(new, old.as_ref().unwrap_or(new), live))
            .flatten()
            .filter(|d| !d.is_empty()),
        _ => None,
    };
    NetworkDiff {
        network: network.to_owned(),
        action,
        write_file: !file_equal,
        enable: !unit.enabled,
        changes,
        delta,
        parsed,
    }
}

/// Whether a reload changes the peers alone: no `[Interface]` key differs, in the file or live
/// (a listen port or private key is `wg syncconf`'s to set).
fn peers_only(changes: &[Change], new: &WgConf, live: &Live) -> bool {
    !changes
        .iter()
        .any(|c| matches!(c, Change::InterfaceChanged { .. }))
        && interface_drift(new, live).0.is_empty()
}

/// A network this host no longer has, whose file wgfleet wrote.
pub fn diff_removed(network: &str) -> NetworkDiff {
    NetworkDiff {
        network: network.to_owned(),
        action: Action::Remove,
        write_file: false,
        enable: false,
        changes: vec![Change::NetworkRemoved],
        delta: None,
        parsed: None,
    }
}

fn is_table_handover(c: &Change) -> bool {
    let one = |v: &Option<String>| v.as_ref().map(|v| vec![v.clone()]);
    matches!(c, Change::InterfaceChanged { key, from, to }
        if key == "Table" && wgconf::table_handover(one(from).as_ref(), one(to).as_ref()))
}

fn interface_changes(old: &WgConf, new: &WgConf) -> (Vec<Change>, bool) {
    let keys: BTreeSet<&String> = old.interface.keys().chain(new.interface.keys()).collect();
    let mut changes = Vec::new();
    let mut restart = false;
    for key in keys {
        let (a, b) = (old.interface.get(key), new.interface.get(key));
        if a == b {
            continue;
        }
        // Table absent → off is wgfleet taking the routes over (no restart); off → absent
        // needs wg-quick's `up` to add them: a restart.
        let handover = key == "table" && wgconf::table_handover(a, b);
        restart |= !RELOADABLE_INTERFACE_KEYS.contains(&key.as_str()) && !handover;
        let secret = key == "privatekey";
        let show = |v: Option<&Vec<String>>| {
            if secret {
                None
            } else {
                v.map(|v| v.join(", "))
            }
        };
        changes.push(Change::InterfaceChanged {
            key: crate::wgconf::canonical_key(key),
            from: show(a),
            to: show(b),
        });
    }
    (changes, restart)
}

/// The fleet's name for a peer's public key, or a note that the fleet does not know it.
fn peer_name(names: &BTreeMap<String, String>, key: &str) -> String {
    names
        .get(key)
        .cloned()
        .unwrap_or_else(|| "(not in the fleet)".into())
}

fn peer_changes(old: &WgConf, new: &WgConf, names: &BTreeMap<String, String>) -> Vec<Change> {
    let name = |key: &String| peer_name(names, key);
    let (mut changes, mut removed) = (Vec::new(), Vec::new());
    for (key, o, p) in joined(&old.peers, &new.peers) {
        match (o, p) {
            (None, Some(p)) => changes.push(Change::PeerAdded {
                peer: name(key),
                public_key: key.clone(),
                allowed_ips: p.allowed_ips.iter().cloned().collect(),
            }),
            (Some(o), Some(p)) if o != p => {
                let fields = p.changes_from(o);
                changes.push(Change::PeerChanged {
                    peer: name(key),
                    public_key: key.clone(),
                    fields,
                });
            }
            (Some(_), None) => removed.push(Change::PeerRemoved {
                peer: name(key),
                public_key: key.clone(),
            }),
            _ => {}
        }
    }
    changes.extend(removed);
    changes
}

/// An earlier run that was killed before its job finished: the job is this run's to do (the
/// file on disk may already be the new one, so the diff alone would not see it). Said even when
/// the diff already calls for as much, so that the operator learns of the crash.
pub fn finish_interrupted(mut diff: NetworkDiff, interrupted: Action) -> NetworkDiff {
    let job = matches!(
        interrupted,
        Action::Reload | Action::Restart | Action::Start
    );
    if job && diff.action != Action::Remove {
        // What the killed run did is not known: the unit's job does it all again.
        diff.delta = None;
        diff.action = diff.action.max(interrupted);
        diff.changes.push(Change::Interrupted {
            action: interrupted,
        });
    }
    diff
}

/// The file up to its first `[Peer]` section (a header as `wgconf::parse` reads one).
fn interface_part(text: &str) -> &str {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let header = line.split('#').next().unwrap_or("").trim();
        if header.eq_ignore_ascii_case("[peer]") {
            return &text[..at];
        }
        at += line.len();
    }
    text
}

/// Whether the live peers are exactly the file's, as `peer_drift` compares them (public keys,
/// AllowedIPs, keepalive, whether a PSK is set), read off the text without building the file's
/// model: the check of a run that finds nothing to do on a 100,000-peer hub. `false` is only
/// "not shown equal here": anything unusual (a key twice, a section with no key) goes to the
/// full comparison.
fn peers_match(text: &str, live: &Live) -> bool {
    struct Row<'t> {
        key: &'t str,
        allowed: Vec<&'t str>,
        keepalive: Option<&'t str>,
        psk: bool,
    }
    let mut rows: Vec<Row<'_>> = Vec::with_capacity(live.peers.len());
    let mut in_peer = false;
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            if in_peer && rows.last().is_some_and(|r| r.key.is_empty()) {
                return false;
            }
            in_peer = line.eq_ignore_ascii_case("[peer]");
            if in_peer {
                rows.push(Row {
                    key: "",
                    allowed: Vec::new(),
                    keepalive: None,
                    psk: false,
                });
            }
            continue;
        }
        let (true, Some((key, value)), Some(row)) =
            (in_peer, line.split_once('='), rows.last_mut())
        else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key.eq_ignore_ascii_case("publickey") {
            row.key = value;
        } else if key.eq_ignore_ascii_case("allowedips") {
            row.allowed
                .extend(value.split(',').map(str::trim).filter(|s| !s.is_empty()));
        } else if key.eq_ignore_ascii_case("persistentkeepalive") {
            row.keepalive = Some(value).filter(|v| *v != "0" && *v != "off");
        } else if key.eq_ignore_ascii_case("presharedkey") {
            row.psk = true;
        }
    }
    if rows.iter().any(|r| r.key.is_empty()) || rows.len() != live.peers.len() {
        return false;
    }
    rows.sort_unstable_by(|a, b| a.key.cmp(b.key));
    rows.iter().zip(&live.peers).all(|(row, (key, l))| {
        let mut allowed = row.allowed.clone();
        allowed.sort_unstable();
        allowed.dedup();
        row.key == key.as_str()
            && l.keepalive.as_deref() == row.keepalive
            && l.has_psk == row.psk
            && allowed.len() == l.allowed_ips.len()
            && allowed
                .iter()
                .zip(&l.allowed_ips)
                .all(|(a, b)| *a == b.as_str())
    })
}

/// Differences between the file's meaning and the running interface, and whether they need a
/// restart (wg-quick sets Address and MTU only on `up`; `wg syncconf` sets the rest).
/// Endpoints are not compared: peers roam, and hubs learn spokes' endpoints from handshakes.
fn live_drift(conf: &WgConf, live: &Live, names: &BTreeMap<String, String>) -> (Vec<Change>, bool) {
    let (mut found, restart) = interface_drift(conf, live);
    found.extend(peer_drift(conf, live, names));
    (found, restart)
}

/// `live_drift` of the `[Interface]` section.
fn interface_drift(conf: &WgConf, live: &Live) -> (Vec<Change>, bool) {
    let mut restart = false;
    let mut found = Vec::new();
    let mtu = conf.interface.get("mtu").and_then(|v| v.last());
    if let (Some(want), Some(have)) = (mtu, &live.mtu)
        && want != have
    {
        restart = true;
        found.push(Change::LiveDrift {
            detail: format!("MTU is {have} live"),
        });
    }
    let want: BTreeSet<IpNet> = conf.addresses();
    if let Some(have) = &live.addresses
        && !want.is_empty()
        && *have != want
    {
        restart = true;
        let have: BTreeSet<String> = have.iter().map(ToString::to_string).collect();
        found.push(Change::LiveDrift {
            detail: format!("addresses {} live", join(&have)),
        });
    }
    let key = conf
        .interface
        .get("privatekey")
        .and_then(|v| v.last())
        .and_then(|k| SecretKey::from_base64(k.as_bytes()))
        .map(|k| k.public_key());
    if key.is_some() && live.public_key.is_some() && key != live.public_key {
        found.push(Change::LiveDrift {
            detail: format!(
                "the interface runs with another private key (public key {})",
                opt(&live.public_key)
            ),
        });
    }
    let port = conf.interface.get("listenport").and_then(|v| v.last());
    if port.is_some() && port != live.listen_port.as_ref() {
        found.push(Change::LiveDrift {
            detail: format!("listening on port {}", opt(&live.listen_port)),
        });
    }
    (found, restart)
}

fn peer_drift(conf: &WgConf, live: &Live, names: &BTreeMap<String, String>) -> Vec<Change> {
    let name = |key: &String| peer_name(names, key);
    let mut found = Vec::new();
    // Both maps are sorted by key: one pass over both, not a search per peer (100,000 peers
    // are compared at each run of a big hub).
    let mut want = conf.peers.iter().peekable();
    let mut have = live.peers.iter().peekable();
    let mut unknown = Vec::new();
    loop {
        let order = match (want.peek(), have.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((w, _)), Some((h, _))) => w.cmp(h),
        };
        match order {
            std::cmp::Ordering::Less => {
                let Some((key, _)) = want.next() else { break };
                found.push(Change::LiveDrift {
                    detail: format!("peer {} is missing from the interface", name(key)),
                });
            }
            std::cmp::Ordering::Greater => {
                let Some((key, _)) = have.next() else { break };
                unknown.push(Change::LiveDrift {
                    detail: format!("peer {key} is on the interface but not in the file"),
                });
            }
            std::cmp::Ordering::Equal => {
                let (Some((key, p)), Some((_, l))) = (want.next(), have.next()) else {
                    break;
                };
                if l.allowed_ips != p.allowed_ips {
                    found.push(Change::LiveDrift {
                        detail: format!(
                            "peer {} has AllowedIPs {} live",
                            name(key),
                            join(&l.allowed_ips)
                        ),
                    });
                }
                if l.keepalive != p.keepalive || l.has_psk != p.preshared_key.is_some() {
                    found.push(Change::LiveDrift {
                        detail: format!("peer {} has other keepalive or PSK live", name(key)),
                    });
                }
            }
        }
    }
    found.extend(unknown);
    found
}

fn join(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "(none)".into()
    } else {
        set.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "(none)".into())
}

#[cfg(test)]
mod tests;
