//! Interface values (port, MTU) and the keys wgfleet does not write.

use super::*;

impl<'f> NetImport<'f, '_> {
    pub(crate) fn interface_values(&mut self) {
        let ports: Vec<u16> = self
            .members
            .values()
            .filter_map(|m| m.listen_port.map(|p| p.0))
            .collect();
        self.listen_port_set = most_common(ports.iter().copied());
        self.listen_port = self.listen_port_set.unwrap_or(DEFAULT_LISTEN_PORT);
        let port = self.listen_port;
        let mtus: Vec<Option<u64>> = self.members.values().map(|m| m.mtu.map(|x| x.0)).collect();
        // Ties go to "no MTU" (None sorts first): wg-quick's own choice.
        self.mtu = most_common(mtus).flatten();
        if let Some(m) = self.mtu.filter(|m| !(1280..=9000).contains(m)) {
            let places: Vec<Place> = self
                .members
                .values()
                .filter_map(|x| x.mtu.map(|(_, l)| x.file.place(l)))
                .collect();
            self.f.warn(
                "not-imported",
                format!("not imported: MTU {m}; wgfleet takes 1280–9000"),
                places,
            );
            self.mtu = None;
        }
        let mtu = self.mtu;
        for (name, m) in &self.members {
            match m.listen_port {
                None => self.f.note(
                    "listen-port",
                    format!(
                        "{name} has no ListenPort (WireGuard picks a random one); the fleet gives it the network's {port} (a reload when applied)"
                    ),
                    m.file.places(m.file.interface_line),
                ),
                Some((p, line)) if p != port => self.f.warn(
                    "listen-port",
                    format!(
                        "{name} listens on {p}, the other members on {port}: wgfleet gives every member the network's listenPort, so applying moves {name} to {port}"
                    ),
                    vec![m.file.place(line)],
                ),
                _ => {}
            }
            if m.mtu.map(|x| x.0) != mtu {
                let places = m
                    .mtu
                    .map(|(_, l)| vec![m.file.place(l)])
                    .unwrap_or_default();
                let show = |v: Option<u64>| v.map_or("none".to_owned(), |v| v.to_string());
                self.f.warn(
                    "mtu",
                    format!(
                        "{name}'s MTU ({}) differs from the network's ({}): wgfleet gives every member the network's MTU (a restart of {name} when applied)",
                        show(m.mtu.map(|x| x.0)),
                        show(mtu)
                    ),
                    places,
                );
            }
        }
    }

    /// Keys wgfleet does not write: reported, never silently dropped. Hooks that forward or
    /// masquerade set `forwarding` / `nat`.
    pub(crate) fn unsupported_interface_keys(&mut self) {
        let names: Vec<String> = self.members.keys().cloned().collect();
        for name in names {
            let file = self.member_file(&name);
            let mut by_key: BTreeMap<&str, Vec<&Kv>> = BTreeMap::new();
            for kv in &file.interface {
                if !matches!(kv.key.as_str(), "address" | "listenport" | "mtu") {
                    by_key.entry(kv.key.as_str()).or_default().push(kv);
                }
            }
            for (key, kvs) in by_key {
                let shown = crate::wgconf::canonical_key(key);
                let places = file.places(kvs.iter().map(|kv| kv.no));
                let (reason, extra) = match key {
                    "preup" | "postup" | "predown" | "postdown" => {
                        let mut forwarding = false;
                        let mut nat = None;
                        let mut reasons = BTreeSet::new();
                        for kv in &kvs {
                            let (r, fwd, masq, wan) = hook_reason(&kv.value);
                            reasons.insert(r);
                            forwarding |= fwd && key.ends_with("up");
                            if masq && key.ends_with("up") {
                                nat = nat.or(wan);
                            }
                        }
                        let mut extra = Vec::new();
                        let m = self.members.get_mut(&name).expect("member");
                        if forwarding {
                            m.forwarding = true;
                            extra.push("forwarding: true".to_owned());
                        }
                        if let Some(wan) = nat {
                            extra.push(format!("nat: true with wanInterface {wan}"));
                            m.nat_wan = Some(wan);
                        }
                        let reason = reasons.into_iter().collect::<Vec<_>>().join("; ");
                        (reason, extra)
                    }
                    "dns" => ("wgfleet does not set DNS".to_owned(), vec![]),
                    "table" => (
                        "wgfleet uses wg-quick's default routing table".to_owned(),
                        vec![],
                    ),
                    "fwmark" => ("fwmark is not in the fleet schema".to_owned(), vec![]),
                    "saveconfig" => (
                        "wgfleet owns the file; SaveConfig would write live state back into it"
                            .to_owned(),
                        vec![],
                    ),
                    _ => ("not a key wgfleet knows".to_owned(), vec![]),
                };
                let extra = if extra.is_empty() {
                    String::new()
                } else {
                    format!(" (imported as {})", extra.join(", "))
                };
                self.f.note(
                    "not-imported",
                    format!("not imported: {shown} on {name} — {reason}{extra}"),
                    places,
                );
            }
        }
    }
}

fn hook_reason(value: &str) -> (&'static str, bool, bool, Option<String>) {
    let v = value.to_ascii_lowercase();
    let firewall = [
        "iptables",
        "ip6tables",
        "nft ",
        "ufw",
        "firewall-cmd",
        "sysctl",
    ]
    .iter()
    .any(|w| v.contains(w));
    let forwarding = v.contains("ip_forward=1")
        || v.contains("forwarding=1")
        || ((v.contains("iptables") || v.contains("ip6tables"))
            && (v.contains("-a forward") || v.contains("-i forward"))
            && v.contains("-j accept"));
    let masquerade = v.contains("masquerade");
    let wan = masquerade
        .then(|| {
            let words: Vec<&str> = value.split_whitespace().collect();
            words
                .windows(2)
                .find(|w| w[0] == "-o" || w[0] == "--out-interface")
                .map(|w| w[1].to_owned())
        })
        .flatten()
        .filter(|w| syntax::check_interface(w).is_ok() && !w.contains('%'));
    let reason = if firewall {
        "wgfleet manages forwarding/NAT/firewall itself"
    } else {
        "wgfleet runs no hooks; if it is still needed, run it from a drop-in for wg-quick@ or another unit"
    };
    (reason, forwarding, masquerade, wan)
}
