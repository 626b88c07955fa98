//! `plan` and `apply`: the flags become the pipeline's `Inputs` (`shell::pipeline`); plan runs
//! its stages up to the diff, apply all of them; what they return is printed here.

use std::io::Write;

use serde_json::json;

use super::FleetFrom;
use super::write_out;
use crate::cli::{ApplyArgs, HostArgs, PlanArgs};
use crate::error::{Error, Result};
use crate::shell::paths::detect;
use crate::shell::pending::Pending;
use crate::shell::pipeline::{self, Acted, Inputs, Observed};
use crate::shell::systemd::Systemd;
use crate::shell::timings::Timings;
use crate::shell::{act, endpoint_follow, host, observe, reload};

/// The pipeline's inputs from the flags both commands share; a git source is pulled first.
fn inputs(args: &HostArgs) -> Result<Inputs> {
    let paths = detect(args.root.as_deref());
    let host = super::this_host(args.host.as_deref(), &paths.state)?;
    let (fleet, from_source) =
        match super::fleet_from(&args.fleet, Some(&args.source), &paths.state)? {
            FleetFrom::File(f) => (f, None),
            FleetFrom::Source(source) => {
                let judged_at = super::now_at(args.fleet.now.as_deref())?;
                let fetched = pipeline::fetch(
                    &source,
                    &paths,
                    &host,
                    &args.fleet.nix_allow,
                    crate::shell::now(),
                    judged_at,
                )?;
                (fetched.fleet.clone(), Some(fetched))
            }
        };
    Ok(Inputs {
        fleet,
        nix_allow: args.fleet.nix_allow.clone(),
        host: Some(host),
        identities: args.identity.identities.clone(),
        now: super::now_at(args.fleet.now.as_deref())?,
        use_record: !args.no_cache,
        root: args.root.clone(),
        paths,
        from_source,
    })
}

/// The source's line, before the plan; a refusal is said, with the commit applied instead.
fn describe_source(inputs: &Inputs) -> String {
    let Some(f) = &inputs.from_source else {
        return String::new();
    };
    let r = &f.report;
    let short = |c: &str| c.chars().take(12).collect::<String>();
    let head = format!("source {} ({}, {})", r.url, r.git_ref, r.path);
    match (&r.error, &r.previous) {
        (Some(e), _) => format!(
            "{e}\nsource: the last accepted commit {} (signed by {}) is applied instead\n",
            short(&r.commit),
            r.signer
        ),
        (None, Some(p)) => format!(
            "{head}: commit {} signed by {}, new since {}\n",
            short(&r.commit),
            r.signer,
            short(p)
        ),
        (None, None) => format!(
            "{head}: commit {} signed by {}{}\n",
            short(&r.commit),
            r.signer,
            if r.status == "moved" {
                ", accepted"
            } else {
                ""
            }
        ),
    }
}

/// A run that applied the last accepted fleet because the source refused ends with its code.
fn source_code(inputs: &Inputs, code: u8) -> u8 {
    match inputs.from_source.as_ref().and_then(|f| f.refused.as_ref()) {
        Some(_) => crate::error::SOURCE_REFUSED,
        None => code,
    }
}

/// Stage 1, its warnings printed on stderr.
fn desired(inputs: &Inputs, err: &mut dyn Write) -> Result<pipeline::Prepared> {
    let prepared = pipeline::desired(inputs)?;
    for w in &prepared.warnings {
        let _ = writeln!(err, "{w}");
    }
    Ok(prepared)
}

fn connect() -> Result<Systemd> {
    Systemd::connect().map_err(|source| Error::Systemd {
        what: "systemd".into(),
        source,
    })
}

