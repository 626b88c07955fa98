//! Clients: peers no host owns (phones, laptops, leftovers).

use super::*;

impl<'f> NetImport<'f, '_> {
    pub(crate) fn clients(&mut self, used_names: &mut BTreeSet<String>, unknown: &mut usize) {
        let mut by_key: BTreeMap<String, Vec<(String, &'f ConfFile, &'f PeerSec)>> =
            BTreeMap::new();
        let mut parsed: BTreeMap<(String, usize), Vec<IpNet>> = BTreeMap::new();
        for (from, file, sec, allowed) in std::mem::take(&mut self.foreign) {
            let key = sec.key().unwrap_or_default().to_owned();
            if syntax::check_key(&key).is_err() {
                self.f.warn(
                    "bad-value",
                    format!("PublicKey {key:?} of a [Peer] on {from} is not a WireGuard key (32 bytes of base64); not imported"),
                    file.places(sec.public_key.as_ref().map(|(_, l)| *l)),
                );
                continue;
            }
            if let Some(host) = self.key_owners.get(&key) {
                let why = if self.members.contains_key(host) {
                    format!("{host} uses another key in {}", self.name)
                } else if self.file_hosts.contains(host) {
                    format!(
                        "{host} itself is not imported into {} (see above)",
                        self.name
                    )
                } else if let Some(files) = self.files_of.get(host) {
                    format!(
                        "{host}'s file is {}, not a {}.conf, and they could not be taken as one network",
                        files.join(", "),
                        self.name
                    )
                } else {
                    format!(
                        "no {}.conf of {host} was given; add it to the import to make {host} a member",
                        self.name
                    )
                };
                self.f.warn(
                    "not-imported",
                    format!("not imported: {from}'s [Peer] for host {host} ({key}): {why}"),
                    file.places(sec.public_key.as_ref().map(|(_, l)| *l)),
                );
                continue;
            }
            parsed.insert((file.src.display.clone(), sec.header), allowed);
            by_key.entry(key).or_default().push((from, file, sec));
        }
        let member_names: Vec<String> = self.members.keys().cloned().collect();
        for (key, seen) in by_key {
            let mut addrs4 = Vec::new();
            let mut addrs6 = Vec::new();
            let mut dropped: Vec<Place> = Vec::new();
            let mut dropped_text = BTreeSet::new();
            for (_, file, sec) in &seen {
                let allowed = &parsed[&(file.src.display.clone(), sec.header)];
                let (mut a4, mut a6) = (None, None);
                for p in allowed {
                    match p {
                        IpNet::V4(n)
                            if is_host_prefix(p) && self.inside_subnet(p) && a4.is_none() =>
                        {
                            a4 = Some(n.addr())
                        }
                        IpNet::V6(n)
                            if is_host_prefix(p) && self.inside_subnet(p) && a6.is_none() =>
                        {
                            a6 = Some(n.addr())
                        }
                        _ => {
                            dropped_text.insert(p.to_string());
                            dropped.extend(file.places(sec.allowed_lines()));
                        }
                    }
                }
                addrs4.push(a4);
                addrs6.push(a6);
            }
            let a4 = most_common(addrs4.iter().copied()).flatten();
            let a6 = most_common(addrs6.iter().copied()).flatten();
            let key_places: Vec<Place> = seen
                .iter()
                .flat_map(|(_, f, s)| f.places(s.public_key.as_ref().map(|(_, l)| *l)))
                .collect();
            let mut on: Vec<String> = seen.iter().map(|(h, ..)| h.clone()).collect();
            on.dedup();
            let on_text = on.join(", ");
            if a4.is_none() && a6.is_none() {
                let mut places = key_places.clone();
                places.extend(dropped.iter().cloned());
                self.f.warn(
                    "unknown-peer",
                    format!(
                        "peer {key} on {on_text} is no host's key and has no address in the network's subnet ({}): a client or a leftover? Not imported: applying removes it from {on_text}",
                        if dropped_text.is_empty() {
                            "no AllowedIPs".to_owned()
                        } else {
                            format!("AllowedIPs {}", dropped_text.iter().cloned().collect::<Vec<_>>().join(", "))
                        }
                    ),
                    places,
                );
                continue;
            }
            if addrs4
                .iter()
                .chain(std::iter::once(&a4))
                .collect::<BTreeSet<_>>()
                .len()
                > 2
                || addrs6
                    .iter()
                    .chain(std::iter::once(&a6))
                    .collect::<BTreeSet<_>>()
                    .len()
                    > 2
            {
                let places: Vec<Place> = seen
                    .iter()
                    .flat_map(|(_, f, s)| f.places(s.allowed_lines()))
                    .collect();
                self.f.warn(
                    "allowed-ips-disagree",
                    format!("the hosts route different addresses to peer {key}; the most common is imported"),
                    places,
                );
            }
            if !dropped.is_empty() {
                self.f.warn(
                    "not-imported",
                    format!(
                        "not imported: AllowedIPs {} of peer {key} on {on_text}; a client's AllowedIPs are its own addresses",
                        dropped_text.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                    dropped.clone(),
                );
            }
            // Name: its comment, else unknown-N.
            let label = seen.iter().find_map(|(_, _, s)| s.label.clone());
            let from_label = label.as_deref().map(sanitize_name).filter(|n| {
                !n.is_empty() && syntax::check_name(n).is_ok() && !used_names.contains(n)
            });
            let name = match &from_label {
                Some(n) => n.clone(),
                None => loop {
                    *unknown += 1;
                    let n = format!("unknown-{unknown}");
                    if !used_names.contains(&n) {
                        break n;
                    }
                },
            };
            used_names.insert(name.clone());
            let how = if from_label.is_some() {
                format!("imported as client `{name}` (named after its comment)")
            } else {
                format!("imported as client `{name}`")
            };
            self.f.warn(
                "unknown-peer",
                format!(
                    "peer {key} on {on_text} is no host's key: a phone or laptop, or a leftover (a revoked contractor?); {how}: remove it from the fleet if it should no longer have access"
                ),
                key_places.clone(),
            );
            // Where it connects.
            let mut hubs: Vec<String> = Vec::new();
            for h in &on {
                if self.is_mesh() || self.is_hub(h) {
                    if !hubs.contains(h) {
                        hubs.push(h.clone());
                    }
                } else {
                    let places = seen
                        .iter()
                        .filter(|(x, ..)| x == h)
                        .flat_map(|(_, f, s)| f.places(s.public_key.as_ref().map(|(_, l)| *l)))
                        .collect();
                    self.f.warn(
                        "not-imported",
                        format!(
                            "client `{name}` is on spoke {h}; wgfleet puts clients on hubs only ({}), so applying removes it from {h}",
                            self.hubs.join(", ")
                        ),
                        places,
                    );
                }
            }
            hubs.sort();
            let all: Vec<String> = if self.is_mesh() {
                member_names.clone()
            } else {
                let mut h = self.hubs.clone();
                h.sort();
                h
            };
            let hubs = (hubs != all).then_some(hubs).filter(|h| !h.is_empty());
            for (h, f, s) in &seen {
                let mut lines = Vec::new();
                if let Some((_, l)) = &s.endpoint {
                    lines.push(*l);
                }
                if s.keepalive_secs() > 0 {
                    lines.extend(s.keepalive.as_ref().map(|(_, l)| *l));
                }
                if !lines.is_empty() {
                    self.f.note(
                        "not-imported",
                        format!("not imported: Endpoint/PersistentKeepalive of client `{name}` on {h}; hosts never dial clients in wgfleet (the client dials them)"),
                        f.places(lines),
                    );
                }
            }
            // One preshared key for all its hubs.
            let psks: Vec<Option<Zeroizing<String>>> = seen
                .iter()
                .map(|(_, _, s)| s.psk.as_ref().map(|(k, _)| k.to_base64()))
                .collect();
            let same = psks.windows(2).all(|w| w[0] == w[1]);
            let psk = if same {
                seen.first().and_then(|(_, f, s)| {
                    s.psk
                        .as_ref()
                        .map(|(k, l)| (k, (f.src.display.clone(), *l)))
                })
            } else {
                let places = seen
                    .iter()
                    .filter_map(|(_, f, s)| s.psk.as_ref().map(|(_, l)| f.place(*l)))
                    .collect();
                self.f.warn(
                    "psk-mismatch",
                    format!("client `{name}` has different (or missing) PresharedKeys on {on_text}; wgfleet gives a client one, so none is imported: add one with `wgfleet keygen --psk` and give it to the client"),
                    places,
                );
                None
            };
            let description = label.filter(|l| *l != name && syntax::check_text(l).is_ok());
            self.clients.push(ClientOut {
                name,
                key,
                addr4: a4,
                addr6: a6,
                hubs,
                description,
                psk,
                seen,
            });
        }
    }
}
