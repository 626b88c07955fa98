//! Confirmed apply, the pure half: whether a change must prove, by a fresh handshake, that this
//! host can still reach its hubs, and with which peers. A wrong hub key, endpoint or port pushed
//! to a remote spoke cuts it off from the network that would deliver the fix; such a change is
//! held to a handshake and rolled back without one (the shell is `apply::confirm`).
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

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::diff::{Action, Live};
use crate::wgconf::{self, WgConf};

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

/// What the decision is made from.
pub struct Input<'a> {
    pub action: Action,
    /// The config before the change (`None`: there was none).
    pub old: Option<&'a str>,
    pub new: &'a str,
    /// This host is a hub of the network.
    pub hub: bool,
    /// The interface as observed before the change.
    pub live: Option<&'a Live>,
    /// Which links worked before the change.
    pub worked_before: WorkedBefore<'a>,
    /// Unix seconds when `live` was observed.
    pub now: u64,
    /// Public key → peer name, for readable output.
    pub names: &'a BTreeMap<String, String>,
}

/// Where the decision learns which links worked before the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkedBefore<'a> {
    /// The handshakes in `live`.
    #[default]
    Live,
    /// An earlier run held this change and was killed while it waited: exactly the links it
    /// held (public keys) worked before it, whatever the handshakes say now (after the broken
    /// change, or a reboot, they say nothing).
    Held(&'a [String]),
    /// The same from an older record that did not name them: every link it dials is taken to
    /// have worked, and so no link left alone (perhaps dead all along) lets the change go.
    HeldUnnamed,
}

/// The decision for one step.
pub fn decide(input: &Input<'_>) -> Confirmation {
    let not = |reason| Confirmation::NotHeld { reason };
    let (old, live) = match (input.action, input.old, input.live) {
        (Action::Reload | Action::Restart, Some(old), live)
            if live.is_some() || input.worked_before != WorkedBefore::Live =>
        {
            (old, live)
        }
        (Action::Start, ..) => return not(NotHeld::NotRunning),
        (Action::Reload | Action::Restart, ..) => return not(NotHeld::NoWorkingLink),
        _ => return not(NotHeld::NoLinkChange),
    };
    let (old, new) = (wgconf::parse(old), wgconf::parse(input.new));
    let name = |key: &str| {
        input
            .names
            .get(key)
            .cloned()
            .unwrap_or_else(|| format!("the peer with public key {key}"))
    };
    // This host's own key and addresses touch every link.
    let mut own = Vec::new();
    if old.interface.get("privatekey") != new.interface.get("privatekey") {
        own.push("this host's private key changed".to_owned());
    }
    if old.interface.get("address") != new.interface.get("address") {
        own.push("this host's addresses changed".to_owned());
    }
    // Per link this host dialled: what the change does to it.
    let dialled = |conf: &WgConf| -> Vec<String> {
        conf.peers
            .iter()
            .filter(|(_, p)| p.endpoint.is_some())
            .map(|(k, _)| k.clone())
            .collect()
    };
    let mut touched: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in dialled(&old) {
        let was = &old.peers[&key];
        let why = match new.peers.get(&key) {
            None => vec![format!("{} is no longer dialled", name(&key))],
            Some(now) => {
                let mut why = Vec::new();
                if now.endpoint != was.endpoint {
                    why.push(format!(
                        "{}'s endpoint {} → {}",
                        name(&key),
                        was.endpoint.as_deref().unwrap_or("(none)"),
                        now.endpoint.as_deref().unwrap_or("(none)")
                    ));
                }
                if now.preshared_key != was.preshared_key {
                    why.push(format!("{}'s preshared key changed", name(&key)));
                }
                why
            }
        };
        touched.insert(key, why);
    }
    // A new dialled key touches no link that worked (a hub added); beside an old key that is
    // gone it says why: the hub's public key changed.
    let new_keys: Vec<String> = dialled(&new)
        .iter()
        .filter(|k| !old.peers.contains_key(*k))
        .map(|k| format!("{}'s public key is new", name(k)))
        .collect();
    let any_touch = !own.is_empty() || touched.values().any(|w| !w.is_empty());
    if !any_touch {
        return not(NotHeld::NoLinkChange);
    }
    if input.hub {
        return not(NotHeld::Hub);
    }
    let working: Vec<String> = touched
        .keys()
        .filter(|k| match input.worked_before {
            WorkedBefore::Live => live.and_then(|l| l.peers.get(*k)).is_some_and(|p| {
                p.latest_handshake > 0
                    && input.now.saturating_sub(p.latest_handshake) < WORKING_LINK_SECS
            }),
            WorkedBefore::Held(keys) => keys.contains(*k),
            WorkedBefore::HeldUnnamed => true,
        })
        .cloned()
        .collect();
    if working.is_empty() {
        return not(NotHeld::NoWorkingLink);
    }
    if own.is_empty()
        && input.worked_before != WorkedBefore::HeldUnnamed
        && let Some(untouched) = working.iter().find(|k| touched[*k].is_empty())
    {
        return not(NotHeld::LinkUntouched {
            peer: name(untouched),
        });
    }
    let mut because = own;
    because.extend(new_keys);
    because.extend(touched.into_values().flatten());
    let own = own_addresses(&new);
    let confirm_with: Vec<Probe> = dialled(&new)
        .into_iter()
        .map(|key| Probe {
            peer: name(&key),
            address: probe_address(&new.peers[&key].allowed_ips, &own),
            public_key: key,
        })
        .collect();
    // A restart makes every session new; a reload keeps those of unchanged keys.
    let renew = if input.action == Action::Reload {
        confirm_with
            .iter()
            .filter(|p| old.peers.contains_key(&p.public_key))
            .map(|p| p.public_key.clone())
            .collect()
    } else {
        Vec::new()
    };
    Confirmation::Held(Held {
        because,
        worked: working.iter().map(|k| name(k)).collect(),
        worked_keys: working,
        confirm_with,
        renew,
    })
}

