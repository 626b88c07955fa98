//! The audit log: one JSON line per action taken, appended to `audit.jsonl` (0600, in a 0700
//! directory). It records what changed and how it ended, never a secret.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

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
    /// The interface's peers after the action (when it succeeded): the state audits read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<AuditPeer>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPeer {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// What `audit` reads back of an entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub time: String,
    pub host: String,
    pub network: String,
    #[serde(default)]
    pub peers: Option<Vec<AuditPeer>>,
}

/// A peer present on one host's interface from `from` until `until` (`None`: still there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Interval {
    pub peer: String,
    pub owner: Option<String>,
    pub host: String,
    pub network: String,
    pub from: String,
    pub until: Option<String>,
}

/// Access intervals from the state snapshots in audit records (any order, several hosts' logs).
pub fn intervals(mut records: Vec<Record>) -> Vec<Interval> {
    records.retain(|r| r.peers.is_some());
    // RFC 3339 in UTC with a fixed width sorts as text.
    records.sort_by(|a, b| (&a.host, &a.network, &a.time).cmp(&(&b.host, &b.network, &b.time)));
    let mut done = Vec::new();
    let mut open: Vec<Interval> = Vec::new();
    let mut key: Option<(String, String)> = None;
    for r in records {
        let k = (r.host.clone(), r.network.clone());
        if key.as_ref() != Some(&k) {
            done.append(&mut open);
            key = Some(k);
        }
        let now_present = r.peers.unwrap_or_default();
        let (ended, still): (Vec<Interval>, Vec<Interval>) = open
            .into_iter()
            .partition(|i| !now_present.iter().any(|p| p.name == i.peer));
        done.extend(ended.into_iter().map(|i| Interval {
            until: Some(r.time.clone()),
            ..i
        }));
        open = still;
        for p in now_present {
            if !open.iter().any(|i| i.peer == p.name) {
                open.push(Interval {
                    peer: p.name,
                    owner: p.owner,
                    host: r.host.clone(),
                    network: r.network.clone(),
                    from: r.time.clone(),
                    until: None,
                });
            }
        }
    }
    done.append(&mut open);
    done
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(time: &str, host: &str, peers: &[&str]) -> Record {
        let peers = peers
            .iter()
            .map(|p| AuditPeer {
                name: (*p).into(),
                owner: None,
            })
            .collect();
        Record {
            time: time.into(),
            host: host.into(),
            network: "wg0".into(),
            peers: Some(peers),
        }
    }

    #[test]
    fn presence_becomes_intervals() {
        let got = intervals(vec![
            rec("2026-01-03T00:00:00Z", "cp", &["a"]),
            rec("2026-01-01T00:00:00Z", "cp", &["a", "bob"]),
            rec("2026-01-02T00:00:00Z", "cp", &["a", "bob"]),
            rec("2026-01-02T00:00:00Z", "nl", &["bob"]),
        ]);
        let bob: Vec<_> = got
            .iter()
            .filter(|i| i.peer == "bob")
            .map(|i| (i.host.as_str(), i.from.as_str(), i.until.as_deref()))
            .collect();
        assert_eq!(
            bob,
            vec![
                ("cp", "2026-01-01T00:00:00Z", Some("2026-01-03T00:00:00Z")),
                ("nl", "2026-01-02T00:00:00Z", None)
            ]
        );
    }
}
