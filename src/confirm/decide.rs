//! The decision for one step, and what it is made from: whether the change is held to a
//! handshake, and with which peers.

use std::collections::BTreeMap;

use super::probe::{own_addresses, probe_address};
use super::{Confirmation, Held, NotHeld, Probe, WORKING_LINK_SECS};
use crate::diff::{Action, Live};
use crate::wgconf::{self, WgConf};

/// What the decision is made from.
pub struct Input<'a> {
    pub action: Action,
    /// The config before the change (`None`: there was none).
    pub old: Option<&'a str>,
    pub new: &'a str,
    /// `old` and `new` as already parsed (by the diff), else they are parsed here.
    pub parsed: Option<(&'a WgConf, &'a WgConf)>,
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
    /// Peers whose change of preshared key keeps its session (`rotation::kept_sessions`): not
    /// a link change here.
    pub kept: &'a [String],
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
    let parsed_here;
    let (old, new) = match input.parsed {
        Some(both) => both,
        None => {
            parsed_here = (wgconf::parse(old), wgconf::parse(input.new));
            (&parsed_here.0, &parsed_here.1)
        }
    };
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
    for key in dialled(old) {
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
                if now.preshared_key != was.preshared_key && !input.kept.contains(&key) {
                    why.push(format!("{}'s preshared key changed", name(&key)));
                }
                why
            }
        };
        touched.insert(key, why);
    }
    // A new dialled key touches no link that worked (a hub added); beside an old key that is
    // gone it says why: the hub's public key changed.
    let new_keys: Vec<String> = dialled(new)
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
    let own = own_addresses(new);
    let confirm_with: Vec<Probe> = dialled(new)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::confirm::{describe, disable};
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
            parsed: None,
            action,
            old: Some(old),
            new,
            hub,
            live: Some(live),
            worked_before: WorkedBefore::Live,
            now: NOW,
            names: &names(),
            kept: &[],
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
    fn a_preshared_key_change_that_keeps_its_session_is_no_link_change() {
        let new = SPOKE.replace(
            "PersistentKeepalive",
            "PresharedKey = S\nPersistentKeepalive",
        );
        let kept = ["HUB".to_owned()];
        let decided = decide(&Input {
            parsed: None,
            action: Action::Reload,
            old: Some(SPOKE),
            new: &new,
            hub: false,
            live: Some(&fresh()),
            worked_before: WorkedBefore::Live,
            now: NOW,
            names: &names(),
            kept: &kept,
        });
        assert_eq!(
            decided,
            Confirmation::NotHeld {
                reason: NotHeld::NoLinkChange
            }
        );
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
            parsed: None,
            action: Action::Reload,
            old: Some(SPOKE),
            new: &new,
            hub: false,
            live: None,
            worked_before: WorkedBefore::Live,
            now: NOW,
            names: &names(),
            kept: &[],
        });
        assert_eq!(no_live, not(NotHeld::NoWorkingLink));
        // A run killed while it waited: the next one holds the change again, though the wrong
        // key it left has no handshake (and after a reboot nothing live says the old one had).
        let resumed = decide(&Input {
            parsed: None,
            action: Action::Reload,
            old: Some(SPOKE),
            new: &new,
            hub: false,
            live: None,
            worked_before: WorkedBefore::HeldUnnamed,
            now: NOW,
            names: &names(),
            kept: &[],
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
                parsed: None,
                action: Action::Reload,
                old: Some(&two),
                new: &new,
                hub: false,
                live: Some(&live(&[("HUB", 0), ("NL", 0)])),
                worked_before,
                now: NOW,
                names: &names(),
                kept: &[],
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
                parsed: None,
                action: Action::Reload,
                old: Some(&two),
                new: &two.replace("192.0.2.10", "192.0.2.99"),
                hub: false,
                live: None,
                worked_before: WorkedBefore::Held(&["NL".to_owned()]),
                now: NOW,
                names: &names(),
                kept: &[],
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
}
