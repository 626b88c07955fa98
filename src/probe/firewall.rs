//! What a host can see of itself that drops (or lets through) its tunnels' traffic outside
//! wgfleet's own chains: a foreign rule ahead of wgfleet's jump, a DROP policy that nothing of
//! ours accepts ahead of, forwarding switched off, strict reverse-path filtering, a route that
//! does not go into the tunnel.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::report::Finding;
use crate::plan::InterfacePlan;

/// What the shell read of the host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostFacts {
    /// `iptables-save -t filter` and `ip6tables-save -t filter` (`None`: not readable).
    pub iptables: Option<String>,
    pub ip6tables: Option<String>,
    /// `nft list chains`: other tools' nftables tables (firewalld's, Docker's nftables backend)
    /// are not in iptables-save, yet their base chains see the same packets.
    pub nft_chains: Option<String>,
    pub interfaces: Vec<InterfaceFacts>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct InterfaceFacts {
    pub interface: String,
    /// The interface exists (its unit is up).
    pub up: bool,
    /// `net.ipv4.conf.IFACE.forwarding`.
    pub forwarding: Option<bool>,
    /// The reverse-path filter in force: the larger of `conf.all` and `conf.IFACE` (1 strict).
    pub rp_filter: Option<u8>,
    /// Per probed address, the interface `ip route get` sends it out of.
    pub routes: Vec<(IpAddr, Option<String>)>,
}

/// The filter table's built-in chains as `iptables-save` prints them: policy and rules in order.
#[derive(Debug, Default)]
struct Table<'s> {
    policies: BTreeMap<&'s str, &'s str>,
    rules: BTreeMap<&'s str, Vec<&'s str>>,
}

fn parse(save: &str) -> Table<'_> {
    let mut t = Table::default();
    let mut filter = false;
    for line in save.lines() {
        if let Some(name) = line.strip_prefix('*') {
            filter = name == "filter";
        } else if !filter {
        } else if let Some(decl) = line.strip_prefix(':') {
            let mut parts = decl.split_whitespace();
            if let (Some(chain), Some(policy)) = (parts.next(), parts.next()) {
                t.policies.insert(chain, policy);
            }
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let chain = rule.split_whitespace().next().unwrap_or("");
            t.rules.entry(chain).or_default().push(line);
        }
    }
    t
}

/// The value after `flag` in a rule (`-i wg0`), and whether it is negated (`! -i wg0`).
fn option<'r>(rule: &'r str, flag: &str) -> Option<(bool, &'r str)> {
    let words: Vec<&str> = rule.split_whitespace().collect();
    let at = words.iter().position(|w| *w == flag)?;
    let negated = at > 0 && words[at - 1] == "!";
    words.get(at + 1).map(|v| (negated, *v))
}

fn target(rule: &str) -> Option<&str> {
    option(rule, "-j").map(|(_, t)| t)
}

/// Whether a rule's interface match (`-i`, or `-o` for `flag`) can match `iface`.
fn may_match(rule: &str, flag: &str, iface: &str) -> bool {
    match option(rule, flag) {
        None => true,
        Some((negated, name)) => {
            let matches = match name.strip_suffix('+') {
                Some(prefix) => iface.starts_with(prefix),
                None => name == iface,
            };
            matches != negated
        }
    }
}

/// A rule that only lets replies back in (`--ctstate RELATED,ESTABLISHED -j ACCEPT`), opens the
/// listen port, or drops what conntrack calls INVALID (ufw's `ufw-before-input` does) changes
/// nothing the fleet's flows decide.
fn harmless(rule: &str, listen_port: Option<u16>) -> bool {
    let state = option(rule, "--ctstate").map(|(_, s)| s);
    match target(rule) {
        Some("ACCEPT") => {
            let replies = state.is_some_and(|s| !s.split(',').any(|s| s == "NEW"))
                && rule.contains("ESTABLISHED");
            let port = listen_port.is_some_and(|p| {
                rule.contains("-p udp")
                    && option(rule, "--dport").is_some_and(|(_, d)| d == p.to_string())
            });
            replies || port
        }
        Some("DROP") => state == Some("INVALID"),
        _ => false,
    }
}

