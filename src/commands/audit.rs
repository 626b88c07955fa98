//! `wgfleet audit`: access intervals, as a state read from the audit logs.

use std::io::Write;
use std::path::PathBuf;

use super::write_out;
use crate::apply::audit::{Record, intervals};
use crate::cli::AuditArgs;
use crate::error::{Error, Result};

pub fn cmd_audit(args: &AuditArgs, out: &mut dyn Write) -> Result<u8> {
    let logs = if args.logs.is_empty() {
        vec![PathBuf::from("/var/lib/wgfleet/audit.jsonl")]
    } else {
        args.logs.clone()
    };
    let mut records = Vec::new();
    for log in &logs {
        let text = std::fs::read_to_string(log).map_err(|source| Error::Read {
            path: log.clone(),
            source,
        })?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let record: Record = serde_json::from_str(line).map_err(|e| Error::Parse {
                path: log.clone(),
                line: i + 1,
                column: e.column(),
                field: "(audit record)".into(),
                message: e.to_string(),
            })?;
            records.push(record);
        }
    }
    let mut found = intervals(records);
    found.retain(|i| {
        args.owner
            .as_ref()
            .is_none_or(|o| i.owner.as_ref() == Some(o))
            && args.client.as_ref().is_none_or(|c| *c == i.peer)
    });
    if args.json {
        write_out(out, &format!("{:#}\n", serde_json::json!(found)))?;
    } else {
        for i in &found {
            let owner = i
                .owner
                .as_ref()
                .map(|o| format!(" ({o})"))
                .unwrap_or_default();
            let until = i
                .until
                .clone()
                .unwrap_or_else(|| "now (still there)".into());
            write_out(
                out,
                &format!(
                    "{}{owner} on {} {}: {} → {until}\n",
                    i.peer, i.host, i.network, i.from
                ),
            )?;
        }
    }
    Ok(0)
}
