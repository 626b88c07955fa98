//! `wgfleet probe`: the live data plane from this host, against what the fleet says.

use std::io::Write;

use super::{check_valid, plans_for, write_out};
use crate::cli::{HostFleetArgs, ProbeArgs, SourceArgs};
use crate::error::Result;
use crate::probe::ProbeReport;
use crate::text::plural;

/// The exit code of a run that found a problem (a peer unreachable, a test disagreeing, an MTU
/// black hole).
pub const EXIT_PROBLEM: u8 = 6;

pub fn cmd_probe(args: &ProbeArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    let report = probe_host(
        &args.fleet,
        None,
        args.host.as_deref(),
        args.network.as_deref(),
        false,
        err,
    )?;
    let text = if args.json {
        serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
    } else {
        describe(&report)
    };
    write_out(out, &text)?;
    Ok(if report.ok { 0 } else { EXIT_PROBLEM })
}

/// Probes this host (`probe`, and `apply --probe` after its run) and keeps the report. After
/// apply, `warned`: the fleet's warnings are not printed a second time.
pub fn probe_host(
    fleet: &HostFleetArgs,
    source: Option<&SourceArgs>,
    host: Option<&str>,
    network: Option<&str>,
    warned: bool,
    err: &mut dyn Write,
) -> Result<ProbeReport> {
    let state = crate::shell::paths::detect(None).state;
    let mut quiet = std::io::sink();
    let warnings: &mut dyn Write = if warned { &mut quiet } else { err };
    let (loaded, valid, now) = check_valid(&super::fleet_file(fleet, source, &state)?, warnings)?;
    let host = super::this_host(host, &state)?;
    let plans = plans_for(&loaded.path, &valid, &host, network, now)?;
    let report = crate::shell::probe::probe(&valid, &plans, &host, now);
    // The results count more than keeping them: a run that cannot write (not root) still reports.
    if let Err(e) = crate::shell::probe::record(&valid, &plans, &report, &state) {
        let _ = writeln!(err, "warning: the report is not kept for status: {e}");
    }
    Ok(report)
}

/// The report for a person: a line a peer and a test, then the findings.
pub fn describe(r: &ProbeReport) -> String {
    let mut text = format!(
        "probe from {}: {}, {}, {} in {:.1} s\n",
        r.host,
        plural(r.peers.len(), "peer"),
        plural(r.tests.len(), "test"),
        plural(r.packets as usize, "packet"),
        r.elapsed_ms as f64 / 1000.0
    );
    for p in &r.peers {
        let mtu = match (p.path_mtu, p.interface_mtu) {
            (Some(path), Some(iface)) => format!(", path MTU {path} of {iface}"),
            (Some(path), None) => format!(", path MTU {path}"),
            _ => String::new(),
        };
        text.push_str(&format!(
            "  {} {} {}: {} by {} ({}){mtu}\n",
            p.network,
            p.name,
            p.address,
            if p.reachable {
                "reached"
            } else {
                "NOT reached"
            },
            p.method,
            p.answer
        ));
    }
    for t in &r.tests {
        text.push_str(&format!(
            "  test {} → {} {}: fleet {}, live {}{}\n",
            t.from,
            t.to,
            t.port,
            t.static_verdict,
            t.live,
            if t.agrees { "" } else { "  DISAGREES" }
        ));
    }
    for f in &r.findings {
        text.push_str(&format!("{}: {}\n", f.kind, f.message));
    }
    // A green run's findings are all about the host itself (or what was left out).
    text.push_str(&match (r.ok, r.findings.len()) {
        (true, 0) => "all green\n".to_owned(),
        (true, n) => format!("peers and tests green; {} above\n", plural(n, "finding")),
        (false, _) => "problems found (exit 6)\n".to_owned(),
    });
    text
}
