//! `plan` and `apply`: the same observation and diff; apply then acts.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

use super::{EXPIRY_WARNING_SECS, host_or_hostname, plans_for, valid_with_warnings, write_out};
use crate::apply::host;
use crate::apply::pending::Pending;
use crate::apply::{
    self, Desired, HostStep, Paths, Run, Step, audit, cache, endpoints, lock::RunLock,
    systemd::Systemd,
};
use crate::cli::{ApplyArgs, HostArgs, PlanArgs};
use crate::error::{Error, Result};
use crate::secrets::{self, age};

/// Everything up to the diff; nothing on the system is changed here.
struct Prepared {
    host: String,
    digest: String,
    desired: Vec<Desired>,
    /// The desired state was the last full run's (`apply::cache`).
    from_cache: bool,
    /// A state computed from the fleet, to record once apply has acted.
    fresh: Option<cache::Fresh>,
    /// Validation's warnings, printed on stderr.
    warnings: Vec<String>,
}

/// The last full run's desired state, when its record still holds (`apply::cache`).
fn recorded(args: &HostArgs, paths: &Paths, identities: &[PathBuf]) -> Result<Option<Prepared>> {
    let (false, Ok(host)) = (args.no_cache, host_or_hostname(args.host.as_deref())) else {
        return Ok(None);
    };
    let fleet = &args.fleet.fleet;
    let now = super::now(&args.fleet)?;
    let hit = std::fs::read(fleet)
        .ok()
        .and_then(|text| cache::Key::compute(fleet, &text, &host, identities))
        .and_then(|key| cache::lookup(paths, &key, now));
    Ok(hit.map(|hit| Prepared {
        host,
        digest: hit.digest,
        desired: hit.desired,
        from_cache: true,
        fresh: None,
        warnings: hit.warnings,
    }))
}

fn prepare(args: &HostArgs, paths: &Paths, err: &mut dyn Write) -> Result<Prepared> {
    let identities = age::identity_paths(&args.identity.identities);
    let prepared = match recorded(args, paths, &identities)? {
        Some(hit) => hit,
        None => compute(args, &identities)?,
    };
    for w in &prepared.warnings {
        let _ = writeln!(err, "{w}");
    }
    Ok(prepared)
}

/// The desired state from the fleet: load, validate, plan, decrypt, render.
fn compute(args: &HostArgs, identities: &[PathBuf]) -> Result<Prepared> {
    let fleet = &args.fleet.fleet;
    let (loaded, valid, now, warnings) = valid_with_warnings(&args.fleet)?;
    let host = host_or_hostname(args.host.as_deref())?;
    let plans = plans_for(&loaded.path, &valid, &host, None, now)?;
    // Of the fleet's text as loaded, and of the age files before they are decrypted: an input
    // that changes while this run reads it is then a miss at the next one.
    let key = match (&loaded.json_source, args.no_cache) {
        (Some(text), false) => cache::Key::compute(fleet, text.as_bytes(), &host, identities),
        _ => None,
    };
    let secrets_digest = key
        .as_ref()
        .map(|_| cache::secrets_digest(fleet, plans.iter()));
    let ids = age::load_identities(&args.identity.identities).map_err(|source| Error::Secret {
        context: format!("host {host}"),
        source,
    })?;
    let secrets = secrets::load_host_secrets(&loaded, &plans, &ids)?;
    let desired = Desired::build(plans, &secrets, &valid)?;
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
    })
}

fn connect() -> Result<Systemd> {
    Systemd::connect().map_err(|source| Error::Systemd {
        what: "systemd".into(),
        source,
    })
}

