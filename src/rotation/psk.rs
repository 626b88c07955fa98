//! A pair's preshared key, rotated in time: WireGuard holds one per peer, but a session
//! outlives the key it was made with. Both ends change it at `switchAt` and keep their session,
//! the lead end a moment later with a fresh handshake that confirms both; an end that sees no
//! handshake after its change goes back to the current key, and with it the other, so that
//! both end on one key.

use serde::{Deserialize, Serialize};

use crate::fleet::time::format_rfc3339;
use crate::plan::{InterfacePlan, PskRotation, PskStage};

/// The lead end of a preshared key's change makes it this long after the other, so that the
/// other has the next key when the lead's handshake comes (clocks within a second, as NTP keeps
/// them).
pub const PSK_LEAD_SECS: i64 = 2;
/// The lead does not change later than this after its switch time: its other end has waited
/// since the switch time, and must still be waiting when the lead's handshake comes.
pub const PSK_LEAD_LATEST_SECS: i64 = 120;
/// How long an end waits for a handshake after its change (or after its switch time, when no
/// run has made the change) before it goes back. It holds whatever comes last: a lead changing
/// `PSK_LEAD_LATEST_SECS` late, and the session's own rekey (at most 2 minutes after the last
/// handshake while packets flow, plus a keepalive) when the lead's handshake came before this
/// end's run ended, or was not held (a spoke of two hubs, `--no-confirm`, two hubs).
pub const PSK_WAIT_SECS: i64 = 270;

/// One end's record of a pair's change of preshared key (kept in `rotation.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PskRecord {
    pub interface: String,
    pub peer: String,
    pub peer_public_key: String,
    pub next_file: String,
    /// Unix seconds: the fleet's `switchAt`.
    pub switch_at: i64,
    /// Unix seconds: when this end changes (`psk_switch_time`).
    pub switch_time: i64,
    /// Seconds after its change this end waits for a handshake.
    pub wait_secs: i64,
    /// Unix seconds: when the run that changed this end to the next key began (a handshake
    /// from then on is on the next key at both ends: neither had it before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched_at: Option<i64>,
    /// The handshake on the next key that confirmed it (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<u64>,
    /// Why this end went back to the current key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<String>,
    /// Unix seconds: the run that rendered the current key again after `rolled_back`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returned_at: Option<i64>,
}

impl PskRecord {
    /// Unix seconds: with no handshake on the next key by then, this end goes back.
    pub fn deadline(&self) -> i64 {
        self.switched_at
            .unwrap_or(self.switch_time)
            .max(self.switch_time)
            .saturating_add(self.wait_secs)
    }

    pub fn of(&self, interface: &str, peer: &str, r: &PskRotation) -> bool {
        self.interface == interface
            && self.peer == peer
            && self.next_file == r.next_file
            && self.switch_at == r.switch_at
    }
}

/// When this end changes to the next preshared key.
pub fn psk_switch_time(r: &PskRotation) -> i64 {
    r.switch_at + if r.lead { PSK_LEAD_SECS } else { 0 }
}

/// Each staged preshared key as this end uses it now: the next one from its switch time on,
/// unless this end went back from it (then the current one, for good: the fleet must stage it
/// anew).
pub fn switch_psks(plan: &mut InterfacePlan, now: i64, records: &[PskRecord]) {
    for peer in &mut plan.peers {
        let Some(r) = &mut peer.psk_rotation else {
            continue;
        };
        let record = records.iter().find(|x| x.of(&plan.network, &peer.name, r));
        let back = record.and_then(|x| x.rolled_back.clone());
        let switched = record.is_some_and(|x| x.switched_at.is_some());
        let latest = psk_switch_time(r).saturating_add(PSK_LEAD_LATEST_SECS);
        r.stage = match back {
            Some(reason) => PskStage::RolledBack { reason },
            None if r.lead && !switched && now > latest => PskStage::RolledBack {
                reason: format!(
                    "this end, which leads, could not change by {} (its switch time and {PSK_LEAD_LATEST_SECS} s), and {} goes back when no handshake comes",
                    format_rfc3339(latest),
                    peer.name
                ),
            },
            None if now >= psk_switch_time(r) => {
                peer.preshared_key_file = Some(r.next_file.clone());
                PskStage::Switched
            }
            None => PskStage::Staged,
        };
    }
}

