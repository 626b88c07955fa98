//! wgfleet's own iptables chains: what they must hold for a host's plans, how they read in
//! `iptables-save`, and the `iptables-restore` input that replaces them in one transaction.
//! Pure; `shell::host` runs the programs. Rules only ever ACCEPT or MASQUERADE, in chains of
//! their own, so other tools' rules are never touched.

use std::collections::BTreeSet;

use ipnet::IpNet;
use serde::Serialize;

use crate::fleet::syntax::PortSpec;
use crate::plan::{FlowRule, InterfacePlan};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn save_cmd(self) -> &'static str {
        match self {
            Family::V4 => "iptables-save",
            Family::V6 => "ip6tables-save",
        }
    }

    pub fn restore_cmd(self) -> &'static str {
        match self {
            Family::V4 => "iptables-restore",
            Family::V6 => "ip6tables-restore",
        }
    }

    pub fn cmd(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
}

/// Our chains: (table, built-in chain that jumps to it, our chain).
pub const CHAINS: &[(&str, &str, &str)] = &[
    ("filter", "INPUT", "WGFLEET-INPUT"),
    ("filter", "FORWARD", "WGFLEET-FORWARD"),
    ("nat", "POSTROUTING", "WGFLEET-POSTROUTING"),
];

/// The rules of one family, as `iptables-save` prints them (`-A CHAIN …`), in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rules {
    pub family: Option<Family>,
    pub lines: Vec<String>,
}

/// The rules a host's interfaces need: the listen port where peers dial in, forwarding on
/// members that forward, masquerading out of the WAN interface where `nat` is on.
pub fn desired(plans: &[InterfacePlan], family: Family) -> Vec<String> {
    let mut lines = Vec::new();
    let mut ports = BTreeSet::new();
    for p in plans.iter().filter(|p| p.dialable) {
        ports.extend(p.listen_port);
    }
    for port in ports {
        lines.push(format!(
            "-A WGFLEET-INPUT -p udp -m udp --dport {port} -j ACCEPT"
        ));
    }
    for p in plans {
        let Some(policy) = &p.policy else { continue };
        lines.extend(policed("WGFLEET-INPUT", &p.network, &policy.input, family));
    }
    for p in plans.iter().filter(|p| p.forwarding) {
        let iface = &p.network;
        match &p.policy {
            None => lines.push(format!("-A WGFLEET-FORWARD -i {iface} -j ACCEPT")),
            Some(policy) => {
                lines.extend(policed("WGFLEET-FORWARD", iface, &policy.forward, family));
            }
        }
        lines.push(format!("-A WGFLEET-FORWARD -o {iface} -j ACCEPT"));
    }
    for p in plans {
        let Some(wan) = &p.nat else { continue };
        for subnet in p
            .addresses
            .iter()
            .filter(|a| family_of(a) == family)
            .map(IpNet::trunc)
        {
            lines.push(format!(
                "-A WGFLEET-POSTROUTING -s {subnet} -o {wan} -j MASQUERADE"
            ));
        }
    }
    lines
}

