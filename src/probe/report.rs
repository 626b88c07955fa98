//! A probe run's results (`probe --json`, a contract: extend, rename nothing), and the findings
//! that say what failed and where it is likely dropped.

use serde::{Deserialize, Serialize};

use super::firewall::{HostFacts, host_findings};
use super::{Probes, Target, TestProbe};
use crate::diff::SESSION_SECS;
use crate::plan::InterfacePlan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        })
    }
}

impl Verdict {
    pub fn of(allowed: bool) -> Verdict {
        if allowed {
            Verdict::Allow
        } else {
            Verdict::Deny
        }
    }
}

/// What came back for one probe.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// An echo reply, after this many milliseconds.
    Reply(f64),
    /// A TCP SYN-ACK.
    Connected,
    /// A TCP RST: nothing listens, but the packet got there and the answer back.
    Reset,
    /// Nothing within the timeout.
    Silent,
    /// This host would not send it (its own OUTPUT rules: EPERM).
    Refused(String),
    /// An ICMP error or a local routing error.
    Unreachable(String),
    /// Not sent, for this reason (the run's deadline had passed, the interface is not up).
    NotSent(String),
}

impl Answer {
    pub fn came_back(&self) -> bool {
        matches!(self, Answer::Reply(_) | Answer::Connected | Answer::Reset)
    }

    fn describe(&self) -> String {
        match self {
            Answer::Reply(ms) => format!("echo reply in {ms:.1} ms"),
            Answer::Connected => "connected".into(),
            Answer::Reset => "reset (nothing listens, but it got there)".into(),
            Answer::Silent => "no answer".into(),
            Answer::Refused(e) => format!("not sent: {e}"),
            Answer::Unreachable(e) => format!("unreachable: {e}"),
            Answer::NotSent(why) => format!("not probed: {why}"),
        }
    }
}

