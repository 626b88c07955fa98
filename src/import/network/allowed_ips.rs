//! AllowedIPs: what others route to each member, split into address, routes, reach.

use super::*;

impl<'f> NetImport<'f, '_> {
    /// Every entry for a member must cover that member's own address.
    pub(crate) fn check_coverage(&mut self) {
        let keys: Vec<(String, String)> = self.entries.keys().cloned().collect();
        for (from, to) in keys {
            let e = &self.entries[&(from.clone(), to.clone())];
            let m = &self.members[&to];
            let uncovered: Vec<IpNet> = m
                .orig_host_prefixes()
                .into_iter()
                .filter(|h| !e.allowed.iter().any(|p| p.contains(h)))
                .collect();
            if uncovered.is_empty() {
                continue;
            }
            let mut places = e.lines_allowed();
            if places.is_empty() {
                places = e.key_place();
            }
            places.extend(m.file.places(m.address_lines()));
            let routed = if e.allowed.is_empty() {
                "nothing".to_owned()
            } else {
                join_prefixes(&e.allowed)
            };
            self.f.warn(
                "allowed-ips-mismatch",
                format!(
                    "{from} routes {routed} to {to}, but {to}'s own Address is {}: traffic between them is dropped; imported with {to}'s Address, so applying changes {from}'s entry for {to}",
                    m.address_text()
                ),
                places,
            );
        }
    }

    /// Splits what others route to each member into its address, `routes`, an `allowedIPs`
    /// override, and the spokes' `reach`.
    pub(crate) fn advertised(&mut self) {
        let names: Vec<String> = self.members.keys().cloned().collect();
        for x in &names {
            let sources: Vec<String> = self
                .entries
                .keys()
                .filter(|(from, to)| {
                    to == x
                        && (self.is_mesh()
                            || (self.is_hub(x) && self.is_hub(from))
                            || (!self.is_hub(x) && self.is_hub(from)))
                })
                .map(|(from, _)| from.clone())
                .collect();
            let orig = fold_prefixes(self.members[x].orig_host_prefixes());
            let covers = |set: &Vec<IpNet>| orig.iter().all(|h| set.iter().any(|p| p.contains(h)));
            let adv_raw: Vec<IpNet> = if !sources.is_empty() {
                let mut groups: BTreeMap<Vec<IpNet>, Vec<String>> = BTreeMap::new();
                for s in &sources {
                    groups
                        .entry(self.entries[&(s.clone(), x.clone())].allowed.clone())
                        .or_default()
                        .push(s.clone());
                }
                let best = groups
                    .iter()
                    .max_by_key(|(set, hosts)| {
                        (
                            hosts.len(),
                            covers(set),
                            std::cmp::Reverse(hosts[0].clone()),
                        )
                    })
                    .map(|(set, _)| set.clone())
                    .unwrap_or_default();
                if groups.len() > 1 {
                    let mut places = Vec::new();
                    let mut parts = Vec::new();
                    for (set, hosts) in &groups {
                        for h in hosts {
                            places.extend(self.entries[&(h.clone(), x.clone())].lines_allowed());
                        }
                        parts.push(format!("{} route {}", hosts.join(", "), join_prefixes(set)));
                    }
                    self.f.warn(
                        "allowed-ips-disagree",
                        format!(
                            "the hosts route different prefixes to {x}: {}; imported {}, so applying changes the others",
                            parts.join("; "),
                            join_prefixes(&best)
                        ),
                        places,
                    );
                }
                best
            } else if self.is_hub(x) {
                // Only spokes have this hub: what they all route to it beyond the tunnel subnet
                // is behind the hub (its routes); the rest is each spoke's reach.
                let spoke_sets: Vec<Vec<IpNet>> = self
                    .entries
                    .iter()
                    .filter(|((from, to), _)| to == x && !self.is_hub(from))
                    .map(|(_, e)| e.allowed.clone())
                    .collect();
                let mut common: Vec<IpNet> = Vec::new();
                if spoke_sets.len() >= 2 {
                    common = spoke_sets[0]
                        .iter()
                        .filter(|p| !self.overlaps_subnet(p))
                        .filter(|p| spoke_sets.iter().all(|s| s.contains(p)))
                        .copied()
                        .collect();
                }
                fold_prefixes(orig.iter().copied().chain(common))
            } else {
                orig.clone()
            };
            // Decompose.
            let own: Vec<IpNet> = adv_raw
                .iter()
                .filter(|p| self.inside_subnet(p))
                .copied()
                .collect();
            let other: Vec<IpNet> = adv_raw
                .iter()
                .filter(|p| !self.inside_subnet(p))
                .copied()
                .collect();
            let hp = self.members[x].host_prefixes();
            let routes_ok = other.iter().all(|p| !self.overlaps_subnet(p));
            let m = self.members.get_mut(x).expect("member");
            if !covers(&adv_raw) || fold_prefixes(own.clone()) == orig {
                // The address part is the member's own address (fixed where it did not match).
                if routes_ok {
                    m.routes = other.clone();
                    m.advertised = fold_prefixes(hp.into_iter().chain(other));
                } else {
                    let list = fold_prefixes(hp.into_iter().chain(other));
                    m.advertised = list.clone();
                    m.allowed_override = Some(list);
                }
            } else {
                m.advertised = adv_raw.clone();
                m.allowed_override = Some(adv_raw.clone());
            }
            if let Some(list) = &m.allowed_override {
                let text = join_prefixes(list);
                let places = sources
                    .first()
                    .map(|s| self.entries[&(s.clone(), x.clone())].lines_allowed())
                    .unwrap_or_default();
                self.f.note(
                    "allowed-ips",
                    format!(
                        "what the others route to {x} ({text}) is more than its address and the prefixes behind it; kept as an explicit allowedIPs"
                    ),
                    places,
                );
            }
        }
        self.reach();
    }

    pub(crate) fn reach(&mut self) {
        if self.is_mesh() {
            return;
        }
        let known: BTreeSet<IpNet> = self
            .members
            .values()
            .flat_map(|m| m.orig_host_prefixes())
            .chain(
                self.clients
                    .iter()
                    .flat_map(|c| [c.addr4.map(IpAddr::V4), c.addr6.map(IpAddr::V6)])
                    .flatten()
                    .map(host_prefix),
            )
            .collect();
        // Per spoke and hub: what the spoke sends to the hub beyond the hub's prefixes.
        let mut extras: BTreeMap<(String, String), Vec<IpNet>> = BTreeMap::new();
        for ((from, to), e) in &self.entries {
            if self.is_hub(from) || !self.is_hub(to) {
                continue;
            }
            let hub = &self.members[to];
            let covered = hub
                .orig_host_prefixes()
                .iter()
                .all(|h| e.allowed.iter().any(|p| p.contains(h)));
            let extra: Vec<IpNet> = e
                .allowed
                .iter()
                .filter(|p| !hub.advertised.contains(p))
                .filter(|p| {
                    covered || !(self.inside_subnet(p) && is_host_prefix(p) && !known.contains(p))
                })
                .filter(|p| !(hub.orig_host_prefixes().contains(p)))
                .copied()
                .collect();
            if !extra.is_empty() {
                extras.insert((from.clone(), to.clone()), extra);
            }
        }
        // The primary hub (first in the list) carries reach: the one most spokes send extra to.
        let mut hubs = self.hubs.clone();
        hubs.sort();
        let counts: BTreeMap<&String, usize> = hubs
            .iter()
            .map(|h| (h, extras.keys().filter(|(_, t)| t == h).count()))
            .collect();
        let best = counts.values().copied().max().unwrap_or(0);
        let primary = hubs
            .iter()
            .find(|h| counts[h] == best)
            .cloned()
            .unwrap_or_default();
        hubs.retain(|h| *h != primary);
        hubs.insert(0, primary.clone());
        self.hubs = hubs;
        for ((from, to), extra) in extras {
            if to == primary {
                self.members.get_mut(&from).expect("member").reach = extra;
            } else {
                let places = self.entries[&(from.clone(), to.clone())].lines_allowed();
                self.f.warn(
                    "not-imported",
                    format!(
                        "not imported: {from} also sends {} to hub {to}; a spoke's reach goes through its primary hub ({primary}) only",
                        join_prefixes(&extra)
                    ),
                    places,
                );
            }
        }
    }
}
