//! Link settings (listen port, MTU, keepalive, DNS), point-to-point subnets, and the checks that
//! need them: a dialled endpoint's port, prefixes per host's own peers, shared key files.

use super::*;

/// The network's values a member inherits unless it sets its own.
#[derive(Debug, Clone, Copy)]
pub(super) struct Defaults {
    pub listen_port: u16,
    pub mtu: Option<u16>,
}

/// A /31: both addresses are hosts (RFC 3021), there is no network or broadcast address.
pub(super) fn point_to_point4(subnet: Ipv4Net) -> bool {
    subnet.prefix_len() == 31
}

/// A /127: both addresses are hosts (RFC 6164).
pub(super) fn point_to_point6(subnet: Ipv6Net) -> bool {
    subnet.prefix_len() == 127
}

/// Whether `host` has `peer` among its WireGuard peers (the rule of `plan::plan_interface`).
fn has_peer(model: &NetworkModel, host: &Peer, peer: &Peer) -> bool {
    if host.name == peer.name || host.kind != PeerKind::Host {
        return false;
    }
    if model.is_mesh() || model.is_hub(&host.name) {
        peer.kind == PeerKind::Host || peer.connects_to(&host.name)
    } else {
        model.is_hub(&peer.name)
    }
}

/// Whether some host has both `a` and `b` as peers of this interface: only then can WireGuard
/// move a prefix from one to the other.
pub(super) fn a_host_peers_with_both(
    model: &NetworkModel,
    live: &[&Peer],
    a: &Peer,
    b: &Peer,
) -> bool {
    live.iter()
        .any(|h| has_peer(model, h, a) && has_peer(model, h, b))
}

impl NetworkCheck<'_> {
    /// The network's `listenPort` and `mtu`, which its members inherit.
    pub(super) fn network_defaults(&mut self, net: &schema::Network) -> Defaults {
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
        Defaults { listen_port, mtu }
    }

    pub(super) fn keepalive(&mut self, parent: &JsonPath, value: Option<u64>) -> Option<u16> {
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

    /// A member's own `listenPort` (0: no fixed port) and `mtu`, else the network's.
    pub(super) fn member_overrides(
        &mut self,
        path: &JsonPath,
        m: &schema::Member,
        defaults: Defaults,
    ) -> (Option<u16>, Option<u16>) {
        let listen_port = match m.listen_port {
            None => Some(defaults.listen_port),
            Some(0) => None,
            Some(p @ 1..=65535) => Some(p as u16),
            Some(p) => {
                self.d.error(
                    &path.key("listenPort"),
                    format!("{p} is not a port (1–65535, or 0 for no fixed port)"),
                );
                Some(defaults.listen_port)
            }
        };
        let mtu = match m.mtu {
            None => defaults.mtu,
            Some(v @ 1280..=9000) => Some(v as u16),
            Some(v) => {
                self.d
                    .error(&path.key("mtu"), format!("{v} is outside 1280–9000"));
                defaults.mtu
            }
        };
        (listen_port, mtu)
    }

    /// DNS servers for a client's file: IP addresses only (they end up in a config line).
    pub(super) fn dns_list(&mut self, path: &JsonPath, list: &[String]) -> Vec<IpAddr> {
        let mut out = Vec::with_capacity(list.len());
        for (i, text) in list.iter().enumerate() {
            match text.parse::<IpAddr>() {
                Ok(a) => out.push(a),
                Err(_) => self.d.error(
                    &path.index(i),
                    format!("{text:?} is not an IP address (a DNS server, e.g. 10.50.0.1)"),
                ),
            }
        }
        out
    }

    /// Whoever dials a member (a hub, or anyone in a mesh) dials its endpoint; the port there
    /// must be the one the member listens on, and a dialled member needs a fixed port.
    pub(super) fn dialled_ports(&mut self, model: &NetworkModel, net: &schema::Network) {
        for peer in model.peers.values() {
            let dialled =
                peer.kind == PeerKind::Host && (model.is_mesh() || model.is_hub(&peer.name));
            let Some(ep) = peer.endpoint.as_ref().filter(|_| dialled) else {
                continue;
            };
            let field = super::endpoints::first_field(self.fleet, &self.path, net, &peer.name);
            let listen = self.path.key("members").key(&peer.name).key("listenPort");
            match (ep.port, peer.listen_port) {
                (_, None) => self.d.error(
                    &listen,
                    format!(
                        "{} is dialled at {}, but has no fixed port (listenPort 0): give it one, or remove its endpoint",
                        peer.name,
                        ep.host
                    ),
                ),
                (Some(q), Some(p)) if q != p => self.d.error(
                    &field,
                    format!(
                        "the others dial {} at port {q} ({}), but it listens on {p} (listenPort of {} in {}): the handshake would fail; write the endpoint without a port, or set the member's listenPort",
                        peer.name,
                        ep.render(p),
                        peer.name,
                        model.name
                    ),
                ),
                _ => {}
            }
        }
    }

    /// Two hosts decrypting one private key file run with one key: every peer sees one host.
    pub(super) fn shared_key_files(&mut self, model: &NetworkModel) {
        // Hashed, not ordered: only the lookup matters (findings follow the peers' order), and a
        // large fleet has a file per host.
        let mut seen: HashMap<&str, &str> = HashMap::default();
        for peer in model.peers.values().filter(|p| p.kind == PeerKind::Host) {
            let Some(file) = peer.secret_file.as_deref() else {
                continue;
            };
            if let Some(other) = seen.insert(file, &peer.name) {
                self.d.error(
                    &self.peer_path(peer),
                    format!(
                        "{} and {other} share one private key file ({file}): two hosts with one key are one peer to everyone; give each its own (`wgfleet keygen`)",
                        peer.name
                    ),
                );
            }
        }
    }
}

