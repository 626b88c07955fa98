//! The audit log: one JSON line per change wgfleet made, appended to `audit.jsonl` (0600, in a
//! 0700 directory). An entry records what changed (peers added and removed, with their owners),
//! the action and how it ended, never a secret. A run that changes nothing appends nothing: when
//! the host was last seen in sync is in `last-run.json` beside it. A full list of an interface's
//! peers (a snapshot) is written when wgfleet first manages it, when the log is rotated, and when
//! asked (`apply --audit-snapshot`). The log rolls over at `ROLL_BYTES`, keeping `KEEP` old files
//! (`audit.jsonl.1` the newest), so it never holds more than about (KEEP + 1) × ROLL_BYTES.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::diff::Action;
use crate::fsutil::{ensure_private_dir, write_atomic};
pub use crate::history::AuditPeer;

/// The size at which `audit.jsonl` is rolled over.
pub const ROLL_BYTES: u64 = 8 << 20;
/// How many rolled-over files are kept.
pub const KEEP: usize = 4;

pub const LOG_NAME: &str = "audit.jsonl";
pub const LAST_RUN_NAME: &str = "last-run.json";

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry<'a> {
    pub time: String,
    pub host: &'a str,
    pub fleet_digest: &'a str,
    /// The interface, or `host` for firewall and sysctls.
    pub network: &'a str,
    pub action: Action,
    pub changes: serde_json::Value,
    pub result: String,
    /// Peers the action added and removed (when it succeeded).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<AuditPeer>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<AuditPeer>,
    /// All of the interface's peers after the action: a snapshot (see the module's comment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<AuditPeer>>,
    /// A change that touched the links to the hubs: confirmed, rolled back, or not held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<&'a crate::confirm::Verdict>,
    /// The git commit the fleet came from (`--source`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<&'a str>,
}

/// A line for the fleet's git source: a commit accepted, or why a pull gave no new fleet
/// (written when that reason changes, not at every run of the timer).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceEntry<'a> {
    pub time: String,
    pub host: &'a str,
    /// Always `source`, so that `audit` reads the line as one without peers.
    pub network: &'static str,
    /// `source-accepted` or `source-refused`.
    pub action: &'static str,
    pub url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<&'a str>,
    pub result: String,
}

/// The files of one log, oldest first: its rolled-over files, then the log itself.
pub fn log_files(log: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..=KEEP)
        .rev()
        .map(|n| rolled(log, n))
        .filter(|p| p.is_file())
        .collect();
    files.push(log.to_owned());
    files
}

fn rolled(log: &Path, n: usize) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(format!(".{n}"));
    name.into()
}

