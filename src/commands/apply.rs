//! `plan` and `apply`: the same observation and diff; apply then acts.

use std::io::Write;

use serde_json::json;

use super::{check_valid, host_or_hostname, plans_for, write_out};
use crate::apply::host::{self, HostDiff};
use crate::apply::{self, Desired, Paths, Step, lock::RunLock, systemd::Systemd};
use crate::cli::{ApplyArgs, HostArgs, PlanArgs};
use crate::error::{Error, Result};
use crate::secrets::{self, age};

/// Everything up to the diff; nothing on the system is changed here.
fn prepare(args: &HostArgs, err: &mut dyn Write) -> Result<(String, String, Vec<Desired>)> {
    let (loaded, valid, now) = check_valid(&args.fleet, err)?;
    let host = host_or_hostname(args.host.as_deref())?;
    let plans = plans_for(&loaded.path, &valid, &host, None, now)?;
    let ids = age::load_identities(&args.identity.identities).map_err(|source| Error::Secret {
        context: format!("host {host}"),
        source,
    })?;
    let secrets = secrets::load_host_secrets(&loaded, &plans, &ids)?;
    let desired = Desired::build(plans, &secrets, &valid)?;
    Ok((host, loaded.digest(), desired))
}

fn connect() -> Result<Systemd> {
    Systemd::connect().map_err(|e| Error::System {
        what: "systemd".into(),
        message: e.to_string(),
    })
}

fn report(steps: &[Step<'_>], host_diff: &HostDiff, host: &str) -> serde_json::Value {
    let networks: Vec<_> = steps
        .iter()
        .map(|s| json!({"network": s.diff.network, "action": s.diff.action, "writeFile": s.diff.write_file, "enable": s.diff.enable, "changes": s.diff.changes}))
        .collect();
    let changes = apply::has_changes(steps) || !host_diff.is_empty();
    json!({"host": host, "changes": changes, "networks": networks, "hostWide": host_diff})
}

pub fn cmd_plan(args: &PlanArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    let (host, _, desired) = prepare(&args.host, err)?;
    let paths = Paths::new(args.host.root.as_deref());
    let steps = apply::observe(&desired, &paths, &connect()?)?;
    let host_diff = host::observe(&plans_of(&desired), &paths, args.host.root.as_deref())?;
    if args.host.json {
        write_out(out, &format!("{:#}\n", report(&steps, &host_diff, &host)))?;
    } else {
        write_out(out, &describe(&steps, &host_diff, &host))?;
    }
    let changes = apply::has_changes(&steps) || !host_diff.is_empty();
    Ok(if args.detailed_exitcode && changes {
        2
    } else {
        0
    })
}

pub fn cmd_apply(apply_args: &ApplyArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    let args = &apply_args.host;
    let (host, digest, desired) = prepare(args, err)?;
    let paths = Paths::new(args.root.as_deref());
    let systemd = connect()?;
    let _lock = RunLock::acquire(&paths.lock).map_err(|source| Error::Write {
        path: paths.lock.clone(),
        source,
    })?;
    // Observed under the lock, so a concurrent run's changes are seen, not overwritten.
    let steps = apply::observe(&desired, &paths, &systemd)?;
    let host_diff = host::observe(&plans_of(&desired), &paths, args.root.as_deref())?;
    if !args.json {
        write_out(out, &describe(&steps, &host_diff, &host))?;
    }
    let run = apply::Run {
        paths: &paths,
        systemd: &systemd,
        host: &host,
        digest: &digest,
        audit_snapshot: apply_args.audit_snapshot,
    };
    let outcomes = apply::act(&host_diff, &steps, &run);
    if args.json {
        let mut doc = report(&steps, &host_diff, &host);
        doc["outcomes"] = json!(outcomes.as_ref().ok());
        doc["error"] = json!(outcomes.as_ref().err().map(ToString::to_string));
        write_out(out, &format!("{doc:#}\n"))?;
    }
    let outcomes = outcomes?;
    if !args.json {
        for o in &outcomes {
            write_out(out, &format!("{}: done\n", o.network))?;
        }
    }
    Ok(0)
}

fn plans_of(desired: &[Desired]) -> Vec<crate::plan::InterfacePlan> {
    desired.iter().map(|d| d.plan.clone()).collect()
}

fn describe(steps: &[Step<'_>], host_diff: &HostDiff, host: &str) -> String {
    let mut text = if steps.is_empty() {
        format!("host {host} is in no network\n")
    } else {
        apply::describe(steps)
    };
    text.push_str(&host::describe(host_diff));
    text
}

/// `wgfleet firewall-restore`: run by the `wg-quick@` drop-in before an interface starts.
pub fn cmd_firewall_restore(root: Option<&std::path::Path>) -> Result<u8> {
    host::restore_saved(&Paths::new(root))?;
    Ok(0)
}

/// `wgfleet reload-interface IFACE`: the drop-in's ExecReload (`systemctl reload wg-quick@IFACE`).
pub fn cmd_reload_interface(iface: &str, root: Option<&std::path::Path>) -> Result<u8> {
    apply::reload_interface(&Paths::new(root), iface)?;
    Ok(0)
}
