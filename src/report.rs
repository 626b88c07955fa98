//! The auditor's report: one self-contained HTML page (inline CSS and SVG, no script, no external
//! asset) with the topology, the access state, clients about to expire, the fleet's policy tests
//! re-evaluated, and (from audit logs) who had access when. The same data is available as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ipnet::IpNet;
use serde::Serialize;

use crate::access::{self, Tables, Trace};
use crate::fleet::Loaded;
use crate::fleet::model::{Party, PeerKind, ValidFleet};
use crate::fleet::schema::Expect;
use crate::fleet::time::format_rfc3339;
use crate::graph::{self, Graph, xml_escape};
use crate::history::Interval;

/// Clients expiring within this many days are listed.
pub const EXPIRY_WINDOW_DAYS: i64 = 30;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The fleet file, as given.
    pub fleet: String,
    pub digest: String,
    /// When the report was made (RFC 3339; `SOURCE_DATE_EPOCH` when set).
    pub generated_at: String,
    /// The time access and expiry are evaluated at (`--now`, default: now).
    pub evaluated_at: String,
    pub networks: Vec<NetworkSummary>,
    pub graph: Graph,
    pub access: Vec<AccessRow>,
    pub expiry_window_days: i64,
    pub expiring: Vec<Expiring>,
    pub tests: Vec<TestResult>,
    /// With `--log`: the logs read and each owner's access intervals.
    pub audit: Option<Audit>,
    /// With `--probe`: the hosts' last `wgfleet probe` reports (their probe.json).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<crate::probe::ProbeReport>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSummary {
    pub name: String,
    pub topology: String,
    pub subnets: Vec<IpNet>,
    pub listen_port: u16,
    pub members: usize,
    pub clients: usize,
    pub expired_clients: usize,
    pub tunnels: usize,
    pub flows: usize,
    pub tests: usize,
}

