//! Flows and tests: groups, the selectors that name the parties of a flow or test, and (on the
//! validated fleet) whether every declared flow works and every test holds.

use super::addresses::parse_prefix;
use super::*;

pub(super) fn check_groups(fleet: &Fleet, client_names: &BTreeSet<&str>, d: &mut Diagnostics) {
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

impl NetworkCheck<'_> {
    pub(super) fn flows_and_tests(
        &mut self,
        net: &schema::Network,
    ) -> (Vec<FlowModel>, Vec<TestModel>) {
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
pub(super) fn check_policy(valid: &ValidFleet, net: &NetworkModel, now: i64, d: &mut Diagnostics) {
    if net.flows.is_empty() && net.tests.is_empty() {
        return;
    }
    let base = JsonPath::keys(&["networks", &net.name]);
    let live = |party: &Party| match party {
        Party::Peer(n) => net.peers.get(n).is_some_and(|p| !p.is_expired(now)),
        Party::Cidr(_) => true,
    };
    let mut tables = crate::access::Tables::new(valid, net, now);
    for pair in crate::flow_pairs::pairs(net) {
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