fn own_addresses(conf: &WgConf) -> BTreeSet<IpAddr> {
    conf.addresses().iter().map(IpNet::addr).collect()
}

/// An address WireGuard routes to the peer (in its AllowedIPs, the most specific prefix first)
/// that is not this host's own; `None` when it has none (0.0.0.0/0 only, or no AllowedIPs):
/// its PersistentKeepalive, if any, makes the handshake then.
fn probe_address(allowed_ips: &BTreeSet<String>, own: &BTreeSet<IpAddr>) -> Option<IpAddr> {
    let mut prefixes: Vec<IpNet> = allowed_ips
        .iter()
        .filter_map(|a| a.parse().ok())
        .filter(|n: &IpNet| n.prefix_len() > 0)
        .collect();
    prefixes.sort_by_key(|n| std::cmp::Reverse(n.prefix_len()));
    // Not an IPv6 prefix's first address: that is its routers' anycast address, which a host
    // that forwards answers itself.
    prefixes.iter().find_map(|n| {
        n.hosts()
            .take(8)
            .filter(|a| n.prefix_len() == n.max_prefix_len() || *a != n.network())
            .find(|a| !own.contains(a))
    })
}

/// The peers' latest handshakes (`wg show IFACE latest-handshakes`): public key → unix seconds.
pub fn parse_latest_handshakes(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (key, secs) = l.split_once('\t')?;
            Some((key.trim().to_owned(), secs.trim().parse().ok()?))
        })
        .collect()
}

