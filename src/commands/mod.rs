//! What each command does: load, validate, plan, render, print. The only I/O is reading the
//! fleet and writing to the given streams, so every command is testable in-process.

use std::io::Write;
use std::path::Path;

use serde_json::json;

mod access;
mod apply;
mod audit;
mod client;
mod endpoints;
mod graph;
mod import;
mod secrets;
mod status;

pub use audit::{intervals_text, parse_log};

use crate::cli::{Cli, Command, FleetArgs, RenderArgs, ValidateArgs};
use crate::error::{Error, Result};
use crate::fleet::diag::{Located, Severity};
use crate::fleet::validate::{self, Options};
use crate::fleet::{Loaded, ValidFleet, time};
use crate::plan;
use crate::render;

/// Runs one command; returns the process exit code.
pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    match cli.command {
        Command::Validate(args) => cmd_validate(&args, out, err),
        Command::Render(args) => cmd_render(&args, out, err),
        Command::Access(args) => access::cmd_access(&args, out, err),
        Command::ClientConfig(args) => client::cmd_client_config(&args, out, err),
        Command::Status(args) => status::cmd_status(&args, out, err),
        Command::Audit(args) => audit::cmd_audit(&args, out),
        Command::Plan(args) => apply::cmd_plan(&args, out, err),
        Command::Apply(args) => apply::cmd_apply(&args, out, err),
        Command::Keygen(args) => secrets::cmd_keygen(&args, out, err),
        Command::Rekey(args) => secrets::cmd_rekey(&args, out, err),
        Command::CheckSecrets(args) => secrets::cmd_check_secrets(&args, out, err),
        Command::Graph(args) => graph::cmd_graph(&args, out, err),
        Command::Report(args) => graph::cmd_report(&args, out, err),
        Command::Import(args) => import::cmd_import(&args, out, err),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "wgfleet", out);
            Ok(0)
        }
        Command::Man { dir } => {
            std::fs::create_dir_all(&dir).map_err(|source| Error::Write {
                path: dir.clone(),
                source,
            })?;
            clap_mangen::generate_to(<Cli as clap::CommandFactory>::command(), &dir).map_err(
                |source| Error::Write {
                    path: dir.clone(),
                    source,
                },
            )?;
            Ok(0)
        }
        Command::FirewallRestore { root } => apply::cmd_firewall_restore(root.as_deref()),
        Command::ReloadInterface { interface, root } => {
            apply::cmd_reload_interface(&interface, root.as_deref())
        }
        Command::RoutesInterface { interface, root } => {
            apply::cmd_routes_interface(&interface, root.as_deref())
        }
        Command::Schema => {
            write_out(out, &schema_json())?;
            Ok(0)
        }
    }
}

/// The JSON Schema of schema v1, generated from the types the loader uses.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(crate::fleet::Fleet);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

pub(crate) fn write_out(out: &mut dyn Write, text: &str) -> Result<()> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Error::Output)
}

pub(crate) fn now(args: &FleetArgs) -> Result<i64> {
    match &args.now {
        Some(text) => time::parse_rfc3339(text).ok_or_else(|| Error::Parse {
            path: "--now".into(),
            line: 1,
            column: 1,
            field: "--now".into(),
            message: format!("{text:?} is not an RFC 3339 time like 2026-12-31T00:00:00Z"),
        }),
        None => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default()),
    }
}

/// A loaded and validated fleet with its warnings.
struct Checked {
    loaded: Loaded,
    valid: Option<ValidFleet>,
    findings: Vec<Located>,
    now: i64,
}

fn check(args: &FleetArgs, expiry_warning_days: u32) -> Result<Checked> {
    let now = now(args)?;
    let loaded = crate::fleet::load::load_with(&args.fleet, &args.nix_allow)?;
    let opts = Options {
        now,
        expiry_warning: i64::from(expiry_warning_days) * 86_400,
    };
    let (valid, diags) = validate::validate(&loaded.fleet, opts);
    let mut findings: Vec<Located> = diags
        .0
        .iter()
        .map(|d| Located::new(&loaded.path, loaded.json_source.as_deref(), d))
        .collect();
    findings.sort_by_key(|d| d.line);
    Ok(Checked {
        loaded,
        valid,
        findings,
        now,
    })
}

/// A fleet that must be valid for the command to go on; warnings go to `err`.
pub(crate) fn check_valid(
    args: &FleetArgs,
    err: &mut dyn Write,
) -> Result<(Loaded, ValidFleet, i64)> {
    let (loaded, valid, now, warnings) = valid_with_warnings(args)?;
    for w in &warnings {
        let _ = writeln!(err, "{w}");
    }
    Ok((loaded, valid, now))
}

/// How far ahead of a client's expiry commands that need a valid fleet warn about it.
pub(crate) const EXPIRY_WARNING_SECS: i64 = 14 * 86_400;

/// As `check_valid`, the warnings returned as the lines it would print.
pub(crate) fn valid_with_warnings(
    args: &FleetArgs,
) -> Result<(Loaded, ValidFleet, i64, Vec<String>)> {
    let c = check(args, (EXPIRY_WARNING_SECS / 86_400) as u32)?;
    match c.valid {
        Some(valid) => {
            let warnings = c.findings.iter().map(ToString::to_string).collect();
            Ok((c.loaded, valid, c.now, warnings))
        }
        None => Err(Error::Invalid {
            diagnostics: c.findings,
        }),
    }
}

