//! The imperative shell: observe the host, diff it against the plan (pure, in `diff`), compute
//! each step's operations (pure, in `operations`), and run them. The only code that touches the
//! system. Nothing is touched before the fleet is valid and
//! every secret decrypted and checked; a failed start or reload restores the previous file and
//! brings the old tunnel back.

pub mod audit;
pub mod cache;
pub mod confirm;
pub mod endpoints;
pub mod host;
pub mod lock;
pub mod paths;
pub mod pending;
pub mod rollback;
pub mod routes;
pub mod systemd;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::Serialize;
use zeroize::Zeroizing;

use crate::diff::{self, Action, Live, NetworkDiff};
use crate::error::{Error, Result};
use crate::fleet::ValidFleet;
use crate::fsutil::{ensure_secret_dir, write_atomic};
use crate::operations::{self, Op, Operations, Rollback};
use crate::plan::InterfacePlan;
use crate::render::{self, MANAGED_MARKER};
use crate::secrets::HostSecrets;
pub use paths::Paths;
use pending::Pending;
pub use rollback::RolledBack;
use systemd::{Job, Systemd, unit_name};

/// One interface as it should be, secrets filled in.
pub struct Desired {
    pub plan: InterfacePlan,
    pub config: Zeroizing<String>,
    /// Every key the network knows, expired clients included, so that a removal is named.
    names: BTreeMap<String, String>,
    /// Every peer's owner, expired clients included, for the audit log.
    owners: BTreeMap<String, Option<String>>,
    /// This host is a hub of the network (not held to confirmation: spokes dial it).
    pub hub: bool,
}

impl Desired {
    pub fn build(
        plans: Vec<InterfacePlan>,
        secrets: &HostSecrets,
        fleet: &ValidFleet,
    ) -> Result<Vec<Desired>> {
        plans
            .into_iter()
            .map(|plan| {
                let config = secrets.fill(&render::render_config(&plan)?);
                let net = crate::plan::network_of(fleet, &plan);
                let hub = net.is_some_and(|n| n.is_hub(&plan.host));
                let peers = net.map(|net| &net.peers);
                let names = peers
                    .into_iter()
                    .flatten()
                    .map(|(_, p)| (p.public_key.clone(), p.name.clone()))
                    .collect();
                let owners = peers
                    .into_iter()
                    .flatten()
                    .map(|(_, p)| (p.name.clone(), p.owner.clone()))
                    .collect();
                Ok(Desired {
                    plan,
                    config,
                    names,
                    owners,
                    hub,
                })
            })
            .collect()
    }
}

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
}

/// The host-wide diff and its operations (empty when there is nothing to do).
pub struct HostStep {
    pub diff: host::HostDiff,
    pub ops: Operations,
}