/// What `plan --json` prints (and `apply --json` before its outcomes): per network the diff
/// and the exact operations apply runs.
fn report(observed: &Observed<'_>, host: &str) -> serde_json::Value {
    let networks: Vec<_> = observed
        .steps
        .iter()
        .map(|s| json!({"network": s.diff.network, "action": s.ops.action, "writeFile": s.diff.write_file, "enable": s.diff.enable, "changes": s.diff.changes, "operations": s.ops, "confirmation": s.confirmation, "rotations": observe::rotations(s)}))
        .collect();
    json!({"host": host, "changes": observed.changes(), "networks": networks, "hostWide": observed.host_step.diff, "hostOperations": observed.host_step.ops})
}

pub fn cmd_plan(args: &PlanArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    let mut timings = Timings::default();
    let inputs = inputs(&args.host)?;
    timings.lap("inputs");
    if !args.host.json {
        write_out(out, &describe_source(&inputs))?;
    }
    let read_ahead = observe::ReadAhead::start(&inputs.paths);
    let mut prepared = desired(&inputs, err)?;
    timings.extend(std::mem::take(&mut prepared.timings));
    let pending = Pending::load(&inputs.paths.state)?;
    let systemd = connect()?;
    let mut observed =
        pipeline::observe(&prepared, &inputs, &systemd, &pending, false, read_ahead)?;
    timings.extend(std::mem::take(&mut observed.timings));
    let endpoints = observed.endpoint_check(&inputs.paths);
    let changes = observed.changes() || endpoints.changes_something();
    if args.host.json {
        let mut doc = report(&observed, &prepared.host);
        doc["changes"] = json!(changes);
        doc["endpoints"] = endpoint_follow::report(&endpoints, None);
        doc["desiredStateCached"] = json!(prepared.from_cache);
        doc["source"] = json!(inputs.from_source.as_ref().map(|f| &f.report));
        if args.host.timings {
            doc["timings"] = timings.to_json();
        }
        write_out(out, &format!("{doc:#}\n"))?;
    } else {
        let mut text = describe(&observed, &prepared.host);
        text.push_str(&endpoint_follow::describe(&endpoints));
        write_out(out, &text)?;
        if args.host.timings {
            let _ = write!(err, "{}", timings.describe());
        }
    }
    Ok(source_code(
        &inputs,
        if args.detailed_exitcode && changes {
            2
        } else {
            0
        },
    ))
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
    let mut timings = Timings::default();
    let inputs = inputs(args)?;
    timings.lap("inputs");
    if !args.json {
        write_out(out, &describe_source(&inputs))?;
    }
    let mut session = pipeline::begin(&inputs.paths, apply_args.audit_snapshot)?;
    timings.lap("begin");
    let read_ahead = observe::ReadAhead::start(&inputs.paths);
    let mut prepared = desired(&inputs, err)?;
    timings.extend(std::mem::take(&mut prepared.timings));
    let systemd = connect()?;
    let mut observed = pipeline::observe(
        &prepared,
        &inputs,
        &systemd,
        &session.pending,
        session.audit_all,
        read_ahead,
    )?;
    timings.extend(std::mem::take(&mut observed.timings));
    if apply_args.no_confirm {
        observed.hold_nothing();
    }
    // Output never stops the run: a reader that went away (`apply | head`) or a full disk must
    // not leave a change half made, and the act's own error comes first.
    let shown = if args.json {
        Ok(())
    } else {
        write_out(out, &describe(&observed, &prepared.host))
    };
    let timeout = std::time::Duration::from_secs(apply_args.confirm_timeout);
    let acted = pipeline::act(
        &inputs,
        &prepared,
        &observed,
        &mut session,
        &systemd,
        timeout,
    );
    timings.lap("act");
    // The data plane probed once the run has ended well (`--probe`).
    let probed = match (&acted.outcomes, apply_args.probe) {
        (Ok(_), true) => Some(super::probe::probe_host(
            &args.fleet,
            Some(&args.source),
            Some(&prepared.host),
            None,
            true,
            err,
        )),
        _ => None,
    };
    if probed.is_some() {
        timings.lap("probe");
    }
    let shown = shown.and(if args.json {
        let mut doc = apply_report(&inputs, &observed, &prepared, &acted);
        if let Some(Ok(r)) = &probed {
            doc["probe"] = json!(r);
        }
        if args.timings {
            doc["timings"] = timings.to_json();
        }
        write_out(out, &format!("{doc:#}\n"))
    } else {
        if args.timings {
            let _ = write!(err, "{}", timings.describe());
        }
        show_endpoints(&acted, out)
    });
    let Acted {
        outcomes,
        endpoints_applied,
        ..
    } = acted;
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
    endpoints_applied?;
    let code = source_code(&inputs, 0);
    match probed {
        Some(report) => {
            let report = report?;
            if !args.json {
                write_out(out, &super::probe::describe(&report))?;
            }
            Ok(if code == 0 && !report.ok {
                super::probe::EXIT_PROBLEM
            } else {
                code
            })
        }
        None => Ok(code),
    }
}

