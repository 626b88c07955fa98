//! The audit log: one JSON line per action taken, appended to `audit.jsonl` (0600, in a 0700
//! directory). It records what changed and how it ended, never a secret.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::Serialize;

use crate::diff::Action;
use crate::fsutil::ensure_private_dir;

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
}

pub fn append(dir: &Path, entry: &Entry<'_>) -> std::io::Result<()> {
    ensure_private_dir(dir)?;
    let mut line = serde_json::to_string(entry).map_err(std::io::Error::other)?;
    line.push('\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(dir.join("audit.jsonl"))?;
    // One write of a whole line with O_APPEND: concurrent writers never interleave inside a line.
    file.write_all(line.as_bytes())?;
    file.sync_data()
}
