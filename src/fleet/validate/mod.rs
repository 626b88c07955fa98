//! Everything that can be known from the description alone. Walks the fleet once, collects every
//! finding (never stops at the first) and builds the validated model that planning uses.
//! Cost: O(fleet log fleet); nothing here is quadratic in the number of peers.
//!
//! One file per kind of check: `addresses` (subnets, tunnel addresses, prefixes and routes),
//! `topology` (hosts, members and hubs), `clients` (clients and their expiry), `keys` (public
//! keys, key files and preshared keys), `flows` (groups, flows and tests, and whether they hold),
//! `links` (per-member link settings and what needs them). `validate` and `NetworkCheck::run`
//! below call them in sequence.

use std::collections::{BTreeMap, BTreeSet};

// Fx, not SipHash: these maps hold every address and key of the fleet, and the fleet is the
// operator's own file, not input from an adversary.
use rustc_hash::FxHashMap as HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::diag::Diagnostics;
use super::model::{
    FlowModel, HostModel, NetworkModel, NextKey, Party, Peer, PeerKind, TestModel, ValidFleet,
    fold_prefixes,
};
use super::path::JsonPath;
use super::schema::{self, Fleet, Topology};
use super::syntax;
use super::time;

mod addresses;
mod clients;
mod endpoints;
mod flows;
mod keys;
mod links;
mod topology;

use addresses::Subnets;

pub const DEFAULT_LISTEN_PORT: u16 = 51820;

/// What validation needs from outside the description.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Unix seconds; clients whose `expires` is at or before it are on no host.
    pub now: i64,
    /// Warn about clients that expire within this many seconds.
    pub expiry_warning: i64,
}

/// The validated fleet (when there is no error) and every finding.
pub fn validate(fleet: &Fleet, opts: Options) -> (Option<ValidFleet>, Diagnostics) {
    let mut d = Diagnostics::default();
    let root = JsonPath::root();
    if !schema::SUPPORTED_VERSIONS.contains(&fleet.version) {
        d.error(
            &root.key("version"),
            format!(
                "schema version {} is not supported; this wgfleet reads version 1",
                fleet.version
            ),
        );
    }
    let hosts = topology::check_hosts(fleet, &mut d);
    let client_names: BTreeSet<&str> = fleet
        .networks
        .values()
        .flat_map(|n| n.clients.keys().map(String::as_str))
        .collect();
    flows::check_groups(fleet, &client_names, &mut d);

    let mut networks = BTreeMap::new();
    for (name, net) in &fleet.networks {
        let path = root.key("networks").key(name);
        if let Err(e) = syntax::check_network_name(name) {
            d.error(&path, e);
        }
        let model = NetworkCheck {
            fleet,
            path,
            d: &mut d,
            opts,
        }
        .run(name, net);
        networks.insert(name.clone(), model);
    }
    links::interface_names(fleet, &mut d);
    keys::check_key_files(fleet, &mut d);
    if d.has_errors() {
        return (None, d);
    }
    let valid = ValidFleet { hosts, networks };
    for net in valid.networks.values() {
        flows::check_policy(&valid, net, opts.now, &mut d);
    }
    ((!d.has_errors()).then_some(valid), d)
}

/// A syntax check of one field's text.
type Check = fn(&str) -> Result<(), String>;

/// Checks optional fields, each `(name, value, check)`, in order; a field's path is only built
/// when there is something to report (paths allocate, and a large fleet has many fields).
fn check_opt(d: &mut Diagnostics, parent: &JsonPath, fields: &[(&str, Option<&str>, Check)]) {
    for &(field, value, check) in fields {
        if let Some(v) = value
            && let Err(e) = check(v)
        {
            d.error(&parent.key(field), e);
        }
    }
}

/// Validates one network and builds its model.
struct NetworkCheck<'a> {
    fleet: &'a Fleet,
    path: JsonPath,
    d: &'a mut Diagnostics,
    opts: Options,
}

impl NetworkCheck<'_> {
    /// Checks each field while building the model, then the network as a whole.
    fn run(mut self, name: &str, net: &schema::Network) -> NetworkModel {
        let subnets = self.subnets(net);
        let defaults = self.network_defaults(net);
        let net_path = self.path.clone();
        let keepalive = self.keepalive(&net_path, net.persistent_keepalive);
        let hubs = self.hubs(net);
        let client_dns = self.dns_list(&self.path.key("clientDns"), &net.client_dns);

        let (flows, tests) = self.flows_and_tests(net);
        // Collected, then built in bulk: one sort instead of a search per peer.
        let mut peers = Vec::with_capacity(net.members.len() + net.clients.len());
        let members_path = self.path.key("members");
        for (member_name, member) in &net.members {
            if let Some(peer) = self.member(
                member_name,
                member,
                &subnets,
                &hubs,
                defaults,
                &members_path,
            ) {
                peers.push((member_name.clone(), peer));
            }
        }
        for (client_name, client) in &net.clients {
            if let Some(peer) = self.client(client_name, client, &subnets, net, &hubs, &client_dns)
            {
                peers.push((client_name.clone(), peer));
            }
        }
        let peers: BTreeMap<String, Peer> = peers.into_iter().collect();
        if net.members.is_empty() {
            self.d.warning(
                &self.path.key("members"),
                "this network has no members, so no host runs it",
            );
        }
        let (pair_psks, pair_next_psks) = self.pair_psks(net);
        let model = NetworkModel {
            name: name.to_owned(),
            subnet: subnets.v4,
            subnet6: subnets.v6,
            listen_port: defaults.listen_port,
            mtu: defaults.mtu,
            keepalive,
            client_dns,
            hubs,
            peers,
            pair_psks,
            pair_next_psks,
            flows,
            tests,
        };
        // The checks over the whole network, in sequence; each reports every finding it sees.
        self.unique_addresses(&model);
        self.unique_keys(&model);
        self.conflicting_prefixes(&model);
        self.overlapping_routes(&model, net);
        self.hubs_reachable(&model, net);
        self.dialled_ports(&model, net);
        self.backup_ports(&model, net);
        self.idle_watched_links(&model);
        self.shared_key_files(&model);
        model
    }

    /// The peers that are on some host now (expired clients are on none).
    fn live<'m>(&self, model: &'m NetworkModel) -> impl Iterator<Item = &'m Peer> {
        let now = self.opts.now;
        model.peers.values().filter(move |p| !p.is_expired(now))
    }

    fn peer_path(&self, peer: &Peer) -> JsonPath {
        let section = match peer.kind {
            PeerKind::Host => "members",
            PeerKind::Client => "clients",
        };
        self.path.key(section).key(&peer.name)
    }
}
