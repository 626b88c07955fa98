//! Addresses and prefixes: the subnets, each peer's tunnel addresses (explicit or from its id),
//! and that no address, AllowedIPs prefix or route is claimed twice.

use super::*;

/// Parses a list of prefixes, reporting each bad one; host bits set is an error because it
/// usually means a typo (`192.168.1.5/24` for `192.168.1.0/24`).
pub(super) fn parse_prefixes(
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

pub(super) fn parse_prefix(text: &str) -> Result<IpNet, String> {
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

/// What a member or client gives for its tunnel addresses: `id`, `address`, `address6`.
pub(super) type Given<'a> = (Option<u64>, Option<&'a str>, Option<&'a str>);

/// What addressing needs: the subnets, or why a member cannot have an address in them.
pub(super) struct Subnets {
    pub v4: Option<Ipv4Net>,
    pub v6: Option<Ipv6Net>,
}

impl NetworkCheck<'_> {
    pub(super) fn subnets(&mut self, net: &schema::Network) -> Subnets {
        let v4 = match self.subnet_field("subnet", net.subnet.as_deref(), false) {
            Some(IpNet::V4(n)) => Some(n),
            _ => None,
        };
        let v6 = match self.subnet_field("subnet6", net.subnet6.as_deref(), true) {
            Some(IpNet::V6(n)) => Some(n),
            _ => None,
        };
        if net.subnet.is_none() && net.subnet6.is_none() {
            self.d
                .error(&self.path, "a network needs a subnet, a subnet6, or both");
        }
        Subnets { v4, v6 }
    }

    /// `subnet` (IPv4) or `subnet6` (IPv6): a prefix of that family with room for at least a
    /// point-to-point pair.
    fn subnet_field(&mut self, field: &str, text: Option<&str>, v6: bool) -> Option<IpNet> {
        let s = text?;
        let (max_len, other, other_field) = if v6 {
            (127, "IPv4", "subnet")
        } else {
            (31, "IPv6", "subnet6")
        };
        let message = match parse_prefix(s) {
            Ok(n) if matches!(n, IpNet::V6(_)) == v6 && n.prefix_len() <= max_len => {
                return Some(n);
            }
            Ok(n) if matches!(n, IpNet::V6(_)) == v6 => {
                format!("{s:?} is too small; use /{max_len} (a point-to-point pair) or larger")
            }
            Ok(_) => format!("{s:?} is {other}; put it in {other_field}"),
            Err(e) => e,
        };
        self.d.error(&self.path.key(field), message);
        None
    }

    /// Resolves the addresses of a member or client from its `address` and `address6`, or else
    /// from its `id`.
    pub(super) fn addresses(
        &mut self,
        path: &JsonPath,
        (id, address, address6): Given<'_>,
        subnets: &Subnets,
    ) -> (Option<Ipv4Addr>, Option<Ipv6Addr>) {
        let errors_before = self.d.0.len();
        let v4 = match (address, subnets.v4) {
            (Some(text), subnet) => self
                .explicit_address(path, "address", text, subnet.is_some())
                .and_then(|a| self.inside_v4(&path.key("address"), a, subnet?)),
            (None, Some(subnet)) => id.and_then(|id| self.id_address4(path, id, subnet)),
            (None, None) => None,
        };
        let v6 = match (address6, subnets.v6) {
            (Some(text), subnet) => self
                .explicit_address(path, "address6", text, subnet.is_some())
                .and_then(|a| self.inside_v6(&path.key("address6"), a, subnet?)),
            (None, Some(subnet)) => id.and_then(|id| self.id_address6(path, id, subnet)),
            (None, None) => None,
        };
        if v4.is_none() && v6.is_none() && self.d.0.len() == errors_before {
            self.d
                .error(path, "no tunnel address: set id, address or address6");
        }
        (v4, v6)
    }

    /// An explicit `address` or `address6`: it parses, and the network has a subnet of its
    /// family.
    fn explicit_address<A: std::str::FromStr>(
        &mut self,
        path: &JsonPath,
        field: &str,
        text: &str,
        has_subnet: bool,
    ) -> Option<A> {
        let (family, subnet_field) = if field == "address6" {
            ("IPv6", "subnet6")
        } else {
            ("IPv4", "subnet")
        };
        let message = match text.parse::<A>() {
            Err(_) => format!("{text:?} is not an {family} address"),
            Ok(_) if !has_subnet => {
                format!("an {family} address needs the network's {subnet_field}")
            }
            Ok(a) => return Some(a),
        };
        self.d.error(&path.key(field), message);
        None
    }

    /// The (id+1)-th address; the last usable one is just below the broadcast address.
    /// A /31 has no network or broadcast address (RFC 3021): ids 0 and 1 are its two.
    fn id_address4(&mut self, path: &JsonPath, id: u64, subnet: Ipv4Net) -> Option<Ipv4Addr> {
        let p2p = u64::from(links::point_to_point4(subnet));
        let usable = (1u64 << (32 - subnet.prefix_len())) - 2 + 2 * p2p;
        if id < usable {
            return Some(Ipv4Addr::from(
                u32::from(subnet.network()) + id as u32 + 1 - p2p as u32,
            ));
        }
        let max = usable - 1;
        self.d.error(
            &path.key("id"),
            format!("id {id} does not fit in {subnet} (ids 0–{max})"),
        );
        None
    }

    /// id+1 must stay inside the subnet's host bits (a /0 holds every id).
    /// A /127 has no subnet-router anycast address (RFC 6164): ids 0 and 1.
    fn id_address6(&mut self, path: &JsonPath, id: u64, subnet: Ipv6Net) -> Option<Ipv6Addr> {
        let p2p = u128::from(links::point_to_point6(subnet));
        let host_bits = 128 - u32::from(subnet.prefix_len());
        if host_bits == 128 || u128::from(id) + 1 - p2p < (1u128 << host_bits) {
            return Some(Ipv6Addr::from(
                u128::from(subnet.network()) + u128::from(id) + 1 - p2p,
            ));
        }
        self.d
            .error(&path.key("id"), format!("id {id} does not fit in {subnet}"));
        None
    }

    /// An explicit IPv4 address is a host of its subnet, not its network or broadcast address.
    fn inside_v4(&mut self, path: &JsonPath, a: Ipv4Addr, subnet: Ipv4Net) -> Option<Ipv4Addr> {
        let reserved =
            !links::point_to_point4(subnet) && (a == subnet.network() || a == subnet.broadcast());
        self.inside(
            path,
            a,
            subnet.contains(&a),
            subnet,
            reserved.then_some("the network or broadcast address"),
        )
    }

    /// An explicit IPv6 address is a host of its subnet, not its subnet-router anycast address.
    fn inside_v6(&mut self, path: &JsonPath, a: Ipv6Addr, subnet: Ipv6Net) -> Option<Ipv6Addr> {
        let reserved = !links::point_to_point6(subnet) && a == subnet.network();
        self.inside(
            path,
            a,
            subnet.contains(&a),
            subnet,
            reserved.then_some("the subnet-router anycast address"),
        )
    }

    fn inside<A: std::fmt::Display, N: std::fmt::Display>(
        &mut self,
        path: &JsonPath,
        a: A,
        contained: bool,
        subnet: N,
        reserved: Option<&str>,
    ) -> Option<A> {
        let message = match reserved {
            _ if !contained => format!("{a} is outside the subnet {subnet}"),
            Some(what) => format!("{a} is {what} of {subnet}"),
            None => return Some(a),
        };
        self.d.error(path, message);
        None
    }

    pub(super) fn unique_addresses(&mut self, model: &NetworkModel) {
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

    /// WireGuard silently moves a prefix listed for two peers to the last one; the derived
    /// AllowedIPs of every host must therefore list each prefix for one peer only. What others
    /// route to a peer is the same on every host, so one pass over the peers finds every clash;
    /// a spoke adds its `reach` to its primary hub, checked against the other hubs.
    pub(super) fn conflicting_prefixes(&mut self, model: &NetworkModel) {
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
            let extra = crate::flow_pairs::spoke_extra(model, &spoke.name);
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
    pub(super) fn overlapping_routes(&mut self, model: &NetworkModel, net: &schema::Network) {
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
