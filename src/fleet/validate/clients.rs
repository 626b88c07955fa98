//! Clients and expiry: a client's name, key, addresses, owner and hubs, and the warning for one
//! that has expired or is about to.

use super::*;

impl NetworkCheck<'_> {
    pub(super) fn client(
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
        let given = (c.id, c.address.as_deref(), c.address6.as_deref());
        let (address, address6) = self.addresses(&path, given, subnets);
        check_opt(
            self.d,
            &path,
            &[
                ("owner", c.owner.as_deref(), syntax::check_owner),
                ("description", c.description.as_deref(), syntax::check_text),
                (
                    "presharedKeyFile",
                    c.preshared_key_file.as_deref(),
                    syntax::check_file_ref,
                ),
            ],
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
            endpoints: Vec::new(),
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
            next_key: None,
            description: c.description.clone(),
            owner: c.owner.clone(),
            expires,
            hubs: c.hubs.clone(),
        };
        peer.advertised = fold_prefixes(peer.host_prefixes());
        Some(peer)
    }
}
