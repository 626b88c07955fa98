//! Duplicate tunnel addresses, resolved to the first free one.

use super::*;

impl<'f> NetImport<'f, '_> {
    pub(crate) fn duplicates(&mut self) {
        let mut used: BTreeMap<IpAddr, (String, Vec<Place>)> = BTreeMap::new();
        let members: Vec<String> = self.members.keys().cloned().collect();
        let mut moved: Vec<(bool, String, IpAddr, Vec<Place>)> = Vec::new();
        for name in &members {
            let m = &self.members[name];
            for a in [m.addr4.map(IpAddr::V4), m.addr6.map(IpAddr::V6)]
                .into_iter()
                .flatten()
            {
                let places = m.file.places(m.address_lines());
                match used.entry(a) {
                    std::collections::btree_map::Entry::Occupied(_) => {
                        moved.push((true, name.clone(), a, places))
                    }
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert((name.clone(), places));
                    }
                }
            }
        }
        for c in &self.clients {
            for a in [c.addr4.map(IpAddr::V4), c.addr6.map(IpAddr::V6)]
                .into_iter()
                .flatten()
            {
                let places: Vec<Place> = c
                    .seen
                    .iter()
                    .flat_map(|(_, f, s)| f.places(s.allowed_lines()))
                    .collect();
                match used.entry(a) {
                    std::collections::btree_map::Entry::Occupied(_) => {
                        moved.push((false, c.name.clone(), a, places))
                    }
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert((c.name.clone(), places));
                    }
                }
            }
        }
        for (is_member, name, a, places) in moved {
            let Some(new) = self.free_address(&a, &used) else {
                continue;
            };
            let (first, first_places) = used[&a].clone();
            used.insert(new, (name.clone(), vec![]));
            let mut all = first_places;
            all.extend(places);
            let consequence = if is_member {
                format!("applying changes {name}'s Address (a restart)")
            } else {
                "the client's own config must change too".to_owned()
            };
            self.f.warn(
                "duplicate-address",
                format!(
                    "{first} and {name} both have {a} (WireGuard routes it to only one of them); {name} gets {new}, the first free address — change it in the fleet if you prefer another; {consequence}"
                ),
                all,
            );
            if is_member {
                let m = self.members.get_mut(&name).expect("member");
                match new {
                    IpAddr::V4(n) => m.addr4 = Some(n),
                    IpAddr::V6(n) => m.addr6 = Some(n),
                }
            } else if let Some(c) = self.clients.iter_mut().find(|c| c.name == name) {
                match new {
                    IpAddr::V4(n) => c.addr4 = Some(n),
                    IpAddr::V6(n) => c.addr6 = Some(n),
                }
            }
        }
    }

    pub(crate) fn free_address(
        &self,
        like: &IpAddr,
        used: &BTreeMap<IpAddr, (String, Vec<Place>)>,
    ) -> Option<IpAddr> {
        match like {
            IpAddr::V4(_) => {
                let s = self.subnet4?;
                let base = u32::from(s.network());
                (1..u32::from(s.broadcast()).saturating_sub(base))
                    .map(|i| IpAddr::V4(Ipv4Addr::from(base + i)))
                    .find(|a| !used.contains_key(a))
            }
            IpAddr::V6(_) => {
                let s = self.subnet6?;
                let base = u128::from(s.network());
                (1..65536u128)
                    .map(|i| Ipv6Addr::from(base + i))
                    .filter(|a| s.contains(a))
                    .map(IpAddr::V6)
                    .find(|a| !used.contains_key(a))
            }
        }
    }
}
