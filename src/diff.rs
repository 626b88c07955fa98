//! What differs between the desired state of one interface and what is live, and the least
//! disruptive action that fixes it. Pure: everything observed comes in as values.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::secrets::keys::SecretKey;
use crate::wgconf::{self, RELOADABLE_INTERFACE_KEYS, WgConf};

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
    /// Peers, keys or listen port: `ReloadUnit` (wg syncconf); live sessions survive.
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

/// The unit as systemd reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitState {
    pub active_state: String,
    pub enabled: bool,
}

impl UnitState {
    pub fn is_running(&self) -> bool {
        matches!(self.active_state.as_str(), "active" | "reloading")
    }
}

/// What `wg show IFACE dump` and `ip` say about the running interface (no key material kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    pub listen_port: Option<String>,
    /// The public key of the live private key (derived here; the private key is not kept).
    pub public_key: Option<String>,
    /// The interface's global addresses and MTU (`None`: not observed).
    pub addresses: Option<BTreeSet<IpNet>>,
    pub mtu: Option<String>,
    /// By public key: allowed IPs, keepalive ("off" or seconds), whether a PSK is set.
    pub peers: BTreeMap<String, LivePeer>,
}

/// WireGuard's REJECT_AFTER_TIME: a session lives this long after its handshake, so a link that
/// carries data has a handshake younger than this (plus a keepalive, for the side that answered).
pub const SESSION_SECS: u64 = 180;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LivePeer {
    pub allowed_ips: BTreeSet<String>,
    pub keepalive: Option<String>,
    pub has_psk: bool,
    pub endpoint: Option<String>,
    /// Unix seconds of the latest handshake; 0: never.
    pub latest_handshake: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// Parses `wg show IFACE dump`. Of the private key (first field) only its public key is kept;
/// PSKs are skipped.
pub fn parse_dump(dump: &str) -> Live {
    let mut lines = dump.lines();
    let first: Vec<&str> = lines
        .next()
        .map_or_else(Vec::new, |l| l.split('\t').collect());
    let listen_port = first.get(2).map(|s| (*s).to_owned());
    let public_key = first
        .first()
        .and_then(|k| SecretKey::from_base64(k.as_bytes()))
        .map(|k| k.public_key());
    // Collected, then built in bulk (a 100,000-peer dump is read at each run).
    let mut peers = Vec::new();
    for line in lines {
        let mut fields = line.split('\t');
        let f: [&str; 8] = std::array::from_fn(|_| fields.next().unwrap_or(""));
        if f[7].is_empty() {
            continue;
        }
        let allowed_ips = f[3]
            .split(',')
            .filter(|s| !s.is_empty() && *s != "(none)")
            .map(str::to_owned)
            .collect();
        let keepalive = Some(f[7].to_owned()).filter(|k| k != "off");
        let number = |i: usize| f[i].parse().unwrap_or(0);
        peers.push((
            f[0].to_owned(),
            LivePeer {
                allowed_ips,
                keepalive,
                has_psk: f[1] != "(none)",
                endpoint: Some(f[2].to_owned()).filter(|e| e != "(none)"),
                latest_handshake: number(4),
                rx_bytes: number(5),
                tx_bytes: number(6),
            },
        ));
    }
    Live {
        listen_port,
        public_key,
        peers: peers.into_iter().collect(),
        ..Live::default()
    }
}

/// The global addresses in `ip -o address show dev IFACE` (link-local ones are the kernel's).
pub fn parse_addresses(text: &str) -> BTreeSet<IpNet> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            words.next()?.parse().ok()
        })
        .collect()
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
            live_drift(&wgconf::parse(desired), live, names)
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
    NetworkDiff {
        network: network.to_owned(),
        action,
        write_file: !file_equal,
        enable: !unit.enabled,
        changes,
    }
}

