//! Key rotation without an outage, the pure half. WireGuard knows a peer by one public key, and
//! two entries cannot share AllowedIPs; but a handshake needs no AllowedIPs. So a host's next
//! key is staged on each of its peers as an extra entry with none: it can handshake while the
//! current key carries the traffic, and carries nothing itself. The host moves to its next key
//! at its first apply after `nextSwitchAt`; a peer that then sees a handshake from the next key,
//! at or after that time, moves the AllowedIPs to it and drops the current key in one `wg set`
//! (`wgfleet promote`, run by a short-lived unit while anything is staged). `rekey --finish`
//! makes the next key the fleet's key, and the staged state ends.
//!
//! A pair's preshared key rotates in time instead: both ends change it at `switchAt` and keep
//! their session (a session outlives the key it was made with), the lead end a moment later
//! with a fresh handshake that confirms both; an end that sees no handshake after its change
//! goes back to the current key, and with it the other, so that both end on one key.
//!
//! Here: the entries a plan renders, what a host watches for, and which handshakes promote.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::fleet::time::format_rfc3339;
use crate::plan::{InterfacePlan, OwnStage, PeerPlan, PskRotation, PskStage};

/// A peer's staged key this host waits to see a handshake from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Watch {
    pub interface: String,
    pub peer: String,
    pub current_public_key: String,
    pub next_public_key: String,
    /// Unix seconds.
    pub switch_at: i64,
    /// What the current key carries, and moves to the next one.
    pub allowed_ips: Vec<IpNet>,
    pub persistent_keepalive: Option<u16>,
}

/// A peer's next key this host has moved the traffic to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Promoted {
    pub interface: String,
    pub peer: String,
    pub next_public_key: String,
    /// Unix seconds.
    pub at: i64,
    /// The handshake that promoted it (unix seconds).
    pub handshake: u64,
}

/// After the switch time, how long a staged key may go without a handshake before it is called
/// stuck: two runs of the 5-minute timer on the rotating host.
pub const STUCK_AFTER_SECS: i64 = 600;

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

/// The plan has a rotation in it: the host's own, or a peer's, or a preshared key's.
pub fn touches(plan: &InterfacePlan) -> bool {
    plan.rotation.is_some()
        || plan
            .peers
            .iter()
            .any(|p| p.rotation.is_some() || p.psk_rotation.is_some())
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

/// The peers' entries as this host renders them: a promoted rotation's entry carries the next
/// key; any other is followed by the next key's staged entry (no AllowedIPs, no keepalive; the
/// endpoint when this host dials the peer, so that a rotating hub is found at its address).
pub fn stage(plan: &mut InterfacePlan, promoted: &[Promoted]) {
    let mut peers = Vec::with_capacity(plan.peers.len() + 1);
    for mut peer in std::mem::take(&mut plan.peers) {
        let Some(rotation) = &mut peer.rotation else {
            peers.push(peer);
            continue;
        };
        let done = promoted.iter().any(|p| {
            p.interface == plan.network
                && p.peer == peer.name
                && p.next_public_key == rotation.next_public_key
        });
        if done {
            rotation.promoted = true;
            peer.public_key = rotation.next_public_key.clone();
            peers.push(peer);
            continue;
        }
        let staged = PeerPlan {
            public_key: rotation.next_public_key.clone(),
            allowed_ips: Vec::new(),
            endpoints: Vec::new(),
            persistent_keepalive: None,
            rotation: None,
            staged: true,
            psk_rotation: None,
            ..peer.clone()
        };
        peers.push(peer);
        peers.push(staged);
    }
    plan.peers = peers;
}

/// The staged keys this host waits for a handshake from.
pub fn watches<'p>(plans: impl IntoIterator<Item = &'p InterfacePlan>) -> Vec<Watch> {
    plans
        .into_iter()
        .flat_map(|plan| {
            plan.peers.iter().filter_map(|peer| {
                let r = peer.rotation.as_ref().filter(|r| !r.promoted)?;
                Some(Watch {
                    interface: plan.network.clone(),
                    peer: peer.name.clone(),
                    current_public_key: r.current_public_key.clone(),
                    next_public_key: r.next_public_key.clone(),
                    switch_at: r.switch_at,
                    allowed_ips: peer.allowed_ips.clone(),
                    persistent_keepalive: peer.persistent_keepalive,
                })
            })
        })
        .collect()
}

