//! The operations of one step as a value: what `apply` does to the system for one interface (or
//! for the host-wide state), in order, and how a failed job is rolled back. Pure: computed from
//! the diff and a few observed facts; `plan --json` prints it, `apply` runs it op by op.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::diff::{Action, HostDiff, NetworkDiff, PeerDelta};
use crate::paths::Paths;
use crate::unit::{Job, unit_name};

/// The network name of the host-wide step (as in the audit log).
pub const HOST: &str = "host";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// Writes the config atomically (0600), first keeping the file it replaces beside it.
    #[serde(rename_all = "camelCase")]
    WriteConfig {
        path: PathBuf,
        keep_previous: Option<PathBuf>,
    },
    /// Enables the unit at boot (`runtime`: for this boot only, where /etc is read-only).
    Enable {
        unit: String,
        runtime: bool,
    },
    /// One systemd job through D-Bus, waited for. A reload runs wgfleet's drop-in's
    /// `reload-interface` (`wg syncconf`, then the routes for new AllowedIPs).
    Job {
        job: Job,
        unit: String,
    },
    /// A change of peers alone, set live in one `wg set` (the peers that changed, as the
    /// written file has them), then the routes their AllowedIPs need: no systemd job. Should
    /// `wg set` fail, the unit's reload (`wg syncconf` of the file) does it instead.
    SetPeers {
        interface: String,
        #[serde(flatten)]
        delta: PeerDelta,
    },
    Disable {
        unit: String,
    },
    RemoveFile {
        path: PathBuf,
    },
    /// wgfleet's firewall chains, the sysctls and their boot files (the host-wide diff).
    HostState {
        firewall: Vec<String>,
        sysctls: Vec<String>,
        files: Vec<String>,
    },
    /// systemd rereads unit files: the `wg-quick@` drop-in changed.
    DaemonReload,
    /// One line in the audit log saying how the step ended; written even after a failure. Only
    /// steps that change something have one, unless the log starts anew or a snapshot is asked.
    Audit {
        network: String,
    },
}

/// What a failed job leaves behind is undone this way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rollback", rename_all = "kebab-case")]
pub enum Rollback {
    /// No job that could fail.
    Nothing,
    /// Puts the previous file back, and restarts the unit when it was running (`unit`).
    RestorePrevious {
        path: PathBuf,
        restart: Option<String>,
    },
    /// There was no previous file: removes the new one and stops the unit.
    RemoveNew { path: PathBuf, unit: String },
}

/// The operations of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operations {
    pub network: String,
    pub action: Action,
    pub ops: Vec<Op>,
    /// Applied when a `Job` op fails.
    pub on_failure: Rollback,
}

impl Operations {
    /// Whether an op changes the running interface (a job or a live `wg set`): it can fail and
    /// is rolled back as `on_failure` says.
    pub fn changes_live(op: &Op) -> bool {
        matches!(op, Op::Job { .. } | Op::SetPeers { .. })
    }

    /// The job among the ops, if any.
    pub fn job(&self) -> Option<Job> {
        self.ops.iter().find_map(|op| match op {
            Op::Job { job, .. } => Some(*job),
            _ => None,
        })
    }

    /// Whether anything but the audit line is to be done.
    pub fn changes_something(&self) -> bool {
        self.ops.iter().any(|op| !matches!(op, Op::Audit { .. }))
    }

    pub fn writes_config(&self) -> bool {
        self.ops
            .iter()
            .any(|op| matches!(op, Op::WriteConfig { .. }))
    }

    pub fn reloads_daemon(&self) -> bool {
        self.ops.contains(&Op::DaemonReload)
    }
}

/// What was observed besides the diff, for one interface.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    /// A config was on disk before this step (to restore if the job fails).
    pub has_previous: bool,
    pub was_running: bool,
    pub runtime_units: bool,
    /// Audit the step even when it changes nothing (a snapshot of every interface's peers).
    pub audit_all: bool,
}