/// A row of the access matrix, its expiry as RFC 3339 text.
pub type AccessRow = access::Row<String>;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Expiring {
    pub network: String,
    pub client: String,
    pub owner: Option<String>,
    pub expires: String,
    pub expired: bool,
    /// Whole days from the evaluation time to the expiry (negative: expired that long ago).
    pub days_left: i64,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    pub network: String,
    /// Index in the network's `tests`.
    pub index: usize,
    /// As written in the fleet.
    pub from: String,
    pub to: String,
    pub port: Option<String>,
    pub expect: &'static str,
    /// `pass`, `fail`, or `skipped` (no live pair to test: an end expired).
    pub result: &'static str,
    pub checks: Vec<TestCheck>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestCheck {
    pub from: String,
    pub to: String,
    pub works: bool,
    /// The hops of the request.
    pub path: Vec<String>,
    /// Where and why the request or its reply is dropped.
    pub dropped: Option<String>,
    pub pass: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Audit {
    pub logs: Vec<String>,
    pub owners: Vec<OwnerIntervals>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerIntervals {
    /// `None`: peers without an owner (hosts, unowned clients).
    pub owner: Option<String>,
    pub intervals: Vec<Interval>,
}

/// Everything the report shows, evaluated at `now`.
pub fn build(
    loaded: &Loaded,
    valid: &ValidFleet,
    now: i64,
    generated_at: i64,
    audit: Option<(Vec<String>, Vec<Interval>)>,
    probes: Vec<crate::probe::ProbeReport>,
) -> Report {
    let graph = graph::build(valid, None, now);
    let networks = valid
        .networks
        .values()
        .zip(&graph.networks)
        .map(|(n, g)| {
            let members = n
                .peers
                .values()
                .filter(|p| p.kind == PeerKind::Host)
                .count();
            NetworkSummary {
                name: n.name.clone(),
                topology: if n.is_mesh() {
                    "mesh".to_owned()
                } else {
                    format!("hub-and-spoke (hubs: {})", n.hubs.join(", "))
                },
                subnets: g.subnets.clone(),
                listen_port: n.listen_port,
                members,
                clients: n.peers.len() - members,
                expired_clients: n.peers.values().filter(|p| p.is_expired(now)).count(),
                tunnels: g.links.len(),
                flows: n.flows.len(),
                tests: n.tests.len(),
            }
        })
        .collect();

    let access = valid
        .networks
        .values()
        .flat_map(|n| access::matrix(valid, n, now))
        .map(access::Row::with_rfc3339_until)
        .collect();

    let horizon = now + EXPIRY_WINDOW_DAYS * 86_400;
    let mut expiring: Vec<Expiring> = valid
        .networks
        .values()
        .flat_map(|n| n.peers.values().map(move |p| (n, p)))
        .filter(|(_, p)| p.kind == PeerKind::Client)
        .filter_map(|(n, p)| {
            let t = p.expires.filter(|t| *t <= horizon)?;
            Some(Expiring {
                network: n.name.clone(),
                client: p.name.clone(),
                owner: p.owner.clone(),
                expires: format_rfc3339(t),
                expired: p.is_expired(now),
                days_left: (t - now).div_euclid(86_400),
                description: p.description.clone(),
            })
        })
        .collect();
    expiring.sort_by(|a, b| {
        (&a.expires, &a.network, &a.client).cmp(&(&b.expires, &b.network, &b.client))
    });

    let audit = audit.map(|(logs, intervals)| {
        let mut by_owner: BTreeMap<Option<String>, Vec<Interval>> = BTreeMap::new();
        for i in intervals {
            by_owner.entry(i.owner.clone()).or_default().push(i);
        }
        // Owners first (by name), then the peers without one.
        let mut owners: Vec<OwnerIntervals> = Vec::new();
        let unowned = by_owner.remove(&None);
        owners.extend(by_owner.into_iter().map(|(owner, mut intervals)| {
            intervals.sort_by(|a, b| (&a.from, &a.host, &a.peer).cmp(&(&b.from, &b.host, &b.peer)));
            OwnerIntervals { owner, intervals }
        }));
        if let Some(mut intervals) = unowned {
            intervals.sort_by(|a, b| (&a.peer, &a.from, &a.host).cmp(&(&b.peer, &b.from, &b.host)));
            owners.push(OwnerIntervals {
                owner: None,
                intervals,
            });
        }
        Audit { logs, owners }
    });

    Report {
        fleet: loaded.path.display().to_string(),
        digest: loaded.digest(),
        generated_at: format_rfc3339(generated_at),
        evaluated_at: format_rfc3339(now),
        networks,
        graph,
        access,
        expiry_window_days: EXPIRY_WINDOW_DAYS,
        expiring,
        tests: policy_tests(loaded, valid, now),
        audit,
        probes,
    }
}

/// The fleet's tests, each pair checked end to end as `validate` does.
fn policy_tests(loaded: &Loaded, valid: &ValidFleet, now: i64) -> Vec<TestResult> {
    let mut results = Vec::new();
    for net in valid.networks.values() {
        if net.tests.is_empty() {
            continue;
        }
        let written = loaded.fleet.networks.get(&net.name);
        let live = |party: &Party| match party {
            Party::Peer(n) => net.peers.get(n).is_some_and(|p| !p.is_expired(now)),
            Party::Cidr(_) => true,
        };
        let mut tables = Tables::new(valid, net, now);
        for test in &net.tests {
            let source = written.and_then(|w| w.tests.get(test.index));
            let mut checks = Vec::new();
            for a in &test.from {
                for b in &test.to {
                    let Party::Peer(from) = a else { continue };
                    if !live(a) || !live(b) || a == b {
                        continue;
                    }
                    let (there, back) = tables.connect(from, b, test.port);
                    let works = there.ok() && back.as_ref().is_none_or(Trace::ok);
                    let path = match &there {
                        Trace::Delivered { path } | Trace::Dropped { path, .. } => path.clone(),
                    };
                    let dropped = match (&there, &back) {
                        (Trace::Dropped { at, reason, .. }, _) => {
                            Some(format!("request dropped at {at}: {reason}"))
                        }
                        (_, Some(Trace::Dropped { at, reason, .. })) => {
                            Some(format!("reply dropped at {at}: {reason}"))
                        }
                        _ => None,
                    };
                    checks.push(TestCheck {
                        from: from.clone(),
                        to: b.to_string(),
                        works,
                        path,
                        dropped,
                        pass: works == test.allow,
                    });
                }
            }
            let result = if checks.is_empty() {
                "skipped"
            } else if checks.iter().all(|c| c.pass) {
                "pass"
            } else {
                "fail"
            };
            let join = |parties: &[Party]| {
                parties
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            results.push(TestResult {
                network: net.name.clone(),
                index: test.index,
                from: source.map_or_else(|| join(&test.from), |s| s.from.clone()),
                to: source.map_or_else(|| join(&test.to), |s| s.to.clone()),
                port: source
                    .and_then(|s| s.port.clone())
                    .or_else(|| test.port.as_ref().map(ToString::to_string)),
                expect: match source.map(|s| s.expect) {
                    Some(Expect::Deny) => "deny",
                    Some(Expect::Allow) => "allow",
                    None if test.allow => "allow",
                    None => "deny",
                },
                result,
                checks,
            });
        }
    }
    results
}

const CSS: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #ffffff; color: #111827;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", "Liberation Sans", sans-serif; }
.skip { position: absolute; left: -10000px; top: 0; background: #1e3a8a; color: #ffffff;
  padding: .5rem 1rem; z-index: 10; }
.skip:focus { left: 1rem; top: 1rem; }
header, main, footer { max-width: 1260px; margin: 0 auto; padding: 0 1.25rem; }
header { padding-top: 1rem; }
h1 { font-size: 1.7rem; margin: .5rem 0; }
h2 { font-size: 1.3rem; margin: 2.2rem 0 .6rem; padding-bottom: .2rem; border-bottom: 2px solid #e5e7eb; }
h3 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; }
a { color: #1d4ed8; }
a:focus, .scroll:focus { outline: 3px solid #f59e0b; outline-offset: 2px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: .5rem 0; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; }
code, .mono { font-family: "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace; font-size: .93em; }
time, th.mono { white-space: nowrap; }
code { word-break: break-all; }
nav ul { display: flex; flex-wrap: wrap; gap: .2rem 1.2rem; list-style: none; padding: 0; margin: .6rem 0; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; font-size: 14px; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: .3rem 0; }
th, td { border: 1px solid #d1d5db; padding: .3rem .5rem; text-align: left; vertical-align: top; }
thead th { background: #f3f4f6; }
tbody th { font-weight: 600; background: #fafafa; }
.ok { color: #065f46; }
.bad { color: #991b1b; font-weight: 600; }
.warn { color: #92400e; font-weight: 600; }
.note { color: #4b5563; }
figure { margin: .5rem 0 1rem; }
.scroll { overflow: auto; max-height: 85vh; border: 1px solid #e5e7eb; background: #ffffff; }
.scroll svg { display: block; }
figcaption { color: #374151; font-size: .92rem; margin-top: .4rem; }
footer { margin: 2.5rem auto 1.5rem; color: #4b5563; font-size: .9rem; }
@media print {
  @page { margin: 14mm; }
  body { font-size: 10.5pt; }
  .skip, nav { display: none; }
  header, main, footer { max-width: none; padding: 0; }
  a { color: inherit; text-decoration: none; }
  .scroll { overflow: visible; max-height: none; border: 0; }
  .scroll svg { max-width: 100%; height: auto; }
  h2, h3, caption { break-after: avoid; }
  tr, figure { break-inside: avoid; }
  thead { display: table-header-group; }
  table { font-size: 9pt; }
  th, td { border-color: #6b7280; }
}
"#;

fn esc(s: &str) -> String {
    xml_escape(s)
}

fn or_dash(s: Option<&str>) -> String {
    match s {
        Some(s) if !s.is_empty() => esc(s),
        _ => "—".to_owned(),
    }
}

/// An RFC 3339 time as a `<time>` element.
fn time(t: &str) -> String {
    format!("<time datetime=\"{t}\">{t}</time>", t = esc(t))
}

fn ports_text(ports: &[String]) -> String {
    if ports.is_empty() {
        "any".to_owned()
    } else {
        ports.join(", ")
    }
}

/// The report as one HTML page.
pub fn to_html(r: &Report) -> String {
    let svg = graph::to_svg(&r.graph);
    let mut o = String::with_capacity(svg.len() + 32 * 1024);
    let title = format!("wgfleet report: {}", r.fleet);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"generator\" content=\"wgfleet {}\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        env!("CARGO_PKG_VERSION"),
        esc(&title)
    );
    o.push_str("<a class=\"skip\" href=\"#main\">Skip to the report</a>\n<header>\n");
    let _ = writeln!(o, "<h1>WireGuard fleet report</h1>");
    let _ = writeln!(
        o,
        "<dl class=\"meta\">\n<dt>Fleet file</dt><dd><code>{}</code></dd>\n<dt>Fleet digest</dt><dd><code id=\"digest\">{}</code></dd>\n<dt>Generated</dt><dd>{}</dd>\n<dt>Access evaluated at</dt><dd>{}</dd>\n</dl>",
        esc(&r.fleet),
        esc(&r.digest),
        time(&r.generated_at),
        time(&r.evaluated_at)
    );
    o.push_str("<nav aria-label=\"Sections\">\n<ul>\n");
    for (id, name) in [
        ("networks", "Networks"),
        ("topology", "Topology"),
        ("peers", "Hosts and clients"),
        ("access", "Access matrix"),
        ("expiring", "Expiring clients"),
        ("tests", "Policy tests"),
        ("probes", "Live probes"),
        ("intervals", "Access intervals"),
    ] {
        let _ = writeln!(o, "<li><a href=\"#{id}\">{name}</a></li>");
    }
    o.push_str("</ul>\n</nav>\n</header>\n<main id=\"main\" tabindex=\"-1\">\n");

    // Networks.
    o.push_str("<section id=\"networks\" aria-labelledby=\"networks-h\">\n<h2 id=\"networks-h\">Networks</h2>\n");
    o.push_str("<table id=\"networks-table\">\n<caption>Each network is one WireGuard interface on its members</caption>\n<thead><tr><th scope=\"col\">Network</th><th scope=\"col\">Topology</th><th scope=\"col\">Subnets</th><th scope=\"col\">Port</th><th scope=\"col\">Members</th><th scope=\"col\">Clients (expired)</th><th scope=\"col\">Tunnels</th><th scope=\"col\">Flows</th><th scope=\"col\">Tests</th></tr></thead>\n<tbody>\n");
    for n in &r.networks {
        let subnets: Vec<String> = n.subnets.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            o,
            "<tr><th scope=\"row\" class=\"mono\">{}</th><td>{}</td><td class=\"mono\">{}</td><td>UDP {}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&n.name),
            esc(&n.topology),
            or_dash(Some(&subnets.join(", "))),
            n.listen_port,
            n.members,
            n.clients,
            n.expired_clients,
            n.tunnels,
            n.flows,
            n.tests
        );
    }
    o.push_str("</tbody>\n</table>\n</section>\n");

    // Topology.
    o.push_str("<section id=\"topology\" aria-labelledby=\"topology-h\">\n<h2 id=\"topology-h\">Topology</h2>\n<figure>\n<div class=\"scroll\" tabindex=\"0\" role=\"region\" aria-label=\"Topology diagram (scrolls)\">\n");
    o.push_str(&svg);
    o.push_str("</div>\n<figcaption>Boxes are hosts (hubs with a thick border) and clients (dashed border); grey lines are the tunnels each side really has as a <code>[Peer]</code>; dotted purple lines lead to the prefixes routed behind a member; dashed orange arrows are declared flows, labelled with their ports. The tables below hold the same information as text.</figcaption>\n</figure>\n</section>\n");

    // Peers, as text.
    o.push_str("<section id=\"peers\" aria-labelledby=\"peers-h\">\n<h2 id=\"peers-h\">Hosts and clients</h2>\n");
    for net in &r.graph.networks {
        let _ = writeln!(
            o,
            "<table class=\"peers\" data-network=\"{n}\">\n<caption>Network <span class=\"mono\">{n}</span>: members and clients</caption>\n<thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Role</th><th scope=\"col\">Tunnel addresses</th><th scope=\"col\">Endpoint</th><th scope=\"col\">Routes behind it</th><th scope=\"col\">Tunnels to</th><th scope=\"col\">Owner</th><th scope=\"col\">Expires</th></tr></thead>\n<tbody>",
            n = esc(&net.name)
        );
        for node in &net.nodes {
            let routes: Vec<String> = net
                .prefixes
                .iter()
                .filter(|p| p.route && p.behind.as_deref() == Some(node.name.as_str()))
                .map(|p| p.prefix.to_string())
                .collect();
            let peers: Vec<&str> = net
                .links
                .iter()
                .filter_map(|l| {
                    if l.a == node.name {
                        Some(l.b.as_str())
                    } else if l.b == node.name {
                        Some(l.a.as_str())
                    } else {
                        None
                    }
                })
                .collect();
            let mut role = node.role.as_str().to_owned();
            if node.forwarding {
                role.push_str(", forwarding");
            }
            if node.nat {
                role.push_str(", NAT");
            }
            let expires = match (&node.expires, node.expired) {
                (Some(e), true) => format!("<span class=\"bad\">expired {}</span>", time(e)),
                (Some(e), false) => time(e),
                (None, _) => "—".to_owned(),
            };
            let _ = writeln!(
                o,
                "<tr><th scope=\"row\" class=\"mono\">{}</th><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&node.name),
                esc(&role),
                or_dash(Some(&node.addresses.join(", "))),
                or_dash(node.endpoint.as_deref()),
                or_dash(Some(&routes.join(", "))),
                if peers.is_empty() {
                    "none".to_owned()
                } else {
                    esc(&peers.join(", "))
                },
                or_dash(node.owner.as_deref()),
                expires
            );
        }
        o.push_str("</tbody>\n</table>\n");
    }
    if !r.graph.unattached.is_empty() {
        let _ = writeln!(
            o,
            "<p>Hosts in no network: <span class=\"mono\">{}</span>.</p>",
            esc(&r.graph.unattached.join(", "))
        );
    }
    o.push_str("</section>\n");

    // Access matrix.
    let broken = r.access.iter().filter(|a| !a.works).count();
    let _ = writeln!(
        o,
        "<section id=\"access\" aria-labelledby=\"access-h\">\n<h2 id=\"access-h\">Access matrix</h2>\n<p>Who can open connections to what, checked hop by hop from the description: the sender's AllowedIPs, each hub's cryptokey check, forwarding and firewall, the receiver, and the reply. Without flows, every pair of peers with a tunnel path is listed; with flows, each declared pair. {} row(s), {} not working.</p>",
        r.access.len(),
        broken
    );
    o.push_str("<table id=\"access-matrix\">\n<caption>Access matrix: who reaches what, on which ports, via which hub, until when</caption>\n<thead><tr><th scope=\"col\">From</th><th scope=\"col\">To</th><th scope=\"col\">Network</th><th scope=\"col\">Ports</th><th scope=\"col\">Via</th><th scope=\"col\">Until</th><th scope=\"col\">Owner</th><th scope=\"col\">Works</th></tr></thead>\n<tbody>\n");
    for a in &r.access {
        let status = if a.works {
            "<span class=\"ok\">✓ works</span>".to_owned()
        } else {
            format!(
                "<span class=\"bad\">✗ broken</span>: {}",
                or_dash(a.dropped.as_deref())
            )
        };
        let _ = writeln!(
            o,
            "<tr><th scope=\"row\" class=\"mono\">{}</th><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&a.from),
            esc(&a.to),
            esc(&a.network),
            esc(&ports_text(&a.ports)),
            if a.via.is_empty() {
                "direct".to_owned()
            } else {
                esc(&a.via.join(" → "))
            },
            a.until
                .as_deref()
                .map_or_else(|| "no expiry".to_owned(), time),
            or_dash(a.owner.as_deref()),
            status
        );
    }
    if r.access.is_empty() {
        o.push_str("<tr><td colspan=\"8\">No access at all.</td></tr>\n");
    }
    o.push_str("</tbody>\n</table>\n</section>\n");

    // Expiring clients.
    let _ = writeln!(
        o,
        "<section id=\"expiring\" aria-labelledby=\"expiring-h\">\n<h2 id=\"expiring-h\">Clients expiring within {} days or expired</h2>",
        r.expiry_window_days
    );
    if r.expiring.is_empty() {
        let _ = writeln!(
            o,
            "<p>No client expires within {} days of {}, and none has expired.</p>",
            r.expiry_window_days,
            esc(&r.evaluated_at)
        );
    } else {
        o.push_str("<table id=\"expiring-table\">\n<caption>Clients whose access ends soon or has ended (an expired client is on no host)</caption>\n<thead><tr><th scope=\"col\">Client</th><th scope=\"col\">Network</th><th scope=\"col\">Owner</th><th scope=\"col\">Expires</th><th scope=\"col\">Status</th><th scope=\"col\">Description</th></tr></thead>\n<tbody>\n");
        for e in &r.expiring {
            let status = if e.expired {
                format!(
                    "<span class=\"bad\">expired {} day(s) ago</span>",
                    -e.days_left
                )
            } else {
                format!(
                    "<span class=\"warn\">expires in {} day(s)</span>",
                    e.days_left
                )
            };
            let _ = writeln!(
                o,
                "<tr><th scope=\"row\" class=\"mono\">{}</th><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{status}</td><td>{}</td></tr>",
                esc(&e.client),
                esc(&e.network),
                or_dash(e.owner.as_deref()),
                time(&e.expires),
                or_dash(e.description.as_deref())
            );
        }
        o.push_str("</tbody>\n</table>\n");
    }
    o.push_str("</section>\n");

    // Policy tests.
    o.push_str("<section id=\"tests\" aria-labelledby=\"tests-h\">\n<h2 id=\"tests-h\">Policy tests</h2>\n");
    if r.tests.is_empty() {
        o.push_str("<p>The fleet declares no policy tests.</p>\n");
    } else {
        let failed = r.tests.iter().filter(|t| t.result == "fail").count();
        let _ = writeln!(
            o,
            "<p>The fleet's <code>tests</code>, re-evaluated end to end as <code>wgfleet validate</code> does: {} test(s), {} failing.</p>",
            r.tests.len(),
            failed
        );
        o.push_str("<table id=\"tests-table\">\n<caption>Expected outcomes and what the description really does</caption>\n<thead><tr><th scope=\"col\">Test</th><th scope=\"col\">From</th><th scope=\"col\">To</th><th scope=\"col\">Port</th><th scope=\"col\">Expect</th><th scope=\"col\">Result</th><th scope=\"col\">Evidence</th></tr></thead>\n<tbody>\n");
        for t in &r.tests {
            let result = match t.result {
                "pass" => "<span class=\"ok\">✓ pass</span>",
                "fail" => "<span class=\"bad\">✗ FAIL</span>",
                _ => "<span class=\"note\">skipped (an end has expired)</span>",
            };
            let evidence: Vec<String> = t
                .checks
                .iter()
                .map(|c| {
                    let what = match (&c.dropped, c.works) {
                        (_, true) => format!("reaches it via {}", c.path.join(" → ")),
                        (Some(d), false) => d.clone(),
                        (None, false) => "does not reach it".to_owned(),
                    };
                    format!("{} → {}: {what}", c.from, c.to)
                })
                .map(|s| esc(&s))
                .collect();
            let _ = writeln!(
                o,
                "<tr><th scope=\"row\">{}[{}]</th><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td><td>{result}</td><td>{}</td></tr>",
                esc(&t.network),
                t.index,
                esc(&t.from),
                esc(&t.to),
                t.port.as_deref().map_or_else(|| "any".to_owned(), esc),
                t.expect,
                if evidence.is_empty() {
                    "—".to_owned()
                } else {
                    evidence.join("<br>")
                }
            );
        }
        o.push_str("</tbody>\n</table>\n");
    }
    o.push_str("</section>\n");

    probes_html(&mut o, &r.probes);

    // Access intervals.
    o.push_str("<section id=\"intervals\" aria-labelledby=\"intervals-h\">\n<h2 id=\"intervals-h\">Access intervals from audit logs</h2>\n");
    match &r.audit {
        None => o.push_str(
            "<p>No audit logs were given (<code>--log AUDIT.jsonl</code>, one per host).</p>\n",
        ),
        Some(a) => {
            let logs: Vec<String> = a
                .logs
                .iter()
                .map(|l| format!("<code>{}</code>", esc(l)))
                .collect();
            let _ = writeln!(
                o,
                "<p>Read from {}. An interval runs from the first apply that put the peer on the host to the first that removed it.</p>",
                logs.join(", ")
            );
            if a.owners.is_empty() {
                o.push_str("<p>The logs hold no recorded peer state.</p>\n");
            }
            for (k, owner) in a.owners.iter().enumerate() {
                let who = owner.owner.as_deref().map_or_else(
                    || "Peers without an owner".to_owned(),
                    |o| format!("Owner {}", esc(o)),
                );
                let _ = writeln!(
                    o,
                    "<h3 id=\"owner-{k}\">{who}</h3>\n<table class=\"intervals\">\n<caption>{who}: when each peer was on each host</caption>\n<thead><tr><th scope=\"col\">Peer</th><th scope=\"col\">Host</th><th scope=\"col\">Network</th><th scope=\"col\">From</th><th scope=\"col\">Until</th></tr></thead>\n<tbody>"
                );
                for i in &owner.intervals {
                    let _ = writeln!(
                        o,
                        "<tr><th scope=\"row\" class=\"mono\">{}</th><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td></tr>",
                        esc(&i.peer),
                        esc(&i.host),
                        esc(&i.network),
                        time(&i.from),
                        i.until
                            .as_deref()
                            .map_or_else(|| "still there".to_owned(), time)
                    );
                }
                o.push_str("</tbody>\n</table>\n");
            }
        }
    }
    o.push_str("</section>\n</main>\n");
    let _ = writeln!(
        o,
        "<footer>\n<p>Made by wgfleet {} from <code>{}</code> ({}). Self-contained: no script, no external resource.</p>\n</footer>\n</body>\n</html>",
        env!("CARGO_PKG_VERSION"),
        esc(&r.fleet),
        esc(&r.digest)
    );
    o
}

/// The hosts' live probes: per host its peers (reached, path MTU) and tests (the fleet's verdict
/// against the live one), and its findings. Every field comes from a host's file: all escaped.
fn probes_html(o: &mut String, probes: &[crate::probe::ProbeReport]) {
    o.push_str("<section id=\"probes\" aria-labelledby=\"probes-h\">\n<h2 id=\"probes-h\">Live probes</h2>\n");
    if probes.is_empty() {
        o.push_str("<p>No probe reports were given (<code>--probe probe.json</code>, from <code>/var/lib/wgfleet</code> of each host).</p>\n</section>\n");
        return;
    }
    let ok = |b: bool, yes: &str, no: &str| {
        if b {
            format!("<span class=\"ok\">✓ {yes}</span>")
        } else {
            format!("<span class=\"bad\">✗ {no}</span>")
        }
    };
    for (k, r) in probes.iter().enumerate() {
        let _ = writeln!(
            o,
            "<h3 id=\"probe-{k}\">{} at {}: {}</h3>",
            esc(&r.host),
            time(&r.at),
            ok(r.ok, "all green", "problems found")
        );
        let _ = writeln!(
            o,
            "<table class=\"probe-peers\">\n<caption>{}: peers over the tunnel</caption>\n<thead><tr><th scope=\"col\">Peer</th><th scope=\"col\">Network</th><th scope=\"col\">Address</th><th scope=\"col\">Reached</th><th scope=\"col\">Path MTU</th></tr></thead>\n<tbody>",
            esc(&r.host)
        );
        for p in &r.peers {
            let mtu = match (p.path_mtu, p.interface_mtu) {
                (Some(a), Some(b)) => format!("{a} of {b}"),
                (Some(a), None) => a.to_string(),
                _ => "—".to_owned(),
            };
            let _ = writeln!(
                o,
                "<tr><th scope=\"row\" class=\"mono\">{}</th><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{} ({})</td><td>{mtu}</td></tr>",
                esc(&p.name),
                esc(&p.network),
                esc(&p.address),
                ok(p.reachable, "yes", "no"),
                esc(&p.answer)
            );
        }
        o.push_str("</tbody>\n</table>\n");
        if !r.tests.is_empty() {
            let _ = writeln!(
                o,
                "<table class=\"probe-tests\">\n<caption>{}: the fleet's tests run live</caption>\n<thead><tr><th scope=\"col\">From</th><th scope=\"col\">To</th><th scope=\"col\">Port</th><th scope=\"col\">Fleet</th><th scope=\"col\">Live</th><th scope=\"col\">Agrees</th></tr></thead>\n<tbody>",
                esc(&r.host)
            );
            for t in &r.tests {
                let _ = writeln!(
                    o,
                    "<tr><th scope=\"row\" class=\"mono\">{}</th><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&t.from),
                    esc(&t.to),
                    esc(&t.port),
                    t.static_verdict,
                    t.live,
                    ok(t.agrees, "yes", "DISAGREES")
                );
            }
            o.push_str("</tbody>\n</table>\n");
        }
        if !r.findings.is_empty() {
            o.push_str("<ul class=\"findings\">\n");
            for f in &r.findings {
                let _ = writeln!(
                    o,
                    "<li><code>{}</code> {}</li>",
                    esc(&f.kind),
                    esc(&f.message)
                );
            }
            o.push_str("</ul>\n");
        }
    }
    o.push_str("</section>\n");
}