/// Whether a handshake (unix seconds, 0: none) from a watch's next key promotes it: only one at
/// or after the switch time. Someone who holds the next key early can handshake with its staged
/// entry, but that promotes nothing and, with no AllowedIPs, carries no packet either way.
pub fn promotes(watch: &Watch, handshake: u64) -> bool {
    handshake > 0 && i64::try_from(handshake).is_ok_and(|t| t >= watch.switch_at)
}

/// The `wg set` arguments (after the interface) that promote: the AllowedIPs move to the next
/// key with the current entry's keepalive, and the current key is removed, in one call.
pub fn promote_args(watch: &Watch) -> Vec<String> {
    let mut args = vec![
        "peer".to_owned(),
        watch.next_public_key.clone(),
        "allowed-ips".to_owned(),
        watch
            .allowed_ips
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    ];
    if let Some(k) = watch.persistent_keepalive {
        args.extend(["persistent-keepalive".to_owned(), k.to_string()]);
    }
    args.extend([
        "peer".to_owned(),
        watch.current_public_key.clone(),
        "remove".to_owned(),
    ]);
    args
}

/// The promotions still in force: those of a rotation the fleet still stages (after
/// `rekey --finish` the fleet names the next key itself, and nothing is left to remember).
pub fn still_staged<'p>(
    promoted: Vec<Promoted>,
    plans: impl IntoIterator<Item = &'p InterfacePlan> + Clone,
) -> Vec<Promoted> {
    promoted
        .into_iter()
        .filter(|p| {
            plans.clone().into_iter().any(|plan| {
                plan.network == p.interface
                    && plan.peers.iter().any(|peer| {
                        peer.name == p.peer
                            && peer
                                .rotation
                                .as_ref()
                                .is_some_and(|r| r.next_public_key == p.next_public_key)
                    })
            })
        })
        .collect()
}

/// This host's own rotation is due: its switch time has come.
pub fn own_due(plan: &InterfacePlan, now: i64) -> bool {
    plan.rotation.as_ref().is_some_and(|r| now >= r.switch_at)
}

/// The host's own rotation once its next key was tried: with a usable key the interface runs
/// it; otherwise the current key stays and the rotation is stuck, saying why.
pub fn switch(plan: &mut InterfacePlan, usable: Result<(), String>) {
    let Some(rotation) = &mut plan.rotation else {
        return;
    };
    match usable {
        Ok(()) => {
            // A key kept on the host is found by its public key.
            plan.private_key_file = rotation.next_private_key_file.clone();
            plan.public_key = rotation.next_public_key.clone();
            rotation.stage = OwnStage::Switched;
        }
        Err(reason) => rotation.stage = OwnStage::Stuck { reason },
    }
}

/// One rotation as `plan` and `status` show it (and `--json` gives it).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct View {
    /// The interface on this host.
    pub network: String,
    /// `key` (a host's key) or `presharedKey` (this host's with `host`).
    pub kind: &'static str,
    /// The rotating host: this one, or a peer; for a preshared key, the other end.
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_public_key: Option<String>,
    /// A preshared key's next file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_file: Option<String>,
    /// RFC 3339.
    pub switch_at: String,
    /// `staged`, `due`, `switched`, `promoted` or `stuck`.
    pub state: &'static str,
    pub message: String,
}

impl View {
    /// What the rotation is of, as `plan` and `status` name it.
    pub fn subject(&self) -> String {
        match self.kind {
            "presharedKey" => format!("preshared key with {}", self.host),
            _ => format!("rotation of {}", self.host),
        }
    }
}