/// Whether a rule of `chain` can take the tunnel's traffic: in from `iface` for INPUT; for
/// FORWARD, in from it and out to it again (what a hub forwards between its spokes).
fn takes(rule: &str, chain: &str, iface: &str) -> bool {
    may_match(rule, "-i", iface) && (chain != "FORWARD" || may_match(rule, "-o", iface))
}

/// The rules of `chain` ahead of its jump to `ours` that can take `iface`'s traffic and accept,
/// drop or reject it, read one user chain deep (Docker's `-j DOCKER-USER` counts only for what it
/// holds). Deeper chains are not read: what a finding names is there, but not all that is.
fn ahead<'s>(
    t: &Table<'s>,
    chain: &str,
    ours: &str,
    iface: &str,
    port: Option<u16>,
) -> Vec<&'s str> {
    let decides = |r: &str| {
        takes(r, chain, iface)
            && !harmless(r, port)
            && matches!(target(r), Some("ACCEPT" | "DROP" | "REJECT"))
    };
    let rules = t.rules.get(chain).map(Vec::as_slice).unwrap_or_default();
    let mut found = Vec::new();
    for rule in rules.iter().take_while(|r| target(r) != Some(ours)) {
        match target(rule) {
            _ if !takes(rule, chain, iface) => {}
            Some("ACCEPT" | "DROP" | "REJECT") => found.extend(Some(*rule).filter(|r| decides(r))),
            Some("RETURN") | None => {}
            // Read up to the first RETURN that may take the traffic: what follows it may never
            // see it (ufw's `ufw-not-local` returns for local addresses before its DROP).
            Some(user) => found.extend(
                t.rules
                    .get(user)
                    .into_iter()
                    .flatten()
                    .copied()
                    .take_while(|r| !(target(r) == Some("RETURN") && takes(r, chain, iface)))
                    .filter(|r| decides(r)),
            ),
        }
    }
    found
}

fn jumps(t: &Table<'_>, chain: &str, ours: &str) -> bool {
    t.rules
        .get(chain)
        .is_some_and(|r| r.iter().any(|r| target(r) == Some(ours)))
}

/// What the host's own state says about its interfaces' traffic, for `plans`.
pub fn host_findings(facts: &HostFacts, plans: &[InterfacePlan]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (save, family) in [
        (&facts.iptables, "iptables"),
        (&facts.ip6tables, "ip6tables"),
    ] {
        let Some(save) = save else { continue };
        let t = parse(save);
        let has_family = |p: &InterfacePlan| {
            p.addresses
                .iter()
                .any(|a| a.addr().is_ipv4() == (family == "iptables"))
        };
        for plan in plans.iter().filter(|p| has_family(p)) {
            chain_findings(&t, family, plan, &mut findings);
        }
    }
    if let Some(chains) = &facts.nft_chains {
        findings.extend(nft_findings(chains, plans));
    }
    for i in &facts.interfaces {
        if !i.up {
            findings.push(Finding::new(
                "interface-down",
                format!(
                    "{0}: there is no interface {0} on this host: nothing was probed on it (`wgfleet apply` brings it up)",
                    i.interface
                ),
            ));
            continue;
        }
        let plan = plans.iter().find(|p| p.network == i.interface);
        if plan.is_some_and(|p| p.forwarding) && i.forwarding == Some(false) {
            findings.push(Finding::new(
                "forwarding-off",
                format!(
                    "{}: the fleet has this host forward, but net.ipv4.conf.{}.forwarding is 0: it forwards nothing",
                    i.interface, i.interface
                ),
            ));
        }
        for (addr, dev) in &i.routes {
            if dev.as_deref() != Some(i.interface.as_str()) {
                let via = dev.as_deref().unwrap_or("no interface");
                let whose = plan.and_then(|p| owner(p, *addr)).unwrap_or_default();
                let mut message = format!(
                    "{}: the route to {addr}{whose} goes out of {via}, not into the tunnel: this host's traffic to it does not use the tunnel",
                    i.interface
                );
                if i.rp_filter == Some(1) {
                    message.push_str(&format!(
                        ", and strict reverse-path filtering (rp_filter 1) drops what comes back from it on {}",
                        i.interface
                    ));
                }
                findings.push(Finding::new("route", message));
            }
        }
    }
    findings
}

