//! Who peers with whom: each [Peer] matched to the member it names.

use super::*;

impl<'f> NetImport<'f, '_> {
    pub(crate) fn classify_entries(&mut self) {
        let owner: BTreeMap<String, String> = self
            .members
            .iter()
            .map(|(n, m)| (m.key.clone(), n.clone()))
            .collect();
        let names: Vec<String> = self.members.keys().cloned().collect();
        let mut unmatched: Vec<(String, &'f ConfFile, &'f PeerSec)> = Vec::new();
        for from in &names {
            let file = self.member_file(from);
            for sec in &file.peers {
                let Some(key) = sec.key() else {
                    self.f.error(
                        "no-public-key",
                        format!("a [Peer] on {from} has no PublicKey: wg-quick refuses the file (\"A peer is missing a public key\"); the section is not imported"),
                        vec![file.place(sec.header)],
                    );
                    continue;
                };
                if let Some(line) = sec.bad_psk {
                    self.f.error(
                        "bad-value",
                        format!(
                            "the PresharedKey of {from}'s peer {key} is not a key (wg-quick refuses the file); not imported"
                        ),
                        vec![file.place(line)],
                    );
                }
                match owner.get(key) {
                    Some(to) if to == from => self.f.warn(
                        "self-peer",
                        format!("{from} lists its own public key as a peer; not imported"),
                        file.places(sec.public_key.as_ref().map(|(_, l)| *l)),
                    ),
                    Some(to) => {
                        let allowed = self.parse_allowed(file, sec);
                        let k = (from.clone(), to.clone());
                        if let Some(old) = self.entries.get(&k) {
                            let mut places = old.key_place();
                            places.extend(file.places(sec.public_key.as_ref().map(|(_, l)| *l)));
                            self.f.warn(
                                "duplicate-peer",
                                format!("{from} has two [Peer] sections for {to}; the last one is imported"),
                                places,
                            );
                        }
                        self.entries.insert(
                            k,
                            Entry {
                                file,
                                sec,
                                stale: false,
                                allowed,
                            },
                        );
                    }
                    None => unmatched.push((from.clone(), file, sec)),
                }
            }
        }
        // A key no member owns, on a host that has no entry for some member with that member's
        // address (or endpoint): that member's old key.
        let mut endpoints: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for ((_, to), e) in &self.entries {
            if let Some((ep, _)) = &e.sec.endpoint {
                endpoints.entry(ep.clone()).or_default().insert(to.clone());
            }
        }
        for (from, file, sec) in unmatched {
            let allowed = self.parse_allowed(file, sec);
            let candidates: Vec<String> = self
                .members
                .iter()
                .filter(|(n, _)| {
                    **n != from && !self.entries.contains_key(&(from.clone(), (*n).clone()))
                })
                .filter(|(_, m)| m.orig_host_prefixes().iter().any(|p| allowed.contains(p)))
                .map(|(n, _)| n.clone())
                .collect();
            let by_endpoint: Vec<String> = sec
                .endpoint
                .as_ref()
                .and_then(|(ep, _)| endpoints.get(ep))
                .into_iter()
                .flatten()
                .filter(|n| {
                    **n != from && !self.entries.contains_key(&(from.clone(), (*n).clone()))
                })
                .cloned()
                .collect();
            let to = match (candidates.as_slice(), by_endpoint.as_slice()) {
                ([one], _) => Some(one.clone()),
                ([], [one]) => Some(one.clone()),
                _ => None,
            };
            match to {
                Some(to) => {
                    self.entries.insert(
                        (from, to),
                        Entry {
                            file,
                            sec,
                            stale: true,
                            allowed,
                        },
                    );
                }
                None => self.foreign.push((from, file, sec, allowed)),
            }
        }
    }
}
