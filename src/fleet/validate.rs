//! Everything that can be known from the description alone. Walks the fleet once, collects every
//! finding (never stops at the first) and builds the validated model that planning uses.
//! Cost: O(fleet log fleet); nothing here is quadratic in the number of peers.

use std::collections::{BTreeMap, BTreeSet};

// Fx, not SipHash: these maps hold every address and key of the fleet, and the fleet is the
// operator's own file, not input from an adversary.
use rustc_hash::FxHashMap as HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::diag::Diagnostics;
use super::model::{
    FlowModel, HostModel, NetworkModel, Party, Peer, PeerKind, TestModel, ValidFleet, fold_prefixes,
};
use super::path::JsonPath;
use super::schema::{self, Fleet, Topology};
use super::syntax;
use super::time;

mod links;

pub const DEFAULT_LISTEN_PORT: u16 = 51820;

/// What validation needs from outside the description.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Unix seconds; clients whose `expires` is at or before it are on no host.
    pub now: i64,
    /// Warn about clients that expire within this many seconds.
    pub expiry_warning: i64,
}

/// The validated fleet (when there is no error) and every finding.
pub fn validate(fleet: &Fleet, opts: Options) -> (Option<ValidFleet>, Diagnostics) {
    let mut d = Diagnostics::default();
    let root = JsonPath::root();
    if !schema::SUPPORTED_VERSIONS.contains(&fleet.version) {
        d.error(
            &root.key("version"),
            format!(
                "schema version {} is not supported; this wgfleet reads version 1",
                fleet.version
            ),
        );
    }
    let hosts = check_hosts(fleet, &mut d);
    let client_names: BTreeSet<&str> = fleet
        .networks
        .values()
        .flat_map(|n| n.clients.keys().map(String::as_str))
        .collect();
    check_groups(fleet, &client_names, &mut d);

    let mut networks = BTreeMap::new();
    for (name, net) in &fleet.networks {
        let path = root.key("networks").key(name);
        if let Err(e) = syntax::check_network_name(name) {
            d.error(&path, e);
        }
        let model = NetworkCheck {
            fleet,
            path,
            d: &mut d,
            opts,
        }
        .run(name, net);
        networks.insert(name.clone(), model);
    }
    links::interface_names(fleet, &mut d);
    check_key_files(fleet, &mut d);
    if d.has_errors() {
        return (None, d);
    }
    let valid = ValidFleet { hosts, networks };
    for net in valid.networks.values() {
        check_policy(&valid, net, opts.now, &mut d);
    }
    ((!d.has_errors()).then_some(valid), d)
}

fn check_hosts(fleet: &Fleet, d: &mut Diagnostics) -> BTreeMap<String, HostModel> {
    let mut hosts = BTreeMap::new();
    let mut keys: HashMap<&str, &str> = HashMap::default();
    for (name, host) in &fleet.hosts {
        let path = JsonPath::keys(&["hosts", name]);
        if let Err(e) = syntax::check_name(name) {
            d.error(&path, e);
        }
        if let Err(e) = syntax::check_key(&host.public_key) {
            d.error(&path.key("publicKey"), e);
        } else if let Some(other) = keys.insert(&host.public_key, name) {
            d.error(
                &path.key("publicKey"),
                format!(
                    "the same public key as host {other:?}: the two hosts share one private key (cloned from one image?); give each its own (`wgfleet keygen`)"
                ),
            );
        }
        if let Some(ep) = &host.endpoint
            && let Err(e) = syntax::parse_endpoint(ep)
        {
            d.error(&path.key("endpoint"), e);
        }
        if let Some(wan) = &host.wan_interface
            && let Err(e) = syntax::check_interface(wan)
        {
            d.error(&path.key("wanInterface"), e);
        }
        check_opt(
            d,
            &path,
            "privateKeyFile",
            host.private_key_file.as_deref(),
            syntax::check_file_ref,
        );
        check_opt(
            d,
            &path,
            "description",
            host.description.as_deref(),
            syntax::check_text,
        );
        hosts.insert(
            name.clone(),
            HostModel {
                public_key: host.public_key.clone(),
                private_key_file: host.private_key_file.clone(),
                wan_interface: host.wan_interface.clone(),
            },
        );
    }
    hosts
}

/// What a key file holds, by the field that names it.
enum KeyRole {
    /// The private key of this host.
    Private(String),
    Preshared,
}