fn cmd_validate(args: &ValidateArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    let c = match check(&args.fleet, args.expiry_warning_days) {
        Ok(c) => c,
        // A fleet that does not even load is still a finding for `--json` readers.
        Err(e) if args.json => {
            let finding = load_failure(&args.fleet.fleet, &e);
            let doc = json!({
                "file": args.fleet.fleet.display().to_string(),
                "valid": false,
                "digest": null,
                "diagnostics": [finding],
                "summary": null,
            });
            write_out(out, &format!("{:#}\n", doc))?;
            let _ = writeln!(err, "wgfleet: {e}");
            return Ok(e.exit_code());
        }
        Err(e) => return Err(e),
    };
    let errors = c
        .findings
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    if args.json {
        let summary = c.valid.as_ref().map(|v| summarize(v, c.now));
        let doc = json!({
            "file": c.loaded.path.display().to_string(),
            "valid": errors == 0,
            "digest": c.loaded.digest(),
            "diagnostics": c.findings,
            "summary": summary,
        });
        write_out(out, &format!("{:#}\n", doc))?;
    } else {
        for d in &c.findings {
            let _ = writeln!(err, "{d}");
        }
        match &c.valid {
            Some(v) => write_out(
                out,
                &format!(
                    "{}: valid: {}\n",
                    c.loaded.path.display(),
                    describe(v, c.now)
                ),
            )?,
            None => {
                let _ = writeln!(
                    err,
                    "{errors} error(s); {} is invalid",
                    c.loaded.path.display()
                );
            }
        }
    }
    Ok(if errors == 0 { 0 } else { 1 })
}

/// A fleet that failed to load, as one finding (for `validate --json`).
fn load_failure(file: &Path, e: &Error) -> Located {
    let (line, path, message) = match e {
        Error::Parse {
            line,
            field,
            message,
            ..
        } => (Some(*line), field.clone(), message.clone()),
        other => (None, "(top level)".to_owned(), other.to_string()),
    };
    Located {
        file: file.display().to_string(),
        line,
        severity: Severity::Error,
        path,
        message,
    }
}

/// Counts per network, for the summary line and `--json`.
fn summarize(v: &ValidFleet, now: i64) -> serde_json::Value {
    let networks: serde_json::Map<String, serde_json::Value> = v
        .networks
        .values()
        .map(|n| {
            let members = n.peers.values().filter(|p| p.kind == crate::fleet::model::PeerKind::Host).count();
            let clients = n.peers.len() - members;
            let expired = n.peers.values().filter(|p| p.is_expired(now)).count();
            let topology = if n.is_mesh() { "mesh".to_owned() } else { format!("hub-and-spoke ({})", n.hubs.join(", ")) };
            (n.name.clone(), json!({"members": members, "clients": clients, "expiredClients": expired, "topology": topology}))
        })
        .collect();
    json!({"hosts": v.hosts.len(), "networks": networks})
}

fn describe(v: &ValidFleet, now: i64) -> String {
    let s = summarize(v, now);
    let nets: Vec<String> = s["networks"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, n)| {
            format!(
                "{name}: {}, {} members, {} clients",
                n["topology"].as_str().unwrap_or(""),
                n["members"],
                n["clients"]
            )
        })
        .collect();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}, {} ({})",
        plural(v.hosts.len(), "host"),
        plural(nets.len(), "network"),
        nets.join("; ")
    )
}

/// `--host`, or this machine's hostname.
pub fn host_or_hostname(host: Option<&str>) -> Result<String> {
    match host {
        Some(h) => Ok(h.to_owned()),
        None => nix::unistd::gethostname()
            .map_err(|e| Error::Hostname(e.to_string()))?
            .into_string()
            .map_err(|_| Error::Hostname("the hostname is not UTF-8".into())),
    }
}

/// The plans of `host`, restricted to `network` when given.
pub(crate) fn plans_for(
    path: &Path,
    valid: &ValidFleet,
    host: &str,
    network: Option<&str>,
    now: i64,
) -> Result<Vec<plan::InterfacePlan>> {
    if !valid.hosts.contains_key(host) {
        let known: Vec<&str> = valid.hosts.keys().map(String::as_str).collect();
        return Err(Error::UnknownHost {
            path: path.to_owned(),
            host: host.to_owned(),
            known: known.join(", "),
        });
    }
    match network {
        None => Ok(plan::plan_host(valid, host, now)),
        Some(name) => {
            let not_member = || Error::NotAMember {
                path: path.to_owned(),
                host: host.to_owned(),
                network: name.to_owned(),
            };
            let net = valid.networks.get(name).ok_or_else(not_member)?;
            Ok(vec![
                plan::plan_interface(valid, net, host, now).ok_or_else(not_member)?,
            ])
        }
    }
}

fn cmd_render(args: &RenderArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    let (loaded, valid, now) = check_valid(&args.fleet, err)?;
    let host = host_or_hostname(args.host.as_deref())?;
    let plans = plans_for(&loaded.path, &valid, &host, args.network.as_deref(), now)?;
    if plans.is_empty() {
        let _ = writeln!(
            err,
            "{}: host {host:?} is in no network; nothing to render",
            loaded.path.display()
        );
    }
    let mut rendered = Vec::with_capacity(plans.len());
    for p in &plans {
        rendered.push(render::render_config(p)?);
    }
    if args.json {
        let interfaces: Vec<_> = plans
            .iter()
            .zip(&rendered)
            .map(|(p, config)| {
                json!({
                    "network": p.network,
                    "path": format!("/etc/wireguard/{}.conf", p.network),
                    "config": config,
                    "plan": p,
                })
            })
            .collect();
        let doc = json!({"host": host, "fleetDigest": loaded.digest(), "interfaces": interfaces});
        write_out(out, &format!("{:#}\n", doc))?;
    } else {
        write_out(out, &rendered.join("\n"))?;
    }
    // The process ends after this command: freeing a large fleet piece by piece would cost a
    // tenth of the run (a 10,000-peer hub), and none of it holds a secret to wipe.
    std::mem::forget((loaded, valid, plans, rendered));
    Ok(0)
}
