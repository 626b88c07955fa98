//! One run of `plan` or `apply`, as named stages, each a function of the last stage's value:
//!
//! ```text
//! fetch ─► Inputs ─► desired ─► begin ─► observe ─► act ─► Acted
//! │
//! └ (a git source only) the signed tip, or the last accepted one when the source refuses
//!           │          │        │          └ the steps' operations run, then the record of
//!           │          │        │            the desired state, the audit marker, endpoints
//!           │          │        └ files, units, live interfaces and the host-wide state,
//!           │          │          diffed by the pure core (`diff`, `operations`, `confirm`)
//!           │          └ the run lock, the unfinished steps of a killed run, the audit log
//!           └ from the last run's record (`cache`), or computed: load, validate, plan,
//!             decrypt, render
//! ```
//! `plan` runs `desired` and `observe` (no lock: it changes nothing); `apply` runs them all,
//! `begin` first: the live interfaces are read ahead under the lock while `desired` computes.
//! The command layer builds `Inputs` (from `fetch` for a source) and prints what the stages
//! return. Probes of the live data plane would follow `act`.

use std::path::PathBuf;
use std::time::Duration;

use super::act::{self, Outcome, Run};
use super::cache;
use super::desired::Desired;
use super::endpoint_follow::{self, Applied, Checked};
use super::lock::RunLock;
use super::observe::{self, HostStep, ReadAhead, Step};
use super::pending::Pending;
use super::systemd::Systemd;
use super::timings::Timings;
use super::{audit, host_or_hostname, now};
use crate::error::{Error, Result};
use crate::fleet::checked::{EXPIRY_WARNING_SECS, plans_for, valid_with_warnings};
use crate::paths::Paths;
use crate::plan::InterfacePlan;
use crate::secrets::{self, age};
use crate::source::{Accepted, Limits, Pulled, Refusal, Source, SourceError};

/// What a run starts from: the operator's flags as values.
pub struct Inputs {
    pub fleet: PathBuf,
    pub nix_allow: Vec<PathBuf>,
    /// `--host`; `None`: this machine's hostname.
    pub host: Option<String>,
    /// `--identity` as given (none: the SSH host key).
    pub identities: Vec<PathBuf>,
    /// The time the fleet is judged at (`--now`, or now).
    pub now: i64,
    /// Take the last full run's desired state while its inputs are unchanged (`--no-cache`
    /// turns it off).
    pub use_record: bool,
    /// `--root` (plan only): files are read under it.
    pub root: Option<PathBuf>,
    pub paths: Paths,
    /// The fleet came from this git commit (`fetch`): every key file must be in its tree.
    pub from_source: Option<Fetched>,
}

/// The desired state of the host: every interface's plan and config, secrets filled in.
pub struct Prepared {
    pub host: String,
    pub digest: String,
    pub desired: Vec<Desired>,
    /// The desired state was the last full run's (`cache`).
    pub from_cache: bool,
    /// A state computed from the fleet, to record once apply has found the host in sync.
    fresh: Option<cache::Fresh>,
    /// Validation's warnings, as the lines to print.
    pub warnings: Vec<String>,
    /// How long its stages took (`--timings`).
    pub timings: Timings,
}

impl Prepared {
    pub fn plans(&self) -> Vec<InterfacePlan> {
        self.desired.iter().map(|d| d.plan.clone()).collect()
    }
}

/// Stage 1: the desired state, from the record while it holds, else from the fleet.
pub fn desired(inputs: &Inputs) -> Result<Prepared> {
    let identities = age::identity_paths(&inputs.identities);
    match recorded(inputs, &identities) {
        Some(hit) => Ok(hit),
        None => compute(inputs, &identities),
    }
}

