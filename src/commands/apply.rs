//! `plan` and `apply`: the same observation and diff; apply then acts.

use std::io::Write;

use serde_json::json;

use super::{check_valid, host_or_hostname, plans_for, write_out};
use crate::apply::{self, Desired, Paths, Step, lock::RunLock, systemd::Systemd};
use crate::cli::{HostArgs, PlanArgs};
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
    let desired = Desired::build(plans, &secrets)?;
    Ok((host, loaded.digest(), desired))
}

fn connect() -> Result<Systemd> {
    Systemd::connect().map_err(|e| Error::System {
        what: "systemd".into(),
        message: e.to_string(),
    })
}

fn report(steps: &[Step<'_>], host: &str) -> serde_json::Value {
    let networks: Vec<_> = steps
        .iter()
        .map(|s| json!({"network": s.diff.network, "action": s.diff.action, "writeFile": s.diff.write_file, "enable": s.diff.enable, "changes": s.diff.changes}))
        .collect();
    json!({"host": host, "changes": apply::has_changes(steps), "networks": networks})
}

pub fn cmd_plan(args: &PlanArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    let (host, _, desired) = prepare(&args.host, err)?;
    let paths = Paths::new(args.host.root.as_deref());
    let steps = apply::observe(&desired, &paths, &connect()?)?;
    if args.host.json {
        write_out(out, &format!("{:#}\n", report(&steps, &host)))?;
    } else if steps.is_empty() {
        write_out(
            out,
            &format!("host {host} is in no network; nothing to do\n"),
        )?;
    } else {
        write_out(out, &apply::describe(&steps))?;
    }
    Ok(if args.detailed_exitcode && apply::has_changes(&steps) {
        2
    } else {
        0
    })
}

pub fn cmd_apply(args: &HostArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    let (host, digest, desired) = prepare(args, err)?;
    let paths = Paths::new(args.root.as_deref());
    let systemd = connect()?;
    let _lock = RunLock::acquire(&paths.lock).map_err(|source| Error::Write {
        path: paths.lock.clone(),
        source,
    })?;
    // Observed under the lock, so a concurrent run's changes are seen, not overwritten.
    let steps = apply::observe(&desired, &paths, &systemd)?;
    if !args.json {
        write_out(out, &apply::describe(&steps))?;
    }
    let outcomes = apply::act(&steps, &paths, &systemd, &host, &digest);
    if args.json {
        let mut doc = report(&steps, &host);
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