/// `apply --json`: plan's document with how each step and the endpoint check ended.
fn apply_report(
    inputs: &Inputs,
    observed: &Observed<'_>,
    prepared: &pipeline::Prepared,
    acted: &Acted,
) -> serde_json::Value {
    let mut doc = report(observed, &prepared.host);
    doc["outcomes"] = json!(acted.outcomes.as_ref().ok());
    let applied = acted.endpoints_applied.as_ref().ok().map(Vec::as_slice);
    doc["endpoints"] = endpoint_follow::report(&acted.endpoints, applied);
    doc["desiredStateCached"] = json!(prepared.from_cache);
    doc["source"] = json!(inputs.from_source.as_ref().map(|f| &f.report));
    let error = acted
        .outcomes
        .as_ref()
        .err()
        .or(acted.endpoints_applied.as_ref().err());
    doc["error"] = json!(error.map(ToString::to_string));
    if let Some(rolled_back) = acted.outcomes.as_ref().err().and_then(act::not_confirmed) {
        doc["confirmation"] = json!(rolled_back);
    }
    doc
}

/// The endpoint check's lines, once the steps succeeded.
fn show_endpoints(acted: &Acted, out: &mut dyn Write) -> Result<()> {
    if acted.outcomes.is_err() {
        return Ok(());
    }
    let mut text = endpoint_follow::describe(&acted.endpoints);
    if let Ok(applied) = &acted.endpoints_applied {
        text.push_str(&super::endpoints::describe_applied(applied));
    }
    write_out(out, &text)
}

fn describe(observed: &Observed<'_>, host: &str) -> String {
    let (steps, host_step) = (&observed.steps, &observed.host_step);
    let mut text = if steps.is_empty() {
        format!("host {host} is in no network\n")
    } else {
        observe::describe(steps)
    };
    text.push_str(&crate::diff::describe_host(&host_step.diff));
    if host_step.ops.reloads_daemon() && host_step.diff.is_empty() {
        text.push_str("systemd: reload units (an earlier run was interrupted before it could)\n");
    }
    text
}

/// `wgfleet firewall-restore`: run by the `wg-quick@` drop-in before an interface starts.
pub fn cmd_firewall_restore(root: Option<&std::path::Path>) -> Result<u8> {
    host::restore_saved(&detect(root))?;
    Ok(0)
}

/// `wgfleet reload-interface IFACE`: the drop-in's ExecReload (`systemctl reload wg-quick@IFACE`).
pub fn cmd_reload_interface(iface: &str, root: Option<&std::path::Path>) -> Result<u8> {
    reload::reload_interface(&detect(root), iface)?;
    Ok(0)
}

/// `wgfleet routes-interface IFACE`: the drop-in's ExecStartPost (after `wg-quick up`).
pub fn cmd_routes_interface(iface: &str, root: Option<&std::path::Path>) -> Result<u8> {
    reload::routes_interface(&detect(root), iface)?;
    Ok(0)
}