/// The last full run's desired state, when its record still holds (`cache`).
fn recorded(inputs: &Inputs, identities: &[PathBuf]) -> Option<Prepared> {
    if !inputs.use_record {
        return None;
    }
    let mut timings = Timings::default();
    let host = host_or_hostname(inputs.host.as_deref()).ok()?;
    let text = std::fs::read(&inputs.fleet).ok()?;
    let key = cache::Key::compute(&inputs.fleet, &text, &host, identities)?;
    let hit = cache::lookup(&inputs.paths, &key, inputs.now)?;
    timings.lap("record");
    Some(Prepared {
        host,
        digest: hit.digest,
        desired: hit.desired,
        from_cache: true,
        fresh: None,
        warnings: hit.warnings,
        timings,
    })
}

/// The desired state from the fleet: load, validate, plan, decrypt, render.
fn compute(inputs: &Inputs, identities: &[PathBuf]) -> Result<Prepared> {
    let mut timings = Timings::default();
    let (fleet, now) = (&inputs.fleet, inputs.now);
    let (loaded, valid, warnings) = valid_with_warnings(fleet, &inputs.nix_allow, now)?;
    timings.lap("load+validate");
    let host = host_or_hostname(inputs.host.as_deref())?;
    let mut plans = plans_for(&loaded.path, &valid, &host, None, now)?;
    let rotating = plans.iter().any(crate::rotation::touches);
    if rotating {
        let state = super::rotation::load(&inputs.paths.state);
        for plan in &mut plans {
            crate::rotation::switch_psks(plan, now, &state.psk);
            crate::rotation::stage(plan, &state.promoted);
        }
    }
    timings.lap("plan");
    // Of the fleet's text as loaded, and of the age files before they are decrypted: an input
    // that changes while this run reads it is then a miss at the next one.
    let key = match (&loaded.json_source, inputs.use_record) {
        (Some(text), true) => cache::Key::compute(fleet, text.as_bytes(), &host, identities),
        _ => None,
    };
    let local_keys = secrets::local::store(&inputs.paths.state);
    let secrets_digest = key
        .as_ref()
        .map(|_| cache::secrets_digest(fleet, &local_keys, plans.iter()));
    // A host that keeps its own key and shares no preshared key decrypts nothing.
    let ids = match plans.iter().any(decrypts) {
        true => age::load_identities(&inputs.identities).map_err(|source| Error::Secret {
            context: format!("host {host}"),
            source,
        })?,
        false => age::Identities::none(),
    };
    for plan in plans
        .iter_mut()
        .filter(|p| crate::rotation::own_due(p, now))
    {
        let usable =
            secrets::next_key_usable(&loaded, plan, &ids, &local_keys).map_err(|e| e.to_string());
        crate::rotation::switch(plan, usable);
    }
    let secrets = secrets::load_host_secrets(&loaded, &plans, &ids, &local_keys)?;
    timings.lap("decrypt");
    let desired = Desired::build(plans, &secrets, &valid)?;
    timings.lap("render");
    // A staged rotation is judged against the clock and this host's promotions: not recorded.
    let key = key.filter(|_| !rotating);
    let fresh = key.zip(secrets_digest).map(|(key, secrets)| cache::Fresh {
        key,
        secrets,
        computed_at: now,
        valid_until: cache::valid_until(&valid, now, EXPIRY_WARNING_SECS),
        warnings: warnings.clone(),
    });
    Ok(Prepared {
        host,
        digest: loaded.digest(),
        desired,
        from_cache: false,
        fresh,
        warnings,
        timings,
    })
}

/// The plan needs an age identity: it has an age file to decrypt.
pub fn decrypts(plan: &InterfacePlan) -> bool {
    plan.private_key_file.is_some() || plan.peers.iter().any(|p| p.preshared_key_file.is_some())
}

/// The fleet of a git source: the tip `source::pull` accepted, or, when the source refuses or
/// cannot be reached, the last accepted commit (drift is healed and expiry enforced against
/// it all the same). With none accepted yet, the source's error: nothing is touched.
pub struct Fetched {
    pub fleet: PathBuf,
    pub tree: PathBuf,
    pub commit: String,
    /// What `--json`, `status` and the audit say of the source.
    pub report: SourceReport,
    /// Why the source gave no new fleet (the run then ends with `SOURCE_REFUSED`).
    pub refused: Option<crate::source::SourceError>,
}