/// The rotations in a staged plan (the host's own with the stage its last run found), given the
/// latest handshake of each public key (0: none), the time, and this host's records of its
/// preshared keys' changes.
pub fn views(
    plan: &InterfacePlan,
    handshake: &dyn Fn(&str) -> u64,
    now: i64,
    psk: &[PskRecord],
) -> Vec<View> {
    let view =
        |host: &str, next: &str, switch_at: i64, (state, message): (&'static str, String)| View {
            network: plan.network.clone(),
            kind: "key",
            host: host.to_owned(),
            next_public_key: Some(next.to_owned()),
            next_file: None,
            switch_at: format_rfc3339(switch_at),
            state,
            message,
        };
    let own = plan.rotation.as_ref().map(|r| {
        let at = format_rfc3339(r.switch_at);
        let state = match &r.stage {
            OwnStage::Staged => (
                "staged",
                format!("this host moves to its next key at its first apply after {at}"),
            ),
            OwnStage::Switched => (
                "switched",
                format!(
                    "this host runs its next key; once every peer has promoted it, `wgfleet \
                     rekey --finish {}` ends the rotation",
                    plan.host
                ),
            ),
            OwnStage::Stuck { reason } => {
                ("stuck", format!("the current key stays, because {reason}"))
            }
        };
        view(&plan.host, &r.next_public_key, r.switch_at, state)
    });
    let peers = plan.peers.iter().filter_map(|peer| {
        let r = peer.rotation.as_ref()?;
        let state = if r.promoted {
            (
                "promoted",
                format!(
                    "{}'s next key carries the traffic here; the old key is removed",
                    peer.name
                ),
            )
        } else {
            watch_state(&peer.name, r.switch_at, handshake(&r.next_public_key), now)
        };
        Some(view(&peer.name, &r.next_public_key, r.switch_at, state))
    });
    let psks = plan.peers.iter().filter_map(|peer| {
        let r = peer.psk_rotation.as_ref()?;
        let record = psk.iter().find(|x| x.of(&plan.network, &peer.name, r));
        let (state, message) = psk_state(&plan.host, &peer.name, r, record, now);
        Some(View {
            network: plan.network.clone(),
            kind: "presharedKey",
            host: peer.name.clone(),
            next_public_key: None,
            next_file: Some(r.next_file.clone()),
            switch_at: format_rfc3339(r.switch_at),
            state,
            message,
        })
    });
    own.into_iter().chain(peers).chain(psks).collect()
}

