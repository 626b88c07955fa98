//! Interface values (port, MTU) and the keys wgfleet does not write.

use super::*;

impl<'f> NetImport<'f, '_> {
    /// The network's port and MTU are the members' most common ones; a member that differs keeps
    /// its own (`listenPort`, `mtu`), and one without a ListenPort that nobody dials keeps having
    /// none (`listenPort: 0`).
    pub(crate) fn interface_values(&mut self) {
        let ports: Vec<u16> = self
            .members
            .values()
            .filter_map(|m| m.listen_port.map(|p| p.0))
            .collect();
        self.listen_port_set = most_common(ports.iter().copied());
        self.listen_port = self.listen_port_set.unwrap_or(DEFAULT_LISTEN_PORT);
        let port = self.listen_port;
        let names: Vec<String> = self.members.keys().cloned().collect();
        for name in &names {
            let dialled = self
                .entries
                .iter()
                .any(|((_, to), e)| to == name && e.sec.endpoint.is_some());
            let m = &self.members[name];
            let own = match m.listen_port {
                None if !dialled => {
                    self.f.note(
                        "listen-port",
                        format!(
                            "{name} has no ListenPort (WireGuard picks a random one) and nobody dials it: imported as listenPort 0 (no fixed port)"
                        ),
                        m.file.places(m.file.interface_line),
                    );
                    Some(0)
                }
                // Dialled without a ListenPort: the port it is dialled at (see `endpoints`).
                None => None,
                Some((p, line)) if p != port => {
                    self.f.note(
                        "listen-port",
                        format!(
                            "{name} listens on {p}, the other members on {port}: imported as its own listenPort"
                        ),
                        vec![m.file.place(line)],
                    );
                    Some(p)
                }
                Some(_) => None,
            };
            self.members.get_mut(name).expect("member").own_listen_port = own;
        }

        let mut usable: Vec<(String, Option<u64>)> = Vec::new();
        for (name, m) in &self.members {
            match m.mtu {
                Some((v, line)) if !(1280..=9000).contains(&v) => {
                    self.f.warn(
                        "not-imported",
                        format!(
                            "not imported: MTU {v} on {name}; wgfleet takes 1280–9000, so {name} gets wg-quick's own choice (a restart when applied)"
                        ),
                        vec![m.file.place(line)],
                    );
                    usable.push((name.clone(), None));
                }
                v => usable.push((name.clone(), v.map(|x| x.0))),
            }
        }
        // A network MTU only when every member sets one: a member cannot undo it back to
        // wg-quick's own choice.
        self.mtu = if usable.iter().all(|(_, v)| v.is_some()) {
            most_common(usable.iter().filter_map(|(_, v)| *v))
        } else {
            None
        };
        let mtu = self.mtu;
        for (name, v) in usable {
            if v.is_some() && v != mtu {
                let m = self.members.get_mut(&name).expect("member");
                m.own_mtu = v;
                let places = m
                    .mtu
                    .map(|(_, l)| vec![m.file.place(l)])
                    .unwrap_or_default();
                let network = mtu.map_or("none".to_owned(), |v| v.to_string());
                self.f.note(
                    "mtu",
                    format!(
                        "{name}'s MTU ({}) is not the network's ({network}): imported as its own mtu",
                        v.unwrap_or_default()
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
            // `Table = off` in a file wgfleet rendered is its own (it adds the routes itself).
            let rendered = file.is_wgfleet_rendered();
            for kv in &file.interface {
                let own_table = rendered && kv.key == "table" && kv.value == wgconf::TABLE_OFF;
                if !own_table && !matches!(kv.key.as_str(), "address" | "listenport" | "mtu") {
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
