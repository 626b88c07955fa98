//! The record of the steps in progress: `pending.json` under the state directory, written
//! (atomically, 0600) before a step touches anything and cleared once it has ended, as
//! switch-to-configuration-ng records the units it still has to start. A run killed between
//! writing a file and its job leaves the record behind, and the next run finishes the job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::fsutil::{ensure_private_dir, write_atomic};
use crate::operations::{Op, Operations};

/// One step that started and has not ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub started: String,
    /// The unit was running before the step (the rollback brings it back up).
    pub was_running: bool,
    /// The digest of the config the step writes, never the config (it holds the private key):
    /// the next run tells from it whether the write happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes: Option<String>,
    pub operations: Operations,
    /// The step was held to a handshake with a hub (`confirm`): its link worked before it. A
    /// run killed while it waited leaves a change nobody confirmed, which the next run holds
    /// to a handshake again, whatever the handshakes since say.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    /// The links (public keys) the held step found working: the next run holds the change to
    /// exactly these. Empty in a record of an older wgfleet that did not name them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub worked: Vec<String>,
}

impl Record {
    /// What the next run takes to have worked before the interrupted step.
    pub fn worked_before(&self) -> crate::confirm::WorkedBefore<'_> {
        use crate::confirm::WorkedBefore;
        match (self.held, self.worked.is_empty()) {
            (false, _) => WorkedBefore::Live,
            (true, true) => WorkedBefore::HeldUnnamed,
            (true, false) => WorkedBefore::Held(&self.worked),
        }
    }
}

/// Where the config to go back to is, if this run's job fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Previous<'a> {
    /// What is on disk now (the interrupted step did not get as far as writing).
    OnDisk,
    /// What the interrupted step replaced, kept at this path (`None`: there was nothing).
    Kept(Option<&'a Path>),
}

impl Record {
    /// The config to go back to: the one the interrupted step replaced if it got as far as
    /// writing `on_disk`, else `on_disk` itself.
    pub fn previous(&self, on_disk: Option<&str>) -> Previous<'_> {
        let kept = self.operations.ops.iter().find_map(|op| match op {
            Op::WriteConfig { keep_previous, .. } => Some(keep_previous.as_deref()),
            _ => None,
        });
        match kept {
            Some(kept) if self.writes.is_some() && self.writes == on_disk.map(config_digest) => {
                Previous::Kept(kept)
            }
            _ => Previous::OnDisk,
        }
    }
}

