//! Observe: what is on disk and live for each interface (the file, the unit through D-Bus,
//! `wg show dump`), diffed against the desired state (pure, in `diff`), with each step's
//! operations (pure, in `operations`). Nothing is changed here.

use std::path::Path;
use std::process::{Command, Stdio};

use zeroize::Zeroizing;

use super::desired::Desired;
use super::pending::{self, Pending};
use super::systemd::Systemd;
use super::timings::Timings;
use super::{host, now, read_private, sys};
use crate::diff::{self, HostDiff, Live, NetworkDiff};
use crate::error::{Error, Result};
use crate::operations::{self, Operations};
use crate::paths::Paths;
use crate::plan::InterfacePlan;
use crate::render::MANAGED_MARKER;
use crate::text::plural;
use crate::unit::unit_name;

/// The diff of one interface with what was on disk before, and the operations that realise it.
pub struct Step<'d> {
    pub diff: NetworkDiff,
    pub ops: Operations,
    pub desired: Option<&'d Desired>,
    /// The config to go back to if the job fails.
    pub previous: Option<Zeroizing<String>>,
    /// The unit was running before (or before the interrupted run that this step finishes).
    pub was_running: bool,
    /// What `wg show dump` said before acting (`None`: the unit was not running).
    pub live: Option<Live>,
    /// Whether the change must be confirmed by a handshake with a hub (`confirm`).
    pub confirmation: crate::confirm::Confirmation,
    /// This host's records of its staged preshared keys' changes on this interface.
    pub psk_records: Vec<crate::rotation::PskRecord>,
}

/// The host-wide diff and its operations (empty when there is nothing to do).
pub struct HostStep {
    pub diff: HostDiff,
    pub ops: Operations,
}

/// Reads what is on disk and live, and diffs every interface of the host against it, plus the
/// interfaces wgfleet manages that the host no longer has. A step an earlier run left
/// unfinished (`pending`) is finished. `audit_all`: every interface gets an audit line (with
/// all its peers), changed or not.
pub fn interfaces<'d>(
    desired: &'d [Desired],
    paths: &Paths,
    systemd: &Systemd,
    pending: &Pending,
    audit_all: bool,
    mut read_ahead: ReadAhead,
    timings: &mut Timings,
) -> Result<Vec<Step<'d>>> {
    let step = |diff, desired, on_disk, running: (bool, Option<&Live>)| {
        step(diff, desired, on_disk, running, paths, pending, audit_all)
    };
    let mut steps = Vec::new();
    for d in desired {
        let iface = &d.plan.network;
        let on_disk = read_private(&paths.config(iface))?;
        let unit = systemd.state(&unit_name(iface)).map_err(sys(iface))?;
        let live = if unit.is_running() {
            read_ahead.take(iface).or_else(|| live_state(iface))
        } else {
            None
        };
        timings.lap("observe-live");
        let diff = diff::diff_network(
            iface,
            &d.config,
            on_disk.as_deref().map(|s| s.as_str()),
            live.as_ref(),
            &unit,
            &d.names,
        );
        let mut s = step(diff, Some(d), on_disk, (unit.is_running(), live.as_ref()))?;
        s.live = live;
        steps.push(s);
        timings.lap("diff");
    }
    for iface in managed_interfaces(&paths.wireguard)? {
        if desired.iter().all(|d| d.plan.network != iface) {
            let unit = systemd.state(&unit_name(&iface)).map_err(sys(&iface))?;
            let on_disk = read_private(&paths.config(&iface))?;
            let diff = diff::diff_removed(&iface);
            steps.push(step(diff, None, on_disk, (unit.is_running(), None))?);
        }
    }
    timings.lap("observe-live");
    Ok(steps)
}

