//! `endpoint` and `endpoints`: where a host is dialled, as one address or an ordered list
//! (a primary and its backups). `endpoint: X` means `endpoints: [X]`; a member's own field (either
//! one) replaces the host's whole list in its network.

use super::*;
use crate::fleet::syntax::Endpoint;

/// The most endpoints one host or member may list: a primary and a few backups.
pub(super) const MAX_ENDPOINTS: usize = 8;

/// Whether a host or member declares any endpoint at its own level.
pub(super) fn declares(endpoint: Option<&String>, endpoints: &[String]) -> bool {
    endpoint.is_some() || !endpoints.is_empty()
}

/// The endpoints declared at one level (`parent` is `hosts.NAME` or `networks.N.members.NAME`),
/// parsed; every mistake is reported at its own field. A bad entry is left out of the list.
pub(super) fn declared(
    d: &mut Diagnostics,
    parent: &JsonPath,
    endpoint: Option<&String>,
    endpoints: &[String],
) -> Vec<Endpoint> {
    if let Some(one) = endpoint {
        if !endpoints.is_empty() {
            d.error(
                &parent.key("endpoints"),
                "give either endpoint or endpoints, not both (endpoint is a one-element endpoints: \
                 move it to the head of the list)",
            );
        }
        return match syntax::parse_endpoint(one) {
            Ok(ep) => vec![ep],
            Err(e) => {
                d.error(&parent.key("endpoint"), e);
                Vec::new()
            }
        };
    }
    if endpoints.len() > MAX_ENDPOINTS {
        d.error(
            &parent.key("endpoints"),
            format!(
                "{} endpoints; at most {MAX_ENDPOINTS} (a primary and its backups)",
                endpoints.len()
            ),
        );
    }
    let mut list: Vec<Endpoint> = Vec::with_capacity(endpoints.len());
    for (i, text) in endpoints.iter().enumerate() {
        let path = parent.key("endpoints").index(i);
        match syntax::parse_endpoint(text) {
            Ok(ep) if list.contains(&ep) => d.error(
                &path,
                format!("{text:?} is listed twice; each endpoint once, in order of preference"),
            ),
            Ok(ep) => list.push(ep),
            Err(e) => d.error(&path, e),
        }
    }
    list
}

/// A member's endpoints: its own when it declares any (mistakes reported there), else its
/// host's (whose mistakes `check_hosts` reports once, at `hosts.NAME`).
pub(super) fn of_member(
    d: &mut Diagnostics,
    path: &JsonPath,
    m: &schema::Member,
    host: &schema::Host,
) -> Vec<Endpoint> {
    if declares(m.endpoint.as_ref(), &m.endpoints) {
        declared(d, path, m.endpoint.as_ref(), &m.endpoints)
    } else {
        declared(
            &mut Diagnostics::default(),
            path,
            host.endpoint.as_ref(),
            &host.endpoints,
        )
    }
}

/// Where a member's first endpoint is written: its own `endpoint` or `endpoints[0]`, else its
/// host's.
pub(super) fn first_field(
    fleet: &Fleet,
    net_path: &JsonPath,
    net: &schema::Network,
    name: &str,
) -> JsonPath {
    let (parent, single) = match (net.members.get(name), fleet.hosts.get(name)) {
        (Some(m), _) if declares(m.endpoint.as_ref(), &m.endpoints) => {
            (net_path.key("members").key(name), m.endpoint.is_some())
        }
        (_, host) => (
            JsonPath::keys(&["hosts", name]),
            host.is_none_or(|h| h.endpoint.is_some()),
        ),
    };
    if single {
        parent.key("endpoint")
    } else {
        parent.key("endpoints").index(0)
    }
}