/// One key file is one secret. The same file as a private key and a preshared key would hand a
/// host's private key to a client as its `PresharedKey` (and `rekey` would re-encrypt it to the
/// peer); as two hosts' private keys written differently (`./a.age`, `x/../a.age`), it is one key
/// on two hosts (the same spelling is `links::shared_key_files`' finding). Files are compared by
/// their lexically normalised path; an alias through a link is caught when the key is decrypted.
fn check_key_files(fleet: &Fleet, d: &mut Diagnostics) {
    let mut uses: Vec<(String, &str, KeyRole, JsonPath)> = Vec::new();
    for (name, host) in &fleet.hosts {
        if let Some(file) = &host.private_key_file {
            let path = JsonPath::keys(&["hosts", name, "privateKeyFile"]);
            uses.push((
                normalise_ref(file),
                file,
                KeyRole::Private(name.clone()),
                path,
            ));
        }
    }
    for (net_name, net) in &fleet.networks {
        let net_path = JsonPath::keys(&["networks", net_name]);
        for (name, member) in &net.members {
            if let Some(file) = &member.private_key_file {
                let path = net_path.key("members").key(name).key("privateKeyFile");
                uses.push((
                    normalise_ref(file),
                    file,
                    KeyRole::Private(name.clone()),
                    path,
                ));
            }
        }
        for (name, client) in &net.clients {
            if let Some(file) = &client.preshared_key_file {
                let path = net_path.key("clients").key(name).key("presharedKeyFile");
                uses.push((normalise_ref(file), file, KeyRole::Preshared, path));
            }
        }
        for (i, pair) in net.preshared_keys.iter().enumerate() {
            let path = net_path.key("presharedKeys").index(i).key("file");
            uses.push((
                normalise_ref(&pair.file),
                &pair.file,
                KeyRole::Preshared,
                path,
            ));
        }
    }
    let mut owner: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for (file, raw, role, _) in &uses {
        if let KeyRole::Private(host) = role {
            owner.entry(file.as_str()).or_insert((host.as_str(), raw));
        }
    }
    for (file, raw, role, path) in &uses {
        let Some(&(first, first_raw)) = owner.get(file.as_str()) else {
            continue;
        };
        match role {
            KeyRole::Private(host) if host != first && *raw != first_raw => d.error(
                path,
                format!(
                    "{file:?} is also host {first:?}'s private key file; every host needs its \
                     own key (wgfleet keygen)"
                ),
            ),
            KeyRole::Private(_) => {}
            KeyRole::Preshared => d.error(
                path,
                format!(
                    "{file:?} is host {first:?}'s private key file, not a preshared key; give \
                     the preshared key its own file (wgfleet keygen --psk)"
                ),
            ),
        }
    }
}

/// A file reference with `.` and `dir/..` folded, so that `./secrets/a.age` and
/// `secrets/x/../a.age` name the same file as `secrets/a.age`.
fn normalise_ref(file: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in file.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if file.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

fn check_groups(fleet: &Fleet, client_names: &BTreeSet<&str>, d: &mut Diagnostics) {
    for (group, items) in &fleet.groups {
        let path = JsonPath::keys(&["groups", group]);
        if let Err(e) = syntax::check_name(group) {
            d.error(&path, e);
        }
        for (i, item) in items.iter().enumerate() {
            if !fleet.hosts.contains_key(item) && !client_names.contains(item.as_str()) {
                d.error(
                    &path.index(i),
                    format!("{item:?} is neither a host nor a client"),
                );
            }
        }
    }
}

/// Checks an optional field; the field's path is only built when there is something to report
/// (paths allocate, and a large fleet has many fields).
fn check_opt(
    d: &mut Diagnostics,
    parent: &JsonPath,
    field: &str,
    value: Option<&str>,
    check: impl Fn(&str) -> Result<(), String>,
) {
    if let Some(v) = value
        && let Err(e) = check(v)
    {
        d.error(&parent.key(field), e);
    }
}

/// Parses a list of prefixes, reporting each bad one; host bits set is an error because it
/// usually means a typo (`192.168.1.5/24` for `192.168.1.0/24`).
fn parse_prefixes(
    d: &mut Diagnostics,
    parent: &JsonPath,
    field: &str,
    list: &[String],
) -> Vec<IpNet> {
    let mut out = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        match parse_prefix(text) {
            Ok(p) => out.push(p),
            Err(e) => d.error(&parent.key(field).index(i), e),
        }
    }
    out
}