fn step<'d>(
    mut diff: NetworkDiff,
    desired: Option<&'d Desired>,
    on_disk: Option<Zeroizing<String>>,
    (mut was_running, live): (bool, Option<&Live>),
    paths: &Paths,
    pending: &Pending,
    audit_all: bool,
) -> Result<Step<'d>> {
    let mut previous = on_disk;
    let mut worked_before = crate::confirm::WorkedBefore::Live;
    let mut replaced = false;
    if let Some(record) = pending.get(&diff.network) {
        worked_before = record.worked_before();
        diff = diff::finish_interrupted(diff, record.operations.action);
        was_running |= record.was_running;
        if let pending::Previous::Kept(kept) =
            record.previous(previous.as_deref().map(|s| s.as_str()))
        {
            replaced = true;
            previous = match kept {
                Some(path) => read_private(path)?,
                None => None,
            };
        }
    }
    let facts = operations::Facts {
        has_previous: previous.is_some(),
        was_running,
        runtime_units: paths.runtime_units,
        audit_all,
    };
    // The diff's parse of the file on disk stands for the previous file unless a killed run's
    // kept file replaced it.
    let parsed = diff.parsed.as_ref().and_then(|p| match &p.old {
        Some(old) if !replaced => Some((old, &p.new)),
        _ => None,
    });
    let confirmation = match desired {
        Some(d) => crate::confirm::decide(&crate::confirm::Input {
            action: diff.action,
            old: previous.as_deref().map(|s| s.as_str()),
            new: &d.config,
            parsed,
            hub: d.hub,
            live,
            worked_before,
            now: now().max(0) as u64,
            names: &d.names,
            kept: &crate::rotation::kept_sessions(&d.plan),
        }),
        None => crate::confirm::Confirmation::NotHeld {
            reason: crate::confirm::NotHeld::NoLinkChange,
        },
    };
    let psk_records = match desired {
        Some(d) if d.plan.peers.iter().any(|p| p.psk_rotation.is_some()) => {
            let mut records = super::rotation::load(&paths.state).psk;
            records.retain(|r| r.interface == diff.network);
            records
        }
        _ => Vec::new(),
    };
    Ok(Step {
        ops: operations::for_network(&diff, facts, paths),
        diff,
        desired,
        previous,
        was_running,
        live: None,
        confirmation,
        psk_records,
    })
}

/// The host-wide diff (firewall, sysctls, boot files) and its operations.
pub fn host_wide(
    plans: &[InterfacePlan],
    paths: &Paths,
    root: Option<&Path>,
    pending: &Pending,
) -> Result<HostStep> {
    let diff = host::observe(plans, paths, root)?;
    let interrupted = pending
        .get(operations::HOST)
        .is_some_and(|r| r.operations.reloads_daemon());
    Ok(HostStep {
        ops: operations::for_host(&diff, interrupted, paths),
        diff,
    })
}

/// Interfaces whose config file wgfleet wrote (it starts with the managed marker).
fn managed_interfaces(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Read {
                path: dir.to_owned(),
                what: "directory",
                source,
            });
        }
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(iface) = name.strip_suffix(".conf") else {
            continue;
        };
        // Only the first line says whose the file is: a 100,000-peer file is not read for it.
        let mut head = Vec::with_capacity(MANAGED_MARKER.len());
        let read = std::fs::File::open(entry.path()).and_then(|f| {
            use std::io::Read as _;
            f.take(MANAGED_MARKER.len() as u64).read_to_end(&mut head)
        });
        if read.is_ok() && head.starts_with(MANAGED_MARKER.as_bytes()) {
            found.push(iface.to_owned());
        }
    }
    found.sort();
    Ok(found)
}

/// The live state of the interfaces wgfleet manages, read on another thread while this one
/// computes the desired state: at 10,000 peers the userspace WireGuard takes about as long to
/// print its dump as the fleet takes to load and validate. Started under the run lock (apply),
/// so nothing of wgfleet's changes the interfaces between this read and the diff.
pub struct ReadAhead {
    reading: Option<std::thread::JoinHandle<LiveByInterface>>,
    read: LiveByInterface,
}

/// Each interface's live state (`None`: it was not up).
type LiveByInterface = Vec<(String, Option<Live>)>;

impl ReadAhead {
    /// Starts reading every interface whose file wgfleet wrote.
    pub fn start(paths: &Paths) -> ReadAhead {
        let ifaces = managed_interfaces(&paths.wireguard).unwrap_or_default();
        let read = move || {
            let read = |i: String| {
                let live = live_state(&i);
                (i, live)
            };
            ifaces.into_iter().map(read).collect()
        };
        ReadAhead {
            reading: std::thread::Builder::new().spawn(read).ok(),
            read: Vec::new(),
        }
    }

    /// The state read ahead for `iface`, if it was up then (else the caller reads it).
    fn take(&mut self, iface: &str) -> Option<Live> {
        if let Some(reading) = self.reading.take() {
            self.read = reading.join().unwrap_or_default();
        }
        let at = self.read.iter().position(|(i, _)| i == iface)?;
        self.read.swap_remove(at).1
    }
}