/// Rolls the log in `dir` over when it has reached `ROLL_BYTES`: `audit.jsonl` becomes
/// `audit.jsonl.1`, and the oldest beyond `KEEP` is dropped. Returns whether it did, so that
/// the caller starts the new file with snapshots.
pub fn roll_if_full(dir: &Path) -> std::io::Result<bool> {
    let log = dir.join(LOG_NAME);
    match std::fs::metadata(&log) {
        Ok(m) if m.len() >= ROLL_BYTES => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    for n in (1..KEEP).rev() {
        match std::fs::rename(rolled(&log, n), rolled(&log, n + 1)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    std::fs::rename(&log, rolled(&log, 1))?;
    Ok(true)
}

/// Left by a roll-over that could not start the new file with snapshots (one made by
/// `apply --endpoints-only`, which observes no interface): the next full apply writes them.
pub const SNAPSHOT_DUE_NAME: &str = "audit.snapshot-due";

/// Rolls the log over when it is full, like a full apply, for a run that appends endpoint lines
/// only; a roll leaves [`SNAPSHOT_DUE_NAME`] for the next full apply.
pub fn roll_for_endpoints(dir: &Path) -> std::io::Result<()> {
    if roll_if_full(dir)? {
        write_atomic(&dir.join(SNAPSHOT_DUE_NAME), b"", 0o600)?;
    }
    Ok(())
}

/// Whether a roll-over left the snapshots to this run ([`roll_for_endpoints`]).
pub fn snapshot_due(dir: &Path) -> bool {
    dir.join(SNAPSHOT_DUE_NAME).exists()
}

/// The snapshots are written: the next roll-over decides again.
pub fn snapshot_written(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(SNAPSHOT_DUE_NAME)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// An endpoint set live (`wg set … endpoint`): a line of its own, with `action` "set-endpoint".
/// Readers that look for peers (`audit`) find none in it, so logs with and without these lines
/// read alike.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointEntry<'a> {
    pub time: String,
    pub host: &'a str,
    pub fleet_digest: &'a str,
    pub network: &'a str,
    pub action: &'static str,
    pub peer: &'a str,
    pub public_key: &'a str,
    pub from: Option<&'a str>,
    pub to: &'a str,
    /// The fleet's endpoint `to` is an address of, and why it was chosen.
    pub endpoint: &'a str,
    pub reason: crate::endpoints::Reason,
    pub result: String,
}

pub fn append(dir: &Path, entry: &Entry<'_>) -> std::io::Result<()> {
    append_line(dir, entry)
}

/// Appends one JSON line of any kind of entry.
pub fn append_line(dir: &Path, entry: &impl Serialize) -> std::io::Result<()> {
    ensure_private_dir(dir)?;
    let mut line = serde_json::to_string(entry).map_err(std::io::Error::other)?;
    line.push('\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(dir.join(LOG_NAME))?;
    // One write of a whole line with O_APPEND: concurrent writers never interleave inside a line.
    file.write_all(line.as_bytes())?;
    file.sync_data()
}

/// When the host last ran, and how each interface ended: `status` shows it. Rewritten by every
/// run, changes or not (it is small), so that the audit log need not grow to say it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastRun {
    pub time: String,
    pub host: String,
    pub fleet_digest: String,
    /// Every interface was as the fleet says when the run ended.
    pub in_sync: bool,
    pub networks: Vec<LastRunNetwork>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastRunNetwork {
    pub network: String,
    pub action: Action,
    pub ok: bool,
}

pub fn write_last_run(dir: &Path, last: &LastRun) -> std::io::Result<()> {
    ensure_private_dir(dir)?;
    let mut text = serde_json::to_string_pretty(last).map_err(std::io::Error::other)?;
    text.push('\n');
    write_atomic(&dir.join(LAST_RUN_NAME), text.as_bytes(), 0o600)
}

pub fn read_last_run(dir: &Path) -> Option<LastRun> {
    serde_json::from_str(&std::fs::read_to_string(dir.join(LAST_RUN_NAME)).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::tests::rec;
    use crate::history::{Record, intervals};

    /// An endpoint line reads as a record without peers: `audit` reads a log holding them, and
    /// they change no interval.
    #[test]
    fn an_endpoint_line_reads_as_a_record_without_peers() {
        let dir = tempfile::tempdir().unwrap();
        let entry = EndpointEntry {
            time: "2026-01-02T00:00:00Z".into(),
            host: "spoke",
            fleet_digest: "sha256:x",
            network: "wg0",
            action: "set-endpoint",
            peer: "hub",
            public_key: "K",
            from: Some("192.0.2.1:51820"),
            to: "192.0.2.2:51820",
            endpoint: "hub.test:51820",
            reason: crate::endpoints::Reason::Moved,
            result: "ok".into(),
        };
        append_line(dir.path(), &entry).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOG_NAME)).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["action"], "set-endpoint");
        assert_eq!(line["reason"], "moved");
        let record: Record = serde_json::from_str(text.trim()).unwrap();
        assert!(record.added.is_empty() && record.removed.is_empty() && record.peers.is_none());
        let mut records = vec![rec("2026-01-01T00:00:00Z", "spoke", &["hub"]), record];
        records[1].host = "spoke".into();
        let got = intervals(records);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].until, None, "the endpoint line closed nothing");
    }

    #[test]
    fn the_log_rolls_over_and_keeps_a_bounded_number_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join(LOG_NAME);
        assert!(!roll_if_full(dir.path()).unwrap(), "no log yet");
        for round in 0..KEEP + 2 {
            std::fs::write(&log, vec![b'x'; ROLL_BYTES as usize - 1]).unwrap();
            assert!(!roll_if_full(dir.path()).unwrap());
            std::fs::write(&log, format!("{round}").repeat(ROLL_BYTES as usize)).unwrap();
            assert!(roll_if_full(dir.path()).unwrap());
            assert!(!log.exists());
        }
        let files = log_files(&log);
        assert_eq!(files.len(), KEEP + 1, "{files:?}");
        // Oldest first: the newest rolled file holds the last round.
        let newest = std::fs::read_to_string(&files[KEEP - 1]).unwrap();
        assert!(newest.starts_with(&format!("{}", KEEP + 1)));
        assert!(!rolled(&log, KEEP + 1).exists());
    }

    /// An endpoint run rolls a full log too, and leaves the snapshots to the next full apply.
    #[test]
    fn an_endpoint_run_rolls_over_and_leaves_the_snapshots_due() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join(LOG_NAME);
        std::fs::write(&log, "x").unwrap();
        roll_for_endpoints(dir.path()).unwrap();
        assert!(
            log.exists() && !snapshot_due(dir.path()),
            "not full: nothing"
        );
        std::fs::write(&log, vec![b'x'; ROLL_BYTES as usize]).unwrap();
        roll_for_endpoints(dir.path()).unwrap();
        assert!(!log.exists() && rolled(&log, 1).exists());
        assert!(snapshot_due(dir.path()));
        snapshot_written(dir.path()).unwrap();
        assert!(!snapshot_due(dir.path()));
        snapshot_written(dir.path()).unwrap();
    }
}
