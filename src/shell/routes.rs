//! The routes of an interface wgfleet manages, added in one batch: at start (`wgfleet
//! routes-interface`, the drop-in's ExecStartPost, for a file that says `Table = off`) and after
//! a reload (`wg syncconf` adds none). Stock wg-quick runs one `ip route` lookup per AllowedIPs
//! entry at `up`; here the whole interface costs two `ip route show` and at most one
//! `ip -batch -`, and a prefix a route on the interface already covers (a hub's /32 peers inside
//! the interface's own subnet) needs no command at all.

use std::collections::{BTreeMap, HashSet};
use std::process::{Command, Stdio};

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::wgconf::WgConf;

/// Prefixes by length, for "is this prefix inside one of them" in a few lookups.
#[derive(Default)]
struct Covering {
    by_len: BTreeMap<(bool, u8), HashSet<IpNet>>,
}

impl Covering {
    fn insert(&mut self, net: IpNet) {
        let net = net.trunc();
        self.by_len
            .entry((net.addr().is_ipv4(), net.prefix_len()))
            .or_default()
            .insert(net);
    }

    fn covers(&self, net: &IpNet) -> bool {
        let v4 = net.addr().is_ipv4();
        self.by_len
            .range((v4, 0)..=(v4, net.prefix_len()))
            .any(|(&(_, len), set)| {
                IpNet::new(net.addr(), len).is_ok_and(|outer| set.contains(&outer.trunc()))
            })
    }
}

/// The routes the peers' AllowedIPs need, as wg-quick would add them (default routes excepted:
/// those are wg-quick's policy routing, and wgfleet renders no `Table = off` with them).
pub fn wanted(conf: &WgConf) -> Vec<IpNet> {
    conf.peers
        .values()
        .flat_map(|p| p.allowed_ips.iter().filter_map(|a| a.parse::<IpNet>().ok()))
        .filter(|n| n.prefix_len() > 0)
        .collect()
}

/// Of `wanted`, the prefixes no route in `existing` (the interface's own routes, such as the
/// subnet of its address) covers; each once, shortest first. A wanted prefix inside another
/// wanted one is still added: a longer route on another interface (10.0.5.0/24 on eth0 beside a
/// peer's 10.0.0.0/16) would otherwise take the traffic for a peer's 10.0.5.7/32.
pub fn missing(wanted: &[IpNet], existing: &[IpNet]) -> Vec<IpNet> {
    let mut have = Covering::default();
    for net in existing {
        have.insert(*net);
    }
    let mut wanted: Vec<IpNet> = wanted.iter().map(IpNet::trunc).collect();
    wanted.sort_by_key(|n| (n.prefix_len(), *n));
    wanted.dedup();
    wanted.retain(|net| !have.covers(net));
    wanted
}

/// `ip -batch` input adding `routes` on `iface` (`ip` tells the family from the prefix).
pub fn batch(iface: &str, routes: &[IpNet]) -> String {
    routes
        .iter()
        .map(|r| format!("route add {r} dev {iface}\n"))
        .collect()
}

/// The routes of `iface` in the main table, both families (`ip route show dev`).
fn existing(iface: &str) -> Vec<IpNet> {
    let mut routes = Vec::new();
    for family in ["-4", "-6"] {
        let out = Command::new("ip")
            .args([family, "-o", "route", "show", "dev", iface])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        let text = out
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        routes.extend(
            text.lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter_map(|d| {
                    d.parse::<IpNet>()
                        .ok()
                        .or_else(|| d.parse::<std::net::IpAddr>().ok().map(IpNet::from))
                }),
        );
    }
    routes
}

/// Adds the routes `conf`'s AllowedIPs need on `iface` and lack, in one `ip -batch -`.
pub fn add_missing(iface: &str, conf: &WgConf) -> Result<()> {
    use std::io::Write as _;
    let todo = missing(&wanted(conf), &existing(iface));
    if todo.is_empty() {
        return Ok(());
    }
    let fail = |message: String| Error::System {
        what: format!("network {iface}"),
        message,
    };
    let mut child = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run ip: {e}")))?;
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(batch(iface, &todo).as_bytes())
            .map_err(|e| fail(format!("ip -batch: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("ip -batch: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "could not add the routes to {} ({} in all): {}",
            todo.iter()
                .take(5)
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            todo.len(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn only_prefixes_no_route_on_the_interface_covers_are_added_each_once() {
        let existing = nets(&["10.0.0.0/16", "fd00::/64", "fe80::/64", "192.168.9.7/32"]);
        let wanted = nets(&[
            "10.0.0.2/32",
            "10.0.255.254/32",
            "192.168.1.0/24",
            "192.168.1.7/32",
            "192.168.1.0/24",
            "192.168.9.7/32",
            "10.1.0.1/32",
            "fd00::2/128",
            "fd10::/64",
            "172.16.0.0/12",
            "172.16.5.0/24",
        ]);
        assert_eq!(
            missing(&wanted, &existing),
            nets(&[
                "172.16.0.0/12",
                "172.16.5.0/24",
                "192.168.1.0/24",
                "10.1.0.1/32",
                "192.168.1.7/32",
                "fd10::/64"
            ])
        );
        assert!(missing(&nets(&["10.0.0.9/32"]), &existing).is_empty());
        // An IPv4 route covers no IPv6 prefix with the same bits.
        assert_eq!(
            missing(&nets(&["::a00:2/128"]), &nets(&["10.0.0.0/8"])),
            nets(&["::a00:2/128"])
        );
    }

    #[test]
    fn a_prefix_inside_another_peers_prefix_gets_its_own_route() {
        // Peer A routes 10.0.0.0/16, peer B 10.0.5.7/32; the host has 10.0.5.0/24 on eth0
        // (not in `existing`: that holds the WireGuard interface's routes only).
        assert_eq!(
            missing(&nets(&["10.0.0.0/16", "10.0.5.7/32"]), &[]),
            nets(&["10.0.0.0/16", "10.0.5.7/32"])
        );
        // The big hub: every spoke's /32 is inside the interface's own subnet route.
        let spokes: Vec<IpNet> = (2..=250)
            .map(|i| format!("10.50.0.{i}/32").parse().unwrap())
            .collect();
        assert!(missing(&spokes, &nets(&["10.50.0.0/24"])).is_empty());
    }

    #[test]
    fn host_bits_are_dropped_and_the_batch_names_the_interface() {
        assert_eq!(
            missing(&nets(&["192.168.1.9/24"]), &[]),
            nets(&["192.168.1.0/24"])
        );
        assert_eq!(
            batch("wg0", &nets(&["192.168.1.0/24", "fd10::/64"])),
            "route add 192.168.1.0/24 dev wg0\nroute add fd10::/64 dev wg0\n"
        );
    }

    #[test]
    fn default_routes_are_not_wanted() {
        let conf = crate::wgconf::parse(
            "[Interface]\n[Peer]\nPublicKey = A\nAllowedIPs = 0.0.0.0/0, ::/0, 10.9.0.0/24\n",
        );
        assert_eq!(wanted(&conf), nets(&["10.9.0.0/24"]));
    }
}