fn parse_prefix(text: &str) -> Result<IpNet, String> {
    let net: IpNet = match text.parse() {
        Ok(n) => n,
        // A bare address is a host prefix.
        Err(_) => match text.parse::<IpAddr>() {
            Ok(a) => IpNet::from(a),
            Err(_) => {
                return Err(format!(
                    "{text:?} is not an IP prefix like 10.0.0.0/24 or fd00::/64"
                ));
            }
        },
    };
    if net.trunc() != net {
        return Err(format!(
            "{text:?} has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Validates one network and builds its model.
struct NetworkCheck<'a> {
    fleet: &'a Fleet,
    path: JsonPath,
    d: &'a mut Diagnostics,
    opts: Options,
}

/// What addressing needs: the subnets, or why a member cannot have an address in them.
struct Subnets {
    v4: Option<Ipv4Net>,
    v6: Option<Ipv6Net>,
}

impl NetworkCheck<'_> {
    fn run(mut self, name: &str, net: &schema::Network) -> NetworkModel {
        let subnets = self.subnets(net);
        let listen_port = match net.listen_port {
            None => DEFAULT_LISTEN_PORT,
            Some(p @ 1..=65535) => p as u16,
            Some(p) => {
                self.d.error(
                    &self.path.key("listenPort"),
                    format!("{p} is not a port (1–65535)"),
                );
                DEFAULT_LISTEN_PORT
            }
        };
        let mtu = net.mtu.and_then(|m| {
            if (1280..=9000).contains(&m) {
                Some(m as u16)
            } else {
                self.d
                    .error(&self.path.key("mtu"), format!("{m} is outside 1280–9000"));
                None
            }
        });
        let net_path = self.path.clone();
        let keepalive = self.keepalive(&net_path, net.persistent_keepalive);
        let hubs = self.hubs(net);
        let client_dns = self.dns_list(&self.path.key("clientDns"), &net.client_dns);
        let defaults = links::Defaults { listen_port, mtu };

        let (flows, tests) = self.flows_and_tests(net);
        // Collected, then built in bulk: one sort instead of a search per peer.
        let mut peers = Vec::with_capacity(net.members.len() + net.clients.len());
        for (member_name, member) in &net.members {
            if let Some(peer) = self.member(member_name, member, &subnets, &hubs, defaults) {
                peers.push((member_name.clone(), peer));
            }
        }
        for (client_name, client) in &net.clients {
            if let Some(peer) = self.client(client_name, client, &subnets, net, &hubs, &client_dns)
            {
                peers.push((client_name.clone(), peer));
            }
        }
        let peers: BTreeMap<String, Peer> = peers.into_iter().collect();
        if net.members.is_empty() {
            self.d.warning(
                &self.path.key("members"),
                "this network has no members, so no host runs it",
            );
        }
        let model = NetworkModel {
            name: name.to_owned(),
            subnet: subnets.v4,
            subnet6: subnets.v6,
            listen_port,
            mtu,
            keepalive,
            client_dns,
            hubs,
            peers,
            pair_psks: self.pair_psks(net),
            flows,
            tests,
        };
        self.unique_addresses(&model);
        self.unique_keys(&model);
        self.conflicting_prefixes(&model);
        self.overlapping_routes(&model, net);
        self.hubs_reachable(&model, net);
        self.dialled_ports(&model, net);
        self.shared_key_files(&model);
        model
    }

    fn subnets(&mut self, net: &schema::Network) -> Subnets {
        let v4 = net.subnet.as_ref().and_then(|s| match parse_prefix(s) {
            Ok(IpNet::V4(n)) if n.prefix_len() <= 31 => Some(n),
            Ok(IpNet::V4(_)) => {
                self.d.error(
                    &self.path.key("subnet"),
                    format!("{s:?} is too small; use /31 (a point-to-point pair) or larger"),
                );
                None
            }
            Ok(IpNet::V6(_)) => {
                self.d.error(
                    &self.path.key("subnet"),
                    format!("{s:?} is IPv6; put it in subnet6"),
                );
                None
            }
            Err(e) => {
                self.d.error(&self.path.key("subnet"), e);
                None
            }
        });
        let v6 = net.subnet6.as_ref().and_then(|s| match parse_prefix(s) {
            Ok(IpNet::V6(n)) if n.prefix_len() <= 127 => Some(n),
            Ok(IpNet::V6(_)) => {
                self.d.error(
                    &self.path.key("subnet6"),
                    format!("{s:?} is too small; use /127 (a point-to-point pair) or larger"),
                );
                None
            }
            Ok(IpNet::V4(_)) => {
                self.d.error(
                    &self.path.key("subnet6"),
                    format!("{s:?} is IPv4; put it in subnet"),
                );
                None
            }
            Err(e) => {
                self.d.error(&self.path.key("subnet6"), e);
                None
            }
        });
        if net.subnet.is_none() && net.subnet6.is_none() {
            self.d
                .error(&self.path, "a network needs a subnet, a subnet6, or both");
        }
        Subnets { v4, v6 }
    }

    fn keepalive(&mut self, parent: &JsonPath, value: Option<u64>) -> Option<u16> {
        match value {
            None | Some(0) => None,
            Some(k @ 1..=65535) => Some(k as u16),
            Some(k) => {
                self.d.error(
                    &parent.key("persistentKeepalive"),
                    format!("{k} is not a keepalive interval (0–65535 seconds)"),
                );
                None
            }
        }
    }

    fn hubs(&mut self, net: &schema::Network) -> Vec<String> {
        let Topology::HubAndSpoke(hs) = &net.topology else {
            return Vec::new();
        };
        let path = self.path.key("topology").key("hubAndSpoke").key("hubs");
        if hs.hubs.is_empty() {
            self.d
                .error(&path, "a hub-and-spoke network needs at least one hub");
        }
        let mut seen = BTreeSet::new();
        for (i, hub) in hs.hubs.iter().enumerate() {
            if !net.members.contains_key(hub) {
                self.d.error(
                    &path.index(i),
                    format!("hub {hub:?} is not a member of this network"),
                );
            }
            if !seen.insert(hub) {
                self.d
                    .error(&path.index(i), format!("hub {hub:?} is listed twice"));
            }
        }
        hs.hubs.clone()
    }

    /// Resolves an address from an explicit value or from `id`.
    fn addresses(
        &mut self,
        path: &JsonPath,
        id: Option<u64>,
        address: Option<&str>,
        address6: Option<&str>,
        subnets: &Subnets,
    ) -> (Option<Ipv4Addr>, Option<Ipv6Addr>) {
        let errors_before = self.d.0.len();
        let v4 = match (address, subnets.v4) {
            (Some(text), subnet) => match text.parse::<Ipv4Addr>() {
                Err(_) => {
                    self.d.error(
                        &path.key("address"),
                        format!("{text:?} is not an IPv4 address"),
                    );
                    None
                }
                Ok(_) if subnet.is_none() => {
                    self.d.error(
                        &path.key("address"),
                        "an IPv4 address needs the network's subnet",
                    );
                    None
                }
                Ok(a) => self.inside_v4(&path.key("address"), a, subnet),
            },
            (None, Some(subnet)) => id.and_then(|id| {
                // The (id+1)-th address; the last usable one is just below the broadcast address.
                // A /31 has no network or broadcast address (RFC 3021): ids 0 and 1 are its two.
                let p2p = u64::from(links::point_to_point4(subnet));
                let usable = (1u64 << (32 - subnet.prefix_len())) - 2 + 2 * p2p;
                if id < usable {
                    Some(Ipv4Addr::from(
                        u32::from(subnet.network()) + id as u32 + 1 - p2p as u32,
                    ))
                } else {
                    let max = usable - 1;
                    self.d.error(
                        &path.key("id"),
                        format!("id {id} does not fit in {subnet} (ids 0–{max})"),
                    );
                    None
                }
            }),
            (None, None) => None,
        };
        let v6 = match (address6, subnets.v6) {
            (Some(text), subnet) => match text.parse::<Ipv6Addr>() {
                Err(_) => {
                    self.d.error(
                        &path.key("address6"),
                        format!("{text:?} is not an IPv6 address"),
                    );
                    None
                }
                Ok(_) if subnet.is_none() => {
                    self.d.error(
                        &path.key("address6"),
                        "an IPv6 address needs the network's subnet6",
                    );
                    None
                }
                Ok(a) => self.inside_v6(&path.key("address6"), a, subnet),
            },
            (None, Some(subnet)) => id.and_then(|id| {
                // id+1 must stay inside the subnet's host bits (a /0 holds every id).
                // A /127 has no subnet-router anycast address (RFC 6164): ids 0 and 1.
                let p2p = u128::from(links::point_to_point6(subnet));
                let host_bits = 128 - u32::from(subnet.prefix_len());
                let fits = host_bits == 128 || u128::from(id) + 1 - p2p < (1u128 << host_bits);
                if fits {
                    Some(Ipv6Addr::from(
                        u128::from(subnet.network()) + u128::from(id) + 1 - p2p,
                    ))
                } else {
                    self.d
                        .error(&path.key("id"), format!("id {id} does not fit in {subnet}"));
                    None
                }
            }),
            (None, None) => None,
        };
        if v4.is_none() && v6.is_none() && self.d.0.len() == errors_before {
            self.d
                .error(path, "no tunnel address: set id, address or address6");
        }
        (v4, v6)
    }

    fn inside_v4(
        &mut self,
        path: &JsonPath,
        a: Ipv4Addr,
        subnet: Option<Ipv4Net>,
    ) -> Option<Ipv4Addr> {
        let subnet = subnet?;
        if !subnet.contains(&a) {
            self.d
                .error(path, format!("{a} is outside the subnet {subnet}"));
            return None;
        }
        if !links::point_to_point4(subnet) && (a == subnet.network() || a == subnet.broadcast()) {
            self.d.error(
                path,
                format!("{a} is the network or broadcast address of {subnet}"),
            );
            return None;
        }
        Some(a)
    }

    fn inside_v6(
        &mut self,
        path: &JsonPath,
        a: Ipv6Addr,
        subnet: Option<Ipv6Net>,
    ) -> Option<Ipv6Addr> {
        let subnet = subnet?;
        if !subnet.contains(&a) {
            self.d
                .error(path, format!("{a} is outside the subnet {subnet}"));
            return None;
        }
        if !links::point_to_point6(subnet) && a == subnet.network() {
            self.d.error(
                path,
                format!("{a} is the subnet-router anycast address of {subnet}"),
            );
            return None;
        }
        Some(a)
    }

    fn member(
        &mut self,
        name: &str,
        m: &schema::Member,
        subnets: &Subnets,
        hubs: &[String],
        defaults: links::Defaults,
    ) -> Option<Peer> {
        let path = self.path.key("members").key(name);
        let Some(host) = self.fleet.hosts.get(name) else {
            self.d.error(
                &path,
                format!("{name:?} is not a host; add it under hosts first"),
            );
            return None;
        };
        let public_key = m
            .public_key
            .clone()
            .unwrap_or_else(|| host.public_key.clone());
        if m.public_key.is_some()
            && let Err(e) = syntax::check_key(&public_key)
        {
            self.d.error(&path.key("publicKey"), e);
        }
        let endpoint_text = m.endpoint.as_ref().or(host.endpoint.as_ref());
        let endpoint = endpoint_text.and_then(|t| match syntax::parse_endpoint(t) {
            Ok(ep) => Some(ep),
            Err(e) => {
                if m.endpoint.is_some() {
                    self.d.error(&path.key("endpoint"), e);
                }
                None
            }
        });
        let (address, address6) = self.addresses(
            &path,
            m.id,
            m.address.as_deref(),
            m.address6.as_deref(),
            subnets,
        );
        let routes = parse_prefixes(self.d, &path, "routes", &m.routes);
        let reach = parse_prefixes(self.d, &path, "reach", &m.reach);
        if !reach.is_empty() {
            if hubs.is_empty() {
                self.d.error(
                    &path.key("reach"),
                    "reach needs a hub-and-spoke network; in a mesh, list the prefix under the routes of the member that has it",
                );
            } else if hubs.iter().any(|h| h == name) {
                self.d.error(
                    &path.key("reach"),
                    "a hub peers with everyone; reach is for spokes",
                );
            }
        }
        let override_ips = m
            .allowed_ips
            .as_ref()
            .map(|l| parse_prefixes(self.d, &path, "allowedIPs", l));
        if m.nat && host.wan_interface.is_none() {
            self.d.error(
                &path.key("nat"),
                format!(
                    "nat masquerades out of the host's wanInterface; set hosts.{name}.wanInterface"
                ),
            );
        }
        let keepalive = self.keepalive(&path, m.persistent_keepalive);
        let (listen_port, mtu) = self.member_overrides(&path, m, defaults);
        check_opt(
            self.d,
            &path,
            "description",
            m.description.as_deref(),
            syntax::check_text,
        );
        check_opt(
            self.d,
            &path,
            "privateKeyFile",
            m.private_key_file.as_deref(),
            syntax::check_file_ref,
        );
        let mut peer = Peer {
            name: name.to_owned(),
            kind: PeerKind::Host,
            public_key,
            address,
            address6,
            advertised: Vec::new(),
            reach: fold_prefixes(reach),
            endpoint,
            keepalive,
            listen_port,
            mtu,
            dns: Vec::new(),
            interface: m.interface.clone(),
            forwarding: m.forwarding,
            nat: m.nat,
            secret_file: m
                .private_key_file
                .clone()
                .or_else(|| host.private_key_file.clone()),
            description: m.description.clone().or_else(|| host.description.clone()),
            owner: None,
            expires: None,
            hubs: None,
        };
        peer.advertised = match override_ips {
            Some(list) => fold_prefixes(list),
            None => fold_prefixes(peer.host_prefixes().into_iter().chain(routes)),
        };
        Some(peer)
    }

    fn client(
        &mut self,
        name: &str,
        c: &schema::Client,
        subnets: &Subnets,
        net: &schema::Network,
        hubs: &[String],
        client_dns: &[IpAddr],
    ) -> Option<Peer> {
        let path = self.path.key("clients").key(name);
        if let Err(e) = syntax::check_name(name) {
            self.d.error(&path, e);
        }
        if self.fleet.hosts.contains_key(name) {
            self.d.error(
                &path,
                format!("{name:?} is also a host; give the client its own name"),
            );
        }
        if let Err(e) = syntax::check_key(&c.public_key) {
            self.d.error(&path.key("publicKey"), e);
        }
        let (address, address6) = self.addresses(
            &path,
            c.id,
            c.address.as_deref(),
            c.address6.as_deref(),
            subnets,
        );
        check_opt(
            self.d,
            &path,
            "owner",
            c.owner.as_deref(),
            syntax::check_owner,
        );
        check_opt(
            self.d,
            &path,
            "description",
            c.description.as_deref(),
            syntax::check_text,
        );
        check_opt(
            self.d,
            &path,
            "presharedKeyFile",
            c.preshared_key_file.as_deref(),
            syntax::check_file_ref,
        );
        let expires = c
            .expires
            .as_ref()
            .and_then(|text| match time::parse_rfc3339(text) {
                Some(t) => Some(t),
                None => {
                    self.d.error(
                        &path.key("expires"),
                        format!("{text:?} is not an RFC 3339 time like 2026-12-31T00:00:00Z"),
                    );
                    None
                }
            });
        if let Some(t) = expires {
            let when = time::format_rfc3339(t);
            if t <= self.opts.now {
                self.d.warning(
                    &path.key("expires"),
                    format!("expired at {when}; it is on no host"),
                );
            } else if t - self.opts.now <= self.opts.expiry_warning {
                self.d
                    .warning(&path.key("expires"), format!("expires at {when}"));
            }
        }
        if let Some(list) = &c.hubs {
            for (i, hub) in list.iter().enumerate() {
                let ok = if hubs.is_empty() {
                    net.members.contains_key(hub)
                } else {
                    hubs.contains(hub)
                };
                if !ok {
                    let what = if hubs.is_empty() { "a member" } else { "a hub" };
                    self.d.error(
                        &path.key("hubs").index(i),
                        format!("{hub:?} is not {what} of this network"),
                    );
                }
            }
        }
        let mut peer = Peer {
            name: name.to_owned(),
            kind: PeerKind::Client,
            public_key: c.public_key.clone(),
            address,
            address6,
            advertised: Vec::new(),
            reach: Vec::new(),
            endpoint: None,
            keepalive: None,
            listen_port: None,
            mtu: None,
            interface: None,
            dns: match &c.dns {
                Some(list) => self.dns_list(&path.key("dns"), list),
                None => client_dns.to_vec(),
            },
            forwarding: false,
            nat: false,
            secret_file: c.preshared_key_file.clone(),
            description: c.description.clone(),
            owner: c.owner.clone(),
            expires,
            hubs: c.hubs.clone(),
        };
        peer.advertised = fold_prefixes(peer.host_prefixes());
        Some(peer)
    }

    /// The peers that are on some host now (expired clients are on none).
    fn live<'m>(&self, model: &'m NetworkModel) -> impl Iterator<Item = &'m Peer> {
        let now = self.opts.now;
        model.peers.values().filter(move |p| !p.is_expired(now))
    }

    fn peer_path(&self, peer: &Peer) -> JsonPath {
        let section = match peer.kind {
            PeerKind::Host => "members",
            PeerKind::Client => "clients",
        };
        self.path.key(section).key(&peer.name)
    }

    fn unique_addresses(&mut self, model: &NetworkModel) {
        let mut seen: HashMap<IpAddr, &str> = HashMap::default();
        for peer in self.live(model).collect::<Vec<_>>() {
            let addrs = [peer.address.map(IpAddr::V4), peer.address6.map(IpAddr::V6)];
            for a in addrs.into_iter().flatten() {
                if let Some(other) = seen.insert(a, &peer.name) {
                    let field = if a.is_ipv4() { "address" } else { "address6" };
                    let path = self.peer_path(peer);
                    self.d.error(
                        &path,
                        format!("{field} {a} is also the address of {other:?}"),
                    );
                }
            }
        }
    }

    fn unique_keys(&mut self, model: &NetworkModel) {
        let mut seen: HashMap<&str, &str> = HashMap::default();
        // Hosts' own keys are compared under `hosts`; here only overrides and clients can clash anew.
        let host_key = |p: &Peer| {
            p.kind == PeerKind::Host
                && self
                    .fleet
                    .hosts
                    .get(&p.name)
                    .is_some_and(|h| h.public_key == p.public_key)
        };
        for peer in model.peers.values() {
            if let Some(other) = seen.insert(&peer.public_key, &peer.name)
                && !(host_key(peer) && model.peers.get(other).is_some_and(host_key))
            {
                let path = self.peer_path(peer);
                self.d.error(
                    &path,
                    format!(
                        "public key {:?} is also the key of {other:?}",
                        peer.public_key
                    ),
                );
            }
        }
    }

    /// WireGuard silently moves a prefix listed for two peers to the last one; the derived
    /// AllowedIPs of every host must therefore list each prefix for one peer only. What others
    /// route to a peer is the same on every host, so one pass over the peers finds every clash;
    /// a spoke adds its `reach` to its primary hub, checked against the other hubs.
    fn conflicting_prefixes(&mut self, model: &NetworkModel) {
        let mut owners: HashMap<IpNet, Vec<&Peer>> = HashMap::default();
        let live: Vec<&Peer> = self.live(model).collect();
        let mut clashes: Vec<(IpNet, &Peer, &Peer)> = Vec::new();
        for peer in &live {
            for prefix in &peer.advertised {
                let list = owners.entry(*prefix).or_default();
                clashes.extend(list.iter().map(|other| (*prefix, *peer, *other)));
                list.push(peer);
            }
        }
        for (prefix, peer, other) in clashes {
            // Two peers with one tunnel address are already reported by unique_addresses.
            let same_address =
                peer.host_prefixes().contains(&prefix) && other.host_prefixes().contains(&prefix);
            // WireGuard moves a prefix only between the peers of one interface: a clash
            // needs a host that has both as peers (never the case for a lone pair).
            if other.name != peer.name
                && !same_address
                && links::a_host_peers_with_both(model, &live, peer, other)
            {
                let other = &other.name;
                let path = self.peer_path(peer);
                self.d.error(
                    &path,
                    format!(
                        "{prefix} would be in the AllowedIPs of both {other:?} and {:?} on {}",
                        peer.name, model.name
                    ),
                );
            }
        }
        let Some((primary, others)) = model.hubs.split_first() else {
            return;
        };
        if others.is_empty() {
            return;
        }
        for spoke in live
            .iter()
            .filter(|p| p.kind == PeerKind::Host && !model.is_hub(&p.name))
        {
            // What the spoke sends through its primary hub: its reach and its flows' other ends.
            let extra = crate::access::spoke_extra(model, &spoke.name);
            for hub in others {
                let Some(hub_peer) = model.peers.get(hub) else {
                    continue;
                };
                for prefix in extra.iter().filter(|r| hub_peer.advertised.contains(r)) {
                    let field = if spoke.reach.contains(prefix) {
                        "reach"
                    } else {
                        "flows"
                    };
                    let path = if field == "reach" {
                        self.peer_path(spoke).key("reach")
                    } else {
                        self.path.key("flows")
                    };
                    self.d.error(
                        &path,
                        format!("{prefix} goes to the primary hub {primary:?} but is also routed to hub {hub:?}"),
                    );
                }
            }
        }
    }

    /// `routes` of different members must not overlap: which member has 192.168.1.0/24 must be
    /// unambiguous. Also a route may not overlap the tunnel subnet. Sorted sweep, O(n log n).
    fn overlapping_routes(&mut self, model: &NetworkModel, net: &schema::Network) {
        let mut ranges: Vec<(u128, u128, bool, &str, IpNet)> = Vec::new();
        for (name, member) in &net.members {
            for text in &member.routes {
                let Ok(p) = parse_prefix(text) else { continue };
                let (lo, hi, v6) = span(&p);
                ranges.push((lo, hi, v6, name, p));
                let subnet_clash = match p {
                    IpNet::V4(p4) => model
                        .subnet
                        .is_some_and(|s| s.contains(&p4) || p4.contains(&s)),
                    IpNet::V6(p6) => model
                        .subnet6
                        .is_some_and(|s| s.contains(&p6) || p6.contains(&s)),
                };
                if subnet_clash {
                    let path = self.path.key("members").key(name).key("routes");
                    self.d.error(
                        &path,
                        format!("route {p} overlaps the network's own subnet"),
                    );
                }
            }
        }
        ranges.sort_by_key(|r| (r.2, r.0, std::cmp::Reverse(r.1)));
        let mut widest: Option<(u128, bool, &str, IpNet)> = None;
        for (lo, hi, v6, name, p) in ranges {
            if let Some((end, fam, other, q)) = widest
                && fam == v6
                && lo <= end
            {
                let path = self.path.key("members").key(name).key("routes");
                let whose = if other == name {
                    "another route of the same member".to_owned()
                } else {
                    format!("{other:?}'s route {q}")
                };
                self.d.error(&path, format!("route {p} overlaps {whose}"));
            }
            if widest.is_none_or(|(end, fam, ..)| fam != v6 || hi > end) {
                widest = Some((hi, v6, name, p));
            }
        }
    }

    /// Spokes dial their hubs, so every hub that has spokes needs an endpoint.
    fn hubs_reachable(&mut self, model: &NetworkModel, net: &schema::Network) {
        // A hub whose only spokes are clients (a lone road-warrior server) is dialled by no
        // host: its endpoint only goes into `client-config`, which asks for it there.
        let has_spokes = model
            .peers
            .values()
            .any(|p| p.kind == PeerKind::Host && !model.is_hub(&p.name));
        if !has_spokes {
            return;
        }
        for hub in &model.hubs {
            let declared = self
                .fleet
                .hosts
                .get(hub)
                .is_some_and(|h| h.endpoint.is_some())
                || net.members.get(hub).is_some_and(|m| m.endpoint.is_some());
            if model.peers.contains_key(hub) && !declared {
                let path = self.path.key("members").key(hub);
                self.d.error(
                    &path,
                    format!("hub {hub:?} has no endpoint, so its spokes cannot dial it; set hosts.{hub}.endpoint"),
                );
            }
        }
    }

    fn pair_psks(&mut self, net: &schema::Network) -> BTreeMap<(String, String), String> {
        let mut pairs = BTreeMap::new();
        for (i, pair) in net.preshared_keys.iter().enumerate() {
            let path = self.path.key("presharedKeys").index(i);
            check_opt(
                self.d,
                &path,
                "file",
                Some(&pair.file),
                syntax::check_file_ref,
            );
            let [a, b] = pair.peers.as_slice() else {
                self.d.error(
                    &path.key("peers"),
                    "a preshared key is between exactly two members",
                );
                continue;
            };
            for (j, name) in [a, b].into_iter().enumerate() {
                if !net.members.contains_key(name) {
                    self.d.error(
                        &path.key("peers").index(j),
                        format!("{name:?} is not a member of this network"),
                    );
                }
            }
            if a == b {
                self.d
                    .error(&path.key("peers"), "names the same member twice");
            }
            let key = if a <= b {
                (a.clone(), b.clone())
            } else {
                (b.clone(), a.clone())
            };
            if pairs.insert(key, pair.file.clone()).is_some() {
                self.d.error(
                    &path.key("peers"),
                    format!("{a:?} and {b:?} already have a preshared key"),
                );
            }
        }
        pairs
    }

    fn flows_and_tests(&mut self, net: &schema::Network) -> (Vec<FlowModel>, Vec<TestModel>) {
        let mut flows = Vec::new();
        for (i, flow) in net.flows.iter().enumerate() {
            let path = self.path.key("flows").index(i);
            let mut sides = Vec::new();
            for (field, sel) in [("from", &flow.from), ("to", &flow.to)] {
                if sel.items().is_empty() {
                    self.d.error(&path.key(field), "names nobody");
                }
                let mut parties = Vec::new();
                for (j, item) in sel.items().iter().enumerate() {
                    let p = match sel {
                        schema::Selector::One(_) => path.key(field),
                        schema::Selector::Many(_) => path.key(field).index(j),
                    };
                    parties.extend(self.selector(&p, item, net));
                }
                parties.sort();
                parties.dedup();
                sides.push(parties);
            }
            let mut ports = Vec::new();
            for (j, port) in flow.ports.iter().enumerate() {
                match syntax::parse_port_spec(port) {
                    Ok(p) => ports.push(p),
                    Err(e) => self.d.error(&path.key("ports").index(j), e),
                }
            }
            let to = sides.pop().unwrap_or_default();
            let from = sides.pop().unwrap_or_default();
            flows.push(FlowModel {
                index: i,
                from,
                to,
                ports,
            });
        }
        let mut tests = Vec::new();
        for (i, test) in net.tests.iter().enumerate() {
            let path = self.path.key("tests").index(i);
            let from = self.selector(&path.key("from"), &test.from, net);
            let to = self.selector(&path.key("to"), &test.to, net);
            let port = test
                .port
                .as_ref()
                .and_then(|p| match syntax::parse_port_spec(p) {
                    Ok(spec) => Some(spec),
                    Err(e) => {
                        self.d.error(&path.key("port"), e);
                        None
                    }
                });
            let allow = test.expect == schema::Expect::Allow;
            tests.push(TestModel {
                index: i,
                from,
                to,
                port,
                allow,
            });
        }
        (flows, tests)
    }

    /// A flow or test endpoint: a member or client name, `group:NAME`, `owner:EMAIL`, or a CIDR,
    /// resolved to the parties of this network it names.
    fn selector(&mut self, path: &JsonPath, item: &str, net: &schema::Network) -> Vec<Party> {
        let in_net = |n: &String| net.members.contains_key(n) || net.clients.contains_key(n);
        if let Some(group) = item.strip_prefix("group:") {
            match self.fleet.groups.get(group) {
                None => {
                    self.d
                        .error(path, format!("group {group:?} is not defined under groups"));
                    Vec::new()
                }
                Some(names) => names
                    .iter()
                    .filter(|n| in_net(n))
                    .map(|n| Party::Peer(n.clone()))
                    .collect(),
            }
        } else if let Some(owner) = item.strip_prefix("owner:") {
            let owned: Vec<Party> = net
                .clients
                .iter()
                .filter(|(_, c)| c.owner.as_deref() == Some(owner))
                .map(|(n, _)| Party::Peer(n.clone()))
                .collect();
            if owned.is_empty() {
                self.d.error(
                    path,
                    format!("no client of this network has owner {owner:?}"),
                );
            }
            owned
        } else if item.contains('/') || item.parse::<IpAddr>().is_ok() {
            match parse_prefix(item) {
                Ok(p) => vec![Party::Cidr(p)],
                Err(e) => {
                    self.d.error(path, e);
                    Vec::new()
                }
            }
        } else if in_net(&item.to_owned()) {
            vec![Party::Peer(item.to_owned())]
        } else {
            self.d.error(
                path,
                format!("{item:?} is not a member or client of this network"),
            );
            Vec::new()
        }
    }
}

