//! The endpoint check inside `plan` and `apply`, and `apply --endpoints-only`.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::json;

use super::{check_valid, plans_for, write_out};
use crate::cli::ApplyArgs;
use crate::diff::Live;
use crate::error::{Error, Result};
use crate::shell::endpoint_follow::{self as shell, Applied};
use crate::shell::{lock::RunLock, observe::wg_dump};

/// One line per endpoint set, after the act.
pub(super) fn describe_applied(applied: &[Applied]) -> String {
    applied
        .iter()
        .map(|a| {
            format!(
                "{}: peer {} endpoint {}: {}\n",
                a.network,
                a.peer,
                a.to,
                if a.ok { "set" } else { &a.result }
            )
        })
        .collect()
}

/// `wgfleet apply --endpoints-only`: the fleet is loaded and validated, this host planned, and
/// for the interfaces with watched peers `wg show dump` read; no secret is decrypted, nothing
/// rendered, no unit or firewall touched. Under the run lock, like every apply.
pub(super) fn cmd_endpoints_only(
    apply_args: &ApplyArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    let args = &apply_args.host;
    let state = crate::shell::paths::detect(None).state;
    // A host that joined before its entry was committed: its 30-second timer is not a failure.
    if let super::FleetFrom::Source(source) =
        super::fleet_from(&args.fleet, Some(&args.source), &state)?
        && crate::source::accepted(&state).is_none()
    {
        write_out(
            out,
            &format!(
                "source {}: no commit accepted yet; no endpoint to follow\n",
                crate::source::redact(&source.url)
            ),
        )?;
        return Ok(0);
    }
    let (loaded, valid, now_fleet) = check_valid(
        &super::fleet_file(&args.fleet, Some(&args.source), &state)?,
        err,
    )?;
    let host = super::this_host(args.host.as_deref(), &state)?;
    let plans = plans_for(&loaded.path, &valid, &host, None, now_fleet)?;
    let paths = crate::shell::paths::detect(None);
    let _lock = RunLock::acquire(&paths.lock).map_err(|source| Error::Write {
        path: paths.lock.clone(),
        source,
    })?;
    let watched: Vec<&crate::plan::InterfacePlan> = plans
        .iter()
        .filter(|p| crate::endpoints::dialled(p).next().is_some())
        .collect();
    let observed_at = crate::shell::now();
    let live: BTreeMap<&str, Live> = watched
        .iter()
        .filter_map(|p| Some((p.network.as_str(), wg_dump(&p.network)?)))
        .collect();
    let checked = shell::check(
        watched.iter().copied(),
        &|iface| live.get(iface),
        &shell::resolve,
        &paths.state,
        observed_at,
        shell::stale_override(),
    );
    let applied = shell::act_for(&checked, &paths, &host, &loaded.digest());
    if args.json {
        let doc = json!({
            "host": host,
            "changes": checked.changes_something(),
            "endpoints": shell::report(&checked, applied.as_ref().ok().map(Vec::as_slice)),
            "error": applied.as_ref().err().map(ToString::to_string),
        });
        write_out(out, &format!("{doc:#}\n"))?;
    } else {
        let mut text = shell::describe(&checked);
        if let Ok(applied) = &applied {
            text.push_str(&describe_applied(applied));
        }
        if !checked.changes_something() {
            text.push_str("endpoints: nothing to do\n");
        }
        write_out(out, &text)?;
    }
    applied.map(|_| 0)
}
