//! The network as the fleet writes it: members, clients, ids, the summary.

use super::*;

impl<'f> NetImport<'f, '_> {
    pub(crate) fn member_schema(&self, m: &Member, run: &BTreeSet<u64>) -> schema::Member {
        let mut out = schema::Member::default();
        (out.id, out.address, out.address6) =
            self.addressing(m.addr4, m.addr6, |id| run.contains(&id));
        out.routes = m.routes.iter().map(ToString::to_string).collect();
        out.reach = m.reach.iter().map(ToString::to_string).collect();
        out.allowed_ips = m
            .allowed_override
            .as_ref()
            .map(|l| l.iter().map(ToString::to_string).collect());
        out.forwarding = m.forwarding;
        out.nat = m.nat_wan.is_some();
        out.persistent_keepalive = m.keepalive;
        out.listen_port = m.own_listen_port.map(u64::from);
        out.interface = (m.file.src.network != self.name).then(|| m.file.src.network.clone());
        out.mtu = m.own_mtu;
        out
    }

    /// How a peer's addresses are written, as `(id, address, address6)`: its id (when `usable`)
    /// if the id gives every address it has, an address the id does not give beside it; else its
    /// addresses as they are.
    fn addressing(
        &self,
        addr4: Option<Ipv4Addr>,
        addr6: Option<Ipv6Addr>,
        usable: impl Fn(u64) -> bool,
    ) -> (Option<u64>, Option<String>, Option<String>) {
        let id4 = addr4.zip(self.subnet4).and_then(|(a, s)| id_of4(s, a));
        let id6 = addr6.zip(self.subnet6).and_then(|(a, s)| id_of6(s, a));
        let candidate = if addr4.is_some() { id4 } else { id6 };
        // An id gives an address in every subnet of the network: only when the peer has one.
        let id_ok = candidate.is_some_and(usable)
            && (self.subnet4.is_none() || addr4.is_some())
            && (self.subnet6.is_none() || addr6.is_some());
        if !id_ok {
            return (
                None,
                addr4.map(|a| a.to_string()),
                addr6.map(|a| a.to_string()),
            );
        }
        let address6 = addr6.filter(|_| addr4.is_some() && id6 != candidate);
        (candidate, None, address6.map(|a| a.to_string()))
    }

    pub(crate) fn build(mut self) -> NetOut<'f> {
        // Members whose address is network + id + 1, in the run of low ids.
        let mut ids: Vec<u64> = self
            .members
            .values()
            .filter_map(|m| {
                if m.addr4.is_some() {
                    m.addr4.zip(self.subnet4).and_then(|(a, s)| id_of4(s, a))
                } else {
                    m.addr6.zip(self.subnet6).and_then(|(a, s)| id_of6(s, a))
                }
            })
            .collect();
        ids.sort();
        let gap = (self.members.len() as u64).max(2);
        let mut run = BTreeSet::new();
        for id in ids {
            match run.last() {
                Some(last) if id - last > gap => break,
                _ => {
                    run.insert(id);
                }
            }
        }
        let mut network = schema::Network {
            subnet: self.subnet4.map(|s| s.to_string()),
            subnet6: self.subnet6.map(|s| s.to_string()),
            listen_port: self.listen_port_set.map(u64::from),
            mtu: self.mtu,
            persistent_keepalive: self.keepalive,
            topology: if self.is_mesh() {
                Topology::Mesh
            } else {
                Topology::HubAndSpoke(HubAndSpoke {
                    hubs: self.hubs.clone(),
                })
            },
            ..schema::Network::default()
        };
        let mut hosts = BTreeMap::new();
        let mut files = BTreeMap::new();
        let mut names = BTreeMap::new();
        for (name, m) in &self.members {
            network
                .members
                .insert(name.clone(), self.member_schema(m, &run));
            hosts.insert(
                name.clone(),
                HostFacts {
                    public_key: m.key.clone(),
                    private_key: m.file.private_key.as_ref().map(|(k, _)| k),
                    key_source: m
                        .file
                        .private_key
                        .as_ref()
                        .map(|(_, l)| (m.file.src.display.clone(), *l)),
                    endpoint: m.endpoint.clone(),
                    description: m.description.clone(),
                    wan: m.nat_wan.clone(),
                },
            );
            files.insert(name.clone(), m.file);
            names.insert(m.key.clone(), name.clone());
        }
        let mut client_psks = Vec::new();
        for c in &self.clients {
            let mut out = schema::Client {
                public_key: c.key.clone(),
                hubs: c.hubs.clone(),
                description: c.description.clone(),
                ..schema::Client::default()
            };
            (out.id, out.address, out.address6) = self.addressing(c.addr4, c.addr6, |_| true);
            if let Some((psk, source)) = &c.psk {
                client_psks.push((c.name.clone(), *psk, source.clone()));
            }
            names.insert(c.key.clone(), c.name.clone());
            network.clients.insert(c.name.clone(), out);
        }
        let psk_pairs = self.pair_psks();
        let summary = NetworkSummary {
            network: self.name.clone(),
            topology: if self.is_mesh() {
                "mesh"
            } else {
                "hub-and-spoke"
            }
            .to_owned(),
            hubs: self.hubs.clone(),
            members: self.members.keys().cloned().collect(),
            clients: self.clients.iter().map(|c| c.name.clone()).collect(),
            subnet: network.subnet.clone(),
            subnet6: network.subnet6.clone(),
            listen_port: self.listen_port,
        };
        NetOut {
            network,
            hosts,
            psk_pairs,
            client_psks,
            summary,
            files,
            names,
        }
    }
}

/// The id of an address: the (id+1)-th of the subnet, or in a /31 (RFC 3021) the id-th.
fn id_of4(s: Ipv4Net, a: Ipv4Addr) -> Option<u64> {
    let offset = u64::from(u32::from(a).wrapping_sub(u32::from(s.network())));
    if s.prefix_len() == 31 {
        return s.contains(&a).then_some(offset);
    }
    (s.contains(&a) && a != s.network() && a != s.broadcast()).then(|| offset - 1)
}

/// Likewise for IPv6, a /127 (RFC 6164) holding ids 0 and 1.
fn id_of6(s: Ipv6Net, a: Ipv6Addr) -> Option<u64> {
    if !s.contains(&a) {
        return None;
    }
    let offset = u128::from(a) - u128::from(s.network());
    if s.prefix_len() == 127 {
        return u64::try_from(offset).ok();
    }
    if offset == 0 {
        return None;
    }
    u64::try_from(offset - 1).ok()
}