/// A chain's rules for traffic in from `iface` under flows: replies to allowed connections, then
/// what the flows allow, then nothing else.
fn policed(chain: &str, iface: &str, rules: &[FlowRule], family: Family) -> Vec<String> {
    let mut lines = vec![format!(
        "-A {chain} -i {iface} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    )];
    lines.extend(
        rules
            .iter()
            .filter_map(|r| flow_rule(chain, iface, r, family)),
    );
    lines.push(format!("-A {chain} -i {iface} -j DROP"));
    lines
}

/// One flow as `iptables-save` prints it (`-s`, `-d`, `-i`, `-p`, match, `--dport`), or `None`
/// when it belongs to the other address family.
fn flow_rule(chain: &str, iface: &str, r: &FlowRule, family: Family) -> Option<String> {
    if family_of(&r.src) != family || r.dst.is_some_and(|d| family_of(&d) != family) {
        return None;
    }
    let mut rule = format!("-A {chain} -s {}", r.src);
    if let Some(dst) = r.dst {
        rule.push_str(&format!(" -d {dst}"));
    }
    rule.push_str(&format!(" -i {iface}"));
    let range = |a: u16, b: u16| {
        if a == b {
            a.to_string()
        } else {
            format!("{a}:{b}")
        }
    };
    match r.port {
        None => {}
        Some(PortSpec::Tcp(a, b)) => {
            rule.push_str(&format!(" -p tcp -m tcp --dport {}", range(a, b)))
        }
        Some(PortSpec::Udp(a, b)) => {
            rule.push_str(&format!(" -p udp -m udp --dport {}", range(a, b)))
        }
        Some(PortSpec::Icmp) => rule.push_str(if family == Family::V4 {
            " -p icmp"
        } else {
            " -p ipv6-icmp"
        }),
    }
    rule.push_str(" -j ACCEPT");
    Some(rule)
}

fn family_of(net: &IpNet) -> Family {
    match net {
        IpNet::V4(_) => Family::V4,
        IpNet::V6(_) => Family::V6,
    }
}

/// What `iptables-save` shows of ours: our chains' rules, and which jumps exist (and how often).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub chains: BTreeSet<String>,
    pub lines: Vec<String>,
    /// Per our chain: how many jump rules lead to it.
    pub jumps: Vec<(String, usize)>,
}

pub fn parse_save(save: &str) -> Observed {
    let mut seen = Observed::default();
    let mut jumps: Vec<(String, usize)> = CHAINS
        .iter()
        .map(|(_, _, c)| ((*c).to_owned(), 0))
        .collect();
    for line in save.lines() {
        if let Some(decl) = line.strip_prefix(':') {
            let name = decl.split_whitespace().next().unwrap_or("");
            if name.starts_with("WGFLEET-") {
                seen.chains.insert(name.to_owned());
            }
        } else if line.starts_with("-A WGFLEET-") {
            seen.lines.push(line.to_owned());
        } else {
            // `jumps` is parallel to CHAINS.
            for ((_, builtin, ours), jump) in CHAINS.iter().zip(jumps.iter_mut()) {
                if line == format!("-A {builtin} -j {ours}") {
                    jump.1 += 1;
                }
            }
        }
    }
    seen.jumps = jumps;
    seen
}

/// Rules in built-in chains (not ours, not our jumps) that accept UDP to one of `ports`: what a
/// hand-made setup (`iptables -A INPUT -p udp --dport 51821 -j ACCEPT`) leaves behind.
pub fn foreign_port_rules(save: &str, ports: &[u16]) -> Vec<String> {
    save.lines()
        .filter(|l| {
            l.starts_with("-A ") && !l.starts_with("-A WGFLEET-") && !l.contains("-j WGFLEET-")
        })
        .filter(|l| l.contains("-p udp") && l.contains("-j ACCEPT"))
        .filter(|l| {
            ports.iter().any(|p| {
                l.contains(&format!("--dport {p} ")) || l.ends_with(&format!("--dport {p}"))
            })
        })
        .map(str::to_owned)
        .collect()
}

/// What to do for one family.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FirewallDiff {
    /// The `iptables-restore --noflush` input replacing our chains, when their rules differ.
    pub restore: Option<String>,
    /// Built-in chains missing their jump to ours: `(table, builtin, ours)`.
    pub add_jumps: Vec<(String, String, String)>,
    /// With no rule left: jumps to delete and chains to remove.
    pub remove: bool,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl FirewallDiff {
    pub fn is_empty(&self) -> bool {
        self.restore.is_none() && self.add_jumps.is_empty() && !self.remove
    }
}

pub fn diff(desired: &[String], observed: &Observed) -> FirewallDiff {
    let mut d = FirewallDiff::default();
    if desired.is_empty() {
        d.remove = !observed.chains.is_empty() || observed.jumps.iter().any(|(_, n)| *n > 0);
        d.removed = observed.lines.clone();
        return d;
    }
    if by_chain(desired) != by_chain(&observed.lines)
        || CHAINS.iter().any(|(_, _, c)| !observed.chains.contains(*c))
    {
        d.restore = Some(restore_input(desired));
        d.added = desired
            .iter()
            .filter(|l| !observed.lines.contains(l))
            .cloned()
            .collect();
        d.removed = observed
            .lines
            .iter()
            .filter(|l| !desired.contains(l))
            .cloned()
            .collect();
    }
    for (table, builtin, ours) in CHAINS {
        if observed.jumps.iter().any(|(c, n)| c == ours && *n == 0) {
            d.add_jumps.push((
                (*table).to_owned(),
                (*builtin).to_owned(),
                (*ours).to_owned(),
            ));
        }
    }
    d
}

/// Rules grouped by chain, keeping their order within each chain: `iptables-save` lists chains
/// in its own order, and only the order inside a chain means anything.
fn by_chain(lines: &[String]) -> Vec<&String> {
    let mut sorted: Vec<&String> = lines.iter().collect();
    sorted.sort_by_key(|l| l.split_whitespace().nth(1).unwrap_or("").to_owned());
    sorted
}

/// Declares our chains (creating them if missing), flushes them and fills them: one
/// transaction per table, applied with `--noflush` so nothing else is touched.
pub fn restore_input(lines: &[String]) -> String {
    let mut out = String::new();
    for table in ["filter", "nat"] {
        out.push_str(&format!("*{table}\n"));
        for (_, _, chain) in CHAINS.iter().filter(|(t, _, _)| *t == table) {
            out.push_str(&format!(":{chain} - [0:0]\n-F {chain}\n"));
        }
        for line in lines.iter().filter(|l| {
            CHAINS
                .iter()
                .any(|(t, _, c)| *t == table && l.starts_with(&format!("-A {c} ")))
        }) {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("COMMIT\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVE: &str = "*filter\n:INPUT ACCEPT [0:0]\n:WGFLEET-INPUT - [0:0]\n:WGFLEET-FORWARD - [0:0]\n-A INPUT -j WGFLEET-INPUT\n-A INPUT -p tcp --dport 22 -j ACCEPT\n-A WGFLEET-INPUT -p udp -m udp --dport 51821 -j ACCEPT\nCOMMIT\n*nat\n:WGFLEET-POSTROUTING - [0:0]\nCOMMIT\n";

    #[test]
    fn unchanged_rules_need_only_missing_jumps() {
        let observed = parse_save(SAVE);
        let want = vec!["-A WGFLEET-INPUT -p udp -m udp --dport 51821 -j ACCEPT".to_owned()];
        let d = diff(&want, &observed);
        assert_eq!(d.restore, None);
        assert_eq!(
            d.add_jumps.len(),
            2,
            "FORWARD and POSTROUTING jumps are missing: {d:?}"
        );
    }

    #[test]
    fn changed_rules_are_replaced_in_one_restore() {
        let observed = parse_save(SAVE);
        let want = vec![
            "-A WGFLEET-INPUT -p udp -m udp --dport 51999 -j ACCEPT".to_owned(),
            "-A WGFLEET-FORWARD -i wg0 -j ACCEPT".to_owned(),
        ];
        let d = diff(&want, &observed);
        let restore = d.restore.expect("a restore");
        assert!(
            restore.contains("-F WGFLEET-INPUT\n")
                && restore.contains("--dport 51999")
                && restore.contains("*nat\n:WGFLEET-POSTROUTING - [0:0]\n")
        );
        assert!(
            !restore.contains("--dport 22"),
            "other rules are not ours to write"
        );
        assert_eq!(
            d.removed,
            vec!["-A WGFLEET-INPUT -p udp -m udp --dport 51821 -j ACCEPT".to_owned()]
        );
    }

    #[test]
    fn chain_order_in_the_save_output_does_not_matter() {
        let save = "*filter\n:WGFLEET-FORWARD - [0:0]\n:WGFLEET-INPUT - [0:0]\n-A FORWARD -j WGFLEET-FORWARD\n-A INPUT -j WGFLEET-INPUT\n-A WGFLEET-FORWARD -i wg0 -j ACCEPT\n-A WGFLEET-INPUT -p udp -m udp --dport 1 -j ACCEPT\nCOMMIT\n*nat\n:WGFLEET-POSTROUTING - [0:0]\n-A POSTROUTING -j WGFLEET-POSTROUTING\nCOMMIT\n";
        let want = vec![
            "-A WGFLEET-INPUT -p udp -m udp --dport 1 -j ACCEPT".to_owned(),
            "-A WGFLEET-FORWARD -i wg0 -j ACCEPT".to_owned(),
        ];
        let d = diff(&want, &parse_save(save));
        assert!(d.is_empty(), "{d:?} {:?}", parse_save(save));
    }

    #[test]
    fn hand_made_port_rules_are_found() {
        let save = "-A INPUT -p udp -m udp --dport 51821 -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 51821 -j ACCEPT\n-A WGFLEET-INPUT -p udp -m udp --dport 51821 -j ACCEPT\n-A INPUT -p udp -m udp --dport 518210 -j ACCEPT\n";
        assert_eq!(
            foreign_port_rules(save, &[51821]),
            vec!["-A INPUT -p udp -m udp --dport 51821 -j ACCEPT".to_owned()]
        );
    }

    #[test]
    fn no_rules_left_removes_everything_of_ours() {
        let d = diff(&[], &parse_save(SAVE));
        assert!(d.remove);
        assert!(diff(&[], &parse_save("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")).is_empty());
    }
}