/// Declared flows must work end to end (request and reply), and the fleet's tests must hold.
fn check_policy(valid: &ValidFleet, net: &NetworkModel, now: i64, d: &mut Diagnostics) {
    if net.flows.is_empty() && net.tests.is_empty() {
        return;
    }
    let base = JsonPath::keys(&["networks", &net.name]);
    let live = |party: &Party| match party {
        Party::Peer(n) => net.peers.get(n).is_some_and(|p| !p.is_expired(now)),
        Party::Cidr(_) => true,
    };
    let mut tables = crate::access::Tables::new(valid, net, now);
    for pair in crate::access::pairs(net) {
        let Party::Peer(from) = pair.from else {
            continue;
        };
        if !live(pair.from) || !live(pair.to) {
            continue;
        }
        let (there, back) = tables.connect(from, pair.to, pair.ports.first().copied());
        for (what, trace) in [("request", Some(there)), ("reply", back)] {
            if let Some(crate::access::Trace::Dropped { at, reason, .. }) = trace {
                d.error(
                    &base.key("flows").index(pair.flow),
                    format!("the flow from {from} to {} cannot work: the {what} is dropped at {at}: {reason}", pair.to),
                );
            }
        }
    }
    for test in &net.tests {
        for (a, b) in test
            .from
            .iter()
            .flat_map(|a| test.to.iter().map(move |b| (a, b)))
        {
            let Party::Peer(from) = a else { continue };
            if !live(a) || !live(b) {
                continue;
            }
            let (there, back) = tables.connect(from, b, test.port);
            let works = there.ok() && back.as_ref().is_none_or(crate::access::Trace::ok);
            if works != test.allow {
                let (want, got) = if test.allow {
                    ("allow", "denied")
                } else {
                    ("deny", "allowed")
                };
                let why = match (&there, &back) {
                    (crate::access::Trace::Dropped { at, reason, .. }, _)
                    | (_, Some(crate::access::Trace::Dropped { at, reason, .. })) => {
                        format!(": dropped at {at}: {reason}")
                    }
                    _ => String::new(),
                };
                d.error(
                    &base.key("tests").index(test.index),
                    format!("expected {want} from {from} to {b}, but it is {got}{why}"),
                );
            }
        }
    }
}

/// A prefix as an inclusive range of addresses, and whether it is IPv6.
fn span(p: &IpNet) -> (u128, u128, bool) {
    match p {
        IpNet::V4(n) => (
            u32::from(n.network()).into(),
            u32::from(n.broadcast()).into(),
            false,
        ),
        IpNet::V6(n) => (n.network().into(), n.broadcast().into(), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(
            parse_prefix("10.0.0.0/8"),
            Ok("10.0.0.0/8".parse().unwrap())
        );
        assert_eq!(parse_prefix("10.0.0.1"), Ok("10.0.0.1/32".parse().unwrap()));
        assert!(
            parse_prefix("10.0.0.1/8")
                .unwrap_err()
                .contains("did you mean 10.0.0.0/8")
        );
        assert!(parse_prefix("10.0.0.0/33").is_err());
    }
}