/// What `plan --json` prints (and `apply --json` before its outcomes): per network the diff
/// and the exact operations apply runs.
fn report(steps: &[Step<'_>], host_step: &HostStep, host: &str) -> serde_json::Value {
    let networks: Vec<_> = steps
        .iter()
        .map(|s| json!({"network": s.diff.network, "action": s.ops.action, "writeFile": s.diff.write_file, "enable": s.diff.enable, "changes": s.diff.changes, "operations": s.ops, "confirmation": s.confirmation}))
        .collect();
    json!({"host": host, "changes": has_changes(steps, host_step), "networks": networks, "hostWide": host_step.diff, "hostOperations": host_step.ops})
}

fn has_changes(steps: &[Step<'_>], host_step: &HostStep) -> bool {
    apply::has_changes(steps) || host_step.ops.changes_something()
}

pub fn cmd_plan(args: &PlanArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    let paths = Paths::new(args.host.root.as_deref());
    let Prepared {
        host,
        desired,
        from_cache,
        ..
    } = prepare(&args.host, &paths, err)?;
    let pending = Pending::load(&paths.state)?;
    let observed_at = super::endpoints::now();
    let steps = apply::observe(&desired, &paths, &connect()?, &pending, false)?;
    let root = args.host.root.as_deref();
    let host_step = apply::observe_host(&plans_of(&desired), &paths, root, &pending)?;
    let endpoint_check = super::endpoints::check_steps(&steps, &paths, observed_at);
    let changes = has_changes(&steps, &host_step) || endpoint_check.changes_something();
    if args.host.json {
        let mut doc = report(&steps, &host_step, &host);
        doc["changes"] = json!(changes);
        doc["endpoints"] = endpoints::report(&endpoint_check, None);
        doc["desiredStateCached"] = json!(from_cache);
        write_out(out, &format!("{doc:#}\n"))?;
    } else {
        let mut text = describe(&steps, &host_step, &host);
        text.push_str(&endpoints::describe(&endpoint_check));
        write_out(out, &text)?;
    }
    Ok(if args.detailed_exitcode && changes {
        2
    } else {
        0
    })
}

pub fn cmd_apply(apply_args: &ApplyArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    let args = &apply_args.host;
    if let Some(root) = &args.root {
        // --root moves files, but the firewall, the sysctls and the wg-quick@ units (which read
        // the real /etc/wireguard) are this machine's: no directory confines them.
        return Err(Error::Usage(format!(
            "--root {}: apply changes this machine's firewall, sysctls and wg-quick@ units, which \
             --root does not move; apply refuses --root (use `plan --root` to compare files)",
            root.display()
        )));
    }
    if apply_args.endpoints_only {
        return super::endpoints::cmd_endpoints_only(apply_args, out, err);
    }
    let paths = Paths::new(args.root.as_deref());
    let Prepared {
        host,
        digest,
        desired,
        from_cache,
        fresh,
        ..
    } = prepare(args, &paths, err)?;
    let systemd = connect()?;
    let _lock = RunLock::acquire(&paths.lock).map_err(|source| Error::Write {
        path: paths.lock.clone(),
        source,
    })?;
    // Observed under the lock, so a concurrent run's changes are seen, not overwritten, and a
    // step a killed run left unfinished is finished.
    let mut pending = Pending::load(&paths.state)?;
    // A new audit file starts with every interface's peers, so that it reads on its own once
    // the older files are gone.
    // (Or an `--endpoints-only` run rolled it over and left the snapshots to this one.)
    let snapshot_due = audit::snapshot_due(&paths.state);
    let audit_all = audit::roll_if_full(&paths.state).map_err(|source| Error::Write {
        path: paths.state.join(audit::LOG_NAME),
        source,
    })? || snapshot_due
        || apply_args.audit_snapshot;
    let observed_at = super::endpoints::now();
    let mut steps = apply::observe(&desired, &paths, &systemd, &pending, audit_all)?;
    if apply_args.no_confirm {
        crate::confirm::disable(steps.iter_mut().map(|s| &mut s.confirmation));
    }
    let host_step =
        apply::observe_host(&plans_of(&desired), &paths, args.root.as_deref(), &pending)?;
    // Output never stops the run: a reader that went away (`apply | head`) or a full disk must
    // not leave a change half made, and the act's own error comes first.
    let mut shown = if args.json {
        Ok(())
    } else {
        write_out(out, &describe(&steps, &host_step, &host))
    };
    let run = Run {
        paths: &paths,
        systemd: &systemd,
        host: &host,
        digest: &digest,
        audit_snapshot: audit_all,
        confirm_timeout: std::time::Duration::from_secs(apply_args.confirm_timeout),
    };
    let outcomes = apply::act(&host_step, &steps, &run, &mut pending);
    // Recorded by a run that found the host as the fleet says (at 100,000 peers writing it
    // costs 0.3 s, which a run that changes something, and is waited for, does not pay: the
    // timer's next run does). A record that cannot be written only costs later runs' speed.
    if let (Some(fresh), Ok(_), false) = (&fresh, &outcomes, has_changes(&steps, &host_step)) {
        let _ = fresh.store(&paths, &desired, &digest);
    }
    if snapshot_due && outcomes.is_ok() {
        // A marker that could not be removed only costs another snapshot next run.
        let _ = audit::snapshot_written(&paths.state);
    }
    // Endpoints that follow DNS, once the interfaces are as the fleet says.
    let endpoint_check = match &outcomes {
        Ok(_) => super::endpoints::check_steps(&steps, &paths, observed_at),
        Err(_) => Default::default(),
    };
    let endpoint_applied = super::endpoints::act(&endpoint_check, &paths, &host, &digest);
    if args.json {
        let mut doc = report(&steps, &host_step, &host);
        doc["outcomes"] = json!(outcomes.as_ref().ok());
        let applied = endpoint_applied.as_ref().ok().map(Vec::as_slice);
        doc["endpoints"] = endpoints::report(&endpoint_check, applied);
        doc["desiredStateCached"] = json!(from_cache);
        let error = outcomes.as_ref().err().or(endpoint_applied.as_ref().err());
        doc["error"] = json!(error.map(ToString::to_string));
        if let Some(rolled_back) = outcomes.as_ref().err().and_then(apply::not_confirmed) {
            doc["confirmation"] = json!(rolled_back);
        }
        shown = shown.and(write_out(out, &format!("{doc:#}\n")));
    } else if outcomes.is_ok() {
        let mut text = endpoints::describe(&endpoint_check);
        if let Ok(applied) = &endpoint_applied {
            text.push_str(&super::endpoints::describe_applied(applied));
        }
        shown = shown.and(write_out(out, &text));
    }
    let outcomes = outcomes?;
    shown?;
    if !args.json {
        for o in &outcomes {
            match &o.confirmation {
                Some(c) => write_out(out, &format!("{}: done, {c}\n", o.network))?,
                None => write_out(out, &format!("{}: done\n", o.network))?,
            }
        }
    }
    endpoint_applied?;
    Ok(0)
}

fn plans_of(desired: &[Desired]) -> Vec<crate::plan::InterfacePlan> {
    desired.iter().map(|d| d.plan.clone()).collect()
}

fn describe(steps: &[Step<'_>], host_step: &HostStep, host: &str) -> String {
    let mut text = if steps.is_empty() {
        format!("host {host} is in no network\n")
    } else {
        apply::describe(steps)
    };
    text.push_str(&host::describe(&host_step.diff));
    if host_step.ops.reloads_daemon() && host_step.diff.is_empty() {
        text.push_str("systemd: reload units (an earlier run was interrupted before it could)\n");
    }
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

/// `wgfleet routes-interface IFACE`: the drop-in's ExecStartPost (after `wg-quick up`).
pub fn cmd_routes_interface(iface: &str, root: Option<&std::path::Path>) -> Result<u8> {
    apply::routes_interface(&Paths::new(root), iface)?;
    Ok(0)
}