/// What the shell saw for each target and test (in their order) and of the host itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub peers: Vec<PeerObservation>,
    pub tests: Vec<Answer>,
    pub facts: HostFacts,
    /// Packets the probes sent (resends included).
    pub packets: u64,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeerObservation {
    pub answer: Answer,
    /// Seconds since the peer's latest handshake, read after the probe; `None`: never.
    pub handshake_age: Option<u64>,
    pub interface_mtu: Option<u16>,
    pub path_mtu: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeReport {
    pub host: String,
    /// When the run began (RFC 3339).
    pub at: String,
    pub peers: Vec<PeerResult>,
    pub tests: Vec<TestResult>,
    pub findings: Vec<Finding>,
    /// Every peer reachable, every test agreeing, no path MTU below its interface's.
    pub ok: bool,
    pub packets: u64,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerResult {
    pub network: String,
    pub name: String,
    pub address: String,
    /// `icmp`, or `N/tcp` where the flows allow no ICMP.
    pub method: String,
    pub reachable: bool,
    pub answer: String,
    pub handshake_age: Option<u64>,
    /// The largest don't-fragment packet that came back (bytes, IP header included); `None`: not
    /// measured (no ICMP allowed, or not reached).
    pub path_mtu: Option<u16>,
    pub interface_mtu: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    pub network: String,
    pub from: String,
    pub to: String,
    pub address: String,
    pub port: String,
    pub expect: Verdict,
    /// What the description says (`access`, `validate`).
    #[serde(rename = "static")]
    pub static_verdict: Verdict,
    pub live: Verdict,
    pub agrees: bool,
    pub answer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: String,
    pub message: String,
}

impl Finding {
    pub fn new(kind: &str, message: String) -> Finding {
        Finding {
            kind: kind.to_owned(),
            message,
        }
    }
}

/// The run's report: results in the probes' order, then the findings (what was not probed,
/// what failed and where, what the host sees of itself).
pub fn report(
    host: &str,
    at: String,
    plans: &[InterfacePlan],
    probes: &Probes,
    seen: &Observed,
) -> ProbeReport {
    let mut findings = probes.skipped.clone();
    let mut peers = Vec::new();
    for (t, o) in probes.targets.iter().zip(&seen.peers) {
        let reachable = o.answer.came_back();
        if let Answer::NotSent(why) = &o.answer {
            findings.push(Finding::new(
                "not-probed",
                format!(
                    "{}: {} ({}) not probed: {why}",
                    t.interface, t.peer, t.address
                ),
            ));
        } else if !reachable {
            let here = local_drop(&seen.facts, &t.interface, t.address);
            findings.push(Finding::new("unreachable", unreachable(t, o, here)));
        }
        if let (Some(path), Some(iface)) = (o.path_mtu, o.interface_mtu)
            && path < iface
        {
            findings.push(Finding::new("mtu-black-hole", format!(
                "{}: to {} ({}) packets up to {path} bytes get through, larger ones vanish with no ICMP back (the interface's MTU is {iface}): set \"mtu\": {path} on networks.{} in the fleet, or on both members of this path",
                t.interface, t.peer, t.address, t.network
            )));
        }
        peers.push(PeerResult {
            network: t.network.clone(),
            name: t.peer.clone(),
            address: t.address.to_string(),
            method: t.method.to_string(),
            reachable,
            answer: o.answer.describe(),
            handshake_age: o.handshake_age,
            path_mtu: o.path_mtu,
            interface_mtu: o.interface_mtu,
        });
    }
    let mut tests = Vec::new();
    for (t, a) in probes.tests.iter().zip(&seen.tests) {
        let live = super::Verdict::of(a.came_back());
        let agrees = live == t.static_verdict;
        if let Answer::NotSent(why) = a {
            findings.push(Finding::new(
                "not-probed",
                format!("{} → {} {}: not probed: {why}", t.from, t.to, t.port),
            ));
        } else if !agrees {
            let here = local_drop(&seen.facts, &t.interface, t.address);
            findings.push(Finding::new(
                "test-disagrees",
                disagreement(t, a, &peers, here),
            ));
        }
        tests.push(TestResult {
            network: t.network.clone(),
            from: t.from.clone(),
            to: t.to.clone(),
            address: t.address.to_string(),
            port: t.port.to_string(),
            expect: t.expect,
            static_verdict: t.static_verdict,
            live,
            agrees,
            answer: a.describe(),
        });
    }
    findings.extend(host_findings(&seen.facts, plans));
    let ok = peers.iter().all(|p| p.reachable)
        && tests.iter().all(|t| t.agrees)
        && !findings.iter().any(|f| f.kind == "mtu-black-hole");
    ProbeReport {
        host: host.to_owned(),
        at,
        peers,
        tests,
        findings,
        ok,
        packets: seen.packets,
        elapsed_ms: seen.elapsed_ms,
    }
}

/// What this host does itself to traffic with `addr`: a route out of another interface (and,
/// under strict rp_filter, the answer dropped on its way back in).
fn local_drop(facts: &HostFacts, iface: &str, addr: std::net::IpAddr) -> Option<String> {
    let i = facts.interfaces.iter().find(|i| i.interface == iface)?;
    let dev = i
        .routes
        .iter()
        .find(|(a, _)| *a == addr)
        .and_then(|(_, d)| d.as_deref())
        .filter(|d| *d != iface)?;
    let back = if i.rp_filter == Some(1) {
        format!(", so strict rp_filter drops the answer coming back on {iface}")
    } else {
        String::new()
    };
    Some(format!(
        "it routes {addr} out of {dev}{back} (see the route finding)"
    ))
}

fn unreachable(t: &Target, o: &PeerObservation, here: Option<String>) -> String {
    let head = format!(
        "{}: {} ({}) not reached by {}",
        t.interface, t.peer, t.address, t.method
    );
    if let (Some(here), false) = (&here, matches!(o.answer, Answer::Refused(_))) {
        return format!(
            "{head} ({}): likely dropped on this host: {here}",
            o.answer.describe()
        );
    }
    match (&o.answer, o.handshake_age) {
        (Answer::Refused(e), _) => {
            format!("{head}: this host did not send it ({e}): its own OUTPUT rules drop it")
        }
        (Answer::Unreachable(e), _) => format!("{head}: {e}"),
        (_, Some(age)) if age < SESSION_SECS => format!(
            "{head}: the handshake is fresh ({age} s ago), so its WireGuard answers, but nothing came back: dropped beyond this host ({}'s firewall or its route back)",
            t.peer
        ),
        (_, Some(age)) => format!(
            "{head}: no handshake for {age} s: its WireGuard does not answer (down, a wrong key, or UDP to its endpoint blocked), beyond this host"
        ),
        (_, None) => format!(
            "{head}: no handshake yet: its WireGuard does not answer (down, a wrong key, or UDP to its endpoint blocked), beyond this host"
        ),
    }
}

fn disagreement(t: &TestProbe, a: &Answer, peers: &[PeerResult], here: Option<String>) -> String {
    let head = format!(
        "{} → {} {} ({}): the fleet says {}, live it is {}",
        t.from,
        t.to,
        t.port,
        t.address,
        t.static_verdict,
        Verdict::of(a.came_back())
    );
    let beyond = t.path.get(1..).unwrap_or_default();
    let places = match beyond {
        [] => t.to.clone(),
        [only] => only.clone(),
        [hubs @ .., last] => format!("{} (forwarding) or at {last}", hubs.join(", ")),
    };
    if let Answer::Refused(e) = a {
        return format!("{head}: this host did not send it ({e}): its own OUTPUT rules drop it");
    }
    if a.came_back() {
        let why = t
            .dropped
            .as_deref()
            .map(|d| format!(" (the description drops it {d})"))
            .unwrap_or_default();
        return format!(
            "{head} ({}){why}: a rule outside wgfleet's chains lets it through, beyond this host, at {places}; `wgfleet probe` there names foreign rules ahead of wgfleet's",
            a.describe()
        );
    }
    if let Some(here) = here {
        return format!(
            "{head} ({}): likely dropped on this host: {here}",
            a.describe()
        );
    }
    let next = beyond.first();
    let clear = next.and_then(|n| {
        peers
            .iter()
            .find(|p| p.name == *n && p.network == t.network)
    });
    let side = match clear {
        Some(p) if p.reachable => format!(
            "this host's side is clear ({} answers over the tunnel)",
            p.name
        ),
        Some(p) => format!("{} does not answer either", p.name),
        None => "this host sends it into the tunnel".to_owned(),
    };
    format!(
        "{head} ({}): {side}: dropped beyond this host, at {places}; `wgfleet probe` there names what it sees of itself",
        a.describe()
    )
}

/// What changed between two runs' outcomes (reachability, path MTU, test verdicts): the audit
/// log records a run only when this is not empty.
pub fn outcome_changes(before: Option<&ProbeReport>, now: &ProbeReport) -> Vec<String> {
    let mut changes = Vec::new();
    let old_peer = |p: &PeerResult| {
        before.and_then(|b| {
            b.peers
                .iter()
                .find(|q| q.network == p.network && q.name == p.name)
        })
    };
    for p in &now.peers {
        let was = old_peer(p);
        if was.map(|w| w.reachable) != Some(p.reachable) {
            changes.push(format!(
                "{}/{} {}",
                p.network,
                p.name,
                if p.reachable {
                    "reachable"
                } else {
                    "unreachable"
                }
            ));
        }
        if was.is_some_and(|w| w.path_mtu != p.path_mtu) || (was.is_none() && p.path_mtu.is_some())
        {
            let mtu = p.path_mtu.map_or("unknown".to_owned(), |m| m.to_string());
            changes.push(format!("{}/{} path MTU {mtu}", p.network, p.name));
        }
    }
    for t in &now.tests {
        let was = before.and_then(|b| {
            b.tests.iter().find(|u| {
                u.network == t.network && u.from == t.from && u.to == t.to && u.port == t.port
            })
        });
        if was.map(|w| (w.live, w.agrees)) != Some((t.live, t.agrees)) {
            changes.push(format!(
                "{}/{} → {} {} live {}{}",
                t.network,
                t.from,
                t.to,
                t.port,
                t.live,
                if t.agrees { "" } else { ", disagreeing" }
            ));
        }
    }
    changes
}
