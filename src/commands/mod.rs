//! What each command does: load, validate, plan, render, print. The only I/O is reading the
//! fleet and writing to the given streams, so every command is testable in-process.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

mod access;
mod apply;
mod audit;
mod client;
mod endpoints;
mod graph;
mod import;
mod join;
mod probe;
mod rotate;
mod rotate_psk;
mod secrets;
mod source;
mod status;

pub use audit::{intervals_text, parse_log};

use crate::cli::{Cli, Command, FleetArgs, HostFleetArgs, RenderArgs, SourceArgs, ValidateArgs};
use crate::error::{Error, Result};
pub(crate) use crate::fleet::checked::plans_for;
use crate::fleet::checked::{self, Checked};
use crate::fleet::diag::{Located, Severity};
use crate::fleet::{Loaded, ValidFleet, time};
use crate::render;
pub(crate) use crate::shell::host_or_hostname;
use crate::text::plural;

/// The host this machine reconciles: `--host`, else the name it joined as (`wgfleet join`),
/// else its hostname.
pub(crate) fn this_host(host: Option<&str>, state: &Path) -> Result<String> {
    match (host, crate::join::load(state)) {
        (Some(h), _) => Ok(h.to_owned()),
        (None, Some(joined)) => Ok(joined.host),
        (None, None) => host_or_hostname(None),
    }
}

/// Runs one command; returns the process exit code.
pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    match cli.command {
        Command::Validate(args) => cmd_validate(&args, out, err),
        Command::Render(args) => cmd_render(&args, out, err),
        Command::Access(args) => access::cmd_access(&args, out, err),
        Command::ClientConfig(args) => client::cmd_client_config(&args, out, err),
        Command::Status(args) => status::cmd_status(&args, out, err),
        Command::Probe(args) => probe::cmd_probe(&args, out, err),
        Command::Promote(args) => rotate::cmd_promote(&args, out),
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
        Command::Source(command) => source::cmd_source(&command, out),
        Command::Join(args) => join::cmd_join(&args, out),
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

/// A fleet file rewritten in place: through a symlink to the file it names (the link stays a
/// link), keeping that file's mode (a 0600 fleet stays 0600).
pub(crate) fn write_fleet(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let werr = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let target = std::fs::canonicalize(path).map_err(werr)?;
    let mode = std::fs::metadata(&target)
        .map_err(werr)?
        .permissions()
        .mode()
        & 0o7777;
    crate::fsutil::write_atomic(&target, text.as_bytes(), mode).map_err(werr)
}

pub(crate) fn now(args: &FleetArgs) -> Result<i64> {
    now_at(args.now.as_deref())
}

/// `--now` as a time, or now.
pub(crate) fn now_at(now: Option<&str>) -> Result<i64> {
    match now {
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

/// Where a host's fleet comes from.
pub(crate) enum FleetFrom {
    File(PathBuf),
    Source(crate::source::Source),
}

/// `--source`, else `--fleet`, else the source this host saved, else `$WGFLEET_FLEET`.
pub(crate) fn fleet_from(
    fleet: &HostFleetArgs,
    source: Option<&SourceArgs>,
    state: &Path,
) -> Result<FleetFrom> {
    match (source.and_then(SourceArgs::source), &fleet.fleet) {
        (Some(_), Some(_)) => Err(Error::Usage(
            "--fleet and --source both name the fleet: give one of them".into(),
        )),
        (Some(s), None) => Ok(FleetFrom::Source(s)),
        (None, Some(f)) => Ok(FleetFrom::File(f.clone())),
        (None, None) => match crate::source::saved(state)? {
            Some(s) => Ok(FleetFrom::Source(s)),
            None => match std::env::var_os("WGFLEET_FLEET") {
                Some(f) if !f.is_empty() => Ok(FleetFrom::File(f.into())),
                _ => Err(Error::Usage(
                    "no fleet: give --fleet FILE, or --source URL --allowed-signers FILE, or \
                     save a source with `wgfleet source set`"
                        .into(),
                )),
            },
        },
    }
}

/// The fleet file to read without pulling: the file named, or the source's last accepted
/// commit (`status`, `apply --endpoints-only`, which run between pulls).
pub(crate) fn fleet_file(
    fleet: &HostFleetArgs,
    source: Option<&SourceArgs>,
    state: &Path,
) -> Result<FleetArgs> {
    let path = match fleet_from(fleet, source, state)? {
        FleetFrom::File(f) => f,
        FleetFrom::Source(s) => match crate::source::accepted(state) {
            Some(a) => a.fleet,
            None => {
                return Err(Error::Usage(format!(
                    "the source {} has no accepted commit yet: run `wgfleet apply` first",
                    crate::source::redact(&s.url)
                )));
            }
        },
    };
    Ok(FleetArgs {
        fleet: path,
        now: fleet.now.clone(),
        nix_allow: fleet.nix_allow.clone(),
    })
}

/// The fleet of `args` loaded and validated (`fleet::checked`), at `--now` or now.
fn check(args: &FleetArgs, expiry_warning_days: u32) -> Result<Checked> {
    checked::check(
        &args.fleet,
        &args.nix_allow,
        now(args)?,
        expiry_warning_days,
    )
}

/// As `check_valid`, the warnings returned as the lines it would print.
pub(crate) fn valid_with_warnings(
    args: &FleetArgs,
) -> Result<(Loaded, ValidFleet, i64, Vec<String>)> {
    let now = now(args)?;
    let (loaded, valid, warnings) =
        checked::valid_with_warnings(&args.fleet, &args.nix_allow, now)?;
    Ok((loaded, valid, now, warnings))
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
    format!(
        "{}, {} ({})",
        plural(v.hosts.len(), "host"),
        plural(nets.len(), "network"),
        nets.join("; ")
    )
}

fn cmd_render(args: &RenderArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    let (loaded, valid, now) = check_valid(&args.fleet, err)?;
    let host = host_or_hostname(args.host.as_deref())?;
    let mut plans = plans_for(&loaded.path, &valid, &host, args.network.as_deref(), now)?;
    // Peers' next keys as a host stages them before any handshake promotes one (the host's own
    // switch needs its key decrypted: `plan` on the host shows it).
    for plan in &mut plans {
        crate::rotation::stage(plan, &[]);
    }
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
