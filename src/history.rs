//! Access as a history: the audit log's entries read back (`Record`) and folded into intervals
//! (who had a peer on which host's interface, from when until when). Pure; the shell reads
//! and writes the log (`shell::audit`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPeer {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// What `audit` reads back of an entry; logs written before entries carried `added` and
/// `removed` have a snapshot (`peers`) in every entry, and read the same way.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub time: String,
    pub host: String,
    pub network: String,
    #[serde(default)]
    pub added: Vec<AuditPeer>,
    #[serde(default)]
    pub removed: Vec<AuditPeer>,
    #[serde(default)]
    pub peers: Option<Vec<AuditPeer>>,
    #[serde(default)]
    pub confirmation: Option<crate::confirm::Verdict>,
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

/// Access intervals from the records of one or more hosts' logs, each log in the order it was
/// written. Linear in the records' size: a snapshot closes what it does not list and opens what
/// is new; `added` and `removed` open and close.
pub fn intervals(mut records: Vec<Record>) -> Vec<Interval> {
    // RFC 3339 in UTC with a fixed width sorts as text; the sort is stable, so entries of the
    // same second keep the order in which they were written.
    records.sort_by(|a, b| (&a.host, &a.network, &a.time).cmp(&(&b.host, &b.network, &b.time)));
    let mut done = Vec::new();
    let mut open: HashMap<String, Interval> = HashMap::new();
    let mut key: Option<(String, String)> = None;
    let close =
        |open: &mut HashMap<String, Interval>, name: &str, time: &str, done: &mut Vec<Interval>| {
            if let Some(i) = open.remove(name) {
                done.push(Interval {
                    until: Some(time.to_owned()),
                    ..i
                });
            }
        };
    for r in records {
        if key
            .as_ref()
            .is_none_or(|(h, n)| *h != r.host || *n != r.network)
        {
            done.extend(open.drain().map(|(_, i)| i));
            key = Some((r.host.clone(), r.network.clone()));
        }
        let mut opening = r.added;
        if let Some(snapshot) = r.peers {
            let present: std::collections::HashSet<&str> =
                snapshot.iter().map(|p| p.name.as_str()).collect();
            let gone: Vec<String> = open
                .keys()
                .filter(|name| !present.contains(name.as_str()))
                .cloned()
                .collect();
            for name in gone {
                close(&mut open, &name, &r.time, &mut done);
            }
            opening.extend(snapshot);
        }
        for p in &r.removed {
            close(&mut open, &p.name, &r.time, &mut done);
        }
        for p in opening {
            open.entry(p.name.clone()).or_insert_with(|| Interval {
                peer: p.name,
                owner: p.owner,
                host: r.host.clone(),
                network: r.network.clone(),
                from: r.time.clone(),
                until: None,
            });
        }
    }
    done.extend(open.into_values());
    done.sort_by(|a, b| {
        (&a.host, &a.network, &a.from, &a.peer).cmp(&(&b.host, &b.network, &b.from, &b.peer))
    });
    done
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn rec(time: &str, host: &str, peers: &[&str]) -> Record {
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
            added: Vec::new(),
            removed: Vec::new(),
            peers: Some(peers),
            confirmation: None,
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

    fn peer(name: &str) -> AuditPeer {
        AuditPeer {
            name: name.into(),
            owner: Some(format!("{name}@example.com")),
        }
    }

    #[test]
    fn events_and_snapshots_give_the_same_intervals() {
        let t = |d: u32| format!("2026-01-0{d}T00:00:00Z");
        let event = |d: u32, added: &[&str], removed: &[&str]| Record {
            time: t(d),
            host: "cp".into(),
            network: "wg0".into(),
            added: added.iter().map(|n| peer(n)).collect(),
            removed: removed.iter().map(|n| peer(n)).collect(),
            peers: None,
            confirmation: None,
        };
        // The same history, written by an old wgfleet (a snapshot every run) and a new one (a
        // snapshot when first managed, then what changed).
        let old: Vec<Record> = [
            (1, &["a", "b"][..]),
            (2, &["a", "b"]),
            (3, &["a", "c"]),
            (5, &["c"]),
        ]
        .iter()
        .map(|(d, peers)| Record {
            peers: Some(peers.iter().map(|n| peer(n)).collect()),
            ..event(*d, &[], &[])
        })
        .collect();
        let new = vec![
            Record {
                peers: Some(vec![peer("a"), peer("b")]),
                ..event(1, &[], &[])
            },
            event(3, &["c"], &["b"]),
            event(5, &[], &["a"]),
        ];
        let interval = |name: &str, from: u32, until: Option<u32>| Interval {
            peer: name.into(),
            owner: peer(name).owner,
            host: "cp".into(),
            network: "wg0".into(),
            from: t(from),
            until: until.map(t),
        };
        let want = vec![
            interval("a", 1, Some(5)),
            interval("b", 1, Some(3)),
            interval("c", 3, None),
        ];
        assert_eq!(intervals(old), want);
        assert_eq!(intervals(new.clone()), want);
        // Records of an old log followed by a new one (an upgrade) read as one history.
        let mut mixed = vec![Record {
            peers: Some(vec![peer("a"), peer("b")]),
            ..event(1, &[], &[])
        }];
        mixed.extend(new.into_iter().skip(1));
        assert_eq!(intervals(mixed), want);
    }
}