/// A network this host no longer has, whose file wgfleet wrote.
pub fn diff_removed(network: &str) -> NetworkDiff {
    NetworkDiff {
        network: network.to_owned(),
        action: Action::Remove,
        write_file: false,
        enable: false,
        changes: vec![Change::NetworkRemoved],
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
    let mut changes = Vec::new();
    for (key, p) in &new.peers {
        match old.peers.get(key) {
            None => changes.push(Change::PeerAdded {
                peer: name(key),
                public_key: key.clone(),
                allowed_ips: p.allowed_ips.iter().cloned().collect(),
            }),
            Some(o) if o != p => {
                let fields = p.changes_from(o);
                changes.push(Change::PeerChanged {
                    peer: name(key),
                    public_key: key.clone(),
                    fields,
                });
            }
            Some(_) => {}
        }
    }
    for key in old.peers.keys().filter(|k| !new.peers.contains_key(*k)) {
        changes.push(Change::PeerRemoved {
            peer: name(key),
            public_key: key.clone(),
        });
    }
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
mod tests {
    use super::*;

    const BASE: &str = "[Interface]\nAddress = 10.0.0.1/24\nListenPort = 51820\nPrivateKey = K\n\n# a\n[Peer]\nPublicKey = A\nAllowedIPs = 10.0.0.2/32\n";
    fn up() -> UnitState {
        UnitState {
            active_state: "active".into(),
            enabled: true,
        }
    }
    fn live_of(text: &str) -> Live {
        let c = wgconf::parse(text);
        Live {
            listen_port: c
                .interface
                .get("listenport")
                .and_then(|v| v.last().cloned()),
            peers: c
                .peers
                .iter()
                .map(|(k, p)| {
                    (
                        k.clone(),
                        LivePeer {
                            allowed_ips: p.allowed_ips.clone(),
                            keepalive: p.keepalive.clone(),
                            has_psk: p.preshared_key.is_some(),
                            ..LivePeer::default()
                        },
                    )
                })
                .collect(),
            ..Live::default()
        }
    }
    /// The shortcut of a run with nothing to do says "equal" only where the full comparison
    /// finds no peer drift.
    #[test]
    fn peers_match_agrees_with_the_full_comparison() {
        let two = "[Interface]\nPrivateKey = K\n\n# a\n[Peer]\nPublicKey = A\nAllowedIPs = 10.0.0.2/32, 10.1.0.0/16\nPersistentKeepalive = 25\n\n[Peer]\nPublicKey = B\nPresharedKey = P\nAllowedIPs = 10.0.0.3/32\n";
        let live = live_of(two);
        let files = [
            two.to_owned(),
            // Same meaning: order, case, comments, AllowedIPs split and repeated, keepalive 0.
            "[Interface]\nPrivateKey = K\n[peer]\npublickey = B\npresharedkey = P # psk\nAllowedIPs = 10.0.0.3/32\n[Peer]\nPublicKey = A\nAllowedIPs = 10.1.0.0/16\nAllowedIPs = 10.0.0.2/32,10.0.0.2/32\nPersistentKeepalive = 25\n".to_owned(),
            two.replace("10.1.0.0/16", "10.2.0.0/16"),
            two.replace("PersistentKeepalive = 25\n", ""),
            two.replace("PresharedKey = P\n", ""),
            two.replace("PublicKey = B", "PublicKey = C"),
            format!("{two}[Peer]\nPublicKey = D\nAllowedIPs = 10.0.0.4/32\n"),
            format!("{two}[Peer]\nPublicKey = A\nAllowedIPs = 10.0.0.2/32\n"),
            format!("{two}[Peer]\nAllowedIPs = 10.0.0.5/32\n"),
            two.replace("PersistentKeepalive = 25", "PersistentKeepalive = 0"),
        ];
        for file in &files {
            let full = peer_drift(&wgconf::parse(file), &live, &BTreeMap::new());
            if peers_match(file, &live) {
                assert!(full.is_empty(), "{file}: {full:?}");
            }
        }
        assert!(peers_match(&files[0], &live) && peers_match(&files[1], &live));
        for file in &files[2..] {
            assert!(!peers_match(file, &live), "{file}");
        }
        assert_eq!(interface_part(two), "[Interface]\nPrivateKey = K\n\n# a\n");
        let odd = "[Interface]\nMTU = 1280\n[PeerX]\nA = 1\n [peer] # first\nPublicKey = A\n";
        assert_eq!(
            interface_part(odd),
            "[Interface]\nMTU = 1280\n[PeerX]\nA = 1\n"
        );
    }

    /// `desired` against `on_disk`, with the interface up and running BASE.
    fn with_base_live(desired: &str, on_disk: &str) -> NetworkDiff {
        diff_network(
            "wg0",
            desired,
            Some(on_disk),
            Some(&live_of(BASE)),
            &up(),
            &names(),
        )
    }

    fn names() -> BTreeMap<String, String> {
        [
            ("A".to_owned(), "a".to_owned()),
            ("B".to_owned(), "b".to_owned()),
        ]
        .into()
    }

    #[test]
    fn nothing_changed_means_nothing_to_do() {
        let d = with_base_live(BASE, BASE);
        assert_eq!(
            (d.action, d.write_file, d.enable, d.changes.len()),
            (Action::Nothing, false, false, 0)
        );
    }

    #[test]
    fn a_new_peer_is_a_reload() {
        let new = format!("{BASE}\n[Peer]\nPublicKey = B\nAllowedIPs = 10.0.0.3/32\n");
        let d = with_base_live(&new, BASE);
        assert_eq!(d.action, Action::Reload);
        assert!(d.write_file);
        assert!(matches!(&d.changes[0], Change::PeerAdded { peer, .. } if peer == "b"));
    }

    #[test]
    fn private_key_and_port_reload_but_mtu_restarts() {
        let key = BASE.replace("PrivateKey = K", "PrivateKey = K2");
        let d = diff_network("wg0", &key, Some(BASE), None, &up(), &names());
        assert_eq!(d.action, Action::Reload);
        assert_eq!(
            d.changes,
            vec![Change::InterfaceChanged {
                key: "PrivateKey".into(),
                from: None,
                to: None
            }]
        );
        let mtu = BASE.replace("PrivateKey = K\n", "PrivateKey = K\nMTU = 1280\n");
        assert_eq!(
            diff_network("wg0", &mtu, Some(BASE), None, &up(), &names()).action,
            Action::Restart
        );
    }

    #[test]
    fn table_off_rewrites_the_file_and_table_back_to_auto_restarts() {
        let off = BASE.replace("PrivateKey = K\n", "PrivateKey = K\nTable = off\n");
        let d = diff_network("wg0", &off, Some(BASE), None, &up(), &names());
        assert_eq!((d.action, d.write_file), (Action::WriteFile, true));
        assert_eq!(
            d.changes,
            vec![Change::InterfaceChanged {
                key: "Table".into(),
                from: None,
                to: Some("off".into())
            }]
        );
        // With a new peer beside it, the reload adds the routes.
        let more = format!("{off}\n[Peer]\nPublicKey = B\nAllowedIPs = 10.9.0.0/24\n");
        let d = diff_network("wg0", &more, Some(BASE), None, &up(), &names());
        assert_eq!(d.action, Action::Reload);
        let d = diff_network("wg0", BASE, Some(&off), None, &up(), &names());
        assert_eq!(d.action, Action::Restart);
        let other = BASE.replace("PrivateKey = K\n", "PrivateKey = K\nTable = 1234\n");
        let d = diff_network("wg0", &off, Some(&other), None, &up(), &names());
        assert_eq!(d.action, Action::Restart);
    }

    #[test]
    fn formatting_only_rewrites_the_file() {
        let hand_made = "[Interface]\n# by hand\nPrivateKey = K\nListenPort = 51820\nAddress = 10.0.0.1/24\n[Peer]\nAllowedIPs = 10.0.0.2/32\nPublicKey = A\n";
        let d = with_base_live(BASE, hand_made);
        assert_eq!(d.action, Action::WriteFile);
        assert_eq!(d.changes, vec![Change::FileRewritten]);
    }

    #[test]
    fn live_drift_with_an_unchanged_file_is_healed_by_a_reload() {
        let mut live = live_of(BASE);
        live.peers.clear();
        let d = diff_network("wg0", BASE, Some(BASE), Some(&live), &up(), &names());
        assert_eq!(d.action, Action::Reload);
        assert!(!d.write_file);
    }

    #[test]
    fn a_stopped_or_disabled_unit_is_started_and_enabled() {
        let stopped = UnitState {
            active_state: "failed".into(),
            enabled: false,
        };
        let d = diff_network("wg0", BASE, Some(BASE), None, &stopped, &names());
        assert_eq!((d.action, d.enable), (Action::Start, true));
        let d = diff_network("wg0", BASE, None, None, &stopped, &names());
        assert!(d.write_file && d.changes.contains(&Change::FileMissing));
    }

    #[test]
    fn live_mtu_or_addresses_unlike_the_file_restart_and_a_live_key_reloads() {
        let conf = BASE.replace("PrivateKey = K\n", "PrivateKey = K\nMTU = 1380\n");
        let mut live = live_of(&conf);
        live.mtu = Some("1420".into());
        let d = diff_network("wg0", &conf, Some(&conf), Some(&live), &up(), &names());
        assert_eq!(d.action, Action::Restart);
        assert_eq!(
            d.changes,
            vec![Change::LiveDrift {
                detail: "MTU is 1420 live".into()
            }]
        );
        live.mtu = Some("1380".into());
        live.addresses = Some(["10.0.0.1/24".parse().unwrap()].into());
        let d = diff_network("wg0", &conf, Some(&conf), Some(&live), &up(), &names());
        assert_eq!(d.action, Action::Nothing, "{:?}", d.changes);
        live.addresses = Some(["10.0.0.9/24".parse().unwrap()].into());
        let d = diff_network("wg0", &conf, Some(&conf), Some(&live), &up(), &names());
        assert_eq!(d.action, Action::Restart);

        let private = SecretKey::generate_private();
        let conf = BASE.replace(
            "PrivateKey = K",
            &format!("PrivateKey = {}", *private.to_base64()),
        );
        let mut live = live_of(&conf);
        live.public_key = Some(private.public_key());
        let d = diff_network("wg0", &conf, Some(&conf), Some(&live), &up(), &names());
        assert_eq!(d.action, Action::Nothing);
        live.public_key = Some(SecretKey::generate_private().public_key());
        let d = diff_network("wg0", &conf, Some(&conf), Some(&live), &up(), &names());
        assert_eq!(d.action, Action::Reload);
        assert!(!format!("{:?}", d.changes).contains(private.to_base64().as_str()));
    }

    #[test]
    fn an_interrupted_job_is_finished_by_the_next_run() {
        let d = with_base_live(BASE, BASE);
        let d = finish_interrupted(d, Action::Restart);
        assert_eq!(d.action, Action::Restart);
        assert_eq!(
            d.changes,
            vec![Change::Interrupted {
                action: Action::Restart
            }]
        );
        // Already as disruptive: said, and the action stays; a removal stays a removal.
        let again = finish_interrupted(d.clone(), Action::Reload);
        assert_eq!(again.action, Action::Restart);
        assert_eq!(again.changes.len(), 2);
        let removed = finish_interrupted(diff_removed("wg0"), Action::Restart);
        assert_eq!(removed.action, Action::Remove);
        // A write without a job (formatting only) leaves nothing to finish.
        let d = diff_network("wg0", BASE, Some(BASE), None, &up(), &names());
        assert_eq!(
            finish_interrupted(d, Action::WriteFile).action,
            Action::Nothing
        );
    }

    #[test]
    fn addresses_are_read_from_ip() {
        let text = "5: wg0    inet 10.50.0.11/24 scope global wg0\\       valid_lft forever preferred_lft forever\n5: wg0    inet6 fd00::b/64 scope global \\       valid_lft forever preferred_lft forever\n";
        let got: Vec<String> = parse_addresses(text)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, ["10.50.0.11/24", "fd00::b/64"]);
    }

    #[test]
    fn dump_parsing_keeps_no_key_material() {
        let dump = "PRIV\tPUB\t51820\toff\nA\tPSK\t192.0.2.1:51820\t10.0.0.2/32,10.1.0.0/16\t0\t0\t0\t25\nB\t(none)\t(none)\t(none)\t0\t0\t0\toff\n";
        let live = parse_dump(dump);
        assert_eq!(live.listen_port.as_deref(), Some("51820"));
        assert!(live.peers["A"].has_psk && !live.peers["B"].has_psk);
        assert_eq!(live.peers["A"].allowed_ips.len(), 2);
        assert!(live.peers["B"].allowed_ips.is_empty());
        assert!(!format!("{live:?}").contains("PRIV") && !format!("{live:?}").contains("PSK\""));
        let private = SecretKey::generate_private();
        let dump = format!("{}\tPUB\t51820\toff\n", *private.to_base64());
        let live = parse_dump(&dump);
        assert_eq!(live.public_key, Some(private.public_key()));
        assert!(!format!("{live:?}").contains(private.to_base64().as_str()));
    }
}