/// The tables iptables-nft itself keeps: what `iptables-save` already shows.
const IPTABLES_TABLES: [&str; 5] = ["filter", "nat", "mangle", "raw", "security"];

/// Base chains of other tables on the input hook (any interface) or the forward hook (a host that
/// forwards): each sees the tunnel's packets besides iptables' chains, and a drop in any base
/// chain of a hook wins over an accept in another.
fn nft_findings(chains: &str, plans: &[InterfacePlan]) -> Vec<Finding> {
    let forwards = plans.iter().any(|p| p.forwarding);
    let ifaces: Vec<&str> = plans.iter().map(|p| p.network.as_str()).collect();
    let mut found = Vec::new();
    let (mut table, mut chain) = (None, None);
    for line in chains.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("table ") {
            let mut words = rest.split_whitespace();
            table = words.next().zip(words.next());
        } else if let Some(rest) = line.strip_prefix("chain ") {
            chain = rest.split_whitespace().next();
        } else if let (Some((family, name)), Some(c), Some(spec)) =
            (table, chain, line.strip_prefix("type filter hook "))
        {
            let ours = matches!(family, "ip" | "ip6") && IPTABLES_TABLES.contains(&name);
            let hook = spec.split_whitespace().next().unwrap_or_default();
            let policy = spec
                .split("policy ")
                .nth(1)
                .map(|p| p.trim_end_matches(';'))
                .unwrap_or("accept");
            let ours_there = match hook {
                "input" => "WGFLEET-INPUT",
                "forward" if forwards => "WGFLEET-FORWARD",
                _ => continue,
            };
            if !ours {
                found.push(Finding::new(
                    "nftables-chain",
                    format!(
                        "{}: nftables table {family} {name} has the base chain {c} on the {hook} hook (policy {policy}): it sees the tunnel's traffic besides iptables' chains, and a drop there wins over {ours_there}'s accept (`nft list chain {family} {name} {c}`)",
                        ifaces.join(", ")
                    ),
                ));
            }
        }
    }
    found
}

/// ` (worker-1's 192.168.77.0/24)`: the peer whose AllowedIPs hold `addr`, most specific first.
fn owner(plan: &InterfacePlan, addr: IpAddr) -> Option<String> {
    plan.peers
        .iter()
        .flat_map(|p| p.allowed_ips.iter().map(move |n| (n, &p.name)))
        .filter(|(n, _)| n.prefix_len() > 0 && n.contains(&addr))
        .max_by_key(|(n, _)| n.prefix_len())
        .map(|(n, name)| format!(" ({name}'s {n})"))
}

/// The addresses whose routes `host_findings` checks, per interface: one in each prefix of the
/// peers' AllowedIPs (never a default route), at most `MAX_PROBES` in all. Asking the kernel for
/// a route sends nothing.
pub fn route_checks(plans: &[InterfacePlan]) -> Vec<(String, IpAddr)> {
    plans
        .iter()
        .flat_map(|p| {
            p.peers
                .iter()
                .flat_map(|peer| &peer.allowed_ips)
                .filter(|n| n.prefix_len() > 0)
                .map(|n| (p.network.clone(), n.hosts().next().unwrap_or(n.addr())))
        })
        .take(super::MAX_PROBES)
        .collect()
}

