//! Topology and hubs: the hosts, each network's members (a host's peer), the hubs of a
//! hub-and-spoke network, and that spokes can dial their hubs.

use super::addresses::parse_prefixes;
use super::*;

pub(super) fn check_hosts(fleet: &Fleet, d: &mut Diagnostics) -> BTreeMap<String, HostModel> {
    // Collected, then built in bulk (the names come sorted): no search per host.
    let mut hosts = Vec::with_capacity(fleet.hosts.len());
    let mut keys: HashMap<&str, &str> =
        HashMap::with_capacity_and_hasher(fleet.hosts.len(), Default::default());
    for (name, host) in &fleet.hosts {
        // Built only when needed: a path allocates, and a large fleet has many hosts.
        let path = || JsonPath::keys(&["hosts", name]);
        if let Err(e) = syntax::check_name(name) {
            d.error(&path(), e);
        }
        if let Err(e) = syntax::check_key(&host.public_key) {
            d.error(&path().key("publicKey"), e);
        } else if let Some(other) = keys.insert(&host.public_key, name) {
            d.error(
                &path().key("publicKey"),
                format!(
                    "the same public key as host {other:?}: the two hosts share one private key (cloned from one image?); give each its own (`wgfleet keygen`)"
                ),
            );
        }
        // Nothing declared is nothing to check (`declared` would return an empty list).
        if super::endpoints::declares(host.endpoint.as_ref(), &host.endpoints) {
            super::endpoints::declared(d, &path(), host.endpoint.as_ref(), &host.endpoints);
        }
        check_next_key(d, &path, name, host, &mut keys);
        if host.key_on_host && host.private_key_file.is_some() {
            d.error(
                &path().key("keyOnHost"),
                "the host keeps its own key, so it has no privateKeyFile: drop one of the two",
            );
        }
        if let Some(wan) = &host.wan_interface
            && let Err(e) = syntax::check_interface(wan)
        {
            d.error(&path().key("wanInterface"), e);
        }
        let fields = [
            (
                "privateKeyFile",
                host.private_key_file.as_deref(),
                syntax::check_file_ref as Check,
            ),
            (
                "description",
                host.description.as_deref(),
                syntax::check_text,
            ),
        ];
        if fields
            .iter()
            .any(|&(_, value, check)| value.is_some_and(|v| check(v).is_err()))
        {
            check_opt(d, &path(), &fields);
        }
        hosts.push((
            name.clone(),
            HostModel {
                public_key: host.public_key.clone(),
                private_key_file: host.private_key_file.clone(),
                key_on_host: host.key_on_host,
                wan_interface: host.wan_interface.clone(),
                next_key: next_key(host),
            },
        ));
    }
    hosts.into_iter().collect()
}

