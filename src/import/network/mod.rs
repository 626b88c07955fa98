//! One network: its shape, members, addresses and what each file says of the others. One file
//! per phase of the import (members, subnets, entries, keys, topology, …), run in order by
//! `crate::import::import`.

use super::*;

mod addresses;
mod allowed_ips;
mod build;
mod clients;
mod endpoints;
mod entries;
mod hints;
mod interface;
mod keys;
mod members;
mod names;
mod subnets;
mod topology;

pub(super) use names::{sanitize_name, without_installer_marks};

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
    /// What the fleet sets on the member when it differs from the network's (0: no fixed port).
    own_listen_port: Option<u16>,
    own_mtu: Option<u64>,
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

impl<'f> PlannedSecret<'f> {
    /// The private key of `host`, fleet-wide or (`network`) for one network only.
    pub(super) fn private_key(
        host: &str,
        network: Option<&str>,
        source: Option<(String, usize)>,
        key: &'f SecretKey,
    ) -> Self {
        let (file_name, what, target) = match network {
            None => (
                format!("{host}.age"),
                format!("the private key of {host}"),
                Target::Host(host.to_owned()),
            ),
            Some(net) => (
                format!("{host}-{net}.age"),
                format!("the private key of {host} in {net}"),
                Target::Member(net.to_owned(), host.to_owned()),
            ),
        };
        PlannedSecret {
            file_name,
            source,
            what,
            needed_by: vec![host.to_owned()],
            key,
            target,
        }
    }
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
    /// Every host's files (any network), as reports name them.
    pub(super) files_of: &'c BTreeMap<String, Vec<String>>,
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

impl<'f> NetImport<'f, '_> {
    pub(crate) fn member_file(&self, host: &str) -> &'f ConfFile {
        self.members[host].file
    }

    pub(crate) fn inside_subnet(&self, p: &IpNet) -> bool {
        match p {
            IpNet::V4(n) => self.subnet4.is_some_and(|s| s.contains(n)),
            IpNet::V6(n) => self.subnet6.is_some_and(|s| s.contains(n)),
        }
    }

    pub(crate) fn overlaps_subnet(&self, p: &IpNet) -> bool {
        match p {
            IpNet::V4(n) => self
                .subnet4
                .is_some_and(|s| s.contains(n) || n.contains(&s)),
            IpNet::V6(n) => self
                .subnet6
                .is_some_and(|s| s.contains(n) || n.contains(&s)),
        }
    }

    pub(crate) fn is_mesh(&self) -> bool {
        self.hubs.is_empty()
    }

    pub(crate) fn is_hub(&self, name: &str) -> bool {
        self.hubs.iter().any(|h| h == name)
    }

    /// Whether wgfleet puts an Endpoint on `from`'s entry for `to`.
    pub(crate) fn renders_dial(&self, to: &str) -> bool {
        (self.is_mesh() || self.is_hub(to))
            && self.members.get(to).is_some_and(|m| m.endpoint.is_some())
    }

    pub(crate) fn parse_allowed(&mut self, file: &'f ConfFile, sec: &'f PeerSec) -> Vec<IpNet> {
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
}