/// A member's `interface` is a valid name, and no host has two networks under one interface
/// name (one file, one `wg-quick@` unit each).
pub(super) fn interface_names(fleet: &Fleet, d: &mut Diagnostics) {
    let mut seen: HashMap<(&str, &str), &str> = HashMap::default();
    for (net_name, net) in &fleet.networks {
        for (host, m) in &net.members {
            // Built only for a finding: a path allocates, and a large fleet has many members.
            let path = || JsonPath::keys(&["networks", net_name, "members", host]);
            if let Some(iface) = &m.interface
                && let Err(e) = syntax::check_interface(iface)
            {
                d.error(&path().key("interface"), e);
                continue;
            }
            let iface = m.interface.as_deref().unwrap_or(net_name);
            if let Some(other) = seen.insert((host, iface), net_name) {
                d.error(
                    &path(),
                    format!(
                        "{host} would run networks {other} and {net_name} both as interface {iface}; give one member its own `interface`"
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=";
    const B: &str = "um/TOLbxUvqJwIOGdbFPn9uBh/Es4shlVXFlWyEYvng=";
    const C: &str = "cOW07yOnwkL6IrWiXjj2ZtKizAAu+k9RWgxFiIvoJwU=";

    fn check(json: serde_json::Value) -> (Option<ValidFleet>, Vec<String>) {
        let fleet: Fleet = serde_json::from_value(json).expect("fleet");
        let (valid, d) = validate(
            &fleet,
            Options {
                now: 0,
                expiry_warning: 0,
            },
        );
        let errors =
            d.0.iter()
                .filter(|x| x.severity == crate::fleet::diag::Severity::Error)
                .map(|x| x.message.clone())
                .collect();
        (valid, errors)
    }

    /// Hosts alpha and beta, each with an endpoint, in `networks`.
    fn alpha_and_beta(networks: serde_json::Value) -> (Option<ValidFleet>, Vec<String>) {
        check(serde_json::json!({
            "version": 1,
            "hosts": {"alpha": {"publicKey": A, "endpoint": "192.0.2.1"},
                      "beta": {"publicKey": B, "endpoint": "192.0.2.2"}},
            "networks": networks
        }))
    }

    /// The DigitalOcean-style pair: a /31 transfer net that both ends list in AllowedIPs.
    #[test]
    fn a_pair_may_both_list_the_transfer_net() {
        let (valid, errors) = alpha_and_beta(
            serde_json::json!({"wg0": {"subnet": "10.10.9.0/31", "topology": "mesh", "members": {
                "alpha": {"id": 0, "allowedIPs": ["10.10.9.0/31", "192.168.1.0/24"]},
                "beta": {"id": 1, "allowedIPs": ["10.10.9.0/31", "192.168.2.0/24"]}}}}),
        );
        assert_eq!(errors, Vec::<String>::new());
        let net = &valid.expect("valid").networks["wg0"];
        assert_eq!(
            net.peers["alpha"].address,
            Some("10.10.9.0".parse().unwrap())
        );
        assert_eq!(
            net.peers["beta"].address,
            Some("10.10.9.1".parse().unwrap())
        );
    }

    #[test]
    fn a_third_host_that_peers_with_both_makes_it_a_clash() {
        let (_, errors) = check(serde_json::json!({
            "version": 1,
            "hosts": {"alpha": {"publicKey": A, "endpoint": "192.0.2.1"},
                      "beta": {"publicKey": B, "endpoint": "192.0.2.2"},
                      "gamma": {"publicKey": C}},
            "networks": {"wg0": {"subnet": "10.10.9.0/24", "topology": "mesh", "members": {
                "alpha": {"id": 0, "allowedIPs": ["10.10.9.0/30"]},
                "beta": {"id": 1, "allowedIPs": ["10.10.9.0/30"]},
                "gamma": {"id": 2}}}}
        }));
        assert_eq!(
            errors,
            vec!["10.10.9.0/30 would be in the AllowedIPs of both \"alpha\" and \"beta\" on wg0"]
        );
    }

    #[test]
    fn ids_in_a_point_to_point_subnet_are_its_two_addresses() {
        let (valid, errors) = check(serde_json::json!({
            "version": 1,
            "hosts": {"alpha": {"publicKey": A}, "beta": {"publicKey": B}},
            "networks": {"wg0": {"subnet6": "fd10::/127", "topology": "mesh", "members": {
                "alpha": {"id": 0}, "beta": {"id": 1}}}}
        }));
        assert_eq!(errors, Vec::<String>::new());
        let net = &valid.expect("valid").networks["wg0"];
        assert_eq!(net.peers["alpha"].address6, Some("fd10::".parse().unwrap()));
        assert_eq!(net.peers["beta"].address6, Some("fd10::1".parse().unwrap()));
        let (_, errors) = check(serde_json::json!({
            "version": 1,
            "hosts": {"alpha": {"publicKey": A}, "gamma": {"publicKey": C}},
            "networks": {"wg1": {"subnet": "10.10.9.0/31", "topology": "mesh", "members": {
                "alpha": {"id": 0}, "gamma": {"id": 2}}}}
        }));
        assert_eq!(errors, vec!["id 2 does not fit in 10.10.9.0/31 (ids 0–1)"]);
    }

    #[test]
    fn a_member_may_name_the_interface_but_not_twice_on_one_host() {
        let (valid, errors) = alpha_and_beta(
            serde_json::json!({"wgA": {"subnet": "10.10.9.0/31", "topology": "mesh", "members": {
                "alpha": {"id": 0}, "beta": {"id": 1, "interface": "wgB"}}}}),
        );
        assert_eq!(errors, Vec::<String>::new());
        let valid = valid.expect("valid");
        let plan = crate::plan::plan_interface(&valid, &valid.networks["wgA"], "beta", 0).unwrap();
        assert_eq!(plan.network, "wgB");
        assert_eq!(
            crate::plan::network_of(&valid, &plan).map(|n| n.name.as_str()),
            Some("wgA")
        );
        let (_, errors) = check(serde_json::json!({
            "version": 1,
            "hosts": {"alpha": {"publicKey": A}, "beta": {"publicKey": B}},
            "networks": {
                "wg0": {"subnet": "10.0.0.0/24", "topology": "mesh", "members": {
                    "alpha": {"id": 0, "interface": "wg1"}}},
                "wg1": {"subnet": "10.0.1.0/24", "topology": "mesh", "members": {
                    "alpha": {"id": 0}, "beta": {"id": 1, "interface": "bad name"}}}}
        }));
        assert_eq!(
            errors,
            [
                "alpha would run networks wg0 and wg1 both as interface wg1; give one member its own `interface`",
                "\"bad name\" is not a valid interface name: use 1–15 letters, digits, '-', '_' or '.'"
            ]
        );
    }

    #[test]
    fn point_to_point_subnets() {
        assert!(point_to_point4("10.10.9.0/31".parse().unwrap()));
        assert!(!point_to_point4("10.10.9.0/30".parse().unwrap()));
        assert!(point_to_point6("fd00::/127".parse().unwrap()));
        assert!(!point_to_point6("fd00::/126".parse().unwrap()));
    }
}
