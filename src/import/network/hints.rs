//! Descriptions, and hints about forwarding and the firewall.

use super::*;

impl<'f> NetImport<'f, '_> {
    pub(crate) fn descriptions(&mut self) {
        let names: Vec<String> = self.members.keys().cloned().collect();
        for x in &names {
            let labels = self
                .entries
                .iter()
                .filter(|((_, to), e)| to == x && !e.stale)
                .filter_map(|(_, e)| e.sec.label.clone())
                .filter(|l| sanitize_name(l) != sanitize_name(x) && syntax::check_text(l).is_ok());
            self.members.get_mut(x).expect("member").description = most_common(labels);
        }
    }

    /// Suggests forwarding on a hub that spokes reach other members through.
    pub(crate) fn forwarding_hint(&mut self) {
        let Some(primary) = self.hubs.first().cloned() else {
            return;
        };
        if self.members[&primary].forwarding {
            return;
        }
        let through: Vec<String> = self
            .members
            .iter()
            .filter(|(n, m)| {
                self.members
                    .iter()
                    .filter(|(o, _)| *o != *n && **o != primary)
                    .flat_map(|(_, o)| o.host_prefixes())
                    .any(|h| m.reach.iter().any(|r| r.contains(&h)))
            })
            .map(|(n, _)| n.clone())
            .collect();
        if !through.is_empty() {
            self.f.note(
                "forwarding",
                format!(
                    "{} {} other members through {primary}, which works only if {primary} forwards packets: if it does today (sysctl net.ipv4.ip_forward), set \"forwarding\": true on {primary} so that wgfleet keeps it so; it was not set, because it opens forwarding on {primary}",
                    through.join(", "),
                    if through.len() == 1 { "reaches" } else { "reach" }
                ),
                vec![],
            );
        }
    }

    /// wgfleet opens the listen port on the hosts peers dial, in its own chain; a rule that
    /// opened it by hand stays, unreported by `apply`.
    pub(crate) fn firewall_hint(&mut self) {
        // Each dialled member's own port (a member may listen on another than the network's).
        let mut by_port: BTreeMap<u16, Vec<String>> = BTreeMap::new();
        for (n, m) in &self.members {
            if m.endpoint.is_some() && (self.is_mesh() || self.is_hub(n)) {
                let port = match m.own_listen_port {
                    Some(p) if p > 0 => p,
                    _ => self.listen_port,
                };
                by_port.entry(port).or_default().push(n.clone());
            }
        }
        if by_port.is_empty() {
            return;
        }
        let opens: Vec<String> = by_port
            .iter()
            .map(|(port, hosts)| format!("UDP {port} on {}", hosts.join(", ")))
            .collect();
        let port = by_port.keys().next().copied().unwrap_or(self.listen_port);
        self.f.note(
            "firewall",
            format!(
                "once applied, wgfleet opens {} in its own chain (WGFLEET-INPUT) and never touches other rules: a rule that opened it by hand stays, and `wgfleet plan` and `apply` point it out until you remove it (`iptables -D INPUT -p udp --dport {port} -j ACCEPT`)",
                opens.join(", and ")
            ),
            vec![],
        );
    }
}