pub fn config_digest(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The records by network (`host` for the host-wide step).
#[derive(Debug, Default)]
pub struct Pending {
    path: PathBuf,
    records: BTreeMap<String, Record>,
}

impl Pending {
    pub fn load(state: &Path) -> Result<Self> {
        let path = state.join("pending.json");
        let records = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::State {
                path: path.clone(),
                message: format!(
                    "the record of an interrupted run is unreadable ({e}); remove it and run \
                     apply again"
                ),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(Error::Write { path, source }),
        };
        Ok(Pending { path, records })
    }

    pub fn get(&self, network: &str) -> Option<&Record> {
        self.records.get(network)
    }

    /// Records a step before it touches anything.
    pub fn begin(&mut self, network: &str, record: Record) -> Result<()> {
        self.records.insert(network.to_owned(), record);
        self.save()
    }

    /// Forgets a step that has ended (done, or rolled back: the audit log says which).
    pub fn end(&mut self, network: &str) -> Result<()> {
        if self.records.remove(network).is_some() {
            self.save()?;
        }
        Ok(())
    }

    /// Forgets the records of networks that no step of this run acts on (all done, or gone).
    pub fn retain(&mut self, acting: &[&str]) -> Result<()> {
        let before = self.records.len();
        self.records
            .retain(|network, _| acting.contains(&network.as_str()));
        if self.records.len() != before {
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> Result<()> {
        let werr = |source| Error::Write {
            path: self.path.clone(),
            source,
        };
        if self.records.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(werr(e)),
                _ => Ok(()),
            };
        }
        if let Some(dir) = self.path.parent() {
            ensure_private_dir(dir).map_err(werr)?;
        }
        let mut text = serde_json::to_string_pretty(&self.records).unwrap_or_default();
        text.push('\n');
        write_atomic(&self.path, text.as_bytes(), 0o600).map_err(werr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::Action;
    use crate::operations::Rollback;

    fn record(writes: Option<&str>) -> Record {
        Record {
            started: "2026-11-30T00:00:00Z".into(),
            was_running: true,
            writes: writes.map(config_digest),
            operations: Operations {
                network: "wg0".into(),
                action: Action::Restart,
                ops: vec![Op::WriteConfig {
                    path: "/etc/wireguard/wg0.conf".into(),
                    keep_previous: Some("/etc/wireguard/wg0.conf.wgfleet-previous".into()),
                }],
                on_failure: Rollback::Nothing,
            },
            held: false,
            worked: vec![],
        }
    }

    #[test]
    fn a_record_survives_until_its_step_ends() {
        let dir = tempfile::tempdir().unwrap();
        let mut pending = Pending::load(dir.path()).unwrap();
        pending.begin("wg0", record(Some("new"))).unwrap();
        let again = Pending::load(dir.path()).unwrap();
        assert_eq!(again.get("wg0"), Some(&record(Some("new"))));
        let text = std::fs::read_to_string(dir.path().join("pending.json")).unwrap();
        assert!(
            !text.contains("new\""),
            "the config is not in the record: {text}"
        );
        pending.end("wg0").unwrap();
        assert!(!dir.path().join("pending.json").exists());
        pending.begin("wg0", record(None)).unwrap();
        pending.begin("host", record(None)).unwrap();
        pending.retain(&["wg0"]).unwrap();
        let again = Pending::load(dir.path()).unwrap();
        assert!(again.get("wg0").is_some() && again.get("host").is_none());
        pending.end("wg0").unwrap();
        assert!(Pending::load(dir.path()).unwrap().get("wg0").is_none());
        // A held step says so; a record without the field (an older wgfleet) was not held.
        let held = Record {
            held: true,
            ..record(None)
        };
        pending.begin("wg0", held.clone()).unwrap();
        let text = std::fs::read_to_string(dir.path().join("pending.json")).unwrap();
        assert!(text.contains("\"held\": true"), "{text}");
        assert_eq!(Pending::load(dir.path()).unwrap().get("wg0"), Some(&held));
        let old = text.replace(",\n    \"held\": true", "");
        assert!(!old.contains("held"), "{old}");
        std::fs::write(dir.path().join("pending.json"), old).unwrap();
        assert!(!Pending::load(dir.path()).unwrap().get("wg0").unwrap().held);
    }

    #[test]
    fn a_held_record_names_the_links_it_held_and_an_older_one_still_reads() {
        use crate::confirm::WorkedBefore;
        let dir = tempfile::tempdir().unwrap();
        let mut pending = Pending::load(dir.path()).unwrap();
        let held = Record {
            held: true,
            worked: vec!["HUB".into()],
            ..record(None)
        };
        pending.begin("wg0", held.clone()).unwrap();
        let again = Pending::load(dir.path()).unwrap();
        let got = again.get("wg0").unwrap();
        assert_eq!(got, &held);
        assert_eq!(got.worked_before(), WorkedBefore::Held(&["HUB".to_owned()]));
        // Written by a wgfleet before the field: held, links unnamed.
        let text = std::fs::read_to_string(dir.path().join("pending.json")).unwrap();
        let old = text.replace(",\n    \"worked\": [\n      \"HUB\"\n    ]", "");
        assert!(!old.contains("worked"), "{old}");
        std::fs::write(dir.path().join("pending.json"), old).unwrap();
        let again = Pending::load(dir.path()).unwrap();
        assert_eq!(
            again.get("wg0").unwrap().worked_before(),
            WorkedBefore::HeldUnnamed
        );
        assert_eq!(record(None).worked_before(), WorkedBefore::Live);
    }

    #[test]
    fn the_digest_tells_whether_the_write_happened() {
        let r = record(Some("new"));
        let kept = Path::new("/etc/wireguard/wg0.conf.wgfleet-previous");
        assert_eq!(r.previous(Some("new")), Previous::Kept(Some(kept)));
        assert_eq!(r.previous(Some("old")), Previous::OnDisk);
        assert_eq!(r.previous(None), Previous::OnDisk);
        // A step that wrote nothing leaves what is on disk as the thing to go back to.
        let mut job_only = record(None);
        job_only.operations.ops.clear();
        assert_eq!(job_only.previous(Some("new")), Previous::OnDisk);
    }

    #[test]
    fn an_unreadable_record_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pending.json"), "{").unwrap();
        let e = Pending::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("pending.json") && e.contains("remove it"), "{e}");
    }
}
