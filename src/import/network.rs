//! One network: its shape, members, addresses and what each file says of the others.

use super::*;

pub(super) struct Member<'f> {
    file: &'f ConfFile,
    key: String,
    /// The key was taken from the others' files (no PrivateKey in its own).
    key_from_peers: bool,
    v4: Option<(Ipv4Addr, u8, usize)>,
    v6: Option<(Ipv6Addr, u8, usize)>,
    /// Addresses after duplicates were resolved.
    addr4: Option<Ipv4Addr>,
    addr6: Option<Ipv6Addr>,
    listen_port: Option<(u16, usize)>,
    mtu: Option<(u64, usize)>,
    /// What the others route to it.
    advertised: Vec<IpNet>,
    routes: Vec<IpNet>,
    allowed_override: Option<Vec<IpNet>>,
    reach: Vec<IpNet>,
    endpoint: Option<Endpoint>,
    keepalive: Option<u64>,
    description: Option<String>,
    forwarding: bool,
    nat_wan: Option<String>,
}

impl Member<'_> {
    fn orig_host_prefixes(&self) -> Vec<IpNet> {
        let v4 = self.v4.map(|(a, ..)| host_prefix(a.into()));
        let v6 = self.v6.map(|(a, ..)| host_prefix(a.into()));
        v4.into_iter().chain(v6).collect()
    }

    fn host_prefixes(&self) -> Vec<IpNet> {
        let v4 = self.addr4.map(|a| host_prefix(a.into()));
        let v6 = self.addr6.map(|a| host_prefix(a.into()));
        v4.into_iter().chain(v6).collect()
    }

    fn address_lines(&self) -> Vec<usize> {
        let mut l: Vec<usize> = [self.v4.map(|v| v.2), self.v6.map(|v| v.2)]
            .into_iter()
            .flatten()
            .collect();
        l.dedup();
        l
    }

    fn address_text(&self) -> String {
        let v4 = self.v4.map(|(a, l, _)| format!("{a}/{l}"));
        let v6 = self.v6.map(|(a, l, _)| format!("{a}/{l}"));
        v4.into_iter().chain(v6).collect::<Vec<_>>().join(", ")
    }
}

pub(super) struct Entry<'f> {
    file: &'f ConfFile,
    sec: &'f PeerSec,
    /// Matched to its member by address or endpoint, not by key.
    stale: bool,
    allowed: Vec<IpNet>,
}

impl Entry<'_> {
    fn lines_allowed(&self) -> Vec<Place> {
        self.file.places(self.sec.allowed_lines())
    }

    fn key_place(&self) -> Vec<Place> {
        self.file
            .places(self.sec.public_key.as_ref().map(|(_, l)| *l))
    }
}

pub(super) struct ClientOut<'f> {
    name: String,
    key: String,
    addr4: Option<Ipv4Addr>,
    addr6: Option<Ipv6Addr>,
    hubs: Option<Vec<String>>,
    description: Option<String>,
    psk: Option<(&'f SecretKey, (String, usize))>,
    /// Where it was seen (host, file, section): for duplicate-address reports.
    seen: Vec<(String, &'f ConfFile, &'f PeerSec)>,
}

/// A secret the fleet needs, before encryption.
pub(super) struct PlannedSecret<'f> {
    pub(super) file_name: String,
    /// The file and line the key was read from.
    pub(super) source: Option<(String, usize)>,
    pub(super) what: String,
    pub(super) needed_by: Vec<String>,
    pub(super) key: &'f SecretKey,
    pub(super) target: Target,
}

pub(super) enum Target {
    Host(String),
    Member(String, String),
    Pair(String, String, String),
    Client(String, String),
}

pub(super) struct NetOut<'f> {
    pub(super) network: schema::Network,
    /// Per member: key, the private key, endpoint, description, wan interface.
    pub(super) hosts: BTreeMap<String, HostFacts<'f>>,
    pub(super) psk_pairs: Vec<(String, String, &'f SecretKey, (String, usize))>,
    pub(super) client_psks: Vec<(String, &'f SecretKey, (String, usize))>,
    pub(super) summary: NetworkSummary,
    /// The files of the members, for the round trip.
    pub(super) files: BTreeMap<String, &'f ConfFile>,
    pub(super) names: BTreeMap<String, String>,
}

pub(super) struct HostFacts<'f> {
    pub(super) public_key: String,
    pub(super) private_key: Option<&'f SecretKey>,
    pub(super) key_source: Option<(String, usize)>,
    pub(super) endpoint: Option<Endpoint>,
    pub(super) description: Option<String>,
    pub(super) wan: Option<String>,
}