/// `wg show IFACE dump` (parsed at once; the private key it prints is zeroized with the
/// buffer, only its public key kept), with the interface's addresses (`ip`) and MTU (sysfs).
pub fn live_state(iface: &str) -> Option<Live> {
    let mut live = wg_dump(iface)?;
    live.addresses = Command::new("ip")
        .args(["-o", "address", "show", "dev", iface, "scope", "global"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| diff::parse_addresses(&String::from_utf8_lossy(&o.stdout)));
    live.mtu = mtu(iface);
    Some(live)
}

/// The interface's MTU as sysfs gives it; `None`: there is no such interface.
pub fn mtu(iface: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{iface}/mtu")).ok()?;
    Some(text.trim().to_owned())
}

/// `wg show IFACE dump` alone: peers, endpoints and handshakes.
pub fn wg_dump(iface: &str) -> Option<Live> {
    let out = Command::new("wg")
        .args(["show", iface, "dump"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let stdout = Zeroizing::new(out.stdout);
    if !out.status.success() {
        return None;
    }
    Some(diff::parse_dump(&String::from_utf8_lossy(&stdout)))
}

/// What `plan` and `apply` print before acting: each step's action (from its operations) and
/// the changes behind it.
pub fn describe(steps: &[Step<'_>]) -> String {
    let mut out = String::new();
    for step in steps {
        let d = &step.diff;
        let action = match step.ops.ops.iter().find_map(set_peers) {
            Some((set, remove)) => format!(
                "reload: {} set and {} removed live by one `wg set` (no systemd job; live \
                 sessions survive)",
                plural(set, "peer"),
                plural(remove, "peer")
            ),
            None => step.ops.action.describe().to_owned(),
        };
        out.push_str(&format!("{}: {action}\n", d.network));
        for c in &d.changes {
            out.push_str(&format!("  {}\n", describe_change(c)));
        }
        if let Some(line) = crate::confirm::describe(&step.confirmation) {
            out.push_str(&format!("  {line}\n"));
        }
        for view in rotations(step) {
            out.push_str(&format!(
                "  ~ {} ({}): {}\n",
                view.subject(),
                view.state,
                view.message
            ));
        }
    }
    out
}

/// The key rotations a step's plan stages, against the handshakes seen before acting.
pub fn rotations(step: &Step<'_>) -> Vec<crate::rotation::View> {
    let Some(desired) = step.desired else {
        return Vec::new();
    };
    let handshake = |key: &str| {
        step.live
            .as_ref()
            .and_then(|l| l.peers.get(key))
            .map_or(0, |p| p.latest_handshake)
    };
    crate::rotation::views(&desired.plan, &handshake, super::now(), &step.psk_records)
}

fn set_peers(op: &operations::Op) -> Option<(usize, usize)> {
    match op {
        operations::Op::SetPeers { delta, .. } => Some((delta.set.len(), delta.remove.len())),
        _ => None,
    }
}

fn describe_change(c: &diff::Change) -> String {
    use diff::Change::*;
    match c {
        FileMissing => "+ config file (not on disk yet)".into(),
        FileRewritten => {
            "~ config file: same meaning, different text (comments, order, format)".into()
        }
        PeerAdded {
            peer,
            public_key,
            allowed_ips,
        } => format!("+ peer {peer} ({public_key}) {}", allowed_ips.join(", ")),
        PeerRemoved { peer, public_key } => format!("- peer {peer} ({public_key})"),
        PeerChanged { peer, fields, .. } => format!("~ peer {peer}: {}", fields.join("; ")),
        InterfaceChanged { key, from, to }
            if key == "PrivateKey" || (from.is_none() && to.is_none()) =>
        {
            format!("~ {key} changed")
        }
        InterfaceChanged { key, from, to } => {
            format!(
                "~ {key}: {} → {}",
                from.as_deref().unwrap_or("(none)"),
                to.as_deref().unwrap_or("(none)")
            )
        }
        UnitNotActive { state } => format!("! unit is {state}"),
        UnitNotEnabled => "! unit is not enabled at boot".into(),
        LiveDrift { detail } => format!("! drift: {detail}"),
        NetworkRemoved => "- this host is no longer in the network".into(),
        Interrupted { action } => format!(
            "! an earlier run was interrupted before it could {}",
            action.describe()
        ),
    }
}

/// Whether the steps change anything.
pub fn has_changes(steps: &[Step<'_>]) -> bool {
    steps.iter().any(|s| s.ops.changes_something())
}
