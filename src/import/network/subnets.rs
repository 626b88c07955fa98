//! The network's subnets, chosen from the members' Address lines.

use super::*;

impl<'f> NetImport<'f, '_> {
    pub(crate) fn choose_subnets(&mut self) {
        let v4: Vec<(String, Ipv4Addr, u8, usize)> = self
            .members
            .iter()
            .filter_map(|(n, m)| m.v4.map(|(a, l, line)| (n.clone(), a, l, line)))
            .collect();
        let v6: Vec<(String, Ipv6Addr, u8, usize)> = self
            .members
            .iter()
            .filter_map(|(n, m)| m.v6.map(|(a, l, line)| (n.clone(), a, l, line)))
            .collect();
        if !v4.is_empty() {
            let nets = v4
                .iter()
                // A /31 is a point-to-point pair's subnet (RFC 3021).
                .filter(|(_, _, l, _)| *l <= 31)
                .filter_map(|(_, a, l, _)| Ipv4Net::new(*a, *l).ok().map(|n| n.trunc()));
            let subnet = most_common(nets).unwrap_or_else(|| {
                // Every address is a host prefix (/31, /32): the /24 around them, widened.
                let mut net = Ipv4Net::new(v4[0].1, 24)
                    .map(|n| n.trunc())
                    .unwrap_or_default();
                while net.prefix_len() > 8 && !v4.iter().all(|(_, a, ..)| net.contains(a)) {
                    net = net.supernet().unwrap_or(net);
                }
                net
            });
            self.subnet4 = Some(subnet);
        }
        if !v6.is_empty() {
            let nets = v6
                .iter()
                .filter(|(_, _, l, _)| *l <= 127)
                .filter_map(|(_, a, l, _)| Ipv6Net::new(*a, *l).ok().map(|n| n.trunc()));
            let subnet = most_common(nets).unwrap_or_else(|| {
                let mut net = Ipv6Net::new(v6[0].1, 64)
                    .map(|n| n.trunc())
                    .unwrap_or_default();
                while net.prefix_len() > 16 && !v6.iter().all(|(_, a, ..)| net.contains(a)) {
                    net = net.supernet().unwrap_or(net);
                }
                net
            });
            self.subnet6 = Some(subnet);
        }
        let (s4, s6) = (self.subnet4, self.subnet6);
        let mut drop = Vec::new();
        for (name, m) in &mut self.members {
            let file = m.file;
            if let (Some((a, l, line)), Some(s)) = (m.v4, s4) {
                let p2p = s.prefix_len() == 31;
                let bad = !s.contains(&a) || (!p2p && (a == s.network() || a == s.broadcast()));
                if bad {
                    self.f.warn(
                        "address-outside-subnet",
                        format!(
                            "{name}'s Address {a}/{l} is outside the network's subnet {s} (the others' Address lines); it is not imported"
                        ),
                        vec![file.place(line)],
                    );
                    m.v4 = None;
                    m.addr4 = None;
                } else if l != s.prefix_len() {
                    self.f.note(
                        "address-prefix",
                        format!(
                            "{name}'s Address {a}/{l} becomes {a}/{}: wgfleet gives every member the subnet's prefix length (applying restarts {name}'s interface)",
                            s.prefix_len()
                        ),
                        vec![file.place(line)],
                    );
                }
            }
            if let (Some((a, l, line)), Some(s)) = (m.v6, s6) {
                if !s.contains(&a) || (s.prefix_len() != 127 && a == s.network()) {
                    self.f.warn(
                        "address-outside-subnet",
                        format!(
                            "{name}'s Address {a}/{l} is outside the network's subnet {s}; it is not imported"
                        ),
                        vec![file.place(line)],
                    );
                    m.v6 = None;
                    m.addr6 = None;
                } else if l != s.prefix_len() {
                    self.f.note(
                        "address-prefix",
                        format!(
                            "{name}'s Address {a}/{l} becomes {a}/{}: wgfleet gives every member the subnet's prefix length",
                            s.prefix_len()
                        ),
                        vec![file.place(line)],
                    );
                }
            }
            if m.v4.is_none() && m.v6.is_none() {
                drop.push(name.clone());
            }
        }
        for name in drop {
            self.members.remove(&name);
        }
    }
}
