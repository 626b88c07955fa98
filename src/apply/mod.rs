//! The imperative shell: observe the host, diff it against the plan (pure, in `diff`), and act.
//! The only code that touches the system. Nothing is touched before the fleet is valid and
//! every secret decrypted and checked; a failed start or reload restores the previous file and
//! brings the old tunnel back.

pub mod audit;
pub mod host;
pub mod lock;
pub mod systemd;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ipnet::IpNet;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::diff::{self, Action, Live, NetworkDiff};
use crate::error::{Error, Result};
use crate::fleet::ValidFleet;
use crate::fsutil::{ensure_private_dir, write_atomic};
use crate::plan::InterfacePlan;
use crate::render::{self, MANAGED_MARKER};
use crate::secrets::HostSecrets;
use systemd::{Job, Systemd, unit_name};

/// Where wgfleet reads and writes; `--root` moves them all under a directory.
#[derive(Debug, Clone)]
pub struct Paths {
    pub wireguard: PathBuf,
    pub state: PathBuf,
    pub lock: PathBuf,
    /// Where the `wg-quick@` drop-in goes: /etc/systemd/system, or /run/systemd/system where
    /// /etc is read-only (NixOS); units are then enabled for this boot only (`runtime`), which
    /// the timer renews at every boot.
    pub systemd: PathBuf,
    pub runtime_units: bool,
    pub sysctl: PathBuf,
}

impl Paths {
    pub fn new(root: Option<&Path>) -> Self {
        let under =
            |p: &str| root.map_or_else(|| PathBuf::from(p), |r| r.join(p.trim_start_matches('/')));
        let etc_systemd = under("/etc/systemd/system");
        let etc_writable = !etc_systemd.exists()
            || nix::unistd::access(&etc_systemd, nix::unistd::AccessFlags::W_OK).is_ok();
        Paths {
            wireguard: under("/etc/wireguard"),
            state: under("/var/lib/wgfleet"),
            lock: under("/run/wgfleet.lock"),
            systemd: if etc_writable {
                etc_systemd
            } else {
                under("/run/systemd/system")
            },
            runtime_units: !etc_writable,
            sysctl: under("/etc/sysctl.d"),
        }
    }

    /// The chains to restore at boot, as `iptables-restore` input.
    pub fn rules(&self, family: crate::firewall::Family) -> PathBuf {
        self.wireguard
            .join(format!("wgfleet.{}.rules", family.cmd()))
    }

    pub fn dropin(&self) -> PathBuf {
        self.systemd
            .join("wg-quick@.service.d/wgfleet-firewall.conf")
    }

    pub fn sysctl_conf(&self) -> PathBuf {
        self.sysctl.join("90-wgfleet.conf")
    }

    pub fn config(&self, iface: &str) -> PathBuf {
        self.wireguard.join(format!("{iface}.conf"))
    }

    /// The previous config, kept for rollback and for the operator.
    pub fn previous(&self, iface: &str) -> PathBuf {
        self.wireguard
            .join(format!("{iface}.conf.wgfleet-previous"))
    }
}

/// One interface as it should be, secrets filled in.
pub struct Desired {
    pub plan: InterfacePlan,
    pub config: Zeroizing<String>,
    /// Every key the network knows, expired clients included, so that a removal is named.
    names: BTreeMap<String, String>,
    /// Every peer's owner, expired clients included, for the audit log.
    owners: BTreeMap<String, Option<String>>,
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
                let peers = crate::plan::network_of(fleet, &plan).map(|net| &net.peers);
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
                })
            })
            .collect()
    }
}

/// The diff of one interface with what was on disk before, for acting and rolling back.
pub struct Step<'d> {
    pub diff: NetworkDiff,
    pub desired: Option<&'d Desired>,
    pub previous: Option<Zeroizing<String>>,
    pub was_running: bool,
}

/// Reads what is on disk and live, and diffs every interface of the host against it, plus the
/// interfaces wgfleet manages that the host no longer has.
pub fn observe<'d>(
    desired: &'d [Desired],
    paths: &Paths,
    systemd: &Systemd,
) -> Result<Vec<Step<'d>>> {
    let mut steps = Vec::new();
    for d in desired {
        let iface = &d.plan.network;
        let on_disk = read_private(&paths.config(iface))?;
        let unit = systemd
            .state(&unit_name(iface))
            .map_err(|e| sys_err(iface, e))?;
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
        steps.push(Step {
            diff,
            desired: Some(d),
            previous: on_disk,
            was_running: unit.is_running(),
        });
    }
    for iface in managed_interfaces(&paths.wireguard)? {
        if desired.iter().all(|d| d.plan.network != iface) {
            let unit = systemd
                .state(&unit_name(&iface))
                .map_err(|e| sys_err(&iface, e))?;
            steps.push(Step {
                diff: diff::diff_removed(&iface),
                desired: None,
                previous: read_private(&paths.config(&iface))?,
                was_running: unit.is_running(),
            });
        }
    }
    Ok(steps)
}