impl NetworkCheck<'_> {
    /// A backup endpoint's port, like the first one's (`dialled_ports`), must be the one the
    /// member listens on: a wrong port is found when the backup is needed, not before.
    pub(super) fn backup_ports(&mut self, model: &NetworkModel, net: &schema::Network) {
        for peer in model.peers.values() {
            let dialled =
                peer.kind == PeerKind::Host && (model.is_mesh() || model.is_hub(&peer.name));
            let Some(listen) = peer.listen_port.filter(|_| dialled) else {
                continue;
            };
            // Indexes as written: a bad entry (reported already) is not in `peer.endpoints`.
            let (path, texts) = match net.members.get(&peer.name) {
                Some(m) if declares(m.endpoint.as_ref(), &m.endpoints) => {
                    (self.path.key("members").key(&peer.name), &m.endpoints)
                }
                _ => match self.fleet.hosts.get(&peer.name) {
                    Some(h) => (JsonPath::keys(&["hosts", &peer.name]), &h.endpoints),
                    None => continue,
                },
            };
            for (i, text) in texts.iter().enumerate().skip(1) {
                let Ok(ep) = syntax::parse_endpoint(text) else {
                    continue;
                };
                if let Some(port) = ep.port.filter(|p| *p != listen) {
                    self.d.error(
                        &path.key("endpoints").index(i),
                        format!(
                            "the others would dial {} at port {port} ({}), but it listens on \
                             {listen} in {}: write the endpoint without a port, or with :{listen}",
                            peer.name,
                            ep.render(listen),
                            model.name
                        ),
                    );
                }
            }
        }
    }
}

