//! Where the datagram that makes WireGuard handshake with a peer goes: an address it routes to
//! the peer that is not this host's own.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::wgconf::WgConf;

pub(super) fn own_addresses(conf: &WgConf) -> BTreeSet<IpAddr> {
    conf.addresses().iter().map(IpNet::addr).collect()
}

/// An address WireGuard routes to the peer (in its AllowedIPs, the most specific prefix first)
/// that is not this host's own; `None` when it has none (0.0.0.0/0 only, or no AllowedIPs):
/// its PersistentKeepalive, if any, makes the handshake then.
pub(super) fn probe_address(
    allowed_ips: &BTreeSet<String>,
    own: &BTreeSet<IpAddr>,
) -> Option<IpAddr> {
    probe_target(allowed_ips.iter().filter_map(|a| a.parse().ok()), own)
}

/// The same from prefixes already parsed (a plan's AllowedIPs).
pub fn probe_target(
    allowed_ips: impl IntoIterator<Item = IpNet>,
    own: &BTreeSet<IpAddr>,
) -> Option<IpAddr> {
    let mut prefixes: Vec<IpNet> = allowed_ips
        .into_iter()
        .filter(|n: &IpNet| n.prefix_len() > 0)
        .collect();
    prefixes.sort_by_key(|n| std::cmp::Reverse(n.prefix_len()));
    // Not an IPv6 prefix's first address: that is its routers' anycast address, which a host
    // that forwards answers itself.
    prefixes.iter().find_map(|n| {
        n.hosts()
            .take(8)
            .filter(|a| n.prefix_len() == n.max_prefix_len() || *a != n.network())
            .find(|a| !own.contains(a))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_goes_to_the_peer_not_to_this_host() {
        let own: BTreeSet<IpAddr> = ["10.50.0.1".parse().unwrap()].into();
        let allowed = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
        assert_eq!(
            probe_address(&allowed(&["10.50.0.0/24"]), &own),
            Some("10.50.0.2".parse().unwrap())
        );
        assert_eq!(
            probe_address(&allowed(&["10.50.0.0/24", "10.50.0.7/32"]), &own),
            Some("10.50.0.7".parse().unwrap())
        );
        assert_eq!(
            probe_address(&allowed(&["fd50::1/128"]), &own),
            Some("fd50::1".parse().unwrap())
        );
        assert_eq!(
            probe_address(&allowed(&["fd50::/64"]), &own),
            Some("fd50::1".parse().unwrap())
        );
        assert_eq!(probe_address(&allowed(&["0.0.0.0/0"]), &own), None);
    }
}