/// The rules ahead of `builtin`'s jump to `ours` that take the tunnel's `traffic`: one finding
/// each. Without flows an ACCEPT changes nothing: everything is let through anyway.
fn foreign_rules(
    t: &Table<'_>,
    family: &str,
    plan: &InterfacePlan,
    (builtin, ours, port): (&str, &str, Option<u16>),
    (lets, traffic): (&str, &str),
    out: &mut Vec<Finding>,
) {
    let iface = plan.network.as_str();
    for rule in ahead(t, builtin, ours, iface, port) {
        let accepts = target(rule) == Some("ACCEPT");
        if accepts && plan.policy.is_none() {
            continue;
        }
        let does = if accepts { lets } else { "drops" };
        out.push(Finding::new(
            "foreign-rule",
            format!(
                "{iface}: `{rule}` ({family}) comes before wgfleet's {ours}: it {does} {traffic}"
            ),
        ));
    }
}

fn chain_findings(t: &Table<'_>, family: &str, plan: &InterfacePlan, out: &mut Vec<Finding>) {
    let iface = plan.network.as_str();
    let port = plan.listen_port;
    let policed = plan.policy.is_some();
    let traffic = format!("traffic in from {iface} that the fleet's flows decide");
    let input = ("INPUT", "WGFLEET-INPUT", port);
    foreign_rules(t, family, plan, input, ("lets in", &traffic), out);
    if policed && !jumps(t, "INPUT", "WGFLEET-INPUT") {
        out.push(Finding::new(
            "missing-jump",
            format!("{iface}: INPUT ({family}) has no jump to WGFLEET-INPUT: the fleet's flows are not enforced (the next apply puts it back)"),
        ));
    }
    if !policed && t.policies.get("INPUT").is_some_and(|p| *p == "DROP") {
        let accepted = t.rules.get("INPUT").into_iter().flatten().any(|r| {
            target(r) == Some("ACCEPT") && may_match(r, "-i", iface) && !harmless(r, port)
        });
        if !accepted {
            out.push(Finding::new(
                "input-policy",
                format!("{iface}: the INPUT policy ({family}) is DROP and no rule accepts traffic in from {iface}: only replies reach this host over the tunnel (the fleet has no flows, so it expects everything through)"),
            ));
        }
    }
    if !plan.forwarding {
        return;
    }
    let forward = ("FORWARD", "WGFLEET-FORWARD", None);
    let traffic = "traffic this host forwards for the fleet";
    foreign_rules(t, family, plan, forward, ("lets through", traffic), out);
    let jumped = jumps(t, "FORWARD", "WGFLEET-FORWARD");
    if !jumped {
        out.push(Finding::new(
            "missing-jump",
            format!("{iface}: FORWARD ({family}) has no jump to WGFLEET-FORWARD: what this host forwards for the fleet meets the FORWARD policy and other tools' rules (the next apply puts it back)"),
        ));
    }
    if t.policies.get("FORWARD").is_some_and(|p| *p == "DROP") {
        let message = if jumped {
            format!(
                "{iface}: the FORWARD policy ({family}) is DROP (Docker sets it): what the fleet forwards is accepted by WGFLEET-FORWARD before the policy applies; anything else is dropped"
            )
        } else {
            format!(
                "{iface}: the FORWARD policy ({family}) is DROP (Docker sets it) and nothing of wgfleet's accepts ahead of it: this host forwards nothing for the fleet"
            )
        };
        out.push(Finding::new("forward-policy", message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(policed: bool, forwarding: bool) -> InterfacePlan {
        InterfacePlan {
            network: "wg0".into(),
            host: "cp".into(),
            addresses: vec!["10.50.0.1/24".parse().unwrap()],
            listen_port: Some(51821),
            mtu: None,
            private_key_file: None,
            public_key: String::new(),
            key_on_host: false,
            forwarding,
            dialable: true,
            nat: None,
            peers: vec![],
            policy: policed.then(Default::default),
            rotation: None,
        }
    }

    fn kinds(save: &str, p: &InterfacePlan) -> Vec<String> {
        let facts = HostFacts {
            iptables: Some(save.to_owned()),
            ..Default::default()
        };
        host_findings(&facts, std::slice::from_ref(p))
            .into_iter()
            .map(|f| f.kind)
            .collect()
    }

    const OURS: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n-A INPUT -j WGFLEET-INPUT\n-A FORWARD -j WGFLEET-FORWARD\nCOMMIT\n";

    #[test]
    fn our_chains_first_is_clean() {
        assert!(kinds(OURS, &plan(true, true)).is_empty());
    }

    #[test]
    fn a_drop_policy_ahead_of_nothing_of_ours_is_named() {
        let save = OURS.replace(":FORWARD ACCEPT", ":FORWARD DROP");
        assert_eq!(kinds(&save, &plan(true, true)), ["forward-policy"]);
        let save = save.replace("-A FORWARD -j WGFLEET-FORWARD\n", "");
        assert_eq!(
            kinds(&save, &plan(true, true)),
            ["missing-jump", "forward-policy"]
        );
        assert!(
            kinds(&save, &plan(true, false)).is_empty(),
            "not forwarding"
        );
    }

    #[test]
    fn foreign_rules_ahead_are_named_through_one_user_chain() {
        let save = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:DOCKER-USER - [0:0]\n\
            -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
            -A INPUT -i wg0 -p tcp -m tcp --dport 2222 -j ACCEPT\n-A INPUT -i eth0 -j DROP\n\
            -A INPUT -j WGFLEET-INPUT\n-A INPUT -j DROP\n\
            -A FORWARD -j DOCKER-USER\n-A FORWARD -j WGFLEET-FORWARD\n\
            -A DOCKER-USER -i wg+ -j DROP\n-A DOCKER-USER -j RETURN\nCOMMIT\n";
        let p = plan(true, true);
        let facts = HostFacts {
            iptables: Some(save.into()),
            ..Default::default()
        };
        let found = host_findings(&facts, std::slice::from_ref(&p));
        let text: Vec<&str> = found.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(found.len(), 3, "{text:#?}");
        assert!(text[0].contains("--dport 2222 -j ACCEPT") && text[0].contains("lets in"));
        assert!(text[1].contains("-A DOCKER-USER -i wg+ -j DROP") && text[1].contains("drops"));
        assert_eq!(found[2].kind, "forward-policy");
        // Without flows, an ACCEPT ahead changes nothing: everything is let in anyway.
        assert_eq!(kinds(save, &plan(false, false)).len(), 0);
    }

    /// Real rule sets from public material, with the other tool's jumps ahead of wgfleet's.
    fn messages(save: &str) -> Vec<(String, String)> {
        let facts = HostFacts {
            iptables: Some(save.to_owned()),
            ..Default::default()
        };
        host_findings(&facts, &[plan(true, true)])
            .into_iter()
            .map(|f| (f.kind, f.message))
            .collect()
    }

    #[test]
    fn docker_ahead_of_wgfleet_touches_none_of_the_tunnels_traffic() {
        for save in [
            include_str!("../../tests/fixtures/probe/docker-28.save"),
            include_str!("../../tests/fixtures/probe/docker-27.save"),
        ] {
            let found = messages(save);
            assert_eq!(found.len(), 1, "{found:#?}");
            assert_eq!(found[0].0, "forward-policy");
            assert!(
                found[0].1.contains("accepted by WGFLEET-FORWARD"),
                "{found:#?}"
            );
        }
    }

    #[test]
    fn ufw_ahead_of_wgfleet_is_named_rule_by_rule() {
        let found = messages(include_str!("../../tests/fixtures/probe/ufw.save"));
        let rules: Vec<&str> = found
            .iter()
            .filter(|(k, _)| k == "foreign-rule")
            .filter_map(|(_, m)| m.split('`').nth(1))
            .collect();
        assert_eq!(
            rules,
            [
                "-A ufw-before-input -p icmp -m icmp --icmp-type 3 -j ACCEPT",
                "-A ufw-before-input -p icmp -m icmp --icmp-type 8 -j ACCEPT",
                "-A ufw-before-input -p udp -m udp --sport 67 --dport 68 -j ACCEPT",
                "-A ufw-before-input -d 224.0.0.251/32 -p udp -m udp --dport 5353 -j ACCEPT",
                "-A ufw-before-forward -p icmp -m icmp --icmp-type 3 -j ACCEPT",
                "-A ufw-before-forward -p icmp -m icmp --icmp-type 8 -j ACCEPT",
            ],
            "{found:#?}"
        );
        assert!(found.iter().any(|(k, _)| k == "forward-policy"));
        // Its INVALID drop, loopback accept and replies change nothing the flows decide.
        assert!(
            !found
                .iter()
                .any(|(_, m)| m.contains("INVALID") || m.contains("-i lo"))
        );
    }

    #[test]
    fn other_nftables_tables_on_the_tunnels_hooks_are_named() {
        // As `nft list chains` prints firewalld's table beside iptables-nft's own.
        let chains = "table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n}\n\
            table inet firewalld {\n\tchain filter_INPUT {\n\t\ttype filter hook input priority filter + 10; policy accept;\n\t}\n\
            \tchain filter_FORWARD {\n\t\ttype filter hook forward priority filter + 10; policy drop;\n\t}\n\
            \tchain filter_OUTPUT {\n\t\ttype filter hook output priority filter + 10; policy accept;\n\t}\n\
            \tchain filter_IN_public {\n\t}\n}\n";
        let facts = HostFacts {
            nft_chains: Some(chains.into()),
            ..Default::default()
        };
        let found = host_findings(&facts, &[plan(true, true)]);
        let text: Vec<&str> = found.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(found.len(), 2, "{text:#?}");
        assert!(text[0].contains(
            "inet firewalld has the base chain filter_INPUT on the input hook (policy accept)"
        ));
        assert!(
            text[1].contains("filter_FORWARD on the forward hook (policy drop)")
                && text[1].contains("WGFLEET-FORWARD")
        );
        assert_eq!(
            host_findings(&facts, &[plan(true, false)]).len(),
            1,
            "no forward hook unless forwarding"
        );
    }

    #[test]
    fn no_flows_and_a_drop_input_policy_lets_nothing_in() {
        let save = "*filter\n:INPUT DROP [0:0]\n-A INPUT -j WGFLEET-INPUT\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n";
        assert_eq!(kinds(save, &plan(false, false)), ["input-policy"]);
        let open = save.replace("-i lo -j ACCEPT", "-i wg0 -j ACCEPT");
        assert!(kinds(&open, &plan(false, false)).is_empty());
    }

    #[test]
    fn routes_out_of_another_interface_and_forwarding_off_are_named() {
        let facts = HostFacts {
            interfaces: vec![InterfaceFacts {
                interface: "wg0".into(),
                up: true,
                forwarding: Some(false),
                rp_filter: Some(1),
                routes: vec![
                    ("10.50.0.2".parse().unwrap(), Some("wg0".into())),
                    ("10.50.0.3".parse().unwrap(), Some("eth0".into())),
                ],
            }],
            ..Default::default()
        };
        let mut p = plan(false, true);
        p.peers.push(crate::plan::PeerPlan {
            name: "worker-1".into(),
            kind: crate::fleet::model::PeerKind::Host,
            public_key: String::new(),
            allowed_ips: vec![
                "10.50.0.3/32".parse().unwrap(),
                "0.0.0.0/0".parse().unwrap(),
            ],
            endpoint: None,
            endpoints: vec![],
            persistent_keepalive: None,
            preshared_key_file: None,
            description: None,
            owner: None,
            expires: None,
            rotation: None,
            staged: false,
            psk_rotation: None,
        });
        assert_eq!(
            route_checks(std::slice::from_ref(&p)),
            [("wg0".to_owned(), "10.50.0.3".parse().unwrap())],
            "no default route"
        );
        let found = host_findings(&facts, &[p]);
        let kinds: Vec<&str> = found.iter().map(|f| f.kind.as_str()).collect();
        assert_eq!(kinds, ["forwarding-off", "route"]);
        assert!(
            found[1]
                .message
                .contains("10.50.0.3 (worker-1's 10.50.0.3/32) goes out of eth0"),
            "{}",
            found[1].message
        );
        assert!(found[1].message.contains("rp_filter 1"));
    }
}
