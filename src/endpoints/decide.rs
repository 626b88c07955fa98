//! The decision for one watched peer: which names to look up, and what to set given their
//! answers, its handshake and what an earlier run chose.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::{Decision, Dialled, PeerState, Reason, SetEndpoint, Unresolved, remembered_in_use};
use crate::diff::LivePeer;

/// What a name resolved to: its addresses in the resolver's order, or why it did not.
pub type Resolution = Result<Vec<SocketAddr>, String>;

/// Which endpoint is in use: what an earlier run chose while the live address is still the one
/// it set and the list is unchanged; otherwise the first (what the config says, and what a
/// reload or restart puts back).
fn in_use<'s>(d: &Dialled, live: &LivePeer, state: Option<&'s PeerState>) -> Option<&'s PeerState> {
    remembered_in_use(&d.endpoints, live.endpoint.as_ref(), state)
}

fn is_fresh(live: &LivePeer, now: i64, stale: u64) -> bool {
    live.latest_handshake > 0 && (now.max(0) as u64).saturating_sub(live.latest_handshake) <= stale
}

/// The endpoints that `decide` will look up for this peer (empty: it needs no look).
pub fn names_for<'d>(
    d: &'d Dialled,
    live: &LivePeer,
    state: Option<&PeerState>,
    now: i64,
    stale: Option<u64>,
) -> Vec<&'d str> {
    let stale = d.stale_after(stale);
    let current = in_use(d, live, state).map_or(0, |s| s.index);
    if is_fresh(live, now, stale) {
        // Fresh on a backup: only the primary, to notice that it moved.
        return if current == 0 {
            Vec::new()
        } else {
            d.endpoints
                .first()
                .map(String::as_str)
                .into_iter()
                .collect()
        };
    }
    // Stale: the one in use first, then the others in the order they would be tried.
    let n = d.endpoints.len();
    (0..n)
        .map(|k| d.endpoints[(current + k) % n].as_str())
        .collect()
}

