//! Act: the thin loop that runs each step's operations in order, waits for its systemd job
//! (held to a handshake where `confirm` says so), rolls a failed job back, and audits how the
//! step ended. The only code that changes the interfaces.

use std::path::Path;

use serde::Serialize;

use super::observe::{HostStep, Step};
use super::pending::{self, Pending};
use super::systemd::Systemd;
use super::{audit, handshake_wait, host, live_set, now, sys};
use crate::diff::{self, Action};
use crate::error::{Error, Result};
use crate::fsutil::{ensure_secret_dir, write_atomic};
use crate::operations::{self, Op, Operations, Rollback, RolledBack};
use crate::paths::Paths;
use crate::unit::{Job, unit_name};

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

    /// The desired config as the diff parsed it.
    fn parsed_config(&self) -> Option<&crate::wgconf::WgConf> {
        match self {
            Subject::Interface(s) => s.diff.parsed.as_ref().map(|p| &p.new),
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
    /// The git commit the fleet came from (`--source`), named in the audit log.
    pub commit: Option<&'a str>,
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
            _ if Operations::changes_live(op) => {
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
            handshake_wait::before_job(network, held)?;
            run_op(op, subject, run)?;
            *verdict = Some(handshake_wait::wait(
                network,
                held,
                start,
                run.confirm_timeout,
            )?);
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
        Op::SetPeers { interface, delta } => {
            // A delta is only computed from the diff's parse of the file, which travels with it.
            let set = match subject.parsed_config() {
                Some(conf) => live_set::set_peers(interface, conf, delta),
                None => Err(Error::System {
                    what: "wg set".into(),
                    message: "the peers' delta came without its file".into(),
                }),
            };
            set.or_else(|e| {
                // The stock path: the unit's reload, `wg syncconf` of the file just written.
                eprintln!("wgfleet: {e}; reloading {} instead", unit_name(interface));
                run.systemd
                    .run(Job::Reload, &unit_name(interface))
                    .map_err(sys(network))
            })
        }
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
    let entry = audit::Entry {
        commit: run.commit,
        ..audit_entry(
            subject,
            network,
            result,
            confirmation,
            run.host,
            run.digest,
            run.audit_snapshot,
        )
    };
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
        commit: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Host-wide changes once went into the audit log as `reload`; they are `host-state`.
    #[test]
    fn the_host_wide_audit_entry_is_host_state() {
        let paths = crate::shell::paths::detect(Some(Path::new("/nonexistent-root")));
        let diff = crate::diff::HostDiff {
            sysctls: vec![("net.ipv4.ip_forward".into(), "0".into(), "1".into())],
            ..crate::diff::HostDiff::default()
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