/// The source as a run saw it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceReport {
    pub url: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub path: String,
    /// `moved`, `unchanged`, `refused`, `unreachable`, or `failed` (a local error: disk, git).
    pub status: &'static str,
    pub commit: String,
    pub signer: String,
    pub previous: Option<String>,
    pub accepted_at: i64,
    pub fetched_at: i64,
    pub error: Option<String>,
}

/// Stage 0 (a git source): pull, and audit what changed: a commit accepted, or a new reason
/// for refusing (not the same one at every run of the timer). A tip is accepted only when
/// this host can apply its fleet (judged at `judged_at`): a signed but broken fleet leaves the
/// last one in force.
pub fn fetch(
    source: &Source,
    paths: &Paths,
    host: &str,
    nix_allow: &[PathBuf],
    now: i64,
    judged_at: i64,
) -> Result<Fetched> {
    let state = &paths.state;
    let before = crate::source::last_error(state);
    let vet = |a: &Accepted| usable(a, host, nix_allow, judged_at);
    let (accepted, status, previous, refused) =
        match crate::source::pull(state, source, &Limits::default(), now, &vet) {
            Ok(Pulled::Unchanged(a)) => (a, "unchanged", None, None),
            Ok(Pulled::Moved { accepted, previous }) => (accepted, "moved", previous, None),
            // Anything but the operator's own flags: the last accepted fleet goes on (a full
            // disk or a git failure no more stops drift healing than a refusal does).
            Err(e) if !matches!(e, SourceError::Invalid { .. }) => {
                match crate::source::accepted(state) {
                    Some(a) => {
                        let status = match e {
                            SourceError::Unreachable { .. } => "unreachable",
                            SourceError::Refused { .. } => "refused",
                            _ => "failed",
                        };
                        (a, status, None, Some(e))
                    }
                    None => {
                        audit_source(paths, host, source, None, &e.to_string(), before.as_ref());
                        return Err(e.into());
                    }
                }
            }
            Err(e) => return Err(e.into()),
        };
    let url = crate::source::redact(&source.url);
    let result = match &refused {
        Some(e) => e.to_string(),
        None => "ok".to_owned(),
    };
    if status == "moved" || refused.is_some() {
        audit_source(
            paths,
            host,
            source,
            Some(&accepted),
            &result,
            before.as_ref(),
        );
    }
    Ok(Fetched {
        report: SourceReport {
            url,
            git_ref: source.git_ref.clone(),
            path: source.path.clone(),
            status,
            commit: accepted.commit.clone(),
            signer: accepted.signer.clone(),
            previous,
            accepted_at: accepted.accepted_at,
            fetched_at: accepted.fetched_at,
            error: refused.as_ref().map(ToString::to_string),
        },
        fleet: accepted.fleet,
        tree: accepted.tree,
        commit: accepted.commit,
        refused,
    })
}

/// One audit line for the source; a refusal only when its reason is new. A line that cannot
/// be written costs the log a line, not the run.
fn audit_source(
    paths: &Paths,
    host: &str,
    source: &Source,
    accepted: Option<&crate::source::Accepted>,
    result: &str,
    before: Option<&crate::source::LastError>,
) {
    let refused = result != "ok";
    if refused && before.is_some_and(|b| b.message == result) {
        return;
    }
    let entry = audit::SourceEntry {
        time: crate::fleet::time::format_rfc3339(now()),
        host,
        network: "source",
        action: if refused {
            "source-refused"
        } else {
            "source-accepted"
        },
        url: &crate::source::redact(&source.url),
        commit: accepted.filter(|_| !refused).map(|a| a.commit.as_str()),
        signer: accepted.filter(|_| !refused).map(|a| a.signer.as_str()),
        result: result.to_owned(),
    };
    let _ = audit::append_line(&paths.state, &entry);
}

