//! `wgfleet import`: adopting an existing WireGuard setup. Reads the wg-quick files of several
//! hosts and derives the fleet (schema v1) that renders them back: same sections, keys and values,
//! comments and order aside. Everything it cannot carry over, and every inconsistency between the
//! files, becomes a finding that names the hosts and the lines involved.
//!
//! How the files are read:
//! - A host's public key is derived from the PrivateKey in its own file; the private key itself is
//!   only ever held in zeroizing memory and written age-encrypted (or not at all).
//! - Shape: a host every other host peers with, where the others peer only with it (or them), is a
//!   hub (`hubAndSpoke`); when everyone peers with everyone it is a `mesh`. Two hosts where one
//!   dials the other: the dialled one is the hub.
//! - Addresses become `id`s where the address is the subnet's network + id + 1 and lies in the run
//!   of low addresses the members share (10.50.0.1, .2, .3); an address far above the others (a
//!   fixed 10.50.0.30) stays an explicit `address`.
//! - What others route to a member beyond its own address becomes its `routes`; what a spoke sends
//!   to its hub beyond the hub's prefixes becomes the spoke's `reach`; anything else is kept as an
//!   explicit `allowedIPs`.
//! - Peers whose key no host owns become `clients` (named after their comment, or `unknown-N`).
//!
//! Pure apart from randomness in encryption: the command reads the files and writes the results.
//!
//! Modules: `source` (which file is whose), `conf` (a file read with its line numbers),
//! `network` (one network's shape, members and addresses), `round_trip` (the fleet rendered back
//! and compared), `seal` (the keys found, encrypted or left out), `results` (what an import
//! returns, and the findings collected on the way), `report` (the text); here, the whole import.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Component, Path, PathBuf};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::fleet::diag::{Located, Severity as DiagSeverity};
use crate::fleet::model::{NetworkModel, fold_prefixes};
use crate::fleet::schema::{self, Fleet, HubAndSpoke, Topology};
use crate::fleet::syntax::{self, Endpoint};
use crate::fleet::validate::{self, DEFAULT_LISTEN_PORT};
use crate::secrets::age::{encrypt, parse_recipient};
use crate::secrets::keys::SecretKey;
use crate::secrets::recipients::RecipientsFile;
use crate::wgconf::{self, WgConf};

mod conf;
mod network;
mod refused;
mod renamed;
mod report;
mod results;
mod round_trip;
mod seal;
mod source;

use conf::*;
use network::*;
pub use report::{report_text, summary_text};
use results::Findings;
pub use results::{Finding, Imported, NetworkSummary, Place, SecretFile, Severity};
use round_trip::*;
pub use seal::relative_path;
use seal::seal;
use source::display_path;
pub use source::{Input, Source, read_input, source_from_arg, sources_in_dir};

// ---------------------------------------------------------------------------------------------
// Helpers the phases share.

