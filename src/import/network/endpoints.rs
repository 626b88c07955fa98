//! Endpoints and keepalives: who dials whom, at which address and port.

use super::*;

impl<'f> NetImport<'f, '_> {
    pub(crate) fn endpoints(&mut self) {
        let names: Vec<String> = self.members.keys().cloned().collect();
        for x in &names {
            let mut dialers: Vec<(String, Endpoint, String, Place)> = Vec::new();
            for ((from, to), e) in &self.entries {
                if to != x {
                    continue;
                }
                let Some((text, line)) = &e.sec.endpoint else {
                    continue;
                };
                match syntax::parse_endpoint(text) {
                    Ok(ep) => dialers.push((from.clone(), ep, text.clone(), e.file.place(*line))),
                    Err(msg) => self.f.warn(
                        "bad-value",
                        format!("{from}'s Endpoint for {x}: {msg}; not imported"),
                        vec![e.file.place(*line)],
                    ),
                }
            }
            if dialers.is_empty() {
                continue;
            }
            let own_port = self.members[x].listen_port;
            let port_of = |ep: &Endpoint| ep.port.unwrap_or(self.listen_port);
            let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (i, (_, ep, _, _)) in dialers.iter().enumerate() {
                groups
                    .entry(ep.render(self.listen_port))
                    .or_default()
                    .push(i);
            }
            let chosen = groups
                .iter()
                .max_by_key(|(_, idx)| {
                    let ep = &dialers[idx[0]].1;
                    let right_port = own_port.is_none_or(|(p, _)| p == port_of(ep));
                    (
                        right_port,
                        idx.len(),
                        std::cmp::Reverse(dialers[idx[0]].0.clone()),
                    )
                })
                .map(|(_, idx)| dialers[idx[0]].1.clone())
                .expect("a dialer");
            let distinct_hosts: BTreeSet<&str> =
                dialers.iter().map(|d| d.1.host.as_str()).collect();
            if distinct_hosts.len() > 1 || (groups.len() > 1 && own_port.is_none()) {
                let parts: Vec<String> = groups
                    .iter()
                    .map(|(ep, idx)| {
                        let who: Vec<&str> = idx.iter().map(|i| dialers[*i].0.as_str()).collect();
                        format!("{} dial {ep}", who.join(", "))
                    })
                    .collect();
                self.f.warn(
                    "endpoint-disagree",
                    format!(
                        "the hosts dial {x} at different endpoints: {}; imported {}, so applying changes the others",
                        parts.join("; "),
                        chosen.render(self.listen_port)
                    ),
                    dialers.iter().map(|d| d.3.clone()).collect(),
                );
            }
            if let Some((p, line)) = own_port {
                for (from, ep, text, place) in &dialers {
                    let q = port_of(ep);
                    if q != p {
                        // wgfleet dials a host at the port it listens on (validate checks it).
                        let what = format!(
                            "imported with port {p}, so applying changes {from}'s Endpoint (if a router forwards {q} to {p}, forward {p} instead)"
                        );
                        self.f.warn(
                            "endpoint-port",
                            format!(
                                "{from} dials {x} at {text} (port {q}), but {x} listens on {p}: {what}"
                            ),
                            vec![place.clone(), self.members[x].file.place(line)],
                        );
                    }
                }
            }
            // The endpoint's port is the one the member listens on: its own ListenPort, or, when
            // its file has none, the port the others dial it at.
            if own_port.is_none() {
                let q = chosen.port.unwrap_or(self.listen_port);
                let m = self.members.get_mut(x).expect("member");
                if q != self.listen_port {
                    m.own_listen_port = Some(q);
                }
                self.f.note(
                    "listen-port",
                    format!(
                        "{x} has no ListenPort (WireGuard picks a random one), yet the others dial it at port {q}: imported as listening on {q} (a reload when applied)"
                    ),
                    m.file.places(m.file.interface_line),
                );
            }
            let ep = Endpoint {
                host: chosen.host.clone(),
                port: None,
            };
            // A spoke's endpoint is never used: hubs learn it from the handshake.
            if self.is_mesh() || self.is_hub(x) {
                self.members.get_mut(x).expect("member").endpoint = Some(ep);
            } else {
                let mut places: Vec<Place> = dialers.iter().map(|d| d.3.clone()).collect();
                places.dedup();
                let who: Vec<&str> = dialers.iter().map(|d| d.0.as_str()).collect();
                self.f.note(
                    "not-imported",
                    format!(
                        "not imported: {} {} spoke {x}; in wgfleet hubs never dial spokes (they learn a spoke's address from its handshake), so applying removes this Endpoint",
                        who.join(", "),
                        if who.len() == 1 { "dials" } else { "dial" }
                    ),
                    places,
                );
            }
        }
        // Entries that will dial but do not today.
        let keys: Vec<(String, String)> = self.entries.keys().cloned().collect();
        for (from, to) in keys {
            let e = &self.entries[&(from.clone(), to.clone())];
            if e.sec.endpoint.is_none() && self.renders_dial(&to) {
                let ep = self.members[&to]
                    .endpoint
                    .as_ref()
                    .map(|ep| ep.render(self.listen_port))
                    .unwrap_or_default();
                self.f.note(
                    "endpoint-added",
                    format!("{from} does not dial {to} today, but the others do ({ep}); the fleet makes {from} dial it too"),
                    e.key_place(),
                );
            }
        }
    }

    pub(crate) fn keepalives(&mut self) {
        let names: Vec<String> = self.members.keys().cloned().collect();
        let mut per_member: BTreeMap<String, u64> = BTreeMap::new();
        for from in &names {
            let mut values: Vec<u64> = Vec::new();
            let mut lost: Vec<Place> = Vec::new();
            for ((f, to), e) in &self.entries {
                if f != from {
                    continue;
                }
                if self.renders_dial(to) {
                    values.push(e.sec.keepalive_secs());
                } else if e.sec.keepalive_secs() > 0 {
                    lost.extend(e.file.places(e.sec.keepalive.as_ref().map(|(_, l)| *l)));
                }
            }
            if !lost.is_empty() {
                self.f.note(
                    "not-imported",
                    format!("not imported: PersistentKeepalive on {from}'s entries it does not dial; wgfleet sends keepalives only where there is an Endpoint"),
                    lost,
                );
            }
            if values.is_empty() {
                continue;
            }
            let v = most_common(values.iter().copied()).unwrap_or(0);
            if values.iter().any(|x| *x != v) {
                let places = self
                    .entries
                    .iter()
                    .filter(|((f, _), _)| f == from)
                    .flat_map(|(_, e)| e.file.places(e.sec.keepalive.as_ref().map(|(_, l)| *l)))
                    .collect();
                self.f.warn(
                    "keepalive",
                    format!("{from} uses different PersistentKeepalive values for its peers; a member has one, {v} is imported"),
                    places,
                );
            }
            per_member.insert(from.clone(), v);
        }
        let distinct: BTreeSet<u64> = per_member.values().copied().collect();
        // A member's 0 cannot undo the network's keepalive, so the network has one only when
        // every dialling member uses it.
        self.keepalive = match distinct.iter().collect::<Vec<_>>().as_slice() {
            [v] if **v > 0 => Some(**v),
            _ => None,
        };
        for (name, v) in per_member {
            if self.keepalive.is_none() && v > 0 {
                self.members.get_mut(&name).expect("member").keepalive = Some(v);
            }
        }
    }
}