impl NetworkCheck<'_> {
    /// A host that dials a peer by name or at several endpoints without a keepalive: apply
    /// follows such a peer when its handshake is stale, and an idle link without keepalive
    /// has no handshake to show, so it would be re-resolved and moved although nothing failed.
    /// A warning: an idle link may be what the user wants.
    pub(super) fn idle_watched_links(&mut self, model: &NetworkModel) {
        if model.keepalive.is_some() {
            return;
        }
        let watched = |p: &Peer| {
            p.endpoints.len() > 1
                || p.endpoints
                    .iter()
                    .any(|e| e.host.parse::<std::net::IpAddr>().is_err())
        };
        for me in model.peers.values() {
            if me.kind != PeerKind::Host || me.keepalive.is_some() {
                continue;
            }
            let followed: Vec<&str> = model
                .peers
                .values()
                .filter(|p| {
                    p.name != me.name
                        && p.kind == PeerKind::Host
                        && (model.is_mesh() || model.is_hub(&p.name))
                        && watched(p)
                })
                .map(|p| p.name.as_str())
                .collect();
            if followed.is_empty() {
                continue;
            }
            self.d.warning(
                &self
                    .path
                    .key("members")
                    .key(&me.name)
                    .key("persistentKeepalive"),
                format!(
                    "{} dials {} in {} by name or at several endpoints, with no \
                     persistentKeepalive (its own or the network's): an idle link has no fresh \
                     handshake, so apply would take it for a dead one and re-resolve or move it; \
                     set persistentKeepalive (25 is usual)",
                    me.name,
                    followed.join(", "),
                    model.name
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::fleet::validate::{Options, validate};

    const A: &str = "j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=";
    const B: &str = "um/TOLbxUvqJwIOGdbFPn9uBh/Es4shlVXFlWyEYvng=";

    /// A hub-and-spoke fleet with these hub host and hub member fields, validated.
    fn validated(
        hub: serde_json::Value,
        member: serde_json::Value,
    ) -> (
        Option<crate::fleet::ValidFleet>,
        crate::fleet::diag::Diagnostics,
    ) {
        let mut hub_host = serde_json::json!({"publicKey": A});
        hub_host
            .as_object_mut()
            .unwrap()
            .extend(hub.as_object().unwrap().clone());
        let mut hub_member = serde_json::json!({"id": 0});
        hub_member
            .as_object_mut()
            .unwrap()
            .extend(member.as_object().unwrap().clone());
        let fleet: crate::fleet::Fleet = serde_json::from_value(serde_json::json!({
            "version": 1,
            "hosts": {"hub": hub_host, "spoke": {"publicKey": B}},
            "networks": {"wg0": {"subnet": "10.9.0.0/24", "listenPort": 51820,
                "topology": {"hubAndSpoke": {"hubs": ["hub"]}},
                "members": {"hub": hub_member, "spoke": {"id": 1}}}}
        }))
        .unwrap();
        validate(
            &fleet,
            Options {
                now: 0,
                expiry_warning: 0,
            },
        )
    }

    /// The (path, message) of every error.
    fn errors(hub: serde_json::Value, member: serde_json::Value) -> Vec<(String, String)> {
        let (_, d) = validated(hub, member);
        d.0.iter()
            .filter(|x| x.severity == crate::fleet::diag::Severity::Error)
            .map(|x| (x.path.to_string(), x.message.clone()))
            .collect()
    }

    fn valid_plan(hub: serde_json::Value, member: serde_json::Value) -> Vec<String> {
        assert_eq!(errors(hub.clone(), member.clone()), vec![]);
        let (valid, _) = validated(hub, member);
        let valid = valid.unwrap();
        let plan = crate::plan::plan_host(&valid, "spoke", 0);
        plan[0].peers[0].endpoints.clone()
    }

    #[test]
    fn a_list_is_dialled_in_order_and_the_config_keeps_the_first() {
        let list = valid_plan(
            serde_json::json!({"endpoints": ["hub.example.net", "192.0.2.7:51820", "2001:db8::7"]}),
            serde_json::json!({}),
        );
        assert_eq!(
            list,
            [
                "hub.example.net:51820",
                "192.0.2.7:51820",
                "[2001:db8::7]:51820"
            ]
        );
        // `endpoint` is a one-element list; a member's list replaces the host's.
        let one = valid_plan(
            serde_json::json!({"endpoint": "hub.example.net"}),
            serde_json::json!({}),
        );
        assert_eq!(one, ["hub.example.net:51820"]);
        let over = valid_plan(
            serde_json::json!({"endpoints": ["hub.example.net"]}),
            serde_json::json!({"endpoints": ["192.0.2.8", "192.0.2.9"]}),
        );
        assert_eq!(over, ["192.0.2.8:51820", "192.0.2.9:51820"]);
    }

    #[test]
    fn mistakes_are_named_with_their_field() {
        let both = errors(
            serde_json::json!({"endpoint": "192.0.2.1", "endpoints": ["192.0.2.2"]}),
            serde_json::json!({}),
        );
        assert_eq!(both.len(), 1, "{both:?}");
        assert_eq!(both[0].0, "hosts.hub.endpoints");
        assert!(both[0].1.contains("not both"), "{both:?}");

        let bad = errors(
            serde_json::json!({}),
            serde_json::json!({"endpoints": ["192.0.2.2", "not a name", "192.0.2.2", "192.0.2.3:9"]}),
        );
        let paths: Vec<&str> = bad.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "networks.wg0.members.hub.endpoints[1]",
                "networks.wg0.members.hub.endpoints[2]",
                "networks.wg0.members.hub.endpoints[3]"
            ],
            "{bad:?}"
        );
        assert!(bad[1].1.contains("twice"), "{bad:?}");
        assert!(bad[2].1.contains("listens on 51820"), "{bad:?}");

        let many: Vec<String> = (1..=9).map(|i| format!("192.0.2.{i}")).collect();
        let too_many = errors(
            serde_json::json!({"endpoints": many}),
            serde_json::json!({}),
        );
        assert_eq!(too_many.len(), 1, "{too_many:?}");
        assert_eq!(too_many[0].0, "hosts.hub.endpoints");
    }

    #[test]
    fn a_hub_with_only_a_list_is_reachable() {
        assert_eq!(
            errors(
                serde_json::json!({"endpoints": ["192.0.2.1"]}),
                serde_json::json!({})
            ),
            vec![]
        );
        let none = errors(serde_json::json!({}), serde_json::json!({}));
        assert!(none[0].1.contains("has no endpoint"), "{none:?}");
    }

    /// The (path, message) of every warning.
    fn warnings(hub: serde_json::Value, member: serde_json::Value) -> Vec<(String, String)> {
        let (_, d) = validated(hub, member);
        d.0.iter()
            .filter(|x| x.severity == crate::fleet::diag::Severity::Warning)
            .map(|x| (x.path.to_string(), x.message.clone()))
            .collect()
    }

    /// A spoke that follows its hub's name (or list) with no keepalive is warned about, at its
    /// member; one address, or a keepalive on the network or the member, says nothing.
    #[test]
    fn a_followed_hub_without_keepalive_is_a_warning() {
        let by_name = warnings(
            serde_json::json!({"endpoint": "hub.example.net"}),
            serde_json::json!({}),
        );
        assert_eq!(by_name.len(), 1, "{by_name:?}");
        assert_eq!(
            by_name[0].0,
            "networks.wg0.members.spoke.persistentKeepalive"
        );
        assert!(
            by_name[0].1.starts_with("spoke dials hub in wg0 by name"),
            "{by_name:?}"
        );
        let list = warnings(
            serde_json::json!({"endpoints": ["192.0.2.1", "192.0.2.2"]}),
            serde_json::json!({}),
        );
        assert_eq!(list.len(), 1, "{list:?}");
        let one = warnings(
            serde_json::json!({"endpoint": "192.0.2.1"}),
            serde_json::json!({}),
        );
        assert_eq!(one, vec![]);
    }
}
