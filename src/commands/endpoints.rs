//! The endpoint check inside `plan` and `apply`, and `apply --endpoints-only`.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::json;

use super::{check_valid, host_or_hostname, plans_for, write_out};
use crate::apply::endpoints::{self as shell, Actor, Applied, Checked};
use crate::apply::{Paths, Step, lock::RunLock, wg_dump};
use crate::cli::ApplyArgs;
use crate::diff::{Action, Live};
use crate::error::{Error, Result};

pub(super) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The check for the interfaces this run leaves running as they are, against the live state
/// observed before acting (`apply` reads it anyway for drift: no extra `wg show`). An interface
/// that starts, restarts or reloads is skipped: the unit loads the config, whose names `wg`
/// resolves itself, and its peers get their first handshake before the next run judges them.
/// `observed_at`: when the live state was read (handshake ages are measured from then, not
/// from after the act, which can take a while).
pub(super) fn check_steps(steps: &[Step<'_>], paths: &Paths, observed_at: i64) -> Checked {
    let untouched: Vec<&Step<'_>> = steps
        .iter()
        .filter(|s| {
            s.desired.is_some()
                && matches!(
                    s.ops.action,
                    Action::Nothing | Action::HostState | Action::WriteFile
                )
        })
        .collect();
    let live: BTreeMap<&str, &Live> = untouched
        .iter()
        .filter_map(|s| Some((s.diff.network.as_str(), s.live.as_ref()?)))
        .collect();
    shell::check(
        untouched.iter().filter_map(|s| s.desired.map(|d| &d.plan)),
        &|iface| live.get(iface).copied(),
        &shell::resolve,
        &paths.state,
        observed_at,
        shell::stale_override(),
    )
}

/// Runs the check's decisions (after apply's own steps succeeded).
pub(super) fn act(
    checked: &Checked,
    paths: &Paths,
    host: &str,
    digest: &str,
) -> Result<Vec<Applied>> {
    let actor = Actor {
        state_dir: &paths.state,
        host,
        digest,
    };
    shell::act(checked, &actor, now())
}

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
    let (loaded, valid, now_fleet) = check_valid(&args.fleet, err)?;
    let host = host_or_hostname(args.host.as_deref())?;
    let plans = plans_for(&loaded.path, &valid, &host, None, now_fleet)?;
    let paths = Paths::new(None);
    let _lock = RunLock::acquire(&paths.lock).map_err(|source| Error::Write {
        path: paths.lock.clone(),
        source,
    })?;
    let watched: Vec<&crate::plan::InterfacePlan> = plans
        .iter()
        .filter(|p| crate::endpoints::dialled(p).next().is_some())
        .collect();
    let observed_at = now();
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
    let applied = act(&checked, &paths, &host, &loaded.digest());
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
