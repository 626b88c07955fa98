//! `wgfleet audit`: access intervals, as a state read from the audit logs.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use super::write_out;
use crate::cli::AuditArgs;
use crate::error::{Error, Result, printable};
use crate::history::{Interval, Record, intervals};
use crate::shell::audit::log_files;

pub fn cmd_audit(args: &AuditArgs, out: &mut dyn Write) -> Result<u8> {
    let logs = if args.logs.is_empty() {
        vec![PathBuf::from("/var/lib/wgfleet/audit.jsonl")]
    } else {
        args.logs.clone()
    };
    let records = read_logs(&logs)?;
    let events = confirmations(&records);
    if args.confirmations {
        if args.json {
            write_out(out, &format!("{:#}\n", serde_json::json!(events)))?;
        } else {
            write_out(out, &confirmations_text(&events))?;
        }
        return Ok(0);
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
        write_out(out, &intervals_text(&found))?;
        // Rollbacks are what an operator reading the log must not miss.
        if args.owner.is_none() && args.client.is_none() && !events.is_empty() {
            write_out(out, "\nconfirmations:\n")?;
            write_out(out, &confirmations_text(&events))?;
        }
    }
    Ok(0)
}

/// A change held to a handshake with a hub, and how it ended (`audit --confirmations`).
#[derive(Debug, serde::Serialize)]
pub struct ConfirmationEvent {
    pub time: String,
    pub host: String,
    pub network: String,
    #[serde(flatten)]
    pub verdict: crate::confirm::Verdict,
}

fn confirmations(records: &[Record]) -> Vec<ConfirmationEvent> {
    records
        .iter()
        .filter_map(|r| {
            Some(ConfirmationEvent {
                time: r.time.clone(),
                host: r.host.clone(),
                network: r.network.clone(),
                verdict: r.confirmation.clone()?,
            })
        })
        .collect()
}

/// One line per event; escaped like the intervals (a log may come from another host).
fn confirmations_text(events: &[ConfirmationEvent]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {} {}: {}\n",
                printable(&e.time),
                printable(&e.host),
                printable(&e.network),
                printable(&e.verdict.to_string())
            )
        })
        .collect()
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
        what: "audit log",
        source,
    };
    let file = std::fs::File::open(log).map_err(read_err)?;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(read_err)?;
        if line.trim().is_empty() {
            continue;
        }
        records.push(parse_record(log, i + 1, &line)?);
    }
    Ok(())
}

/// One line of an audit log. The log may come from another host: a bad line is an error naming
/// the file and line, never a panic.
fn parse_record(log: &Path, line_no: usize, line: &str) -> Result<Record> {
    serde_json::from_str(line).map_err(|e| Error::Parse {
        path: log.to_owned(),
        line: line_no,
        column: e.column(),
        field: "(audit record)".into(),
        message: e.to_string(),
    })
}

/// The records of a whole log's text, as `read_log` reads them (for the fuzzer).
pub fn parse_log(log: &Path, text: &str) -> Result<Vec<Record>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| parse_record(log, i + 1, l))
        .collect()
}

/// One line per interval. Every field comes from a log file, so every field is escaped: a peer
/// named with a terminal sequence or a newline prints as inert text.
pub fn intervals_text(found: &[Interval]) -> String {
    let mut text = String::new();
    for i in found {
        let owner = i
            .owner
            .as_ref()
            .map(|o| format!(" ({})", printable(o)))
            .unwrap_or_default();
        let until = i
            .until
            .as_deref()
            .map_or("now (still there)".into(), printable);
        text.push_str(&format!(
            "{}{owner} on {} {}: {} → {until}\n",
            printable(&i.peer),
            printable(&i.host),
            printable(&i.network),
            printable(&i.from)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rollback is read back from the log and printed as one inert line; entries without a
    /// confirmation (the common case) list nothing.
    #[test]
    fn confirmations_are_read_back_and_escaped() {
        let log = concat!(
            r#"{"time":"2026-11-30T12:00:00Z","host":"w1","network":"wg0","added":[{"name":"cp"}]}"#,
            "\n",
            r#"{"time":"2026-11-30T12:01:00Z","host":"w1","network":"wg0","confirmation":{"status":"rolled-back","reason":"no handshake\u001b[2J"}}"#,
            "\n",
            r#"{"time":"2026-11-30T12:02:00Z","host":"w1","network":"wg0","confirmation":{"status":"confirmed","peer":"cp","afterMs":420}}"#,
        );
        let records = parse_log(Path::new("audit.jsonl"), log).unwrap();
        let events = confirmations(&records);
        assert_eq!(
            confirmations_text(&events),
            "2026-11-30T12:01:00Z w1 wg0: rolled back: no handshake\\u{1b}[2J\n\
             2026-11-30T12:02:00Z w1 wg0: confirmed by a handshake with cp 0.4 s after the change\n"
        );
        assert_eq!(
            serde_json::json!(events)[1],
            serde_json::json!({"time": "2026-11-30T12:02:00Z", "host": "w1", "network": "wg0",
                               "status": "confirmed", "peer": "cp", "afterMs": 420})
        );
    }
}