pub(super) struct NetImport<'f, 'c> {
    pub(super) name: String,
    pub(super) f: &'c mut Findings,
    /// Every host's public key (from its files, any network) → host.
    pub(super) key_owners: &'c BTreeMap<String, String>,
    /// Hosts that have a file for this network (imported or not).
    pub(super) file_hosts: BTreeSet<String>,
    pub(super) members: BTreeMap<String, Member<'f>>,
    /// (from, to) → the entry `from` has for `to`.
    pub(super) entries: BTreeMap<(String, String), Entry<'f>>,
    pub(super) foreign: Vec<(String, &'f ConfFile, &'f PeerSec, Vec<IpNet>)>,
    pub(super) subnet4: Option<Ipv4Net>,
    pub(super) subnet6: Option<Ipv6Net>,
    pub(super) hubs: Vec<String>,
    pub(super) listen_port: u16,
    pub(super) listen_port_set: Option<u16>,
    pub(super) mtu: Option<u64>,
    pub(super) keepalive: Option<u64>,
    pub(super) clients: Vec<ClientOut<'f>>,
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

impl<'f> NetImport<'f, '_> {
    fn member_file(&self, host: &str) -> &'f ConfFile {
        self.members[host].file
    }

    fn inside_subnet(&self, p: &IpNet) -> bool {
        match p {
            IpNet::V4(n) => self.subnet4.is_some_and(|s| s.contains(n)),
            IpNet::V6(n) => self.subnet6.is_some_and(|s| s.contains(n)),
        }
    }

    fn overlaps_subnet(&self, p: &IpNet) -> bool {
        match p {
            IpNet::V4(n) => self
                .subnet4
                .is_some_and(|s| s.contains(n) || n.contains(&s)),
            IpNet::V6(n) => self
                .subnet6
                .is_some_and(|s| s.contains(n) || n.contains(&s)),
        }
    }

    fn is_mesh(&self) -> bool {
        self.hubs.is_empty()
    }

    fn is_hub(&self, name: &str) -> bool {
        self.hubs.iter().any(|h| h == name)
    }

    /// Whether wgfleet puts an Endpoint on `from`'s entry for `to`.
    fn renders_dial(&self, to: &str) -> bool {
        (self.is_mesh() || self.is_hub(to))
            && self.members.get(to).is_some_and(|m| m.endpoint.is_some())
    }

    fn parse_allowed(&mut self, file: &'f ConfFile, sec: &'f PeerSec) -> Vec<IpNet> {
        let mut out = Vec::new();
        for (text, line) in &sec.allowed_ips {
            match parse_prefix(text) {
                Some(p) => {
                    if p.trunc() != p {
                        self.f.note(
                            "host-bits",
                            format!(
                                "AllowedIPs {text} on {} has host bits set; WireGuard reads it as {}, and so does the fleet",
                                file.src.host,
                                p.trunc()
                            ),
                            vec![file.place(*line)],
                        );
                    }
                    out.push(p.trunc());
                }
                None => self.f.warn(
                    "bad-value",
                    format!(
                        "AllowedIPs {text:?} on {} is not an IP prefix; not imported",
                        file.src.host
                    ),
                    vec![file.place(*line)],
                ),
            }
        }
        fold_prefixes(out)
    }

    // -- members ------------------------------------------------------------------------------

    pub(super) fn read_members(&mut self, files: &[&'f ConfFile]) {
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
                self.f.warn(
                    "bad-value",
                    format!("the PrivateKey of {host} is not a WireGuard key (32 bytes of base64)"),
                    vec![file.place(line)],
                );
            }
            for &line in &file.unknown_sections {
                self.f.note(
                    "not-imported",
                    format!(
                        "not imported: an unknown section in {}; wg-quick ignores it too",
                        file.src.display
                    ),
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

    // -- subnets ------------------------------------------------------------------------------

    pub(super) fn choose_subnets(&mut self) {
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
                .filter(|(_, _, l, _)| *l <= 30)
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
                .filter(|(_, _, l, _)| *l <= 126)
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
                let bad = !s.contains(&a) || a == s.network() || a == s.broadcast();
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
                if !s.contains(&a) || a == s.network() {
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

    // -- who peers with whom --------------------------------------------------------------------

    pub(super) fn classify_entries(&mut self) {
        let owner: BTreeMap<String, String> = self
            .members
            .iter()
            .map(|(n, m)| (m.key.clone(), n.clone()))
            .collect();
        let names: Vec<String> = self.members.keys().cloned().collect();
        let mut unmatched: Vec<(String, &'f ConfFile, &'f PeerSec)> = Vec::new();
        for from in &names {
            let file = self.member_file(from);
            for sec in &file.peers {
                let Some(key) = sec.key() else {
                    self.f.warn(
                        "no-public-key",
                        format!("a [Peer] on {from} has no PublicKey; wg-quick rejects it, and it is not imported"),
                        vec![file.place(sec.header)],
                    );
                    continue;
                };
                if let Some(line) = sec.bad_psk {
                    self.f.warn(
                        "bad-value",
                        format!(
                            "the PresharedKey of {from}'s peer {key} is not a key; not imported"
                        ),
                        vec![file.place(line)],
                    );
                }
                match owner.get(key) {
                    Some(to) if to == from => self.f.warn(
                        "self-peer",
                        format!("{from} lists its own public key as a peer; not imported"),
                        file.places(sec.public_key.as_ref().map(|(_, l)| *l)),
                    ),
                    Some(to) => {
                        let allowed = self.parse_allowed(file, sec);
                        let k = (from.clone(), to.clone());
                        if let Some(old) = self.entries.get(&k) {
                            let mut places = old.key_place();
                            places.extend(file.places(sec.public_key.as_ref().map(|(_, l)| *l)));
                            self.f.warn(
                                "duplicate-peer",
                                format!("{from} has two [Peer] sections for {to}; the last one is imported"),
                                places,
                            );
                        }
                        self.entries.insert(
                            k,
                            Entry {
                                file,
                                sec,
                                stale: false,
                                allowed,
                            },
                        );
                    }
                    None => unmatched.push((from.clone(), file, sec)),
                }
            }
        }
        // A key no member owns, on a host that has no entry for some member with that member's
        // address (or endpoint): that member's old key.
        let mut endpoints: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for ((_, to), e) in &self.entries {
            if let Some((ep, _)) = &e.sec.endpoint {
                endpoints.entry(ep.clone()).or_default().insert(to.clone());
            }
        }
        for (from, file, sec) in unmatched {
            let allowed = self.parse_allowed(file, sec);
            let candidates: Vec<String> = self
                .members
                .iter()
                .filter(|(n, _)| {
                    **n != from && !self.entries.contains_key(&(from.clone(), (*n).clone()))
                })
                .filter(|(_, m)| m.orig_host_prefixes().iter().any(|p| allowed.contains(p)))
                .map(|(n, _)| n.clone())
                .collect();
            let by_endpoint: Vec<String> = sec
                .endpoint
                .as_ref()
                .and_then(|(ep, _)| endpoints.get(ep))
                .into_iter()
                .flatten()
                .filter(|n| {
                    **n != from && !self.entries.contains_key(&(from.clone(), (*n).clone()))
                })
                .cloned()
                .collect();
            let to = match (candidates.as_slice(), by_endpoint.as_slice()) {
                ([one], _) => Some(one.clone()),
                ([], [one]) => Some(one.clone()),
                _ => None,
            };
            match to {
                Some(to) => {
                    self.entries.insert(
                        (from, to),
                        Entry {
                            file,
                            sec,
                            stale: true,
                            allowed,
                        },
                    );
                }
                None => self.foreign.push((from, file, sec, allowed)),
            }
        }
    }

    pub(super) fn report_keys(&mut self) {
        if self.members.len() < 2 {
            return;
        }
        let names: Vec<String> = self.members.keys().cloned().collect();
        for to in &names {
            let m = &self.members[to];
            if m.key_from_peers {
                continue;
            }
            let known = self.entries.iter().any(|((_, t), e)| t == to && !e.stale);
            let stale: Vec<(&String, &Entry)> = self
                .entries
                .iter()
                .filter(|((_, t), e)| t == to && e.stale)
                .map(|((f, _), e)| (f, e))
                .collect();
            let key_line = m.file.private_key.as_ref().map(|(_, l)| *l);
            let mut places = m.file.places(key_line);
            for (_, e) in &stale {
                places.extend(e.key_place());
            }
            let stale_text = stale
                .iter()
                .map(|(f, e)| format!("{f} has {to} under {}", e.sec.key().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("; ");
            let hosts = stale
                .iter()
                .map(|(f, _)| f.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            if !known && stale.is_empty() {
                self.f.warn(
                    "key-nowhere",
                    format!(
                        "{to}'s private key belongs to {}, which appears in no other file of {}: no host peers with {to} under this key",
                        m.key, self.name
                    ),
                    places,
                );
            } else if !known {
                self.f.warn(
                    "key-nowhere",
                    format!(
                        "{to}'s private key belongs to {}, which appears in no other file; {stale_text} instead: was {to}'s key regenerated? Imported with {} (from the private key); applying replaces the old key on {hosts}",
                        m.key, m.key
                    ),
                    places,
                );
            } else if !stale.is_empty() {
                self.f.warn(
                    "stale-key",
                    format!(
                        "{stale_text}, which is no host's key, while the others know {to} as {}: an old key of {to}? Imported with {}; applying replaces it on {hosts}",
                        m.key, m.key
                    ),
                    places,
                );
            }
        }
    }

    // -- shape --------------------------------------------------------------------------------

    pub(super) fn choose_topology(&mut self) {
        let names: Vec<String> = self.members.keys().cloned().collect();
        let adjacent = |a: &str, b: &str| {
            self.entries.contains_key(&(a.to_owned(), b.to_owned()))
                || self.entries.contains_key(&(b.to_owned(), a.to_owned()))
        };
        let n = names.len();
        let complete = names
            .iter()
            .enumerate()
            .all(|(i, a)| names[i + 1..].iter().all(|b| adjacent(a, b)));
        if n <= 1 {
            return;
        }
        if complete {
            if n == 2 {
                let (a, b) = (&names[0], &names[1]);
                let dials = |x: &str, y: &str| {
                    self.entries
                        .get(&(x.to_owned(), y.to_owned()))
                        .is_some_and(|e| e.sec.endpoint.is_some())
                };
                match (dials(a, b), dials(b, a)) {
                    (true, false) => self.hubs = vec![b.clone()],
                    (false, true) => self.hubs = vec![a.clone()],
                    _ => {}
                }
            }
        } else {
            let hubs: Vec<String> = names
                .iter()
                .filter(|h| names.iter().all(|o| o == *h || adjacent(h, o)))
                .cloned()
                .collect();
            if hubs.is_empty() {
                let missing: Vec<String> = names
                    .iter()
                    .enumerate()
                    .flat_map(|(i, a)| {
                        names[i + 1..]
                            .iter()
                            .filter(|b| !adjacent(a, b))
                            .map(move |b| format!("{a}–{b}"))
                    })
                    .collect();
                self.f.warn(
                    "topology",
                    format!(
                        "{}: neither a mesh nor hub-and-spoke (no host peers with all the others); imported as a mesh, so applying adds the missing pairs: {}",
                        self.name,
                        missing.join(", ")
                    ),
                    vec![],
                );
            } else {
                self.hubs = hubs;
                for (i, a) in names.iter().enumerate() {
                    for b in &names[i + 1..] {
                        if !self.is_hub(a) && !self.is_hub(b) && adjacent(a, b) {
                            let mut places = Vec::new();
                            for (x, y) in [(a, b), (b, a)] {
                                if let Some(e) = self.entries.get(&(x.clone(), y.clone())) {
                                    places.extend(e.key_place());
                                }
                            }
                            self.f.warn(
                                "spoke-to-spoke",
                                format!(
                                    "{a} and {b} peer with each other, but neither is a hub ({}): wgfleet peers spokes only with hubs, so applying removes this pair",
                                    self.hubs.join(", ")
                                ),
                                places,
                            );
                        }
                    }
                }
            }
        }
        // Pairs where only one side has the other.
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                let ab = self.entries.get(&(a.clone(), b.clone()));
                let ba = self.entries.get(&(b.clone(), a.clone()));
                let rendered = self.is_mesh() || self.is_hub(a) || self.is_hub(b);
                let (has, lacks, e) = match (ab, ba) {
                    (Some(e), None) => (a, b, e),
                    (None, Some(e)) => (b, a, e),
                    _ => continue,
                };
                if rendered {
                    self.f.warn(
                        "one-sided",
                        format!("{has} peers with {lacks}, but {lacks} has no [Peer] for {has}: the tunnel cannot come up; applying adds it to {lacks}"),
                        e.key_place(),
                    );
                }
            }
        }
    }

    // -- interface values -----------------------------------------------------------------------

    pub(super) fn interface_values(&mut self) {
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
    pub(super) fn unsupported_interface_keys(&mut self) {
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

    // -- clients: peers no host owns ----------------------------------------------------------

    pub(super) fn clients(&mut self, used_names: &mut BTreeSet<String>, unknown: &mut usize) {
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
                for kv in &s.other {
                    self.f.note(
                        "not-imported",
                        format!(
                            "not imported: {} of client `{name}` on {h} — not a key wgfleet writes",
                            crate::wgconf::canonical_key(&kv.key)
                        ),
                        vec![f.place(kv.no)],
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

    // -- duplicate addresses ------------------------------------------------------------------

    pub(super) fn duplicates(&mut self) {
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

    fn free_address(
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

    // -- AllowedIPs ---------------------------------------------------------------------------

    /// Every entry for a member must cover that member's own address.
    pub(super) fn check_coverage(&mut self) {
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
    pub(super) fn advertised(&mut self) {
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

    fn reach(&mut self) {
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

    // -- endpoints and keepalive ----------------------------------------------------------------

    pub(super) fn endpoints(&mut self) {
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
                        let what = if port_of(&chosen) == p {
                            format!("imported with port {p}, so applying fixes {from}'s Endpoint")
                        } else {
                            "a port forward? If not, the handshake fails; imported as it is"
                                .to_owned()
                        };
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
            let strip = chosen.port == Some(self.listen_port);
            let ep = Endpoint {
                host: chosen.host.clone(),
                port: if strip { None } else { chosen.port },
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

    pub(super) fn keepalives(&mut self) {
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

    // -- preshared keys, descriptions, peers' other keys ---------------------------------------

    fn pair_psks(&mut self) -> Vec<(String, String, &'f SecretKey, (String, usize))> {
        let mut out = Vec::new();
        let names: Vec<String> = self.members.keys().cloned().collect();
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                let ab = self.entries.get(&(a.clone(), b.clone()));
                let ba = self.entries.get(&(b.clone(), a.clone()));
                let psk = |e: Option<&Entry<'f>>| {
                    e.and_then(|e| {
                        e.sec
                            .psk
                            .as_ref()
                            .map(|(k, l)| (k, (e.file.src.display.clone(), *l)))
                    })
                };
                let (pa, pb) = (psk(ab), psk(ba));
                let a_has = pa.is_some();
                let place = |e: Option<&Entry<'f>>| {
                    e.and_then(|e| e.sec.psk.as_ref().map(|(_, l)| e.file.place(*l)))
                };
                match (pa, pb) {
                    (None, None) => {}
                    (Some((ka, sa)), Some((kb, _))) if ka.to_base64() == kb.to_base64() => {
                        out.push((a.clone(), b.clone(), ka, sa))
                    }
                    (Some((ka, sa)), Some(_)) => {
                        self.f.warn(
                            "psk-mismatch",
                            format!("{a} and {b} use different PresharedKeys for each other: the handshake fails; {a}'s is imported, so applying changes {b}'s"),
                            [place(ab), place(ba)].into_iter().flatten().collect(),
                        );
                        out.push((a.clone(), b.clone(), ka, sa));
                    }
                    (Some((k, src)), None) | (None, Some((k, src))) => {
                        let (has, lacks) = if a_has { (a, b) } else { (b, a) };
                        if ab.is_some() && ba.is_some() {
                            self.f.warn(
                                "psk-mismatch",
                                format!("{has} has a PresharedKey for {lacks}, but {lacks} has none for {has}: the handshake fails; imported, so applying adds it on {lacks}"),
                                [place(ab), place(ba)].into_iter().flatten().collect(),
                            );
                        }
                        out.push((a.clone(), b.clone(), k, src));
                    }
                }
            }
        }
        out
    }

    pub(super) fn peer_leftovers(&mut self) {
        for ((from, to), e) in &self.entries {
            for kv in &e.sec.other {
                self.f.note(
                    "not-imported",
                    format!(
                        "not imported: {} in {from}'s entry for {to} — not a key wgfleet writes",
                        crate::wgconf::canonical_key(&kv.key)
                    ),
                    vec![e.file.place(kv.no)],
                );
            }
        }
    }

    pub(super) fn descriptions(&mut self) {
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
    pub(super) fn forwarding_hint(&mut self) {
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
    pub(super) fn firewall_hint(&mut self) {
        let dialled: Vec<String> = self
            .members
            .iter()
            .filter(|(n, m)| m.endpoint.is_some() && (self.is_mesh() || self.is_hub(n)))
            .map(|(n, _)| n.clone())
            .collect();
        if dialled.is_empty() {
            return;
        }
        let port = self.listen_port;
        self.f.note(
            "firewall",
            format!(
                "once applied, wgfleet opens UDP {port} on {} in its own chain (WGFLEET-INPUT) and never touches other rules: a rule that opened it by hand stays, and `wgfleet plan` and `apply` point it out until you remove it (`iptables -D INPUT -p udp --dport {port} -j ACCEPT`)",
                dialled.join(", ")
            ),
            vec![],
        );
    }

    // -- the network in the fleet -------------------------------------------------------------

    fn member_schema(&self, m: &Member, run: &BTreeSet<u64>) -> schema::Member {
        let mut out = schema::Member::default();
        let id4 = m.addr4.zip(self.subnet4).and_then(|(a, s)| id_of4(s, a));
        let id6 = m.addr6.zip(self.subnet6).and_then(|(a, s)| id_of6(s, a));
        let candidate = if m.addr4.is_some() { id4 } else { id6 };
        // An id gives an address in every subnet of the network: only when the member has one.
        let id_ok = candidate.is_some_and(|id| run.contains(&id))
            && (self.subnet4.is_none() || m.addr4.is_some())
            && (self.subnet6.is_none() || m.addr6.is_some());
        if id_ok {
            out.id = candidate;
            if m.addr4.is_some() && m.addr6.is_some() && id6 != candidate {
                out.address6 = m.addr6.map(|a| a.to_string());
            }
        } else {
            out.address = m.addr4.map(|a| a.to_string());
            out.address6 = m.addr6.map(|a| a.to_string());
        }
        out.routes = m.routes.iter().map(ToString::to_string).collect();
        out.reach = m.reach.iter().map(ToString::to_string).collect();
        out.allowed_ips = m
            .allowed_override
            .as_ref()
            .map(|l| l.iter().map(ToString::to_string).collect());
        out.forwarding = m.forwarding;
        out.nat = m.nat_wan.is_some();
        out.persistent_keepalive = m.keepalive;
        out
    }

    pub(super) fn build(mut self) -> NetOut<'f> {
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
            let id4 = c.addr4.zip(self.subnet4).and_then(|(a, s)| id_of4(s, a));
            let id6 = c.addr6.zip(self.subnet6).and_then(|(a, s)| id_of6(s, a));
            let candidate = if c.addr4.is_some() { id4 } else { id6 };
            let id_ok = candidate.is_some()
                && (self.subnet4.is_none() || c.addr4.is_some())
                && (self.subnet6.is_none() || c.addr6.is_some());
            let mut out = schema::Client {
                public_key: c.key.clone(),
                hubs: c.hubs.clone(),
                description: c.description.clone(),
                ..schema::Client::default()
            };
            if id_ok {
                out.id = candidate;
                if c.addr4.is_some() && c.addr6.is_some() && id6 != candidate {
                    out.address6 = c.addr6.map(|a| a.to_string());
                }
            } else {
                out.address = c.addr4.map(|a| a.to_string());
                out.address6 = c.addr6.map(|a| a.to_string());
            }
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

fn id_of4(s: Ipv4Net, a: Ipv4Addr) -> Option<u64> {
    (s.contains(&a) && a != s.network() && a != s.broadcast())
        .then(|| u64::from(u32::from(a) - u32::from(s.network()) - 1))
}

fn id_of6(s: Ipv6Net, a: Ipv6Addr) -> Option<u64> {
    if !s.contains(&a) || a == s.network() {
        return None;
    }
    u64::try_from(u128::from(a) - u128::from(s.network()) - 1).ok()
}

/// A comment as a client name: lowercase, runs of other characters as '-'.
pub(super) fn sanitize_name(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if matches!(c, '.' | '_') && !out.is_empty() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches(['-', '.', '_']).to_owned();
    if out.len() > 63 {
        out[..63].trim_end_matches(['-', '.', '_']).to_owned()
    } else {
        out
    }
}
