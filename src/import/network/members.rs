//! Members: each file's own interface (addresses, port, MTU, key).

use super::*;

impl<'f> NetImport<'f, '_> {
    pub(crate) fn read_members(&mut self, files: &[&'f ConfFile]) {
        let mut keyless: Vec<&'f ConfFile> = Vec::new();
        for &file in files {
            let host = &file.src.host;
            self.file_hosts.insert(host.clone());
            if file.interface_line.is_none() {
                self.f.warn(
                    "no-interface",
                    format!(
                        "{} has no [Interface] section; {host} is not imported into {}",
                        file.src.display, self.name
                    ),
                    vec![],
                );
                continue;
            }
            if let Some(line) = file.bad_private_key {
                self.f.error(
                    "bad-value",
                    format!("the PrivateKey of {host} is not a WireGuard key (32 bytes of base64): wg-quick refuses the file"),
                    vec![file.place(line)],
                );
            }
            let (mut v4, mut v6) = (None, None);
            for kv in file.values("address") {
                for item in kv.value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let parsed = item
                        .parse::<IpNet>()
                        .ok()
                        .or_else(|| item.parse::<IpAddr>().ok().map(IpNet::from));
                    match parsed {
                        Some(IpNet::V4(n)) if v4.is_none() => {
                            v4 = Some((n.addr(), n.prefix_len(), kv.no))
                        }
                        Some(IpNet::V6(n)) if v6.is_none() => {
                            v6 = Some((n.addr(), n.prefix_len(), kv.no))
                        }
                        Some(_) => self.f.warn(
                            "not-imported",
                            format!(
                                "not imported: Address {item} on {host}; a member has one IPv4 and one IPv6 address in a network"
                            ),
                            vec![file.place(kv.no)],
                        ),
                        None => self.f.warn(
                            "bad-value",
                            format!("Address {item:?} on {host} is not an address"),
                            vec![file.place(kv.no)],
                        ),
                    }
                }
            }
            if v4.is_none() && v6.is_none() {
                self.f.warn(
                    "no-address",
                    format!(
                        "{host} has no Address in {}; it is not imported into {} (wgfleet gives every member a tunnel address)",
                        file.src.display, self.name
                    ),
                    file.places(file.interface_line),
                );
                continue;
            }
            let listen_port =
                file.values("listenport")
                    .last()
                    .and_then(|kv| match kv.value.parse::<u16>() {
                        Ok(p) if p > 0 => Some((p, kv.no)),
                        _ => {
                            self.f.warn(
                                "bad-value",
                                format!("ListenPort {:?} on {host} is not a port", kv.value),
                                vec![file.place(kv.no)],
                            );
                            None
                        }
                    });
            let mtu = file
                .values("mtu")
                .last()
                .and_then(|kv| kv.value.parse::<u64>().ok().map(|m| (m, kv.no)));
            let (key, from_peers) = match &file.private_key {
                Some((k, _)) => (k.public_key(), false),
                None => {
                    keyless.push(file);
                    (String::new(), true)
                }
            };
            self.members.insert(
                host.clone(),
                Member {
                    file,
                    key,
                    key_from_peers: from_peers,
                    v4,
                    v6,
                    addr4: v4.map(|v| v.0),
                    addr6: v6.map(|v| v.0),
                    listen_port,
                    mtu,
                    own_listen_port: None,
                    own_mtu: None,
                    advertised: Vec::new(),
                    routes: Vec::new(),
                    allowed_override: None,
                    reach: Vec::new(),
                    endpoint: None,
                    keepalive: None,
                    description: None,
                    forwarding: false,
                    nat_wan: None,
                },
            );
        }
        self.shared_private_keys();
        // A file without PrivateKey (loaded by a PostUp `wg set … private-key FILE`): the key
        // others use for its address.
        for file in keyless {
            let host = file.src.host.clone();
            let own: Vec<IpNet> = self.members[&host].orig_host_prefixes();
            let mut found: BTreeMap<String, Vec<Place>> = BTreeMap::new();
            for other in self.members.values().filter(|m| m.file.src.host != host) {
                for sec in &other.file.peers {
                    let Some(k) = sec.key() else { continue };
                    let hits = sec
                        .allowed_ips
                        .iter()
                        .filter_map(|(t, _)| parse_prefix(t))
                        .any(|p| own.contains(&p));
                    if hits {
                        found
                            .entry(k.to_owned())
                            .or_default()
                            .extend(other.file.places(sec.public_key.as_ref().map(|(_, l)| *l)));
                    }
                }
            }
            let mut places = file.places(file.interface_line);
            if found.len() == 1 {
                let (key, seen) = found.into_iter().next().unwrap_or_default();
                places.extend(seen);
                self.f.warn(
                    "no-private-key",
                    format!(
                        "{} has no PrivateKey (loaded by a hook?); {host}'s public key is taken from what the others have for its address: {key}. Its private key is not imported: encrypt the key file the hook reads (`age -a -r RECIPIENT -o secrets/{host}.age < KEYFILE`) and add hosts.{host}.privateKeyFile",
                        file.src.display
                    ),
                    places,
                );
                if let Some(m) = self.members.get_mut(&host) {
                    m.key = key;
                }
            } else {
                places.extend(found.into_values().flatten());
                self.f.warn(
                    "no-private-key",
                    format!(
                        "{} has no PrivateKey and the others' files do not tell {host}'s public key; {host} is not imported into {}",
                        file.src.display, self.name
                    ),
                    places,
                );
                self.members.remove(&host);
            }
        }
    }

    /// Two hosts with one PrivateKey (spokes cloned from one SD image) are one peer to
    /// WireGuard: only the first is imported, and the error says why.
    fn shared_private_keys(&mut self) {
        let mut owner: BTreeMap<String, String> = BTreeMap::new();
        let mut clones: Vec<(String, String)> = Vec::new();
        for (name, m) in &self.members {
            if m.key_from_peers {
                continue;
            }
            match owner.get(&m.key) {
                Some(first) => clones.push((first.clone(), name.clone())),
                None => {
                    owner.insert(m.key.clone(), name.clone());
                }
            }
        }
        for (first, clone) in clones {
            let mut places = Vec::new();
            for n in [&first, &clone] {
                let f = self.members[n].file;
                places.extend(f.places(f.private_key.as_ref().map(|(_, l)| *l)));
            }
            self.f.error(
                "shared-private-key",
                format!(
                    "{first} and {clone} have the same PrivateKey (cloned from one image?): to WireGuard they are one peer ({}), and every host routes to only one of them; {clone} is not imported: give it its own key (`wg genkey`), put its public key in the others' [Peer] for it, and import again",
                    self.members[&first].key
                ),
                places,
            );
            self.members.remove(&clone);
        }
    }
}
