//! Key rotation without an outage, the pure half. WireGuard knows a peer by one public key, and
//! two entries cannot share AllowedIPs; but a handshake needs no AllowedIPs. So a host's next
//! key is staged on each of its peers as an extra entry with none: it can handshake while the
//! current key carries the traffic, and carries nothing itself. The host moves to its next key
//! at its first apply after `nextSwitchAt`; a peer that then sees a handshake from the next key,
//! at or after that time, moves the AllowedIPs to it and drops the current key in one `wg set`
//! (`wgfleet promote`, run by a short-lived unit while anything is staged). `rekey --finish`
//! makes the next key the fleet's key, and the staged state ends.
//!
//! A pair's preshared key rotates in time instead (`psk`).
//!
//! Here: the entries a plan renders, what a host watches for, and which handshakes promote.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::fleet::time::format_rfc3339;

mod psk;
use crate::plan::{InterfacePlan, OwnStage, PeerPlan};
use psk::psk_state;
pub use psk::{
    PSK_LEAD_LATEST_SECS, PSK_LEAD_SECS, PSK_WAIT_SECS, PskNext, PskRecord, kept_sessions,
    psk_next, psk_pending, psk_records, psk_switch_time, switch_psks,
};

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

/// The plan has a rotation in it: the host's own, or a peer's, or a preshared key's.
pub fn touches(plan: &InterfacePlan) -> bool {
    plan.rotation.is_some()
        || plan
            .peers
            .iter()
            .any(|p| p.rotation.is_some() || p.psk_rotation.is_some())
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

    pub(super) const CP: &str = "j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=";
    pub(super) const W1: &str = "um/TOLbxUvqJwIOGdbFPn9uBh/Es4shlVXFlWyEYvng=";
    pub(super) const W1_NEXT: &str = "cOW07yOnwkL6IrWiXjj2ZtKizAAu+k9RWgxFiIvoJwU=";
    pub(super) const SWITCH: i64 = 1_000;

    pub(super) fn fleet() -> crate::fleet::ValidFleet {
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
    pub(super) fn findings(fleet: &crate::fleet::Fleet) -> Vec<String> {
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