/// The operations that realise one interface's diff.
pub fn for_network(diff: &NetworkDiff, facts: Facts, paths: &Paths) -> Operations {
    let network = diff.network.clone();
    let unit = unit_name(&network);
    let config = paths.config(&network);
    let mut ops = Vec::new();
    let audit = Op::Audit {
        network: network.clone(),
    };
    if diff.action == Action::Remove {
        // Stop, disable, then remove the file (and its kept previous version).
        if facts.was_running {
            ops.push(Op::Job {
                job: Job::Stop,
                unit: unit.clone(),
            });
        }
        ops.push(Op::Disable { unit });
        ops.push(Op::RemoveFile { path: config });
        ops.push(Op::RemoveFile {
            path: paths.previous(&network),
        });
        ops.push(audit);
        return Operations {
            network,
            action: diff.action,
            ops,
            on_failure: Rollback::Nothing,
        };
    }
    if diff.write_file {
        ops.push(Op::WriteConfig {
            path: config.clone(),
            keep_previous: facts.has_previous.then(|| paths.previous(&network)),
        });
    }
    if diff.enable {
        ops.push(Op::Enable {
            unit: unit.clone(),
            runtime: facts.runtime_units,
        });
    }
    let job = match diff.action {
        Action::Nothing | Action::HostState | Action::WriteFile | Action::Remove => None,
        Action::Reload => Some(Job::Reload),
        Action::Restart => Some(Job::Restart),
        Action::Start => Some(Job::Start),
    };
    match (job, &diff.delta) {
        (Some(Job::Reload), Some(delta)) => ops.push(Op::SetPeers {
            interface: network.clone(),
            delta: delta.clone(),
        }),
        (Some(job), _) => ops.push(Op::Job {
            job,
            unit: unit.clone(),
        }),
        (None, _) => {}
    }
    if !ops.is_empty() || facts.audit_all {
        ops.push(audit);
    }
    let on_failure = match (job, facts.has_previous) {
        (None, _) => Rollback::Nothing,
        (Some(_), true) => Rollback::RestorePrevious {
            path: config,
            restart: facts.was_running.then_some(unit),
        },
        (Some(_), false) => Rollback::RemoveNew { path: config, unit },
    };
    Operations {
        network,
        action: diff.action,
        ops,
        on_failure,
    }
}

/// The operations of the host-wide step; empty when there is nothing to do. `interrupted`: an
/// earlier run changed the drop-in and was killed before systemd reread it.
pub fn for_host(diff: &HostDiff, interrupted: bool, paths: &Paths) -> Operations {
    let mut ops = Vec::new();
    if !diff.is_empty() {
        ops.push(Op::HostState {
            firewall: diff
                .firewall
                .iter()
                .filter(|(_, d)| !d.is_empty())
                .map(|(family, _)| family.cmd().to_owned())
                .collect(),
            sysctls: diff
                .sysctls
                .iter()
                .map(|(key, _, value)| format!("{key}={value}"))
                .collect(),
            files: diff.files_changed.clone(),
        });
    }
    if interrupted || diff.files.iter().any(|(p, _)| *p == paths.dropin()) {
        ops.push(Op::DaemonReload);
    }
    if !ops.is_empty() {
        ops.push(Op::Audit {
            network: HOST.into(),
        });
    }
    Operations {
        network: HOST.into(),
        action: Action::HostState,
        ops,
        on_failure: Rollback::Nothing,
    }
}

/// What a rollback achieved (the error it followed is beside it in `Error::RolledBack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolledBack {
    Restored,
    RestoredAndRestarted,
    RemovedNew,
}

