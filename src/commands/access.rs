//! `wgfleet access`: the access state of the fleet, or one question answered hop by hop.

use std::io::Write;

use serde_json::json;

use super::{check_valid, write_out};
use crate::access::{self, Row, Tables, Trace};
use crate::cli::AccessArgs;
use crate::error::{Error, Result};
use crate::fleet::model::Party;
use crate::fleet::syntax::parse_port_spec;
use crate::fleet::time::format_rfc3339;

pub fn cmd_access(args: &AccessArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    let (loaded, valid, now) = check_valid(&args.fleet, err)?;
    let port = match &args.port {
        Some(p) => Some(parse_port_spec(p).map_err(|e| Error::Usage(format!("--port: {e}")))?),
        None => None,
    };
    let networks: Vec<_> = valid
        .networks
        .values()
        .filter(|n| args.network.as_ref().is_none_or(|w| *w == n.name))
        .collect();
    if let Some(name) = &args.network
        && networks.is_empty()
    {
        return Err(Error::Usage(format!(
            "{}: no network {name:?}",
            loaded.path.display()
        )));
    }

    // One question: does this connection work, and where does it stop if not?
    if let (Some(from), Some(to)) = (&args.from, &args.to) {
        let mut answers = Vec::new();
        for net in networks.iter().filter(|n| n.peers.contains_key(from)) {
            let target = if net.peers.contains_key(to) {
                Party::Peer(to.clone())
            } else if let Ok(prefix) = to.parse() {
                Party::Cidr(prefix)
            } else {
                continue;
            };
            let (there, back) = Tables::new(&valid, net, now).connect(from, &target, port);
            answers.push((net.name.clone(), there, back));
        }
        if answers.is_empty() {
            return Err(Error::Usage(format!(
                "{}: no network has both {from:?} and {to:?}",
                loaded.path.display()
            )));
        }
        let works = answers
            .iter()
            .any(|(_, there, back)| there.ok() && back.as_ref().is_none_or(Trace::ok));
        if args.json {
            let doc: Vec<_> = answers
                .iter()
                .map(|(n, there, back)| json!({"network": n, "request": there, "reply": back}))
                .collect();
            write_out(
                out,
                &format!(
                    "{:#}\n",
                    json!({"from": from, "to": to, "works": works, "paths": doc})
                ),
            )?;
        } else {
            for (network, there, back) in &answers {
                write_out(
                    out,
                    &format!("{network}: {}\n", describe(from, to, there, back.as_ref())),
                )?;
            }
        }
        return Ok(if works { 0 } else { 1 });
    }

    let mut rows: Vec<Row> = networks
        .iter()
        .flat_map(|n| access::matrix(&valid, n, now))
        .collect();
    rows.retain(|r| {
        args.from.as_ref().is_none_or(|f| *f == r.from)
            && args.to.as_ref().is_none_or(|t| *t == r.to)
            && args
                .owner
                .as_ref()
                .is_none_or(|o| r.owner.as_ref() == Some(o))
            && port.is_none_or(|p| {
                r.ports.is_empty()
                    || r.ports
                        .iter()
                        .any(|q| parse_port_spec(q).is_ok_and(|q| q == p))
            })
    });
    if args.json {
        write_out(out, &format!("{:#}\n", json!(rows)))?;
    } else {
        write_out(out, &table(&rows))?;
    }
    Ok(0)
}

fn describe(from: &str, to: &str, there: &Trace, back: Option<&Trace>) -> String {
    match (there, back) {
        (Trace::Delivered { path }, None | Some(Trace::Delivered { .. })) => {
            format!(
                "{from} reaches {to} via {}, and the reply comes back",
                path.join(" → ")
            )
        }
        (Trace::Dropped { path, at, reason }, _) => {
            format!(
                "{from} cannot reach {to}: the request ({}) is dropped at {at}: {reason}",
                path.join(" → ")
            )
        }
        (_, Some(Trace::Dropped { path, at, reason })) => {
            format!(
                "{from} cannot reach {to}: the reply ({}) is dropped at {at}: {reason}",
                path.join(" → ")
            )
        }
    }
}

/// A plain-text table, columns padded to their widest cell.
fn table(rows: &[Row]) -> String {
    let mut cells = vec![
        [
            "NETWORK", "FROM", "OWNER", "TO", "PORTS", "VIA", "UNTIL", "STATUS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for r in rows {
        let dash = |s: String| if s.is_empty() { "-".to_owned() } else { s };
        cells.push(vec![
            r.network.clone(),
            r.from.clone(),
            dash(r.owner.clone().unwrap_or_default()),
            r.to.clone(),
            dash(if r.ports.is_empty() {
                "any".into()
            } else {
                r.ports.join(",")
            }),
            dash(r.via.join(",")),
            dash(r.until.map(format_rfc3339).unwrap_or_default()),
            if r.works {
                "ok".into()
            } else {
                format!("BROKEN: {}", r.dropped.clone().unwrap_or_default())
            },
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
