//! `wgfleet graph` (the fleet as DOT or SVG) and `wgfleet report` (a self-contained HTML page for
//! an auditor, or its data as JSON).

use std::io::Write;

use serde_json::json;

use super::{check_valid, write_out};
use crate::cli::{GraphArgs, ReportArgs};
use crate::error::{Error, Result};
use crate::graph::{self, GraphFormat};
use crate::history::intervals;
use crate::report;

pub fn cmd_graph(args: &GraphArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    let (loaded, valid, now) = check_valid(&args.fleet, err)?;
    if let Some(name) = &args.network
        && !valid.networks.contains_key(name)
    {
        let known: Vec<&str> = valid.networks.keys().map(String::as_str).collect();
        return Err(Error::Usage(format!(
            "{}: no network {name:?} (networks: {})",
            loaded.path.display(),
            known.join(", ")
        )));
    }
    let g = graph::build(&valid, args.network.as_deref(), now);
    let text = if args.json {
        format!("{:#}\n", json!(g))
    } else {
        match args.format {
            GraphFormat::Dot => graph::to_dot(&g),
            GraphFormat::Svg => graph::to_svg(&g),
        }
    };
    write_out(out, &text)?;
    Ok(0)
}

pub fn cmd_report(args: &ReportArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    if args.html.is_none() && !args.json {
        return Err(Error::Usage(
            "report: give --html FILE to write the page, or --json to print its data".into(),
        ));
    }
    let (loaded, valid, now) = check_valid(&args.fleet, err)?;
    let audit = if args.logs.is_empty() {
        None
    } else {
        let records = super::audit::read_logs(&args.logs)?;
        let names = args.logs.iter().map(|l| l.display().to_string()).collect();
        Some((names, intervals(records)))
    };
    let probes = args
        .probes
        .iter()
        .map(|p| read_probe(p))
        .collect::<Result<Vec<_>>>()?;
    let r = report::build(&loaded, &valid, now, generated_at(), audit, probes);
    if let Some(path) = &args.html {
        let html = report::to_html(&r);
        crate::fsutil::write_atomic(path, html.as_bytes(), 0o644).map_err(|source| {
            Error::Write {
                path: path.clone(),
                source,
            }
        })?;
        if !args.json {
            let broken = r.access.iter().filter(|a| !a.works).count();
            let failing = r.tests.iter().filter(|t| t.result == "fail").count();
            write_out(
                out,
                &format!(
                    "wrote {}: {} network(s), {} access row(s) ({broken} not working), {} client(s) expiring within {} days, {} test(s) ({failing} failing)\n",
                    path.display(),
                    r.networks.len(),
                    r.access.len(),
                    r.expiring.len(),
                    r.expiry_window_days,
                    r.tests.len()
                ),
            )?;
        }
    }
    if args.json {
        write_out(out, &format!("{:#}\n", json!(r)))?;
    }
    Ok(0)
}

/// Now, or `SOURCE_DATE_EPOCH` (reproducible reports).
fn generated_at() -> i64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or_default()
        })
}

/// A host's probe report, as `probe --json` wrote it.
fn read_probe(path: &std::path::Path) -> Result<crate::probe::ProbeReport> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        what: "probe report",
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Parse {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        field: "(probe report)".into(),
        message: e.to_string(),
    })
}