fn sys_err(iface: &str, e: systemd::SystemdError) -> Error {
    Error::System {
        what: format!("network {iface}"),
        message: e.to_string(),
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
        let head = std::fs::read(entry.path()).unwrap_or_default();
        if head.starts_with(MANAGED_MARKER.as_bytes()) {
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

/// `wg show IFACE dump`, parsed at once; the private key it prints is zeroized with the buffer.
pub fn live_state(iface: &str) -> Option<Live> {
    let out = Command::new("wg")
        .args(["show", iface, "dump"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let stdout = Zeroizing::new(out.stdout);
    out.status
        .success()
        .then(|| diff::parse_dump(&String::from_utf8_lossy(&stdout)))
}

/// How one step ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub network: String,
    pub action: Action,
    pub ok: bool,
    pub result: String,
}

/// Who runs, where, and how it is recorded.
pub struct Run<'a> {
    pub paths: &'a Paths,
    pub systemd: &'a Systemd,
    pub host: &'a str,
    pub digest: &'a str,
    /// Record every interface's peers in full in the audit log.
    pub audit_snapshot: bool,
}

/// Carries out the host-wide changes, then every interface step. Each change is audited; a step
/// with nothing to do is not (`last-run.json` says when the host was last seen in sync). Stops at
/// the first failure, after rolling it back.
pub fn act(host_diff: &host::HostDiff, steps: &[Step<'_>], run: &Run<'_>) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    let result = act_all(host_diff, steps, run, &mut outcomes);
    let last = audit::LastRun {
        time: crate::fleet::time::format_rfc3339(now()),
        host: run.host.to_owned(),
        fleet_digest: run.digest.to_owned(),
        in_sync: result.is_ok(),
        networks: outcomes
            .iter()
            .filter(|o| o.network != "host")
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
    host_diff: &host::HostDiff,
    steps: &[Step<'_>],
    run: &Run<'_>,
    outcomes: &mut Vec<Outcome>,
) -> Result<()> {
    let paths = run.paths;
    let log_err = |source| Error::Write {
        path: paths.state.join(audit::LOG_NAME),
        source,
    };
    // A new file starts with every interface's peers, so that it reads on its own once the
    // older files are gone.
    let snapshot_all = audit::roll_if_full(&paths.state).map_err(log_err)? || run.audit_snapshot;
    // Records a step's outcome, and audits it unless it is `PeerRecord::Unaudited`.
    let mut record = |network: &str,
                      action: Action,
                      changes: serde_json::Value,
                      result: &Result<()>,
                      peers: PeerRecord|
     -> Result<()> {
        let (ok, text) = match result {
            Ok(()) => (true, "ok".to_owned()),
            Err(e) => (false, e.to_string()),
        };
        if matches!(peers, PeerRecord::Unaudited) {
            outcomes.push(Outcome {
                network: network.to_owned(),
                action,
                ok,
                result: text,
            });
            return Ok(());
        }
        let (added, removed, snapshot) = if ok {
            peers.split()
        } else {
            Default::default()
        };
        let entry = audit::Entry {
            time: crate::fleet::time::format_rfc3339(now()),
            host: run.host,
            fleet_digest: run.digest,
            network,
            action,
            changes,
            result: text.clone(),
            added,
            removed,
            peers: snapshot,
        };
        audit::append(&paths.state, &entry).map_err(log_err)?;
        outcomes.push(Outcome {
            network: network.to_owned(),
            action,
            ok,
            result: text,
        });
        Ok(())
    };
    if !host_diff.is_empty() {
        let result = host::act(host_diff, paths).and_then(|dropin_changed| {
            if dropin_changed {
                run.systemd
                    .daemon_reload()
                    .map_err(|e| sys_err("(host)", e))?;
            }
            Ok(())
        });
        let changes = serde_json::to_value(host_diff).unwrap_or_default();
        record(
            "host",
            Action::HostState,
            changes,
            &result,
            PeerRecord::None,
        )?;
        result?;
    }
    for step in steps {
        let changed = step.diff.action != Action::Nothing || step.diff.enable;
        let result = act_one(step, paths, run.systemd);
        let changes = serde_json::to_value(&step.diff.changes).unwrap_or_default();
        let peers = if changed || snapshot_all {
            PeerRecord::of(step, snapshot_all)
        } else {
            PeerRecord::Unaudited
        };
        record(
            &step.diff.network,
            step.diff.action,
            changes,
            &result,
            peers,
        )?;
        result?;
    }
    Ok(())
}

/// What an interface's audit entry says of its peers.
enum PeerRecord {
    /// No entry at all: the step changed nothing.
    Unaudited,
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
            PeerRecord::Unaudited | PeerRecord::None => Default::default(),
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

fn act_one(step: &Step<'_>, paths: &Paths, systemd: &Systemd) -> Result<()> {
    let iface = &step.diff.network;
    let unit = unit_name(iface);
    let sys = |e| sys_err(iface, e);
    let Some(desired) = step.desired else {
        // Removed from the fleet for this host: stop, disable, then remove the file.
        if step.was_running {
            systemd.run(Job::Stop, &unit).map_err(sys)?;
        }
        systemd.disable(&unit).map_err(sys)?;
        for path in [paths.config(iface), paths.previous(iface)] {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::Write { path, source: e });
                }
                _ => {}
            }
        }
        return Ok(());
    };
    if step.diff.write_file {
        write_config(
            paths,
            iface,
            &desired.config,
            step.previous.as_deref().map(|s| s.as_str()),
        )?;
    }
    if step.diff.enable {
        systemd.enable(&unit, paths.runtime_units).map_err(sys)?;
    }
    let job = match step.diff.action {
        Action::Nothing | Action::HostState | Action::WriteFile | Action::Remove => return Ok(()),
        Action::Reload => Job::Reload,
        Action::Restart => Job::Restart,
        Action::Start => Job::Start,
    };
    // A reload runs `wgfleet reload-interface` (the drop-in's ExecReload), which adds the
    // routes for new AllowedIPs itself.
    match systemd.run(job, &unit) {
        Ok(()) => Ok(()),
        Err(e) => {
            let rolled = rollback(step, paths, systemd);
            Err(Error::System {
                what: format!("network {iface}"),
                message: format!(
                    "{e}; {}",
                    match rolled {
                        Ok(text) => text,
                        Err(r) => format!("rollback failed too: {r}"),
                    }
                ),
            })
        }
    }
}

/// Puts the previous file back and brings the old tunnel up again.
fn rollback(step: &Step<'_>, paths: &Paths, systemd: &Systemd) -> Result<String> {
    let iface = &step.diff.network;
    let unit = unit_name(iface);
    let sys = |e| sys_err(iface, e);
    match &step.previous {
        Some(old) => {
            write_atomic(&paths.config(iface), old.as_bytes(), 0o600).map_err(|source| {
                Error::Write {
                    path: paths.config(iface),
                    source,
                }
            })?;
            if step.was_running {
                systemd.run(Job::Restart, &unit).map_err(sys)?;
                Ok("the previous config was restored and the tunnel is back up".into())
            } else {
                Ok("the previous config was restored".into())
            }
        }
        None => {
            let _ = std::fs::remove_file(paths.config(iface));
            let _ = systemd.run(Job::Stop, &unit);
            Ok("the new config was removed".into())
        }
    }
}

fn write_config(paths: &Paths, iface: &str, config: &str, previous: Option<&str>) -> Result<()> {
    let werr = |path: PathBuf| move |source| Error::Write { path, source };
    ensure_private_dir(&paths.wireguard).map_err(werr(paths.wireguard.clone()))?;
    if let Some(old) = previous {
        write_atomic(&paths.previous(iface), old.as_bytes(), 0o600)
            .map_err(werr(paths.previous(iface)))?;
    }
    write_atomic(&paths.config(iface), config.as_bytes(), 0o600).map_err(werr(paths.config(iface)))
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
    if config.starts_with(MANAGED_MARKER) {
        add_missing_routes(iface, &config)?;
    }
    Ok(())
}

/// `wg syncconf` does not add routes for new AllowedIPs; wg-quick only does on `up`. Add the
/// routes wg-quick would have (default routes excepted: those need a restart's policy routing).
fn add_missing_routes(iface: &str, config: &str) -> Result<()> {
    let conf = crate::wgconf::parse(config);
    let wanted: Vec<IpNet> = conf
        .peers
        .values()
        .flat_map(|p| p.allowed_ips.iter().filter_map(|a| a.parse::<IpNet>().ok()))
        .filter(|n| n.prefix_len() > 0)
        .collect();
    let mut routes: Vec<IpNet> = Vec::new();
    for family in ["-4", "-6"] {
        let out = Command::new("ip")
            .args([family, "-o", "route", "show", "dev", iface])
            .stdin(Stdio::null())
            .output();
        let text = out
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        routes.extend(
            text.lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter_map(|d| {
                    d.parse::<IpNet>()
                        .ok()
                        .or_else(|| d.parse::<std::net::IpAddr>().ok().map(IpNet::from))
                }),
        );
    }
    for prefix in wanted
        .iter()
        .filter(|p| !routes.iter().any(|r| r.contains(*p)))
    {
        let family = if matches!(prefix, IpNet::V4(_)) {
            "-4"
        } else {
            "-6"
        };
        let status = Command::new("ip")
            .args([family, "route", "add", &prefix.to_string(), "dev", iface])
            .stdin(Stdio::null())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            return Err(Error::System {
                what: format!("network {iface}"),
                message: format!("could not add the route to {prefix}"),
            });
        }
    }
    Ok(())
}

/// What `plan` and `apply` print before acting.
pub fn describe(steps: &[Step<'_>]) -> String {
    let mut out = String::new();
    for step in steps {
        let d = &step.diff;
        out.push_str(&format!("{}: {}\n", d.network, d.action.describe()));
        for c in &d.changes {
            out.push_str(&format!("  {}\n", describe_change(c)));
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
    }
}

/// Whether the steps change anything.
pub fn has_changes(steps: &[Step<'_>]) -> bool {
    steps
        .iter()
        .any(|s| s.diff.action != Action::Nothing || s.diff.enable)
}