/// Where this end's change of the preshared key with `peer` stands.
fn psk_state(
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

/// Where a peer's staged key stands: before the switch time, after it, or long after it.
fn watch_state(peer: &str, switch_at: i64, handshake: u64, now: i64) -> (&'static str, String) {
    let at = format_rfc3339(switch_at);
    if now < switch_at {
        let early = if handshake > 0 {
            " (it has handshaken already: that promotes nothing)"
        } else {
            ""
        };
        return (
            "staged",
            format!(
                "{peer}'s next key may handshake but carries no traffic until {peer} switches after {at}{early}"
            ),
        );
    }
    if now - switch_at >= STUCK_AFTER_SECS {
        return (
            "stuck",
            format!(
                "no handshake from {peer}'s next key since {at} ({} min); the current key keeps \
                 the traffic. `wgfleet status` on {peer} says why it has not switched",
                (now - switch_at) / 60
            ),
        );
    }
    (
        "due",
        format!(
            "waiting for {peer} to switch (at its first apply after {at}); the next key's first handshake promotes it"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::plan_host;
    use crate::plan::tests::valid;

    const CP: &str = "j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=";
    const W1: &str = "um/TOLbxUvqJwIOGdbFPn9uBh/Es4shlVXFlWyEYvng=";
    const W1_NEXT: &str = "cOW07yOnwkL6IrWiXjj2ZtKizAAu+k9RWgxFiIvoJwU=";
    const SWITCH: i64 = 1_000;

    fn fleet() -> crate::fleet::ValidFleet {
        valid(serde_json::json!({
            "version": 1,
            "hosts": {
                "cp": {"publicKey": CP, "privateKeyFile": "cp.age", "endpoint": "192.0.2.1"},
                "worker-1": {"publicKey": W1, "privateKeyFile": "w1.age",
                             "nextPublicKey": W1_NEXT, "nextPrivateKeyFile": "w1.next.age",
                             "nextSwitchAt": "1970-01-01T00:16:40Z"}},
            "networks": {"wg0": {
                "subnet": "10.50.0.0/24", "persistentKeepalive": 25,
                "topology": {"hubAndSpoke": {"hubs": ["cp"]}},
                "members": {"cp": {"id": 0, "forwarding": true}, "worker-1": {"id": 1}}}}
        }))
    }

    fn hub_plan(promoted: &[Promoted]) -> InterfacePlan {
        let mut plan = plan_host(&fleet(), "cp", 0).remove(0);
        stage(&mut plan, promoted);
        plan
    }

    #[test]
    fn the_next_key_is_staged_beside_the_current_one_with_no_allowed_ips() {
        let plan = hub_plan(&[]);
        let keys: Vec<(&str, usize, bool)> = plan
            .peers
            .iter()
            .map(|p| (p.public_key.as_str(), p.allowed_ips.len(), p.staged))
            .collect();
        assert_eq!(keys, [(W1, 1, false), (W1_NEXT, 0, true)]);
        let conf = crate::render::render_config(&plan).unwrap();
        let staged = conf.split("[Peer]").nth(2).unwrap();
        assert!(!staged.contains("AllowedIPs"), "{conf}");
        assert!(!staged.contains("PersistentKeepalive"), "{conf}");
        assert!(conf.contains("worker-1 (next key, staged)"), "{conf}");
    }

    #[test]
    fn a_promoted_rotation_renders_the_next_key_alone() {
        let done = Promoted {
            interface: "wg0".into(),
            peer: "worker-1".into(),
            next_public_key: W1_NEXT.into(),
            at: SWITCH + 1,
            handshake: SWITCH as u64,
        };
        let plan = hub_plan(std::slice::from_ref(&done));
        assert_eq!(plan.peers.len(), 1);
        assert_eq!(plan.peers[0].public_key, W1_NEXT);
        assert_eq!(plan.peers[0].allowed_ips.len(), 1);
        assert!(watches(std::slice::from_ref(&plan)).is_empty());
        let kept = still_staged(vec![done.clone()], &[plan]);
        assert_eq!(kept, std::slice::from_ref(&done));
        // A promotion of another key (an older rotation) is forgotten.
        let old = Promoted {
            next_public_key: CP.into(),
            ..done
        };
        assert!(still_staged(vec![old], &[hub_plan(&[])]).is_empty());
    }

    #[test]
    fn only_a_handshake_at_or_after_the_switch_time_promotes() {
        let w = watches(&[hub_plan(&[])]).remove(0);
        assert_eq!(w.current_public_key, W1);
        assert!(!promotes(&w, 0));
        assert!(
            !promotes(&w, SWITCH as u64 - 1),
            "an early holder of the key"
        );
        assert!(promotes(&w, SWITCH as u64));
        assert_eq!(
            promote_args(&w).join(" "),
            format!("peer {W1_NEXT} allowed-ips 10.50.0.2/32 peer {W1} remove")
        );
    }

    #[test]
    fn the_rotating_host_switches_only_to_a_usable_key() {
        let fleet = fleet();
        let mut plan = plan_host(&fleet, "worker-1", 0).remove(0);
        assert!(!own_due(&plan, SWITCH - 1));
        assert!(own_due(&plan, SWITCH));
        let mut stuck = plan.clone();
        switch(
            &mut stuck,
            Err("w1.next.age is not encrypted to this host".into()),
        );
        assert_eq!(stuck.public_key, W1);
        let view = &views(&stuck, &|_| 0, SWITCH, &[])[0];
        assert_eq!((view.host.as_str(), view.state), ("worker-1", "stuck"));
        assert!(
            view.message
                .ends_with("because w1.next.age is not encrypted to this host")
        );
        switch(&mut plan, Ok(()));
        assert_eq!(plan.public_key, W1_NEXT);
        assert_eq!(plan.private_key_file.as_deref(), Some("w1.next.age"));
        // The hub it dials is unchanged: a spoke's peers stage nothing of their own.
        assert!(plan.peers.iter().all(|p| p.rotation.is_none()));
    }

    /// Each finding of `validate` as `path: message`.
    fn findings(fleet: &crate::fleet::Fleet) -> Vec<String> {
        use crate::fleet::validate::{Options, validate};
        let options = Options {
            now: 0,
            expiry_warning: 0,
        };
        let (_, d) = validate(fleet, options);
        d.0.iter()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect()
    }

    #[test]
    fn a_staged_rotation_is_declared_whole_with_a_key_of_its_own() {
        let fleet: crate::fleet::Fleet = serde_json::from_value(serde_json::json!({
            "version": 1,
            "hosts": {
                "cp": {"publicKey": CP, "privateKeyFile": "cp.age", "endpoint": "192.0.2.1",
                       "nextPublicKey": CP, "nextPrivateKeyFile": "cp.next.age",
                       "nextSwitchAt": "soon"},
                "worker-1": {"publicKey": W1, "privateKeyFile": "w1.age",
                             "nextPublicKey": CP}},
            "networks": {}
        }))
        .unwrap();
        let found = findings(&fleet);
        for want in [
            "hosts.cp.nextPublicKey: is the current publicKey",
            "hosts.cp.nextSwitchAt: \"soon\" is not an RFC 3339 time",
            "hosts.worker-1.nextPrivateKeyFile: is missing: a staged rotation needs",
            "hosts.worker-1.nextPublicKey: is also the key of host \"cp\"",
        ] {
            assert!(
                found.iter().any(|f| f.starts_with(want)),
                "{want} not in {found:#?}"
            );
        }
    }

    #[test]
    fn a_host_that_keeps_its_key_stages_its_next_key_without_a_file() {
        let kept = |extra: serde_json::Value| {
            let mut w1 = serde_json::json!({"publicKey": W1, "keyOnHost": true,
                "nextPublicKey": W1_NEXT, "nextSwitchAt": "1970-01-01T00:16:40Z"});
            for (k, v) in extra.as_object().unwrap() {
                match v.is_null() {
                    true => w1.as_object_mut().unwrap().remove(k),
                    false => w1.as_object_mut().unwrap().insert(k.clone(), v.clone()),
                };
            }
            serde_json::json!({
                "version": 1,
                "hosts": {
                    "cp": {"publicKey": CP, "privateKeyFile": "cp.age", "endpoint": "192.0.2.1"},
                    "worker-1": w1},
                "networks": {"wg0": {
                    "subnet": "10.50.0.0/24",
                    "topology": {"hubAndSpoke": {"hubs": ["cp"]}},
                    "members": {"cp": {"id": 0}, "worker-1": {"id": 1}}}}
            })
        };
        let fleet = valid(kept(serde_json::json!({})));
        let mut plan = plan_host(&fleet, "worker-1", 0).remove(0);
        let r = plan.rotation.clone().unwrap();
        assert_eq!(
            (r.next_public_key.as_str(), r.next_private_key_file),
            (W1_NEXT, None)
        );
        switch(&mut plan, Ok(()));
        // Read from the host's key store by its public key, as the current one.
        assert_eq!(
            (plan.public_key.as_str(), plan.private_key_file),
            (W1_NEXT, None)
        );
        assert!(plan.key_on_host);
        // The hub stages it as any next key.
        let mut hub = plan_host(&fleet, "cp", 0).remove(0);
        stage(&mut hub, &[]);
        assert!(
            hub.peers
                .iter()
                .any(|p| p.public_key == W1_NEXT && p.staged)
        );
        for (extra, want) in [
            (
                serde_json::json!({"nextPrivateKeyFile": "w1.next.age"}),
                "hosts.worker-1.nextPrivateKeyFile: a host that keeps its key (keyOnHost) keeps its next key too",
            ),
            (
                serde_json::json!({"nextSwitchAt": null}),
                "hosts.worker-1.nextSwitchAt: is missing: a staged rotation needs nextPublicKey and nextSwitchAt together",
            ),
        ] {
            let fleet: crate::fleet::Fleet = serde_json::from_value(kept(extra)).unwrap();
            let found = findings(&fleet);
            assert!(
                found.iter().any(|f| f.starts_with(want)),
                "{want} not in {found:#?}"
            );
        }
    }

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

    #[test]
    fn a_watch_reads_staged_due_then_stuck() {
        let plan = hub_plan(&[]);
        let state = |handshake: u64, now: i64| {
            let v = views(
                &plan,
                &|k| if k == W1_NEXT { handshake } else { 0 },
                now,
                &[],
            )
            .remove(0);
            (v.state, v.message)
        };
        assert_eq!(state(0, SWITCH - 5).0, "staged");
        assert!(state(7, SWITCH - 5).1.contains("promotes nothing"));
        assert_eq!(state(0, SWITCH + 5).0, "due");
        assert_eq!(state(0, SWITCH + STUCK_AFTER_SECS).0, "stuck");
    }
}