/// The accepted tip's fleet is valid, names `host`, and every key file its plans read lies
/// inside the tree: a fleet from git names no file of the host's (`../../etc/…`, an absolute
/// path). The tree holds no links (`source`).
fn usable(a: &Accepted, host: &str, nix_allow: &[PathBuf], now: i64) -> Result<(), Refusal> {
    // Paths as in the repository, not under this host's state directory.
    let inside = format!("{}/", a.tree.display());
    let unusable = |e: Error| Refusal::Unusable {
        commit: a.commit.clone(),
        detail: e.to_string().replace(&inside, ""),
    };
    let (loaded, valid, _) = valid_with_warnings(&a.fleet, nix_allow, now).map_err(unusable)?;
    let plans = plans_for(&loaded.path, &valid, host, None, now).map_err(unusable)?;
    let base = a.fleet.parent().unwrap_or(&a.tree);
    let files = plans.iter().flat_map(|p| {
        p.private_key_file.iter().chain(
            p.peers
                .iter()
                .filter_map(|peer| peer.preshared_key_file.as_ref()),
        )
    });
    for file in files {
        if !crate::fsutil::normalize(&base.join(file)).starts_with(&a.tree) {
            return Err(Refusal::KeyOutside {
                commit: a.commit.clone(),
                file: file.clone(),
            });
        }
    }
    Ok(())
}

/// What `apply` holds while it acts: the run lock, the record of unfinished steps, and what
/// the audit log needs of this run.
pub struct Session {
    _lock: RunLock,
    pub pending: Pending,
    /// Every interface gets an audit line with all its peers (a new log file, or asked).
    pub audit_all: bool,
    /// An `--endpoints-only` run rolled the log over and left the snapshots to this one.
    snapshot_due: bool,
}

/// Stage 2 (apply): takes the run lock, so that what is observed next is not changed under
/// it, and rolls the audit log over when it is full.
pub fn begin(paths: &Paths, audit_snapshot: bool) -> Result<Session> {
    let lock = RunLock::acquire(&paths.lock).map_err(|source| Error::Write {
        path: paths.lock.clone(),
        source,
    })?;
    // Under the lock, so a step a killed run left unfinished is finished, not raced.
    let pending = Pending::load(&paths.state)?;
    // A new audit file starts with every interface's peers, so that it reads on its own once
    // the older files are gone.
    let snapshot_due = audit::snapshot_due(&paths.state);
    let rolled = audit::roll_if_full(&paths.state).map_err(|source| Error::Write {
        path: paths.state.join(audit::LOG_NAME),
        source,
    })?;
    Ok(Session {
        _lock: lock,
        pending,
        audit_all: rolled || snapshot_due || audit_snapshot,
        snapshot_due,
    })
}

/// What is on the host against what should be: one step per interface, the host-wide step.
pub struct Observed<'d> {
    pub steps: Vec<Step<'d>>,
    pub host_step: HostStep,
    /// When the live state was read (handshake ages count from then).
    pub observed_at: i64,
    /// `observe-live` (files, units, `wg show dump`), `diff`, `observe-host` (`--timings`).
    pub timings: Timings,
}

impl Observed<'_> {
    /// Whether acting would change anything.
    pub fn changes(&self) -> bool {
        observe::has_changes(&self.steps) || self.host_step.ops.changes_something()
    }

    /// `--no-confirm`: no step is held to a handshake.
    pub fn hold_nothing(&mut self) {
        crate::confirm::disable(self.steps.iter_mut().map(|s| &mut s.confirmation));
    }

    /// The endpoints of the interfaces that stay as they are (`endpoint_follow`).
    pub fn endpoint_check(&self, paths: &Paths) -> Checked {
        endpoint_follow::check_steps(&self.steps, paths, self.observed_at)
    }
}