/// The peers whose change of preshared key keeps its session: this end's change when the other
/// leads (the lead's handshake confirms both), and every going back. Renewing those sessions
/// would cut a link whose other end has not changed yet.
pub fn kept_sessions(plan: &InterfacePlan) -> Vec<String> {
    plan.peers
        .iter()
        .filter(|p| {
            p.psk_rotation.as_ref().is_some_and(|r| match r.stage {
                PskStage::Switched => !r.lead,
                PskStage::RolledBack { .. } => true,
                PskStage::Staged => false,
            })
        })
        .map(|p| p.public_key.clone())
        .collect()
}

/// The records after a run that began at `began` and ended well: one for each staged
/// preshared key in the plans, keeping what was known of it, with the change (or the going
/// back) noted when this run made it. `confirmed(interface, peer)`: this run's change was held
/// to a handshake with the peer, and had it.
pub fn psk_records<'p>(
    plans: impl IntoIterator<Item = &'p InterfacePlan>,
    before: &[PskRecord],
    began: i64,
    confirmed: &dyn Fn(&str, &str) -> bool,
) -> Vec<PskRecord> {
    let mut records = Vec::new();
    for plan in plans {
        for peer in &plan.peers {
            let Some(r) = &peer.psk_rotation else {
                continue;
            };
            let mut record = match before.iter().find(|x| x.of(&plan.network, &peer.name, r)) {
                Some(known) => known.clone(),
                None => PskRecord {
                    interface: plan.network.clone(),
                    peer: peer.name.clone(),
                    peer_public_key: peer.public_key.clone(),
                    next_file: r.next_file.clone(),
                    switch_at: r.switch_at,
                    switch_time: psk_switch_time(r),
                    wait_secs: PSK_WAIT_SECS,
                    switched_at: None,
                    confirmed: None,
                    rolled_back: None,
                    returned_at: None,
                },
            };
            match &r.stage {
                PskStage::Switched if record.switched_at.is_none() => {
                    record.switched_at = Some(began);
                    if confirmed(&plan.network, &peer.name) {
                        record.confirmed = Some(u64::try_from(began).unwrap_or(0));
                    }
                }
                // This run rendered the current key: the going back is real.
                PskStage::RolledBack { reason } if record.returned_at.is_none() => {
                    record.rolled_back.get_or_insert_with(|| reason.clone());
                    record.returned_at = Some(began);
                }
                _ => {}
            }
            records.push(record);
        }
    }
    records
}

/// What the watcher does next about one preshared key's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PskNext {
    Nothing,
    /// An apply is due: the switch time has come and no run has made the change, or this end
    /// went back and no run has rendered the current key yet.
    Apply,
    /// A handshake came after the change (unix seconds).
    Confirm(u64),
    /// None came in time: go back to the current key.
    RollBack(String),
}

/// The watcher's decision for a record at `now`, given the latest handshake with the peer.
pub fn psk_next(record: &PskRecord, now: i64, handshake: u64) -> PskNext {
    if record.confirmed.is_some() {
        return PskNext::Nothing;
    }
    if record.rolled_back.is_some() {
        return match record.returned_at {
            None => PskNext::Apply,
            Some(_) => PskNext::Nothing,
        };
    }
    let deadline = record.deadline();
    let Some(switched) = record.switched_at else {
        return match now {
            // Every run failed (or none came): nothing says the other end has the next key.
            _ if now >= deadline => PskNext::RollBack(format!(
                "no run of this end made the change within {} s of its switch time {}",
                record.wait_secs,
                format_rfc3339(record.switch_time)
            )),
            _ if now >= record.switch_time => PskNext::Apply,
            _ => PskNext::Nothing,
        };
    };
    // `switched` is when the run that made the change began: a handshake that succeeds after
    // the change is on the next key at both ends (the other end had it, or no handshake
    // succeeds), and `wg` gives seconds, so the second of the change counts. None on the next
    // key comes before the lead's switch time, so nothing earlier (a rekey of the old session
    // while this run made the change) is taken for one.
    let after = switched.max(record.switch_at.saturating_add(PSK_LEAD_SECS));
    if i64::try_from(handshake).is_ok_and(|h| h >= after) {
        return PskNext::Confirm(handshake);
    }
    if now >= deadline {
        return PskNext::RollBack(format!(
            "no handshake with {} came within {} s of the change at {}",
            record.peer,
            deadline - switched,
            format_rfc3339(switched)
        ));
    }
    PskNext::Nothing
}

