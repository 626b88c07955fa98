//! `wgfleet audit`: access intervals, as a state read from the audit logs.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use super::write_out;
use crate::apply::audit::{Record, intervals, log_files};
use crate::cli::AuditArgs;
use crate::error::{Error, Result};

pub fn cmd_audit(args: &AuditArgs, out: &mut dyn Write) -> Result<u8> {
    let logs = if args.logs.is_empty() {
        vec![PathBuf::from("/var/lib/wgfleet/audit.jsonl")]
    } else {
        args.logs.clone()
    };
    let records = read_logs(&logs)?;
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

/// The records of each log and of its rolled-over files, oldest first, read line by line.
pub(super) fn read_logs(logs: &[PathBuf]) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    for log in logs {
        for file in log_files(log) {
            read_log(&file, &mut records)?;
        }
    }
    Ok(records)
}

fn read_log(log: &Path, records: &mut Vec<Record>) -> Result<()> {
    let read_err = |source| Error::Read {
        path: log.to_owned(),
        source,
    };
    let file = std::fs::File::open(log).map_err(read_err)?;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(read_err)?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(&line).map_err(|e| Error::Parse {
            path: log.to_owned(),
            line: i + 1,
            column: e.column(),
            field: "(audit record)".into(),
            message: e.to_string(),
        })?;
        records.push(record);
    }
    Ok(())
}