/// Stage 3: observe every interface and the host-wide state, diffed against the desired
/// state, each step with the operations that realise it.
pub fn observe<'d>(
    prepared: &'d Prepared,
    inputs: &Inputs,
    systemd: &Systemd,
    pending: &Pending,
    audit_all: bool,
    read_ahead: ReadAhead,
) -> Result<Observed<'d>> {
    let observed_at = now();
    let mut timings = Timings::default();
    let paths = &inputs.paths;
    let steps = observe::interfaces(
        &prepared.desired,
        paths,
        systemd,
        pending,
        audit_all,
        read_ahead,
        &mut timings,
    )?;
    let root = inputs.root.as_deref();
    let host_step = observe::host_wide(&prepared.plans(), paths, root, pending)?;
    timings.lap("observe-host");
    Ok(Observed {
        steps,
        host_step,
        observed_at,
        timings,
    })
}

/// How a run of `apply` ended: the steps' outcomes, then the endpoints that follow DNS.
pub struct Acted {
    pub outcomes: Result<Vec<Outcome>>,
    pub endpoints: Checked,
    pub endpoints_applied: Result<Vec<Applied>>,
}

/// Stage 4: run every step's operations, then record what a later run can reuse, then set
/// the endpoints of the peers that moved, once the interfaces are as the fleet says.
pub fn act(
    inputs: &Inputs,
    prepared: &Prepared,
    observed: &Observed<'_>,
    session: &mut Session,
    systemd: &Systemd,
    confirm_timeout: Duration,
) -> Acted {
    let paths = &inputs.paths;
    let run = Run {
        paths,
        systemd,
        host: &prepared.host,
        digest: &prepared.digest,
        audit_snapshot: session.audit_all,
        confirm_timeout,
        commit: inputs.from_source.as_ref().map(|f| f.commit.as_str()),
    };
    let outcomes = act::act(
        &observed.host_step,
        &observed.steps,
        &run,
        &mut session.pending,
    );
    match &outcomes {
        Ok(done) => {
            record(prepared, observed, session, paths);
            let switched = switched(observed);
            let confirmed = |network: &str, peer: &str| {
                done.iter().any(|o| {
                    o.network == network
                        && matches!(&o.confirmation,
                            Some(crate::confirm::Verdict::Confirmed { peer: p, .. }) if p == peer)
                })
            };
            super::rotation::after_run(
                paths,
                &prepared.host,
                inputs.now,
                &prepared.desired,
                &switched,
                &confirmed,
                systemd,
            );
        }
        Err(e) => super::rotation::after_unconfirmed(paths, inputs.now, &prepared.desired, e),
    }
    let endpoints = match &outcomes {
        Ok(_) => observed.endpoint_check(paths),
        Err(_) => Checked::default(),
    };
    let endpoints_applied =
        endpoint_follow::act_for(&endpoints, paths, &prepared.host, &prepared.digest);
    Acted {
        outcomes,
        endpoints,
        endpoints_applied,
    }
}

/// The interfaces this run moved to the host's next key.
fn switched<'o>(observed: &'o Observed<'_>) -> Vec<&'o str> {
    observed
        .steps
        .iter()
        .filter(|s| {
            s.desired.is_some_and(|d| {
                d.plan
                    .rotation
                    .as_ref()
                    .is_some_and(|r| r.stage == crate::plan::OwnStage::Switched)
            }) && s.diff.changes.iter().any(|c| {
                matches!(c, crate::diff::Change::InterfaceChanged { key, .. } if key == "PrivateKey")
            })
        })
        .map(|s| s.diff.network.as_str())
        .collect()
}

/// After a run that succeeded: the desired state is recorded by a run that found the host as
/// the fleet says (at 100,000 peers writing it costs 0.3 s, which a run that changes
/// something, and is waited for, does not pay: the timer's next run does), and the audit's
/// snapshot marker is cleared. Neither is an error when it fails: it only costs a later run's
/// speed, or another snapshot.
fn record(prepared: &Prepared, observed: &Observed<'_>, session: &Session, paths: &Paths) {
    if let (Some(fresh), false) = (&prepared.fresh, observed.changes()) {
        let _ = fresh.store(paths, &prepared.desired, &prepared.digest);
    }
    if session.snapshot_due {
        let _ = audit::snapshot_written(&paths.state);
    }
}