/// Whether the change is confirmed: a handshake with one of the peers since the change (their
/// sessions were all made new by it, so any handshake at all is one after it).
pub fn confirmed_by<'h>(held: &'h Held, handshakes: &BTreeMap<String, u64>) -> Option<&'h Probe> {
    held.confirm_with
        .iter()
        .find(|p| handshakes.get(&p.public_key).is_some_and(|t| *t > 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::LivePeer;

    const NOW: u64 = 1_000_000;
    const SPOKE: &str = "[Interface]\nAddress = 10.50.0.2/24\nPrivateKey = K\n\n[Peer]\nPublicKey = HUB\nAllowedIPs = 10.50.0.0/24\nEndpoint = 192.0.2.10:51821\nPersistentKeepalive = 25\n";

    fn names() -> BTreeMap<String, String> {
        [
            ("HUB", "cp"),
            ("HUB2", "cp"),
            ("NL", "nl"),
            ("W", "worker-2"),
        ]
        .map(|(k, n)| (k.to_owned(), n.to_owned()))
        .into()
    }

    fn live(handshakes: &[(&str, u64)]) -> Live {
        Live {
            peers: handshakes
                .iter()
                .map(|(k, t)| {
                    (
                        (*k).to_owned(),
                        LivePeer {
                            latest_handshake: *t,
                            ..LivePeer::default()
                        },
                    )
                })
                .collect(),
            ..Live::default()
        }
    }

    fn decide_on(action: Action, old: &str, new: &str, hub: bool, live: &Live) -> Confirmation {
        decide(&Input {
            action,
            old: Some(old),
            new,
            hub,
            live: Some(live),
            worked_before: WorkedBefore::Live,
            now: NOW,
            names: &names(),
        })
    }

    fn held(c: Confirmation) -> Held {
        match c {
            Confirmation::Held(h) => h,
            other => panic!("not held: {other:?}"),
        }
    }

    fn fresh() -> Live {
        live(&[("HUB", NOW - 20)])
    }

    #[test]
    fn a_wrong_hub_key_on_a_spoke_with_a_working_link_is_held() {
        let new = SPOKE.replace("PublicKey = HUB", "PublicKey = HUB2");
        let h = held(decide_on(Action::Reload, SPOKE, &new, false, &fresh()));
        assert_eq!(
            h.because,
            ["cp's public key is new", "cp is no longer dialled"]
        );
        assert_eq!(h.worked, ["cp"]);
        assert_eq!(
            h.confirm_with,
            [Probe {
                peer: "cp".into(),
                public_key: "HUB2".into(),
                address: Some("10.50.0.1".parse().unwrap()),
            }]
        );
        assert!(h.renew.is_empty(), "a new key has no session to renew");
    }

    #[test]
    fn endpoint_port_psk_own_key_and_address_are_link_changes() {
        let cases = [
            (
                SPOKE.replace(":51821", ":51999"),
                Action::Reload,
                "cp's endpoint 192.0.2.10:51821 → 192.0.2.10:51999",
            ),
            (
                SPOKE.replace("192.0.2.10", "192.0.2.99"),
                Action::Reload,
                "cp's endpoint 192.0.2.10:51821 → 192.0.2.99:51821",
            ),
            (
                SPOKE.replace(
                    "PersistentKeepalive",
                    "PresharedKey = S\nPersistentKeepalive",
                ),
                Action::Reload,
                "cp's preshared key changed",
            ),
            (
                SPOKE.replace("PrivateKey = K", "PrivateKey = K2"),
                Action::Reload,
                "this host's private key changed",
            ),
            (
                SPOKE.replace("10.50.0.2/24", "10.50.0.9/24"),
                Action::Restart,
                "this host's addresses changed",
            ),
        ];
        for (new, action, why) in cases {
            let h = held(decide_on(action, SPOKE, &new, false, &fresh()));
            assert_eq!(h.because, [why]);
            // The same key's session would survive a reload: renewed so a handshake must follow.
            let renew: &[&str] = if action == Action::Reload {
                &["HUB"]
            } else {
                &[]
            };
            assert_eq!(h.renew, renew, "{why}");
        }
    }

    #[test]
    fn changes_that_leave_the_links_alone_are_not_held() {
        let not = |reason| Confirmation::NotHeld { reason };
        let mtu = SPOKE.replace("PrivateKey = K\n", "PrivateKey = K\nMTU = 1380\n");
        assert_eq!(
            decide_on(Action::Restart, SPOKE, &mtu, false, &fresh()),
            not(NotHeld::NoLinkChange)
        );
        let allowed = SPOKE.replace("10.50.0.0/24", "10.50.0.0/24, 10.60.0.0/24");
        assert_eq!(
            decide_on(Action::Reload, SPOKE, &allowed, false, &fresh()),
            not(NotHeld::NoLinkChange)
        );
        let port = SPOKE.replace("PrivateKey = K\n", "PrivateKey = K\nListenPort = 51999\n");
        assert_eq!(
            decide_on(Action::Reload, SPOKE, &port, false, &fresh()),
            not(NotHeld::NoLinkChange)
        );
        // A second hub added leaves the working link alone.
        let hub_added = format!(
            "{SPOKE}\n[Peer]\nPublicKey = NL\nAllowedIPs = 10.50.1.1/32\nEndpoint = 198.51.100.7:51821\n"
        );
        assert_eq!(
            decide_on(Action::Reload, SPOKE, &hub_added, false, &fresh()),
            not(NotHeld::NoLinkChange)
        );
        // A peer it does not dial (a hub's spoke) is no link of its own.
        let spoke_added = format!("{SPOKE}\n[Peer]\nPublicKey = W\nAllowedIPs = 10.50.0.3/32\n");
        assert_eq!(
            decide_on(Action::Reload, SPOKE, &spoke_added, false, &fresh()),
            not(NotHeld::NoLinkChange)
        );
        // Nothing live happens, or nothing ran before.
        let new = SPOKE.replace("PublicKey = HUB", "PublicKey = HUB2");
        assert_eq!(
            decide_on(Action::WriteFile, SPOKE, SPOKE, false, &fresh()),
            not(NotHeld::NoLinkChange)
        );
        assert_eq!(
            decide_on(Action::Nothing, SPOKE, SPOKE, false, &fresh()),
            not(NotHeld::NoLinkChange)
        );
        assert_eq!(
            decide_on(Action::Start, SPOKE, &new, false, &fresh()),
            not(NotHeld::NotRunning)
        );
        assert!(NotHeld::NoLinkChange.is_silent() && NotHeld::NotRunning.is_silent());
    }

    #[test]
    fn hubs_and_hosts_without_a_working_link_are_not_held() {
        let not = |reason| Confirmation::NotHeld { reason };
        let new = SPOKE.replace("PublicKey = HUB", "PublicKey = HUB2");
        assert_eq!(
            decide_on(Action::Reload, SPOKE, &new, true, &fresh()),
            not(NotHeld::Hub)
        );
        for stale in [
            live(&[("HUB", 0)]),
            live(&[("HUB", NOW - WORKING_LINK_SECS)]),
            live(&[]),
        ] {
            assert_eq!(
                decide_on(Action::Reload, SPOKE, &new, false, &stale),
                not(NotHeld::NoWorkingLink)
            );
        }
        // 150 s: a keepalive-driven session between rekeys still works.
        let h = held(decide_on(
            Action::Reload,
            SPOKE,
            &new,
            false,
            &live(&[("HUB", NOW - 150)]),
        ));
        assert_eq!(h.worked, ["cp"]);
        let no_live = decide(&Input {
            action: Action::Reload,
            old: Some(SPOKE),
            new: &new,
            hub: false,
            live: None,
            worked_before: WorkedBefore::Live,
            now: NOW,
            names: &names(),
        });
        assert_eq!(no_live, not(NotHeld::NoWorkingLink));
        // A run killed while it waited: the next one holds the change again, though the wrong
        // key it left has no handshake (and after a reboot nothing live says the old one had).
        let resumed = decide(&Input {
            action: Action::Reload,
            old: Some(SPOKE),
            new: &new,
            hub: false,
            live: None,
            worked_before: WorkedBefore::HeldUnnamed,
            now: NOW,
            names: &names(),
        });
        assert_eq!(held(resumed).worked, ["cp"]);
    }

    #[test]
    fn a_resumed_change_is_held_to_the_links_that_worked_not_to_a_dead_one_it_left_alone() {
        // Two hubs: cp worked, nl was down all along; the change breaks cp's key.
        let two = format!(
            "{SPOKE}\n[Peer]\nPublicKey = NL\nAllowedIPs = 10.50.1.1/32\nEndpoint = 198.51.100.7:51821\n"
        );
        let new = two.replace("PublicKey = HUB\n", "PublicKey = HUB2\n");
        let first = held(decide_on(
            Action::Reload,
            &two,
            &new,
            false,
            &live(&[("HUB", NOW - 5)]),
        ));
        assert_eq!(first.worked, ["cp"]);
        assert_eq!(first.worked_keys, ["HUB"]);
        // The run is killed while it waits; the next one sees no handshake with either hub.
        let resume = |worked_before| {
            decide(&Input {
                action: Action::Reload,
                old: Some(&two),
                new: &new,
                hub: false,
                live: Some(&live(&[("HUB", 0), ("NL", 0)])),
                worked_before,
                now: NOW,
                names: &names(),
            })
        };
        let again = held(resume(WorkedBefore::Held(&first.worked_keys)));
        assert_eq!(again.worked, ["cp"]);
        assert_eq!(again.worked_keys, ["HUB"]);
        // An older record names no links: every dialled one counts, and the dead nl left
        // alone does not let the change go.
        assert_eq!(held(resume(WorkedBefore::HeldUnnamed)).worked, ["cp", "nl"]);
        // A record whose links the new config leaves alone: one of them working keeps the host
        // reachable.
        assert_eq!(
            decide(&Input {
                action: Action::Reload,
                old: Some(&two),
                new: &two.replace("192.0.2.10", "192.0.2.99"),
                hub: false,
                live: None,
                worked_before: WorkedBefore::Held(&["NL".to_owned()]),
                now: NOW,
                names: &names(),
            }),
            Confirmation::NotHeld {
                reason: NotHeld::LinkUntouched { peer: "nl".into() }
            }
        );
    }

    #[test]
    fn one_working_link_left_alone_keeps_the_host_reachable() {
        let two = format!(
            "{SPOKE}\n[Peer]\nPublicKey = NL\nAllowedIPs = 10.50.1.1/32\nEndpoint = 198.51.100.7:51821\n"
        );
        let cp_moved = two.replace("192.0.2.10", "192.0.2.99");
        let both = live(&[("HUB", NOW - 5), ("NL", NOW - 5)]);
        assert_eq!(
            decide_on(Action::Reload, &two, &cp_moved, false, &both),
            Confirmation::NotHeld {
                reason: NotHeld::LinkUntouched { peer: "nl".into() }
            }
        );
        // nl never answered: the only working link is touched; either hub may confirm.
        let h = held(decide_on(
            Action::Reload,
            &two,
            &cp_moved,
            false,
            &live(&[("HUB", NOW - 5), ("NL", 0)]),
        ));
        assert_eq!(h.worked, ["cp"]);
        let peers: Vec<&str> = h.confirm_with.iter().map(|p| p.peer.as_str()).collect();
        assert_eq!(peers, ["cp", "nl"]);
        assert_eq!(h.renew, ["HUB", "NL"]);
        // This host's own key touches every link.
        let own = two.replace("PrivateKey = K", "PrivateKey = K2");
        assert!(matches!(
            decide_on(Action::Reload, &two, &own, false, &both),
            Confirmation::Held(_)
        ));
    }

    #[test]
    fn the_probe_goes_to_the_peer_not_to_this_host() {
        let own: BTreeSet<IpAddr> = ["10.50.0.1".parse().unwrap()].into();
        let allowed = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
        assert_eq!(
            probe_address(&allowed(&["10.50.0.0/24"]), &own),
            Some("10.50.0.2".parse().unwrap())
        );
        assert_eq!(
            probe_address(&allowed(&["10.50.0.0/24", "10.50.0.7/32"]), &own),
            Some("10.50.0.7".parse().unwrap())
        );
        assert_eq!(
            probe_address(&allowed(&["fd50::1/128"]), &own),
            Some("fd50::1".parse().unwrap())
        );
        assert_eq!(
            probe_address(&allowed(&["fd50::/64"]), &own),
            Some("fd50::1".parse().unwrap())
        );
        assert_eq!(probe_address(&allowed(&["0.0.0.0/0"]), &own), None);
    }

    #[test]
    fn plan_says_what_is_held_and_no_confirm_lets_it_go() {
        let new = SPOKE.replace("192.0.2.10", "192.0.2.99");
        let mut c = decide_on(Action::Reload, SPOKE, &new, false, &fresh());
        assert_eq!(
            describe(&c).unwrap(),
            "? confirm: a handshake with cp must follow, or the change is rolled back \
             (cp's endpoint 192.0.2.10:51821 → 192.0.2.99:51821)"
        );
        disable(std::iter::once(&mut c));
        assert_eq!(describe(&c).unwrap(), "= confirm: not held (--no-confirm)");
        // Said only when the change touches a link; a hub stays a hub under --no-confirm.
        let mut hub = decide_on(Action::Reload, SPOKE, &new, true, &fresh());
        disable(std::iter::once(&mut hub));
        assert_eq!(
            describe(&hub).unwrap(),
            "= confirm: not held (this host is a hub: spokes dial it)"
        );
        let quiet = decide_on(Action::Reload, SPOKE, SPOKE, false, &fresh());
        assert_eq!(describe(&quiet), None);
    }

    #[test]
    fn a_handshake_with_any_of_the_peers_confirms() {
        let held = Held {
            because: vec![],
            worked: vec![],
            worked_keys: vec![],
            confirm_with: vec![
                Probe {
                    peer: "cp".into(),
                    public_key: "HUB".into(),
                    address: None,
                },
                Probe {
                    peer: "nl".into(),
                    public_key: "NL".into(),
                    address: None,
                },
            ],
            renew: vec![],
        };
        let seen = parse_latest_handshakes("HUB\t0\nNL\t1700000000\nOTHER\t5\n");
        assert_eq!(
            confirmed_by(&held, &seen).map(|p| p.peer.as_str()),
            Some("nl")
        );
        assert_eq!(
            confirmed_by(&held, &parse_latest_handshakes("HUB\t0\n")),
            None
        );
        assert_eq!(
            Verdict::Confirmed {
                peer: "cp".into(),
                after_ms: 1250
            }
            .to_string(),
            "confirmed by a handshake with cp 1.2 s after the change"
        );
    }
}