/// What to do for one watched peer, given what its names resolved to (`resolved`, keyed by the
/// endpoint text; a missing entry counts as not resolved). `stale` overrides the peer's
/// staleness threshold. `None`: nothing to do or say.
pub fn decide(
    d: &Dialled,
    live: &LivePeer,
    state: Option<&PeerState>,
    resolved: &BTreeMap<String, Resolution>,
    now: i64,
    stale: Option<u64>,
) -> Option<Decision> {
    let stale = d.stale_after(stale);
    let n = d.endpoints.len();
    if n == 0 {
        return None;
    }
    let kept = in_use(d, live, state);
    let current = kept.map_or(0, |s| s.index);
    // When the endpoint in use was chosen or, without a record (after a boot or a lost state
    // file), last known good: the latest handshake; never one: from now on (no move this run).
    let since = kept.map_or_else(
        || match i64::try_from(live.latest_handshake) {
            Ok(0) | Err(_) => now,
            Ok(handshake) => handshake,
        },
        |s| s.since,
    );
    let live_addr: Option<SocketAddr> = live.endpoint.as_deref().and_then(|e| e.parse().ok());
    let lookup = |i: usize| -> Resolution {
        resolved
            .get(&d.endpoints[i])
            .cloned()
            .unwrap_or_else(|| Err("not resolved".into()))
            .and_then(|addrs| {
                if addrs.is_empty() {
                    Err("no address".into())
                } else {
                    Ok(addrs)
                }
            })
    };
    let texts = |addrs: &[SocketAddr]| addrs.iter().map(ToString::to_string).collect::<Vec<_>>();
    let handshake_age = (live.latest_handshake > 0)
        .then(|| (now.max(0) as u64).saturating_sub(live.latest_handshake));
    let mut decision = Decision {
        network: d.network.clone(),
        peer: d.peer.clone(),
        public_key: d.public_key.clone(),
        handshake_age,
        index: current,
        set: None,
        unresolved: Vec::new(),
        state: None,
    };
    let choose = |index: usize, addrs: &[SocketAddr], reason: Reason, primary: Vec<String>| {
        let to = addrs[0].to_string();
        let set = (live_addr != Some(addrs[0])).then(|| SetEndpoint {
            from: live.endpoint.clone(),
            to: to.clone(),
            endpoint: d.endpoints[index].clone(),
            index,
            reason,
        });
        let state = PeerState {
            index,
            endpoint: d.endpoints[index].clone(),
            address: to,
            since: now,
            resolved_at: Some(now),
            primary_addresses: if index == 0 { Vec::new() } else { primary },
        };
        (set, state)
    };

    if is_fresh(live, now, stale) {
        if current == 0 {
            return None;
        }
        // On a backup that answers: back to the primary only if its name moved.
        let kept = kept?;
        return match lookup(0) {
            Ok(addrs)
                if !addrs
                    .iter()
                    .any(|a| kept.primary_addresses.contains(&a.to_string())) =>
            {
                let (set, state) = choose(0, &addrs, Reason::PrimaryMoved, Vec::new());
                decision.set = set;
                decision.state = Some(state);
                Some(decision)
            }
            Ok(_) => None,
            Err(error) => {
                decision.unresolved.push(Unresolved {
                    endpoint: d.endpoints[0].clone(),
                    error,
                });
                Some(decision)
            }
        };
    }

    // Whether the peer answered at the endpoint in use since it was chosen (without a record:
    // at all). One that did gets a full period at a new address of its name; one that did not
    // keeps the period it had, so that a name whose answers rotate cannot hold it forever.
    let answered = live.latest_handshake > 0
        && i64::try_from(live.latest_handshake).is_ok_and(|handshake| handshake >= since);
    let waited = now.saturating_sub(since) >= i64::try_from(stale).unwrap_or(i64::MAX);
    let chance_over = n > 1 && waited && !answered;

    // Stale. 1. The endpoint in use, resolved again: it moved if the live address is none of
    // its answers.
    match lookup(current) {
        Ok(addrs) if !chance_over && !live_addr.is_some_and(|l| addrs.contains(&l)) => {
            let primary = kept
                .map(|k| k.primary_addresses.clone())
                .unwrap_or_default();
            let (set, mut state) = choose(current, &addrs, Reason::Moved, primary);
            if !answered {
                state.since = since;
            }
            decision.set = set;
            decision.state = Some(state);
            return Some(decision);
        }
        Ok(_) => {}
        Err(error) => decision.unresolved.push(Unresolved {
            endpoint: d.endpoints[current].clone(),
            error,
        }),
    }
    // 2. The next endpoint that resolves, once the one in use has had its chance.
    if n > 1 && waited {
        // Leaving the primary: its addresses now, and the one it failed at, are what "it moved"
        // is measured against.
        let primary = if current == 0 {
            let mut primary = lookup(0).map(|a| texts(&a)).unwrap_or_default();
            if let Some(l) = live_addr.map(|l| l.to_string())
                && !primary.contains(&l)
            {
                primary.push(l);
            }
            primary
        } else {
            kept.map(|k| k.primary_addresses.clone())
                .unwrap_or_default()
        };
        for k in 1..n {
            let next = (current + k) % n;
            match lookup(next) {
                Ok(addrs) => {
                    let (set, state) = choose(next, &addrs, Reason::Next, primary);
                    decision.set = set;
                    decision.state = Some(state);
                    return Some(decision);
                }
                Err(error) => decision.unresolved.push(Unresolved {
                    endpoint: d.endpoints[next].clone(),
                    error,
                }),
            }
        }
    }
    // Nothing to set: remember when the names were last looked up.
    decision.state = Some(match kept {
        Some(k) => PeerState {
            resolved_at: Some(now),
            ..k.clone()
        },
        None => PeerState {
            index: 0,
            endpoint: d.endpoints[0].clone(),
            address: live.endpoint.clone().unwrap_or_default(),
            since,
            resolved_at: Some(now),
            primary_addresses: Vec::new(),
        },
    });
    Some(decision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::{describe, stale_after_secs};

    const NOW: i64 = 1_000_000;
    /// A short threshold for the cycle tests; the real one is tested on its own.
    const S: Option<u64> = Some(135);

    fn dialled(endpoints: &[&str]) -> Dialled {
        Dialled {
            network: "wg0".into(),
            peer: "hub".into(),
            public_key: "K".into(),
            endpoints: endpoints.iter().map(|e| (*e).to_owned()).collect(),
            keepalive: 0,
        }
    }

    fn live(endpoint: &str, handshake_age: Option<u64>) -> LivePeer {
        LivePeer {
            endpoint: Some(endpoint.to_owned()),
            latest_handshake: handshake_age.map_or(0, |a| NOW as u64 - a),
            ..LivePeer::default()
        }
    }

    fn dns(entries: &[(&str, &[&str])]) -> BTreeMap<String, Resolution> {
        entries
            .iter()
            .map(|(name, addrs)| {
                let r = if addrs.is_empty() {
                    Err("Name or service not known".to_owned())
                } else {
                    Ok(addrs.iter().map(|a| a.parse().unwrap()).collect())
                };
                ((*name).to_owned(), r)
            })
            .collect()
    }
    #[test]
    fn a_fresh_peer_on_its_first_endpoint_costs_nothing() {
        let d = dialled(&["hub.test:51820", "192.0.2.9:51820"]);
        let l = live("192.0.2.1:51820", Some(20));
        assert!(names_for(&d, &l, None, NOW, S).is_empty());
        assert_eq!(decide(&d, &l, None, &BTreeMap::new(), NOW, S), None);
    }

    #[test]
    fn a_stale_peer_follows_its_name_to_a_new_address() {
        let d = dialled(&["hub.test:51820"]);
        for age in [Some(136), None] {
            let l = live("192.0.2.1:51820", age);
            assert_eq!(names_for(&d, &l, None, NOW, S), ["hub.test:51820"]);
            let got = decide(
                &d,
                &l,
                None,
                &dns(&[("hub.test:51820", &["192.0.2.2:51820"])]),
                NOW,
                S,
            )
            .unwrap();
            let set = got.set.unwrap();
            assert_eq!(
                (set.from.as_deref(), set.to.as_str(), set.reason),
                (Some("192.0.2.1:51820"), "192.0.2.2:51820", Reason::Moved)
            );
            let state = got.state.unwrap();
            assert_eq!(
                (state.index, state.address.as_str()),
                (0, "192.0.2.2:51820")
            );
        }
    }

    #[test]
    fn a_name_that_still_resolves_to_the_live_address_sets_nothing() {
        let d = dialled(&["hub.test:51820"]);
        let l = live("192.0.2.1:51820", Some(500));
        // Round-robin DNS: the live address is one of several.
        let got = decide(
            &d,
            &l,
            None,
            &dns(&[("hub.test:51820", &["192.0.2.5:51820", "192.0.2.1:51820"])]),
            NOW,
            S,
        )
        .unwrap();
        assert_eq!(got.set, None);
        assert_eq!(got.state.unwrap().resolved_at, Some(NOW), "re-resolved");
    }

    #[test]
    fn a_name_that_does_not_resolve_is_reported_not_fatal() {
        let d = dialled(&["hub.test:51820"]);
        let l = live("192.0.2.1:51820", None);
        let got = decide(&d, &l, None, &dns(&[("hub.test:51820", &[])]), NOW, S).unwrap();
        assert_eq!(got.set, None);
        assert_eq!(got.unresolved.len(), 1);
        assert!(describe(&got).contains("does not resolve"), "{got:?}");
    }

    /// primary → backup → (wraps) primary, one move per staleness period; a backup that does
    /// not resolve is skipped and reported.
    #[test]
    fn a_stale_peer_cycles_through_its_endpoints() {
        let d = dialled(&["a.test:51820", "b.test:51820", "c.test:51820"]);
        let names = dns(&[
            ("a.test:51820", &["192.0.2.1:51820"]),
            ("b.test:51820", &[]),
            ("c.test:51820", &["192.0.2.3:51820"]),
        ]);
        // Never remembered, stale on the first: straight to the next that resolves.
        let l = live("192.0.2.1:51820", Some(300));
        assert_eq!(names_for(&d, &l, None, NOW, S).len(), 3);
        let got = decide(&d, &l, None, &names, NOW, S).unwrap();
        let set = got.set.clone().unwrap();
        assert_eq!((set.index, set.to.as_str()), (2, "192.0.2.3:51820"));
        assert_eq!(got.unresolved[0].endpoint, "b.test:51820");
        let state = got.state.unwrap();
        assert_eq!(state.primary_addresses, ["192.0.2.1:51820"]);

        // The next run, before the backup had its staleness period: it is left alone.
        let l = live("192.0.2.3:51820", Some(300));
        let got = decide(&d, &l, Some(&state), &names, NOW + 30, S).unwrap();
        assert_eq!((got.index, got.set), (2, None));
        let waiting = got.state.unwrap();
        assert_eq!(waiting.since, NOW, "the chance is counted from the move");

        // Still stale a period later: the cycle wraps to the first.
        let got = decide(&d, &l, Some(&waiting), &names, NOW + 135, S).unwrap();
        let set = got.set.unwrap();
        assert_eq!((set.index, set.to.as_str()), (0, "192.0.2.1:51820"));
        assert!(got.state.unwrap().primary_addresses.is_empty());
    }

    #[test]
    fn a_working_backup_stays_until_the_primary_moves() {
        let d = dialled(&["a.test:51820", "192.0.2.3:51820"]);
        let state = PeerState {
            index: 1,
            endpoint: "192.0.2.3:51820".into(),
            address: "192.0.2.3:51820".into(),
            since: NOW - 1000,
            resolved_at: Some(NOW - 1000),
            primary_addresses: vec!["192.0.2.1:51820".into()],
        };
        let l = live("192.0.2.3:51820", Some(10));
        assert_eq!(names_for(&d, &l, Some(&state), NOW, S), ["a.test:51820"]);
        let same = dns(&[("a.test:51820", &["192.0.2.1:51820"])]);
        assert_eq!(decide(&d, &l, Some(&state), &same, NOW, S), None);
        let moved = dns(&[("a.test:51820", &["192.0.2.7:51820"])]);
        let got = decide(&d, &l, Some(&state), &moved, NOW, S).unwrap();
        let set = got.set.unwrap();
        assert_eq!(
            (set.index, set.to.as_str(), set.reason),
            (0, "192.0.2.7:51820", Reason::PrimaryMoved)
        );
        // A reload put the config's first endpoint back: the record no longer applies.
        let reloaded = live("192.0.2.1:51820", Some(10));
        assert!(names_for(&d, &reloaded, Some(&state), NOW, S).is_empty());
    }

    /// The real threshold: a working link's handshake can be 180 s + a keepalive old (the side
    /// that did not initiate renews only at REJECT_AFTER_TIME), plus a retry.
    #[test]
    fn a_working_link_is_not_stale() {
        assert_eq!(stale_after_secs(0), 185);
        assert_eq!(stale_after_secs(25), 210);
        let mut d = dialled(&["a.test:51820", "192.0.2.3:51820"]);
        d.keepalive = 25;
        for age in [150, 180, 205, 210] {
            let l = live("192.0.2.1:51820", Some(age));
            assert!(names_for(&d, &l, None, NOW, None).is_empty(), "age {age}");
            assert_eq!(decide(&d, &l, None, &BTreeMap::new(), NOW, None), None);
        }
        let l = live("192.0.2.1:51820", Some(211));
        assert_eq!(names_for(&d, &l, None, NOW, None).len(), 2);
        // Without a keepalive: 185 s.
        d.keepalive = 0;
        let l = live("192.0.2.1:51820", Some(186));
        assert_eq!(names_for(&d, &l, None, NOW, None).len(), 2);
    }

    /// Without a record (after a boot, or a lost state file): a peer that never had a handshake
    /// gets its staleness period from now; one that had one moves on, its handshake being the
    /// last time the endpoint was known good.
    #[test]
    fn without_a_record_a_never_answered_peer_waits_a_period() {
        let d = dialled(&["192.0.2.1:51820", "192.0.2.2:51820"]);
        let names = dns(&[
            ("192.0.2.1:51820", &["192.0.2.1:51820"]),
            ("192.0.2.2:51820", &["192.0.2.2:51820"]),
        ]);
        let never = live("192.0.2.1:51820", None);
        let got = decide(&d, &never, None, &names, NOW, None).unwrap();
        assert_eq!(got.set, None, "no move on the first look");
        let waiting = got.state.unwrap();
        assert_eq!((waiting.index, waiting.since), (0, NOW));
        // A period later, still nothing: now it moves.
        let got = decide(&d, &never, Some(&waiting), &names, NOW + 185, None).unwrap();
        assert_eq!(got.set.unwrap().index, 1);

        let old = live("192.0.2.1:51820", Some(500));
        let got = decide(&d, &old, None, &names, NOW, None).unwrap();
        assert_eq!(
            got.set.unwrap().index,
            1,
            "stale since its handshake: moves"
        );
    }

    /// A name whose answers rotate through a pool: while the peer does not answer, each new
    /// address of the name shares the period the first re-resolution started (none restarts
    /// it), and then the next endpoint is tried; a primary whose answers still include one it
    /// had when it was left has not moved.
    #[test]
    fn rotating_answers_do_not_hold_a_stale_peer() {
        let d = dialled(&["pool.test:51820", "192.0.2.9:51820"]);
        let cd = dns(&[
            ("pool.test:51820", &["192.0.2.3:51820", "192.0.2.4:51820"]),
            ("192.0.2.9:51820", &["192.0.2.9:51820"]),
        ]);
        let ab = dns(&[
            ("pool.test:51820", &["192.0.2.1:51820", "192.0.2.2:51820"]),
            ("192.0.2.9:51820", &["192.0.2.9:51820"]),
        ]);
        let chosen = PeerState {
            index: 0,
            endpoint: "pool.test:51820".into(),
            address: "192.0.2.1:51820".into(),
            since: NOW - 10_000,
            resolved_at: None,
            primary_addresses: Vec::new(),
        };
        // It worked after it was chosen, then went stale: the new address gets a full period.
        let l = live("192.0.2.1:51820", Some(1000));
        let got = decide(&d, &l, Some(&chosen), &cd, NOW, None).unwrap();
        assert_eq!(got.set.unwrap().reason, Reason::Moved);
        let first = got.state.unwrap();
        assert_eq!(first.since, NOW);
        // Still no answer; the name answers otherwise: followed, the period not restarted.
        let l = LivePeer {
            endpoint: Some("192.0.2.3:51820".into()),
            latest_handshake: NOW as u64 - 1000,
            ..LivePeer::default()
        };
        let got = decide(&d, &l, Some(&first), &ab, NOW + 30, None).unwrap();
        assert_eq!(got.set.unwrap().to, "192.0.2.1:51820");
        let second = got.state.unwrap();
        assert_eq!(second.since, NOW, "the period is not restarted");
        // The period is over: the backup, whatever the name answers now.
        let l = LivePeer {
            endpoint: Some("192.0.2.1:51820".into()),
            latest_handshake: NOW as u64 - 1000,
            ..LivePeer::default()
        };
        let got = decide(&d, &l, Some(&second), &cd, NOW + 190, None).unwrap();
        let set = got.set.unwrap();
        assert_eq!((set.index, set.reason), (1, Reason::Next));
        let on_backup = got.state.unwrap();
        // The address it failed at is remembered with the answers of the time.
        assert_eq!(
            on_backup.primary_addresses,
            ["192.0.2.3:51820", "192.0.2.4:51820", "192.0.2.1:51820"]
        );
        // Working on the backup: the primary's answers overlap what it had, so it did not move.
        let l = LivePeer {
            endpoint: Some("192.0.2.9:51820".into()),
            latest_handshake: NOW as u64 + 290,
            ..LivePeer::default()
        };
        assert_eq!(decide(&d, &l, Some(&on_backup), &ab, NOW + 300, None), None);
        let moved = dns(&[("pool.test:51820", &["192.0.2.7:51820"])]);
        let got = decide(&d, &l, Some(&on_backup), &moved, NOW + 300, None).unwrap();
        assert_eq!(got.set.unwrap().reason, Reason::PrimaryMoved);
    }
}