/// Reads what is on disk and live, and diffs every interface of the host against it, plus the
/// interfaces wgfleet manages that the host no longer has. A step an earlier run left
/// unfinished (`pending`) is finished. `audit_all`: every interface gets an audit line (with
/// all its peers), changed or not.
pub fn observe<'d>(
    desired: &'d [Desired],
    paths: &Paths,
    systemd: &Systemd,
    pending: &Pending,
    audit_all: bool,
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
            live_state(iface)
        } else {
            None
        };
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
    }
    for iface in managed_interfaces(&paths.wireguard)? {
        if desired.iter().all(|d| d.plan.network != iface) {
            let unit = systemd.state(&unit_name(&iface)).map_err(sys(&iface))?;
            let on_disk = read_private(&paths.config(&iface))?;
            let diff = diff::diff_removed(&iface);
            steps.push(step(diff, None, on_disk, (unit.is_running(), None))?);
        }
    }
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
    if let Some(record) = pending.get(&diff.network) {
        worked_before = record.worked_before();
        diff = diff::finish_interrupted(diff, record.operations.action);
        was_running |= record.was_running;
        if let pending::Previous::Kept(kept) =
            record.previous(previous.as_deref().map(|s| s.as_str()))
        {
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
    let confirmation = match desired {
        Some(d) => crate::confirm::decide(&crate::confirm::Input {
            action: diff.action,
            old: previous.as_deref().map(|s| s.as_str()),
            new: &d.config,
            hub: d.hub,
            live,
            worked_before,
            now: now().max(0) as u64,
            names: &d.names,
        }),
        None => crate::confirm::Confirmation::NotHeld {
            reason: crate::confirm::NotHeld::NoLinkChange,
        },
    };
    Ok(Step {
        ops: operations::for_network(&diff, facts, paths),
        diff,
        desired,
        previous,
        was_running,
        live: None,
        confirmation,
    })
}

/// The host-wide diff (firewall, sysctls, boot files) and its operations.
pub fn observe_host(
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

fn sys(what: &str) -> impl Fn(systemd::SystemdError) -> Error + '_ {
    move |source| Error::Systemd {
        what: if what == operations::HOST {
            "(host)".into()
        } else {
            format!("network {what}")
        },
        source,
    }
}

/// Interfaces whose config file wgfleet wrote (it starts with the managed marker).
fn managed_interfaces(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Read {
                path: dir.to_owned(),
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

fn read_private(path: &Path) -> Result<Option<Zeroizing<String>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(Zeroizing::new(
            String::from_utf8_lossy(&Zeroizing::new(bytes)).into_owned(),
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_owned(),
            source,
        }),
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
    live.mtu = std::fs::read_to_string(format!("/sys/class/net/{iface}/mtu"))
        .ok()
        .map(|m| m.trim().to_owned());
    Some(live)
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

/// How one step ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub network: String,
    pub action: Action,
    pub ok: bool,
    pub result: String,
    /// Confirmed, rolled back or not held, for a change that touched the links to the hubs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<crate::confirm::Verdict>,
}

/// What a step acts on: the host-wide state or one interface.
#[derive(Clone, Copy)]
enum Subject<'a, 'd> {
    Host(&'a HostStep),
    Interface(&'a Step<'d>),
}

impl Subject<'_, '_> {
    fn ops(&self) -> &Operations {
        match self {
            Subject::Host(h) => &h.ops,
            Subject::Interface(s) => &s.ops,
        }
    }

    fn config(&self) -> Option<&str> {
        match self {
            Subject::Interface(s) => s.desired.map(|d| d.config.as_str()),
            Subject::Host(_) => None,
        }
    }

    fn changes(&self) -> serde_json::Value {
        match self {
            Subject::Host(h) => serde_json::to_value(&h.diff),
            Subject::Interface(s) => serde_json::to_value(&s.diff.changes),
        }
        .unwrap_or_default()
    }
}

/// Who runs, where, and how it is recorded.
pub struct Run<'a> {
    pub paths: &'a Paths,
    pub systemd: &'a Systemd,
    pub host: &'a str,
    pub digest: &'a str,
    /// Record every interface's peers in full in the audit log.
    pub audit_snapshot: bool,
    /// How long a held change waits for a handshake (`confirm`).
    pub confirm_timeout: std::time::Duration,
}

/// Runs the host-wide step, then every interface step, each recorded as pending while it runs
/// and audited; a step with nothing to do is not (`last-run.json` says when the host was last
/// seen in sync). Stops at the first failure, after rolling it back.
pub fn act(
    host_step: &HostStep,
    steps: &[Step<'_>],
    run: &Run<'_>,
    pending: &mut Pending,
) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    let result = act_all(host_step, steps, run, pending, &mut outcomes);
    let last = audit::LastRun {
        time: crate::fleet::time::format_rfc3339(now()),
        host: run.host.to_owned(),
        fleet_digest: run.digest.to_owned(),
        in_sync: result.is_ok(),
        networks: outcomes
            .iter()
            .filter(|o| o.network != operations::HOST)
            .map(|o| audit::LastRunNetwork {
                network: o.network.clone(),
                action: o.action,
                ok: o.ok,
            })
            .collect(),
    };
    let recorded = audit::write_last_run(&run.paths.state, &last).map_err(|source| Error::Write {
        path: run.paths.state.join(audit::LAST_RUN_NAME),
        source,
    });
    result.and(recorded).map(|()| outcomes)
}

fn act_all(
    host_step: &HostStep,
    steps: &[Step<'_>],
    run: &Run<'_>,
    pending: &mut Pending,
    outcomes: &mut Vec<Outcome>,
) -> Result<()> {
    // Every interface has an outcome (`last-run.json`); the host-wide step only when it acts.
    let host = (!host_step.ops.ops.is_empty()).then_some(Subject::Host(host_step));
    let subjects: Vec<Subject> = host
        .into_iter()
        .chain(steps.iter().map(Subject::Interface))
        .collect();
    let acting: Vec<&str> = subjects
        .iter()
        .map(|s| s.ops())
        .filter(|ops| ops.changes_something())
        .map(|ops| ops.network.as_str())
        .collect();
    pending.retain(&acting)?;
    for subject in subjects {
        let ops = subject.ops();
        let (result, confirmation) = run_step(subject, run, pending);
        outcomes.push(Outcome {
            network: ops.network.clone(),
            action: ops.action,
            ok: result.is_ok(),
            result: result
                .as_ref()
                .map_or_else(ToString::to_string, |()| "ok".to_owned()),
            confirmation,
        });
        result?;
    }
    Ok(())
}

/// The thin loop: records the step, runs its ops in order, rolls back a failed job (or a held
/// change no handshake confirmed), audits how it ended, and forgets the record.
fn run_step(
    subject: Subject<'_, '_>,
    run: &Run<'_>,
    pending: &mut Pending,
) -> (Result<()>, Option<crate::confirm::Verdict>) {
    let mut verdict = None;
    let result = run_step_inner(subject, run, pending, &mut verdict);
    (result, verdict)
}

fn run_step_inner(
    subject: Subject<'_, '_>,
    run: &Run<'_>,
    pending: &mut Pending,
    verdict: &mut Option<crate::confirm::Verdict>,
) -> Result<()> {
    let ops = subject.ops();
    let network = &ops.network;
    let acts = ops.changes_something();
    if acts {
        let held = match subject {
            Subject::Interface(s) => match &s.confirmation {
                crate::confirm::Confirmation::Held(h) => Some(h),
                crate::confirm::Confirmation::NotHeld { .. } => None,
            },
            _ => None,
        };
        let record = pending::Record {
            started: crate::fleet::time::format_rfc3339(now()),
            was_running: matches!(subject, Subject::Interface(s) if s.was_running),
            writes: ops
                .writes_config()
                .then(|| subject.config().map(pending::config_digest))
                .flatten(),
            operations: ops.clone(),
            held: held.is_some(),
            worked: held.map(|h| h.worked_keys.clone()).unwrap_or_default(),
        };
        pending.begin(network, record)?;
    }
    let mut result = Ok(());
    for op in &ops.ops {
        match op {
            Op::Audit { network } => audit(subject, network, &result, verdict.as_ref(), run)?,
            // After a failure only the audit runs.
            _ if result.is_err() => {}
            Op::Job { .. } => {
                result =
                    confirmed_job(op, subject, run, verdict).map_err(|e| rollback(e, subject, run));
                if let Err(e) = &result
                    && let Some(rolled_back) = not_confirmed(e)
                {
                    *verdict = Some(rolled_back);
                }
            }
            _ => result = run_op(op, subject, run),
        }
    }
    let ended = if acts { pending.end(network) } else { Ok(()) };
    result.and(ended)
}

/// The verdict of a step rolled back because no handshake confirmed it.
pub fn not_confirmed(e: &Error) -> Option<crate::confirm::Verdict> {
    match e {
        Error::RolledBack { error, .. } | Error::RollbackFailed { error, .. }
            if matches!(**error, Error::NotConfirmed { .. }) =>
        {
            Some(crate::confirm::Verdict::RolledBack {
                reason: error.to_string(),
            })
        }
        _ => None,
    }
}

/// A step's job, held to a handshake when `confirm` says so; a change that does not touch the
/// links (the common case) runs the job alone.
fn confirmed_job(
    op: &Op,
    subject: Subject<'_, '_>,
    run: &Run<'_>,
    verdict: &mut Option<crate::confirm::Verdict>,
) -> Result<()> {
    use crate::confirm::{Confirmation, Verdict};
    let Subject::Interface(step) = subject else {
        return run_op(op, subject, run);
    };
    let network = &step.ops.network;
    match &step.confirmation {
        Confirmation::Held(held) => {
            let start = std::time::Instant::now();
            confirm::before_job(network, held)?;
            run_op(op, subject, run)?;
            *verdict = Some(confirm::wait(network, held, start, run.confirm_timeout)?);
            Ok(())
        }
        Confirmation::NotHeld { reason } => {
            if !reason.is_silent() {
                *verdict = Some(Verdict::NotHeld {
                    reason: reason.to_string(),
                });
            }
            run_op(op, subject, run)
        }
    }
}

fn run_op(op: &Op, subject: Subject<'_, '_>, run: &Run<'_>) -> Result<()> {
    let network = &subject.ops().network;
    match op {
        Op::WriteConfig {
            path,
            keep_previous,
        } => {
            let previous = match subject {
                Subject::Interface(s) => s.previous.as_deref().map(|s| s.as_str()),
                Subject::Host(_) => None,
            };
            write_config(
                path,
                keep_previous.as_deref().zip(previous),
                subject.config().unwrap_or_default(),
                &run.paths.wireguard,
            )?;
            test_kill_after_write();
            Ok(())
        }
        Op::Enable { unit, runtime } => run.systemd.enable(unit, *runtime).map_err(sys(network)),
        Op::Job { job, unit } => run.systemd.run(*job, unit).map_err(sys(network)),
        Op::Disable { unit } => run.systemd.disable(unit).map_err(sys(network)),
        Op::RemoveFile { path } => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Write {
                path: path.clone(),
                source: e,
            }),
            _ => Ok(()),
        },
        Op::HostState { .. } => match subject {
            Subject::Host(h) => host::act(&h.diff, run.paths).map(|_| ()),
            Subject::Interface(_) => Ok(()),
        },
        Op::DaemonReload => run.systemd.daemon_reload().map_err(sys(network)),
        Op::Audit { .. } => Ok(()),
    }
}

/// Test-only fault: `WGFLEET_TEST_KILL_AFTER_WRITE=1` makes apply SIGKILL itself right after a
/// config is written and before its job, the crash tests/apply_testbed.rs recovers from and
/// that no timing from outside can hit reliably.
fn test_kill_after_write() {
    if std::env::var_os("WGFLEET_TEST_KILL_AFTER_WRITE").is_some() {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

/// Appends the step's line to the audit log.
fn audit(
    subject: Subject<'_, '_>,
    network: &str,
    result: &Result<()>,
    confirmation: Option<&crate::confirm::Verdict>,
    run: &Run<'_>,
) -> Result<()> {
    let entry = audit_entry(
        subject,
        network,
        result,
        confirmation,
        run.host,
        run.digest,
        run.audit_snapshot,
    );
    audit::append(&run.paths.state, &entry).map_err(|source| Error::Write {
        path: run.paths.state.join(audit::LOG_NAME),
        source,
    })
}

/// The step's line in the audit log, with how it ended: the action is the step's own
/// (`host-state` for the host-wide step).
fn audit_entry<'r>(
    subject: Subject<'_, '_>,
    network: &'r str,
    result: &Result<()>,
    confirmation: Option<&'r crate::confirm::Verdict>,
    host: &'r str,
    digest: &'r str,
    snapshot: bool,
) -> audit::Entry<'r> {
    let peers = match subject {
        Subject::Interface(step) if result.is_ok() => PeerRecord::of(step, snapshot),
        _ => PeerRecord::None,
    };
    let (added, removed, snapshot) = peers.split();
    audit::Entry {
        time: crate::fleet::time::format_rfc3339(now()),
        host,
        fleet_digest: digest,
        network,
        action: subject.ops().action,
        changes: subject.changes(),
        result: result
            .as_ref()
            .map_or_else(ToString::to_string, |()| "ok".to_owned()),
        added,
        removed,
        peers: snapshot,
        confirmation,
    }
}

/// What an interface's audit entry says of its peers.
enum PeerRecord {
    None,
    /// Peers added and removed.
    Changes(Vec<audit::AuditPeer>, Vec<audit::AuditPeer>),
    /// All of them.
    Snapshot(Vec<audit::AuditPeer>),
}

impl PeerRecord {
    /// A snapshot when asked, when wgfleet first writes the interface's file, and when it
    /// removes the interface (empty); otherwise the peers the diff adds and removes.
    fn of(step: &Step<'_>, snapshot: bool) -> PeerRecord {
        let Some(desired) = step.desired else {
            return PeerRecord::Snapshot(Vec::new());
        };
        let peer = |name: &str| audit::AuditPeer {
            name: name.to_owned(),
            owner: desired.owners.get(name).cloned().flatten(),
        };
        let first = step.diff.changes.contains(&diff::Change::FileMissing);
        if snapshot || first {
            return PeerRecord::Snapshot(
                desired.plan.peers.iter().map(|p| peer(&p.name)).collect(),
            );
        }
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        for c in &step.diff.changes {
            match c {
                diff::Change::PeerAdded { peer: name, .. } => added.push(peer(name)),
                diff::Change::PeerRemoved { peer: name, .. } => removed.push(peer(name)),
                _ => {}
            }
        }
        PeerRecord::Changes(added, removed)
    }

    fn split(
        self,
    ) -> (
        Vec<audit::AuditPeer>,
        Vec<audit::AuditPeer>,
        Option<Vec<audit::AuditPeer>>,
    ) {
        match self {
            PeerRecord::None => Default::default(),
            PeerRecord::Changes(added, removed) => (added, removed, None),
            PeerRecord::Snapshot(all) => (Vec::new(), Vec::new(), Some(all)),
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Undoes a failed job as the step's `on_failure` says; the error keeps what the rollback
/// achieved, or how it failed.
fn rollback(error: Error, subject: Subject<'_, '_>, run: &Run<'_>) -> Error {
    let Subject::Interface(step) = subject else {
        return error;
    };
    let network = &step.ops.network;
    let outcome = match &step.ops.on_failure {
        Rollback::Nothing => return error,
        Rollback::RestorePrevious { path, restart } => {
            let old = step
                .previous
                .as_deref()
                .map(|s| s.as_bytes())
                .unwrap_or_default();
            write_atomic(path, old, 0o600)
                .map_err(|source| Error::Write {
                    path: path.clone(),
                    source,
                })
                .and_then(|()| match restart {
                    Some(unit) => run
                        .systemd
                        .run(Job::Restart, unit)
                        .map(|()| RolledBack::RestoredAndRestarted)
                        .map_err(sys(network)),
                    None => Ok(RolledBack::Restored),
                })
        }
        Rollback::RemoveNew { path, unit } => {
            let _ = std::fs::remove_file(path);
            let _ = run.systemd.run(Job::Stop, unit);
            Ok(RolledBack::RemovedNew)
        }
    };
    match outcome {
        Ok(rollback) => Error::RolledBack {
            error: Box::new(error),
            rollback,
        },
        Err(rollback) => Error::RollbackFailed {
            error: Box::new(error),
            rollback: Box::new(rollback),
        },
    }
}

/// Keeps the file being replaced (`keep`: where, and its text), then writes the new one.
fn write_config(path: &Path, keep: Option<(&Path, &str)>, config: &str, dir: &Path) -> Result<()> {
    let werr = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Write { path, source }
    };
    ensure_secret_dir(dir).map_err(werr(dir))?;
    // A linked config is not followed: its target would be copied and then replaced.
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(werr(path)(std::io::Error::other(
            "a symbolic link; wgfleet replaces only a regular file (remove the link)",
        )));
    }
    if let Some((kept, old)) = keep {
        write_atomic(kept, old.as_bytes(), 0o600).map_err(werr(kept))?;
    }
    write_atomic(path, config.as_bytes(), 0o600).map_err(werr(path))
}

/// What `systemctl reload wg-quick@IFACE` runs under wgfleet's drop-in (`wgfleet
/// reload-interface`): the file stripped in process (as `wg-quick strip` would, without its bash
/// loop over every line) and fed to `wg syncconf` through a pipe, so the private key touches no
/// other file; then, for a file wgfleet wrote, the routes for new AllowedIPs. The drop-in applies
/// to every `wg-quick@` unit: a hand-made file is reloaded exactly as the stock ExecReload
/// would (no routes: its `Table` may name another routing table).
pub fn reload_interface(paths: &Paths, iface: &str) -> Result<()> {
    use std::io::Write as _;
    let fail = |message: String| Error::System {
        what: format!("network {iface}"),
        message,
    };
    crate::fleet::syntax::check_interface(iface).map_err(fail)?;
    let path = paths.config(iface);
    let config = read_private(&path)?.ok_or_else(|| Error::Read {
        path: path.clone(),
        source: std::io::ErrorKind::NotFound.into(),
    })?;
    let stripped = Zeroizing::new(crate::wgconf::strip(&config));
    let mut child = Command::new("wg")
        .args(["syncconf", iface, "/dev/stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run wg: {e}")))?;
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stripped.as_bytes())
            .map_err(|e| fail(format!("wg syncconf: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("wg syncconf: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "`wg syncconf {iface}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    // `wg syncconf` adds no routes for new AllowedIPs; wg-quick adds them only on `up`.
    if config.starts_with(MANAGED_MARKER) {
        routes::add_missing(iface, &crate::wgconf::parse(&config))?;
    }
    Ok(())
}

/// What the drop-in's ExecStartPost runs (`wgfleet routes-interface`) once `wg-quick up` is
/// done: for a file wgfleet wrote with `Table = off`, the routes wg-quick did not add, in one
/// batch. The drop-in is on every `wg-quick@` unit, so anything else (no file, a name wgfleet
/// never writes, a hand-made file, one with wg-quick's own routing) is left to wg-quick and
/// does not fail the start; only a managed file whose routes cannot be added does (the tunnel
/// would be half up).
pub fn routes_interface(paths: &Paths, iface: &str) -> Result<()> {
    // A name the check refuses is no interface wgfleet writes (nor a path to read).
    if crate::fleet::syntax::check_interface(iface).is_err() {
        return Ok(());
    }
    let Some(config) = read_private(&paths.config(iface))? else {
        return Ok(());
    };
    match routed_by_wgfleet(&config) {
        Some(conf) => routes::add_missing(iface, &conf),
        None => Ok(()),
    }
}

/// The parsed file if wgfleet wrote it with `Table = off` (its routes are wgfleet's to add).
fn routed_by_wgfleet(config: &str) -> Option<crate::wgconf::WgConf> {
    if !config.starts_with(MANAGED_MARKER) {
        return None;
    }
    let conf = crate::wgconf::parse(config);
    let table = conf.interface.get("table").and_then(|v| v.last());
    (table.map(String::as_str) == Some(crate::wgconf::TABLE_OFF)).then_some(conf)
}

/// What `plan` and `apply` print before acting: each step's action (from its operations) and
/// the changes behind it.
pub fn describe(steps: &[Step<'_>]) -> String {
    let mut out = String::new();
    for step in steps {
        let d = &step.diff;
        out.push_str(&format!("{}: {}\n", d.network, step.ops.action.describe()));
        for c in &d.changes {
            out.push_str(&format!("  {}\n", describe_change(c)));
        }
        if let Some(line) = crate::confirm::describe(&step.confirmation) {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The drop-in's ExecStartPost runs for every `wg-quick@` unit: one wgfleet does not manage
    /// starts as it would without it.
    #[test]
    fn routes_interface_leaves_other_units_alone() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::new(Some(root.path()));
        std::fs::create_dir_all(paths.config("wg0").parent().unwrap()).unwrap();
        // No file; a name wgfleet refuses (and never writes).
        routes_interface(&paths, "wg0").unwrap();
        routes_interface(&paths, "../../etc/passwd").unwrap();
        routes_interface(&paths, "a-name-too-long-for-linux").unwrap();
        // A hand-made file, and a managed one with wg-quick's own routing: nothing to do.
        let hand = "[Interface]\nTable = off\n[Peer]\nPublicKey = A\nAllowedIPs = 10.9.0.0/24\n";
        std::fs::write(paths.config("wg0"), hand).unwrap();
        routes_interface(&paths, "wg0").unwrap();
        assert!(routed_by_wgfleet(hand).is_none());
        let managed = format!("{MANAGED_MARKER}\n{}", hand.replace("Table = off\n", ""));
        std::fs::write(paths.config("wg0"), &managed).unwrap();
        routes_interface(&paths, "wg0").unwrap();
        assert!(routed_by_wgfleet(&managed).is_none());
        // Only a managed file with `Table = off` has routes for wgfleet to add.
        let off = format!("{MANAGED_MARKER}\n{hand}");
        let conf = routed_by_wgfleet(&off).unwrap();
        assert_eq!(
            routes::wanted(&conf),
            ["10.9.0.0/24".parse::<ipnet::IpNet>().unwrap()]
        );
    }

    /// Host-wide changes once went into the audit log as `reload`; they are `host-state`.
    #[test]
    fn the_host_wide_audit_entry_is_host_state() {
        let paths = Paths::new(Some(Path::new("/nonexistent-root")));
        let diff = host::HostDiff {
            sysctls: vec![("net.ipv4.ip_forward".into(), "0".into(), "1".into())],
            ..host::HostDiff::default()
        };
        let step = HostStep {
            ops: operations::for_host(&diff, false, &paths),
            diff,
        };
        let entry = audit_entry(
            Subject::Host(&step),
            operations::HOST,
            &Ok(()),
            None,
            "h1",
            "digest",
            false,
        );
        assert_eq!(entry.action, Action::HostState);
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["action"], "host-state");
        assert_eq!(json["network"], operations::HOST);
        assert_eq!(json["changes"]["sysctls"][0][2], "1");
    }
}