/// A host's staged rotation: all of `nextPublicKey`, `nextPrivateKeyFile` and `nextSwitchAt`,
/// or none of them; a key of its own (not the current one, nor another host's). A host that
/// keeps its key (`keyOnHost`) keeps its next one too: no `nextPrivateKeyFile`.
fn check_next_key<'f>(
    d: &mut Diagnostics,
    path: &dyn Fn() -> JsonPath,
    name: &'f str,
    host: &'f schema::Host,
    keys: &mut HashMap<&'f str, &'f str>,
) {
    let file = host.next_private_key_file.is_some();
    let fields = [
        ("nextPublicKey", host.next_public_key.is_some()),
        ("nextPrivateKeyFile", file || host.key_on_host),
        ("nextSwitchAt", host.next_switch_at.is_some()),
    ];
    if !file
        && fields
            .iter()
            .all(|(name, given)| !given || *name == "nextPrivateKeyFile")
    {
        return;
    }
    if host.key_on_host && file {
        d.error(
            &path().key("nextPrivateKeyFile"),
            "a host that keeps its key (keyOnHost) keeps its next key too: remove \
             nextPrivateKeyFile (`wgfleet join --host HOST --next-key`, run on the host, \
             makes the key there)",
        );
    } else if let Some((missing, _)) = fields.iter().find(|(_, given)| !given) {
        let (needs, how) = match host.key_on_host {
            true => (
                "nextPublicKey and nextSwitchAt",
                "`wgfleet rekey --rotate HOST --next-public-key KEY` writes both",
            ),
            false => (
                "nextPublicKey, nextPrivateKeyFile and nextSwitchAt",
                "`wgfleet rekey --rotate` writes all three",
            ),
        };
        d.error(
            &path().key(missing),
            format!("is missing: a staged rotation needs {needs} together ({how})"),
        );
    }
    if let Some(next) = &host.next_public_key {
        if let Err(e) = syntax::check_key(next) {
            d.error(&path().key("nextPublicKey"), e);
        } else if *next == host.public_key {
            d.error(
                &path().key("nextPublicKey"),
                "is the current publicKey: a rotation moves to a new key",
            );
        } else if let Some(other) = keys.insert(next, name) {
            d.error(
                &path().key("nextPublicKey"),
                format!("is also the key of host {other:?}; every key is one host's"),
            );
        }
    }
    if let Some(file) = &host.next_private_key_file
        && let Err(e) = syntax::check_file_ref(file)
    {
        d.error(&path().key("nextPrivateKeyFile"), e);
    }
    if let Some(at) = &host.next_switch_at
        && crate::fleet::time::parse_rfc3339(at).is_none()
    {
        d.error(
            &path().key("nextSwitchAt"),
            format!("{at:?} is not an RFC 3339 time (2026-12-07T15:00:00Z)"),
        );
    }
}

/// The host's next key, when its rotation is declared whole.
pub(super) fn next_key(host: &schema::Host) -> Option<NextKey> {
    let private_key_file = match (&host.next_private_key_file, host.key_on_host) {
        (Some(file), false) => Some(file.clone()),
        (None, true) => None,
        _ => return None,
    };
    Some(NextKey {
        public_key: host.next_public_key.clone()?,
        private_key_file,
        switch_at: crate::fleet::time::parse_rfc3339(host.next_switch_at.as_deref()?)?,
    })
}

impl NetworkCheck<'_> {
    pub(super) fn hubs(&mut self, net: &schema::Network) -> Vec<String> {
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

    pub(super) fn member(
        &mut self,
        name: &str,
        m: &schema::Member,
        subnets: &Subnets,
        hubs: &[String],
        defaults: links::Defaults,
        members_path: &JsonPath,
    ) -> Option<Peer> {
        let path = members_path.key(name);
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
        let endpoints = super::endpoints::of_member(self.d, &path, m, host);
        let given = (m.id, m.address.as_deref(), m.address6.as_deref());
        let (address, address6) = self.addresses(&path, given, subnets);
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
            &[
                ("description", m.description.as_deref(), syntax::check_text),
                (
                    "privateKeyFile",
                    m.private_key_file.as_deref(),
                    syntax::check_file_ref,
                ),
            ],
        );
        let mut peer = Peer {
            name: name.to_owned(),
            kind: PeerKind::Host,
            public_key,
            address,
            address6,
            advertised: Vec::new(),
            reach: fold_prefixes(reach),
            endpoint: endpoints.first().cloned(),
            endpoints,
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
            // A member with a key of its own in this network keeps it.
            next_key: m.public_key.is_none().then(|| next_key(host)).flatten(),
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

    /// Spokes dial their hubs, so every hub that has spokes needs an endpoint.
    pub(super) fn hubs_reachable(&mut self, model: &NetworkModel, net: &schema::Network) {
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
            let declared =
                self.fleet
                    .hosts
                    .get(hub)
                    .is_some_and(|h| super::endpoints::declares(h.endpoint.as_ref(), &h.endpoints))
                    || net.members.get(hub).is_some_and(|m| {
                        super::endpoints::declares(m.endpoint.as_ref(), &m.endpoints)
                    });
            if model.peers.contains_key(hub) && !declared {
                let path = self.path.key("members").key(hub);
                self.d.error(
                    &path,
                    format!("hub {hub:?} has no endpoint, so its spokes cannot dial it; set hosts.{hub}.endpoint"),
                );
            }
        }
    }
}