fn join_prefixes(list: &[IpNet]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_prefix(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

fn host_prefix(a: IpAddr) -> IpNet {
    IpNet::from(a)
}

fn is_host_prefix(p: &IpNet) -> bool {
    p.prefix_len() == p.max_prefix_len()
}

/// The most common item; ties go to the smallest.
fn most_common<T: Ord + Clone>(items: impl IntoIterator<Item = T>) -> Option<T> {
    let mut counts: BTreeMap<T, usize> = BTreeMap::new();
    for i in items {
        *counts.entry(i).or_default() += 1;
    }
    let best = counts.values().copied().max()?;
    counts.into_iter().find(|(_, c)| *c == best).map(|(t, _)| t)
}

// ---------------------------------------------------------------------------------------------
// The whole import.

/// What the import needs besides the files.
pub struct Options<'a> {
    /// `-r` recipients (already checked with `parse_recipient`).
    pub recipients: &'a [String],
    /// `-R` recipients file: operators and `HOST RECIPIENT` lines.
    pub recipients_file: Option<&'a RecipientsFile>,
    /// Where the age files go.
    pub secrets_dir: &'a Path,
    /// The directory of the fleet file (age file references are relative to it).
    pub fleet_dir: &'a Path,
    /// How reports name the fleet file.
    pub fleet_name: &'a str,
    /// Unix seconds (validation).
    pub now: i64,
}

/// Imports the files; `Err` when nothing is importable.
pub fn import(inputs: &[Input], opts: &Options<'_>) -> Result<Imported, String> {
    let files: Vec<ConfFile> = inputs.iter().map(parse_file).collect();
    let mut seen = BTreeSet::new();
    for f in &files {
        if !seen.insert((f.src.host.clone(), f.src.network.clone())) {
            return Err(format!(
                "{}: {} has two files for {}",
                f.src.display, f.src.host, f.src.network
            ));
        }
    }
    let mut merges = Vec::new();
    let network_of = renamed::networks(&files, &mut merges);
    let mut by_net: BTreeMap<String, Vec<&ConfFile>> = BTreeMap::new();
    for f in &files {
        by_net
            .entry(network_of[&f.src.network].clone())
            .or_default()
            .push(f);
    }
    let multi = by_net.len() > 1;
    let mut findings = Vec::new();
    for f in &files {
        for (line, why) in &f.refused {
            findings.push(Finding {
                severity: Severity::Error,
                kind: "refused-by-wg-quick",
                network: multi.then(|| f.src.network.clone()),
                message: format!(
                    "wg-quick refuses this line of {}: {why}; the tunnel cannot start with it: fix the file and import again",
                    f.src.display
                ),
                lines: vec![f.place(*line)],
            });
        }
    }
    let key_owners: BTreeMap<String, String> = files
        .iter()
        .filter_map(|f| {
            f.private_key
                .as_ref()
                .map(|(k, _)| (k.public_key(), f.src.host.clone()))
        })
        .collect();
    let mut files_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &files {
        files_of
            .entry(f.src.host.clone())
            .or_default()
            .push(f.src.display.clone());
    }
    for mut m in merges {
        m.network = m.network.filter(|_| multi);
        findings.push(m);
    }
    let mut used_names: BTreeSet<String> = files.iter().map(|f| f.src.host.clone()).collect();
    let mut unknown = 0usize;
    let mut nets: Vec<(String, NetOut<'_>)> = Vec::new();
    for (name, list) in &by_net {
        let mut f = Findings {
            list: Vec::new(),
            network: multi.then(|| name.clone()),
        };
        let mut n = NetImport {
            name: name.clone(),
            f: &mut f,
            key_owners: &key_owners,
            file_hosts: BTreeSet::new(),
            files_of: &files_of,
            members: BTreeMap::new(),
            entries: BTreeMap::new(),
            foreign: Vec::new(),
            subnet4: None,
            subnet6: None,
            hubs: Vec::new(),
            listen_port: DEFAULT_LISTEN_PORT,
            listen_port_set: None,
            mtu: None,
            keepalive: None,
            clients: Vec::new(),
        };
        n.read_members(list);
        if n.members.is_empty() {
            drop(n);
            findings.append(&mut f.list);
            continue;
        }
        n.choose_subnets();
        n.classify_entries();
        n.report_keys();
        n.choose_topology();
        n.interface_values();
        n.unsupported_interface_keys();
        n.clients(&mut used_names, &mut unknown);
        n.duplicates();
        n.check_coverage();
        n.advertised();
        n.endpoints();
        n.keepalives();
        n.descriptions();
        n.forwarding_hint();
        n.firewall_hint();
        let out = n.build();
        findings.append(&mut f.list);
        nets.push((name.clone(), out));
    }
    if nets.is_empty() {
        let why: Vec<String> = findings
            .iter()
            .map(|f| format!("  {}", f.message))
            .collect();
        return Err(format!("nothing importable:\n{}", why.join("\n")));
    }

    // Hosts: the key and endpoint of their first network; others override per member.
    let mut fleet = Fleet {
        version: 1,
        ..Fleet::default()
    };
    let mut planned: Vec<PlannedSecret<'_>> = Vec::new();
    let mut general = Findings {
        list: Vec::new(),
        network: None,
    };
    for (net_name, out) in &mut nets {
        for (host, facts) in &out.hosts {
            let listen_port = out.summary.listen_port;
            match fleet.hosts.get(host) {
                None => {
                    fleet.hosts.insert(
                        host.clone(),
                        schema::Host {
                            public_key: facts.public_key.clone(),
                            private_key_file: None,
                            key_on_host: false,
                            endpoint: facts
                                .endpoint
                                .as_ref()
                                .map(|e| endpoint_text(e, listen_port)),
                            endpoints: Vec::new(),
                            wan_interface: facts.wan.clone(),
                            description: facts.description.clone(),
                            ..Default::default()
                        },
                    );
                    if let Some(k) = facts.private_key {
                        planned.push(PlannedSecret::private_key(
                            host,
                            None,
                            facts.key_source.clone(),
                            k,
                        ));
                    }
                }
                Some(h) => {
                    let h = h.clone();
                    let m = out.network.members.get_mut(host).expect("member");
                    if h.public_key != facts.public_key {
                        m.public_key = Some(facts.public_key.clone());
                        if let Some(k) = facts.private_key {
                            planned.push(PlannedSecret::private_key(
                                host,
                                Some(net_name),
                                facts.key_source.clone(),
                                k,
                            ));
                        }
                    }
                    let host_ep = h
                        .endpoint
                        .as_deref()
                        .and_then(|e| syntax::parse_endpoint(e).ok())
                        .map(|e| e.render(listen_port));
                    let here = facts.endpoint.as_ref().map(|e| e.render(listen_port));
                    if here.is_some() && here != host_ep {
                        if h.endpoint.is_none() {
                            let entry = fleet.hosts.get_mut(host).expect("host");
                            entry.endpoint = facts
                                .endpoint
                                .as_ref()
                                .map(|e| endpoint_text(e, listen_port));
                        } else {
                            m.endpoint = facts
                                .endpoint
                                .as_ref()
                                .map(|e| endpoint_text(e, listen_port));
                        }
                    }
                    let entry = fleet.hosts.get_mut(host).expect("host");
                    if entry.description.is_none() {
                        entry.description = facts.description.clone();
                    }
                    if entry.wan_interface.is_none() {
                        entry.wan_interface = facts.wan.clone();
                    }
                }
            }
        }
        for (a, b, k, source) in &out.psk_pairs {
            planned.push(PlannedSecret {
                file_name: format!("{net_name}-{a}-{b}.psk.age"),
                source: Some(source.clone()),
                what: format!("the preshared key of {a} and {b} in {net_name}"),
                needed_by: vec![a.clone(), b.clone()],
                key: k,
                target: Target::Pair(net_name.clone(), a.clone(), b.clone()),
            });
        }
        for (client, k, source) in &out.client_psks {
            let needed_by: Vec<String> = out.network.clients[client]
                .hubs
                .clone()
                .unwrap_or_else(|| out.summary.hubs_or_members());
            planned.push(PlannedSecret {
                file_name: format!("{net_name}-{client}.psk.age"),
                source: Some(source.clone()),
                what: format!("the preshared key of client {client} in {net_name}"),
                needed_by,
                key: k,
                target: Target::Client(net_name.clone(), client.clone()),
            });
        }
    }
    for (name, out) in &nets {
        fleet.networks.insert(name.clone(), out.network.clone());
    }

    // Secrets: encrypted on the spot, or left out with what to do.
    let secrets = seal(&mut fleet, &planned, opts, &mut general)?;

    // Validate, then render every imported file back and compare.
    let json = {
        let mut t = serde_json::to_string_pretty(&fleet).unwrap_or_default();
        t.push('\n');
        t
    };
    let (valid, diags) = validate::validate(
        &fleet,
        validate::Options {
            now: opts.now,
            expiry_warning: 0,
        },
    );
    for d in diags.0.iter().filter(|d| d.severity == DiagSeverity::Error) {
        let located = Located::new(Path::new(opts.fleet_name), Some(&json), d);
        general.push(
            Severity::Error,
            "invalid-fleet",
            format!("the imported fleet does not validate: {located}"),
            vec![],
        );
    }
    if let Some(valid) = &valid {
        round_trip(valid, &nets, opts.now, &mut general);
    }
    missing_hosts(&files, &fleet, &mut general);
    findings.append(&mut general.list);
    findings.sort_by_key(|f| f.severity);
    Ok(Imported {
        networks: nets.iter().map(|(_, o)| o.summary.clone()).collect(),
        fleet,
        findings,
        secrets,
        valid: valid.is_some(),
    })
}

/// Every file given names a host of the fleet: an import that left one out is incomplete (its
/// key, port and peers would be lost when the files are deleted), whatever else was reported.
fn missing_hosts(files: &[ConfFile], fleet: &Fleet, f: &mut Findings) {
    for file in files {
        let (host, net) = (&file.src.host, &file.src.network);
        let member = fleet.networks.iter().any(|(name, n)| {
            n.members
                .get(host)
                .is_some_and(|m| m.interface.as_ref().unwrap_or(name) == net)
        });
        if !member {
            f.error(
                "host-not-imported",
                format!(
                    "{} was given, but {host} is not a member of {net} in the imported fleet (see above why): the import is incomplete; fix the file and import again",
                    file.src.display
                ),
                vec![],
            );
        }
    }
}

/// A host's `endpoint` as the fleet writes it: the port only when it is not the network's.
fn endpoint_text(ep: &Endpoint, listen_port: u16) -> String {
    match ep.port {
        Some(p) if p != listen_port => ep.render(p),
        _ => ep.host.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_from_arguments() {
        let s = source_from_arg("cp=/etc/wireguard/wg0.conf").unwrap();
        assert_eq!((s.host.as_str(), s.network.as_str()), ("cp", "wg0"));
        let s = source_from_arg("cp:wg1=./cp.conf").unwrap();
        assert_eq!((s.network.as_str(), s.display.as_str()), ("wg1", "cp.conf"));
        assert!(source_from_arg("cp").is_err());
        assert!(source_from_arg("bad name=wg0.conf").is_err());
    }
    #[test]
    fn labels_and_names() {
        assert_eq!(usable_label("worker-1").as_deref(), Some("worker-1"));
        assert_eq!(usable_label("The VPS's public key"), None);
        assert_eq!(sanitize_name("Alice's Phone"), "alice-s-phone");
        assert_eq!(
            sanitize_name("proxy server (192.99.14.173)"),
            "proxy-server-192.99.14.173"
        );
    }
}