/// The watcher has work left on this record.
pub fn psk_pending(record: &PskRecord) -> bool {
    record.confirmed.is_none() && (record.rolled_back.is_none() || record.returned_at.is_none())
}

/// Where this end's change of the preshared key with `peer` stands.
pub(super) fn psk_state(
    me: &str,
    peer: &str,
    r: &PskRotation,
    record: Option<&PskRecord>,
    now: i64,
) -> (&'static str, String) {
    let (a, b) = if me <= peer { (me, peer) } else { (peer, me) };
    match &r.stage {
        PskStage::RolledBack { reason } => (
            "stuck",
            format!(
                "back on {}, because {reason}; `wgfleet rekey --abandon {a}:{b}` drops it, then `--rotate-psk {a}:{b}` stages it anew",
                r.current_file
            ),
        ),
        PskStage::Staged => {
            let at = format_rfc3339(psk_switch_time(r));
            let how = match r.lead {
                true => "then handshakes with the next key, which confirms both ends",
                false => "keeping its session",
            };
            (
                "staged",
                format!("this host changes to {} at {at} ({how})", r.next_file),
            )
        }
        PskStage::Switched => match record.and_then(|x| x.confirmed.map(|h| (x, h))) {
            Some((_, handshake)) => (
                "confirmed",
                format!(
                    "{} carries the link with {peer} (handshake at {}); `wgfleet rekey --finish {a}:{b}` ends the rotation",
                    r.next_file,
                    format_rfc3339(handshake as i64)
                ),
            ),
            None => {
                let since = match record.and_then(|x| x.switched_at) {
                    Some(at) => format!("since {}", format_rfc3339(at)),
                    None => "from its next run on".to_owned(),
                };
                let deadline = record.map_or_else(
                    || psk_switch_time(r).max(now) + PSK_WAIT_SECS,
                    PskRecord::deadline,
                );
                (
                    "switched",
                    format!(
                        "this host uses {} {since}; a handshake with {peer} confirms it, and with none by {} this host goes back to {}",
                        r.next_file,
                        format_rfc3339(deadline),
                        r.current_file
                    ),
                )
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::plan_host;
    use crate::rotation::tests::{CP, SWITCH, W1, W1_NEXT, findings, fleet};
    use crate::rotation::{View, views};
    const PSK: &str = "cp-w1.psk.age";
    const PSK_NEXT: &str = "cp-w1.psk.next.age";

    /// `fleet()` with a preshared key between cp and worker-1 that moves at SWITCH.
    fn psk_plans(host: &str) -> InterfacePlan {
        let mut fleet = fleet();
        let net = fleet.networks.get_mut("wg0").unwrap();
        let pair = ("cp".to_owned(), "worker-1".to_owned());
        net.pair_psks.insert(pair.clone(), PSK.into());
        net.pair_next_psks.insert(
            pair,
            crate::fleet::model::NextPsk {
                file: PSK_NEXT.into(),
                switch_at: SWITCH,
            },
        );
        plan_host(&fleet, host, 0).remove(0)
    }

    fn psk_of(plan: &InterfacePlan, peer: &str) -> (Option<String>, PskStage) {
        let p = plan.peers.iter().find(|p| p.name == peer).unwrap();
        (
            p.preshared_key_file.clone(),
            p.psk_rotation.as_ref().unwrap().stage.clone(),
        )
    }

    fn psk_view(plan: &InterfacePlan, records: &[PskRecord], now: i64) -> View {
        views(plan, &|_| 0, now, records)
            .into_iter()
            .find(|v| v.kind == "presharedKey")
            .unwrap()
    }

    #[test]
    fn the_spoke_leads_a_preshared_key_change_and_the_hub_keeps_its_session() {
        let (hub, spoke) = (psk_plans("cp"), psk_plans("worker-1"));
        let r = |plan: &InterfacePlan| plan.peers[0].psk_rotation.clone().unwrap();
        assert!(!r(&hub).lead && r(&hub).peer_leads);
        assert!(r(&spoke).lead && !r(&spoke).peer_leads);
        assert_eq!(psk_switch_time(&r(&hub)), SWITCH);
        assert_eq!(psk_switch_time(&r(&spoke)), SWITCH + PSK_LEAD_SECS);
        for (mut plan, peer, at) in [
            (hub, "worker-1", SWITCH),
            (spoke, "cp", SWITCH + PSK_LEAD_SECS),
        ] {
            let mut before = plan.clone();
            switch_psks(&mut before, at - 1, &[]);
            assert_eq!(psk_of(&before, peer), (Some(PSK.into()), PskStage::Staged));
            switch_psks(&mut plan, at, &[]);
            assert_eq!(
                psk_of(&plan, peer),
                (Some(PSK_NEXT.into()), PskStage::Switched)
            );
            // The hub's change keeps the session; the spoke's is held to a handshake.
            let kept = kept_sessions(&plan);
            assert_eq!(kept.is_empty(), plan.host == "worker-1", "{kept:?}");
        }
    }

    #[test]
    fn an_end_that_went_back_stays_on_the_current_key_and_keeps_its_session() {
        let mut plan = psk_plans("cp");
        let mut records = psk_records([&plan], &[], 0, &|_, _| false);
        records[0].rolled_back = Some("no handshake".into());
        switch_psks(&mut plan, SWITCH + 100, &records);
        assert_eq!(
            psk_of(&plan, "worker-1"),
            (
                Some(PSK.into()),
                PskStage::RolledBack {
                    reason: "no handshake".into()
                }
            )
        );
        assert_eq!(kept_sessions(&plan), [W1]);
        let view = psk_view(&plan, &records, SWITCH + 100);
        assert_eq!((view.kind, view.state), ("presharedKey", "stuck"));
        assert_eq!(view.subject(), "preshared key with worker-1");
        assert!(
            view.message
                .starts_with("back on cp-w1.psk.age, because no handshake"),
            "{}",
            view.message
        );
    }

    #[test]
    fn the_watcher_switches_then_confirms_or_goes_back() {
        let mut plan = psk_plans("cp");
        let staged = psk_records([&plan], &[], SWITCH - 10, &|_, _| false).remove(0);
        assert_eq!(staged.switched_at, None);
        assert_eq!(staged.wait_secs, PSK_WAIT_SECS);
        assert_eq!(psk_next(&staged, SWITCH - 1, 0), PskNext::Nothing);
        assert_eq!(psk_next(&staged, SWITCH, 0), PskNext::Apply);
        let state =
            |plan: &InterfacePlan, records: &[PskRecord], now| psk_view(plan, records, now).state;
        assert_eq!(
            state(&plan, std::slice::from_ref(&staged), SWITCH - 1),
            "staged"
        );
        // The run that began at SWITCH makes the change; a handshake from the lead's switch
        // time on confirms it (one before is the old session's rekey).
        switch_psks(&mut plan, SWITCH, &[]);
        let switched = psk_records([&plan], &[staged], SWITCH, &|_, _| false).remove(0);
        assert_eq!(switched.switched_at, Some(SWITCH));
        assert_eq!(
            state(&plan, std::slice::from_ref(&switched), SWITCH + 1),
            "switched"
        );
        for old in [SWITCH - 1, SWITCH + PSK_LEAD_SECS - 1] {
            assert_eq!(
                psk_next(&switched, SWITCH + 5, old as u64),
                PskNext::Nothing
            );
        }
        let lead = (SWITCH + PSK_LEAD_SECS) as u64;
        assert_eq!(
            psk_next(&switched, SWITCH + 5, lead),
            PskNext::Confirm(lead)
        );
        assert_eq!(
            psk_next(&switched, SWITCH + PSK_WAIT_SECS - 1, 0),
            PskNext::Nothing
        );
        let PskNext::RollBack(why) = psk_next(&switched, SWITCH + PSK_WAIT_SECS, 0) else {
            panic!("no going back");
        };
        assert!(
            why.starts_with("no handshake with worker-1 came within 270 s"),
            "{why}"
        );
        let confirmed = PskRecord {
            confirmed: Some(lead),
            ..switched.clone()
        };
        assert_eq!(psk_next(&confirmed, SWITCH + 999, 0), PskNext::Nothing);
        assert!(!psk_pending(&confirmed));
        assert_eq!(state(&plan, &[confirmed], SWITCH + 3), "confirmed");
        // Going back is pending until a run has rendered the current key.
        let back = PskRecord {
            rolled_back: Some(why),
            ..switched
        };
        assert!(psk_pending(&back));
        assert_eq!(psk_next(&back, SWITCH + 999, 0), PskNext::Apply);
        switch_psks(&mut plan, SWITCH + 999, std::slice::from_ref(&back));
        assert!(matches!(
            psk_of(&plan, "worker-1").1,
            PskStage::RolledBack { .. }
        ));
        let rendered = psk_records([&plan], &[back], SWITCH + 999, &|_, _| false).remove(0);
        assert_eq!(rendered.returned_at, Some(SWITCH + 999));
        assert!(!psk_pending(&rendered));
        // A held change the run confirmed is recorded confirmed at once.
        let mut spoke = psk_plans("worker-1");
        switch_psks(&mut spoke, SWITCH + PSK_LEAD_SECS, &[]);
        let led = psk_records([&spoke], &[], SWITCH + 3, &|_, peer| peer == "cp").remove(0);
        assert_eq!(led.confirmed, Some(SWITCH as u64 + 3));
    }

    #[test]
    fn an_end_no_run_changed_goes_back_and_a_late_lead_does_not_change() {
        // Every run of the hub failed: its deadline counts from its switch time.
        let hub = psk_plans("cp");
        let staged = psk_records([&hub], &[], SWITCH - 10, &|_, _| false).remove(0);
        assert_eq!(staged.deadline(), SWITCH + PSK_WAIT_SECS);
        assert_eq!(
            psk_next(&staged, SWITCH + PSK_WAIT_SECS - 1, 0),
            PskNext::Apply
        );
        let PskNext::RollBack(why) = psk_next(&staged, SWITCH + PSK_WAIT_SECS, 0) else {
            panic!("no going back");
        };
        assert!(
            why.starts_with("no run of this end made the change"),
            "{why}"
        );
        // The lead changes up to PSK_LEAD_LATEST_SECS late, and not after: its other end is
        // waiting since the switch time.
        let at = SWITCH + PSK_LEAD_SECS + PSK_LEAD_LATEST_SECS;
        let mut spoke = psk_plans("worker-1");
        switch_psks(&mut spoke, at, &[]);
        assert_eq!(psk_of(&spoke, "cp").1, PskStage::Switched);
        let mut late = psk_plans("worker-1");
        switch_psks(&mut late, at + 1, &[]);
        let (file, PskStage::RolledBack { reason }) = psk_of(&late, "cp") else {
            panic!("a late lead changed");
        };
        assert_eq!(file.as_deref(), Some(PSK));
        assert!(reason.contains("could not change by"), "{reason}");
        // Once it has changed, a later run keeps the next key.
        let records = psk_records([&spoke], &[], at, &|_, _| false);
        let mut again = psk_plans("worker-1");
        switch_psks(&mut again, at + 500, &records);
        assert_eq!(psk_of(&again, "cp").1, PskStage::Switched);
    }

    #[test]
    fn a_staged_preshared_key_is_declared_whole_in_a_file_of_its_own() {
        let fleet: crate::fleet::Fleet = serde_json::from_value(serde_json::json!({
            "version": 1,
            "hosts": {
                "cp": {"publicKey": CP, "privateKeyFile": "cp.age", "endpoint": "192.0.2.1"},
                "worker-1": {"publicKey": W1, "privateKeyFile": "w1.age"},
                "worker-2": {"publicKey": W1_NEXT, "privateKeyFile": "w2.age"}},
            "networks": {"wg0": {
                "subnet": "10.50.0.0/24",
                "topology": {"hubAndSpoke": {"hubs": ["cp"]}},
                "members": {"cp": {"id": 0}, "worker-1": {"id": 1}, "worker-2": {"id": 2}},
                "presharedKeys": [
                    {"peers": ["cp", "worker-1"], "file": "a.psk.age", "nextFile": "./a.psk.age",
                     "switchAt": "1970-01-01T00:16:40Z"},
                    {"peers": ["cp", "worker-2"], "file": "b.psk.age", "nextFile": "w1.age",
                     "switchAt": "later"}]}}
        }))
        .unwrap();
        let found = findings(&fleet);
        for want in [
            "networks.wg0.presharedKeys[0].nextFile: is the current file",
            "networks.wg0.presharedKeys[1].nextFile: \"w1.age\" is host \"worker-1\"'s private key file",
            "networks.wg0.presharedKeys[1].switchAt: \"later\" is not an RFC 3339 time",
        ] {
            assert!(
                found.iter().any(|f| f.starts_with(want)),
                "{want} not in {found:#?}"
            );
        }
        let mut half = fleet.clone();
        half.networks.get_mut("wg0").unwrap().preshared_keys[1].switch_at = None;
        let found = findings(&half);
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("networks.wg0.presharedKeys[1].switchAt: is missing")),
            "{found:#?}"
        );
    }
}