impl std::fmt::Display for RolledBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RolledBack::Restored => "the previous config was restored",
            RolledBack::RestoredAndRestarted => {
                "the previous config was restored and the tunnel is back up"
            }
            RolledBack::RemovedNew => "the new config was removed",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::Change;

    fn paths() -> Paths {
        Paths::under(Some(std::path::Path::new("/nonexistent-root")), true)
    }

    fn diff(action: Action, write_file: bool, enable: bool) -> NetworkDiff {
        NetworkDiff {
            network: "wg0".into(),
            action,
            write_file,
            enable,
            changes: vec![],
            delta: None,
            parsed: None,
        }
    }

    fn facts(has_previous: bool, was_running: bool) -> Facts {
        Facts {
            has_previous,
            was_running,
            runtime_units: false,
            audit_all: false,
        }
    }

    fn unit() -> String {
        "wg-quick@wg0.service".into()
    }

    fn job(job: Job) -> Op {
        Op::Job { job, unit: unit() }
    }

    fn write_config(p: &Paths, keep_previous: Option<std::path::PathBuf>) -> Op {
        Op::WriteConfig {
            path: p.config("wg0"),
            keep_previous,
        }
    }

    fn audit() -> Op {
        Op::Audit {
            network: "wg0".into(),
        }
    }

    #[test]
    fn nothing_to_do_is_nothing_unless_every_interface_is_audited() {
        let nothing = diff(Action::Nothing, false, false);
        let ops = for_network(&nothing, facts(true, true), &paths());
        assert_eq!(ops.ops, vec![]);
        assert_eq!(ops.on_failure, Rollback::Nothing);
        assert_eq!(ops.job(), None);
        let all = Facts {
            audit_all: true,
            ..facts(true, true)
        };
        let ops = for_network(&nothing, all, &paths());
        assert_eq!(ops.ops, vec![audit()]);
        assert!(!ops.changes_something());
    }

    #[test]
    fn a_peer_change_writes_keeps_the_old_file_and_reloads() {
        let p = paths();
        let ops = for_network(&diff(Action::Reload, true, false), facts(true, true), &p);
        assert_eq!(
            ops.ops,
            vec![
                write_config(&p, Some(p.previous("wg0"))),
                job(Job::Reload),
                audit(),
            ]
        );
        assert_eq!(
            ops.on_failure,
            Rollback::RestorePrevious {
                path: p.config("wg0"),
                restart: Some(unit())
            }
        );
    }

    #[test]
    fn an_mtu_change_restarts() {
        let ops = for_network(
            &diff(Action::Restart, true, false),
            facts(true, true),
            &paths(),
        );
        assert_eq!(ops.job(), Some(Job::Restart));
        assert_eq!(ops.ops.len(), 3);
    }

    #[test]
    fn a_first_start_enables_and_a_failure_removes_the_new_file() {
        let p = paths();
        let ops = for_network(&diff(Action::Start, true, true), facts(false, false), &p);
        assert_eq!(
            ops.ops,
            vec![
                write_config(&p, None),
                Op::Enable {
                    unit: unit(),
                    runtime: false
                },
                job(Job::Start),
                audit(),
            ]
        );
        assert_eq!(
            ops.on_failure,
            Rollback::RemoveNew {
                path: p.config("wg0"),
                unit: unit()
            }
        );
        // A stopped unit with its file: restored, but not restarted, on failure.
        let ops = for_network(&diff(Action::Start, false, false), facts(true, false), &p);
        assert_eq!(
            ops.on_failure,
            Rollback::RestorePrevious {
                path: p.config("wg0"),
                restart: None
            }
        );
    }

    #[test]
    fn formatting_only_writes_without_a_job() {
        let ops = for_network(
            &diff(Action::WriteFile, true, false),
            facts(true, true),
            &paths(),
        );
        assert_eq!(ops.ops.len(), 2);
        assert!(matches!(ops.ops[0], Op::WriteConfig { .. }));
        assert_eq!(ops.on_failure, Rollback::Nothing);
    }

    #[test]
    fn a_removal_stops_a_running_unit_disables_and_removes_both_files() {
        let p = paths();
        let mut d = diff(Action::Remove, false, false);
        d.changes.push(Change::NetworkRemoved);
        let ops = for_network(&d, facts(true, true), &p);
        assert_eq!(
            ops.ops,
            vec![
                job(Job::Stop),
                Op::Disable { unit: unit() },
                Op::RemoveFile {
                    path: p.config("wg0")
                },
                Op::RemoveFile {
                    path: p.previous("wg0")
                },
                audit(),
            ]
        );
        let stopped = for_network(&d, facts(true, false), &p);
        assert_eq!(stopped.ops[0], Op::Disable { unit: unit() });
    }

    #[test]
    fn host_wide_ops_reload_systemd_only_for_the_drop_in() {
        let p = paths();
        let empty = HostDiff::default();
        assert!(for_host(&empty, false, &p).ops.is_empty());
        let interrupted = for_host(&empty, true, &p);
        assert_eq!(
            interrupted.ops,
            vec![
                Op::DaemonReload,
                Op::Audit {
                    network: HOST.into()
                }
            ]
        );
        let sysctl = HostDiff {
            sysctls: vec![("net.ipv4.ip_forward".into(), "0".into(), "1".into())],
            ..HostDiff::default()
        };
        let ops = for_host(&sysctl, false, &p);
        assert!(!ops.reloads_daemon());
        assert!(
            matches!(&ops.ops[0], Op::HostState { sysctls, .. } if sysctls == &["net.ipv4.ip_forward=1"])
        );
        let dropin = HostDiff {
            files: vec![(p.dropin(), Some("[Service]\n".into()))],
            files_changed: vec![p.dropin().display().to_string()],
            ..HostDiff::default()
        };
        assert!(for_host(&dropin, false, &p).reloads_daemon());
    }

    #[test]
    fn operations_round_trip_through_json_for_the_pending_record() {
        let ops = for_network(
            &diff(Action::Start, true, true),
            facts(false, false),
            &paths(),
        );
        let json = serde_json::to_value(&ops).unwrap();
        assert_eq!(json["ops"][0]["op"], "write-config");
        assert_eq!(json["ops"][2]["job"], "start");
        assert_eq!(json["onFailure"]["rollback"], "remove-new");
        assert_eq!(serde_json::from_value::<Operations>(json).unwrap(), ops);
    }
}
