//! `wgfleet status`: what is live on this host, peer by peer, against the fleet.

use std::io::Write;

use serde::Serialize;
use serde_json::json;

use super::{check_valid, plans_for, write_out};
use crate::cli::StatusArgs;
use crate::error::{Error, Result};
use crate::fleet::time::format_rfc3339;
use crate::fsutil::write_atomic;
use crate::shell::observe::live_state;
use crate::shell::systemd::Systemd;
use crate::unit::unit_name;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PeerStatus {
    peer: String,
    public_key: String,
    in_fleet: bool,
    endpoint: Option<String>,
    /// For a peer this host dials by name or at several endpoints: the fleet's endpoint in use
    /// (`host:port`), its place in the list, and when apply last resolved it again.
    #[serde(skip_serializing_if = "Option::is_none")]
    dialled_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved_at: Option<String>,
    /// Seconds since the latest handshake; `None`: never.
    handshake_age: Option<u64>,
    rx_bytes: u64,
    tx_bytes: u64,
    expires: Option<String>,
    verdict: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NetworkStatus {
    network: String,
    unit: String,
    active_state: String,
    enabled: bool,
    peers: Vec<PeerStatus>,
}

pub fn cmd_status(args: &StatusArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    let state = crate::shell::paths::detect(None).state;
    let (loaded, valid, now) = check_valid(&super::fleet_file(&args.fleet, None, &state)?, err)?;
    let host = super::this_host(args.host.as_deref(), &state)?;
    let mut plans = plans_for(&loaded.path, &valid, &host, None, now)?;
    // As apply renders them: each peer's staged key beside its current one, or promoted; this
    // host's own rotation as its last apply found it.
    let rotation = crate::shell::rotation::load(&state);
    for plan in &mut plans {
        crate::rotation::switch_psks(plan, now, &rotation.psk);
        crate::rotation::stage(plan, &rotation.promoted);
        if let (Some(r), Some(own)) = (
            &mut plan.rotation,
            rotation.own.iter().find(|o| o.interface == plan.network),
        ) && own.next_public_key == r.next_public_key
        {
            r.stage = own.stage.clone();
        }
    }
    let mut rotations = Vec::new();
    let systemd = Systemd::connect().map_err(|source| Error::Systemd {
        what: "systemd".into(),
        source,
    })?;
    let watched = plans
        .iter()
        .any(|p| crate::endpoints::dialled(p).next().is_some());
    let endpoint_state = if watched {
        crate::shell::endpoint_follow::load_state(&crate::shell::paths::detect(None).state).0
    } else {
        Default::default()
    };
    let mut networks = Vec::new();
    for plan in &plans {
        let unit = unit_name(&plan.network);
        let state = systemd.state(&unit).map_err(|source| Error::Systemd {
            what: unit.clone(),
            source,
        })?;
        let live = if state.is_running() {
            live_state(&plan.network).unwrap_or_default()
        } else {
            Default::default()
        };
        let handshake = |key: &str| live.peers.get(key).map_or(0, |l| l.latest_handshake);
        rotations.extend(crate::rotation::views(plan, &handshake, now, &rotation.psk));
        let mut peers = Vec::new();
        for p in &plan.peers {
            let l = live.peers.get(&p.public_key);
            let handshake_age = l
                .filter(|l| l.latest_handshake > 0)
                .map(|l| (now as u64).saturating_sub(l.latest_handshake));
            let verdict = match handshake_age {
                // A staged next key carries nothing: no handshake is what it should have.
                _ if p.staged => "staged key",
                None => "never",
                Some(age) if age > args.stale => "stale handshake",
                Some(_) => "ok",
            };
            let watched = crate::endpoints::watched(&p.endpoints);
            let remembered = endpoint_state.get(&plan.network, &p.name);
            let chosen = crate::endpoints::remembered_in_use(
                &p.endpoints,
                l.and_then(|l| l.endpoint.as_ref()),
                remembered,
            );
            let endpoint_index = watched.then(|| chosen.map_or(0, |s| s.index));
            peers.push(PeerStatus {
                peer: if p.staged {
                    format!("{} (next key)", p.name)
                } else {
                    p.name.clone()
                },
                public_key: p.public_key.clone(),
                in_fleet: true,
                endpoint: l.and_then(|l| l.endpoint.clone()),
                dialled_at: endpoint_index.and_then(|i| p.endpoints.get(i).cloned()),
                endpoint_index,
                resolved_at: remembered
                    .filter(|_| watched)
                    .and_then(|s| s.resolved_at)
                    .map(format_rfc3339),
                handshake_age,
                rx_bytes: l.map_or(0, |l| l.rx_bytes),
                tx_bytes: l.map_or(0, |l| l.tx_bytes),
                expires: p.expires.map(format_rfc3339),
                verdict,
            });
        }
        for (key, l) in live
            .peers
            .iter()
            .filter(|(k, _)| !plan.peers.iter().any(|p| &p.public_key == *k))
        {
            peers.push(PeerStatus {
                peer: "(unknown)".into(),
                public_key: key.clone(),
                in_fleet: false,
                endpoint: l.endpoint.clone(),
                dialled_at: None,
                endpoint_index: None,
                resolved_at: None,
                handshake_age: (l.latest_handshake > 0)
                    .then(|| (now as u64).saturating_sub(l.latest_handshake)),
                rx_bytes: l.rx_bytes,
                tx_bytes: l.tx_bytes,
                expires: None,
                verdict: "unknown peer",
            });
        }
        networks.push(NetworkStatus {
            network: plan.network.clone(),
            unit,
            active_state: state.active_state,
            enabled: state.enabled,
            peers,
        });
    }
    // The git source, when this host pulls one: the accepted commit and the last refusal.
    let source = crate::source::accepted(&state);
    let source_error = crate::source::last_error(&state);
    // The last `wgfleet probe` (or `apply --probe`) here.
    let probe = crate::shell::probe::last_report(&state);
    if let Some(path) = &args.prometheus {
        let mut metrics = prometheus(&host, &networks);
        if let Some(a) = &source {
            metrics.push_str(&source_metrics(&host, a, source_error.is_none()));
        }
        if let Some(r) = &probe {
            metrics.push_str(&probe_metrics(&host, r));
        }
        write_atomic(path, metrics.as_bytes(), 0o644).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
    }
    // When apply last ran here, and whether it left the host in sync (`last-run.json`).
    let last_run = crate::shell::audit::read_last_run(&state);
    if args.json {
        write_out(
            out,
            &format!(
                "{:#}\n",
                json!({"host": host, "networks": networks, "lastRun": last_run, "source": source.as_ref().map(|a| json!({"accepted": a, "lastError": source_error})), "probe": probe, "rotations": rotations})
            ),
        )?;
    } else {
        let mut text = human(&networks);
        text.push_str(&match &last_run {
            Some(r) if r.in_sync => format!("last apply: {} (in sync)\n", r.time),
            Some(r) => format!("last apply: {} (failed: see the audit log)\n", r.time),
            None => "last apply: never on this host\n".to_owned(),
        });
        if let Some(r) = &probe {
            let verdict = if r.ok {
                "all green"
            } else {
                "problems found: see `wgfleet probe`"
            };
            text.push_str(&format!("last probe: {} ({verdict})\n", r.at));
        }
        for r in &rotations {
            text.push_str(&format!(
                "{} on {} ({}): {}\n",
                r.subject(),
                r.network,
                r.state,
                r.message
            ));
        }
        if source.is_some() || source_error.is_some() {
            text.push_str(&format!(
                "source {}",
                super::source::describe_state(source.as_ref(), source_error.as_ref())
            ));
        }
        write_out(out, &text)?;
    }
    Ok(0)
}

fn human(networks: &[NetworkStatus]) -> String {
    let mut text = String::new();
    for n in networks {
        let enabled = if n.enabled { "enabled" } else { "not enabled" };
        text.push_str(&format!(
            "{} ({}: {}, {enabled})\n",
            n.network, n.unit, n.active_state
        ));
        for p in &n.peers {
            let age = p
                .handshake_age
                .map_or_else(|| "never".to_owned(), |a| format!("{a}s ago"));
            let mut endpoint = p.endpoint.as_deref().unwrap_or("-").to_owned();
            if let Some(at) = &p.dialled_at {
                let resolved = p.resolved_at.as_deref().map_or_else(
                    || "not re-resolved yet".to_owned(),
                    |t| format!("re-resolved {t}"),
                );
                let index = p.endpoint_index.unwrap_or(0) + 1;
                endpoint.push_str(&format!(" (dials {at}, endpoint {index}; {resolved})"));
            }
            let expires = p
                .expires
                .as_deref()
                .map(|e| format!(", expires {e}"))
                .unwrap_or_default();
            text.push_str(&format!(
                "  {:<20} {:<8} handshake {age}, endpoint {endpoint}, rx {} B, tx {} B{expires}\n",
                p.peer, p.verdict, p.rx_bytes, p.tx_bytes
            ));
        }
    }
    text
}

/// A peer metric: name, type, help text, and its value for one peer (`None`: absent).
type Metric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&PeerStatus) -> Option<u64>,
);

/// The source's metrics: whether the last pull gave a fleet, and when the accepted commit was
/// accepted and the remote last answered.
fn source_metrics(host: &str, a: &crate::source::Accepted, ok: bool) -> String {
    format!(
        "# HELP wgfleet_source_ok 1 if the last pull of the git source was accepted or unchanged, 0 if refused or unreachable.\n# TYPE wgfleet_source_ok gauge\nwgfleet_source_ok{{host=\"{host}\"}} {}\n\
         # HELP wgfleet_source_accepted_timestamp_seconds When the applied commit was accepted.\n# TYPE wgfleet_source_accepted_timestamp_seconds gauge\nwgfleet_source_accepted_timestamp_seconds{{host=\"{host}\"}} {}\n\
         # HELP wgfleet_source_fetched_timestamp_seconds When the source's remote last answered.\n# TYPE wgfleet_source_fetched_timestamp_seconds gauge\nwgfleet_source_fetched_timestamp_seconds{{host=\"{host}\"}} {}\n",
        u8::from(ok),
        a.accepted_at,
        a.fetched_at
    )
}

/// The last probe's outcomes: per peer reachability and path MTU, per test agreement.
fn probe_metrics(host: &str, r: &crate::probe::ProbeReport) -> String {
    let mut m = String::from(
        "# HELP wgfleet_probe_peer_reachable 1 if the last probe reached the peer over the tunnel.\n# TYPE wgfleet_probe_peer_reachable gauge\n",
    );
    for p in &r.peers {
        m.push_str(&format!(
            "wgfleet_probe_peer_reachable{{host=\"{host}\",network=\"{}\",peer=\"{}\"}} {}\n",
            p.network,
            p.name,
            u8::from(p.reachable)
        ));
    }
    m.push_str("# HELP wgfleet_probe_path_mtu_bytes The largest don't-fragment packet that got to the peer and back.\n# TYPE wgfleet_probe_path_mtu_bytes gauge\n");
    for p in &r.peers {
        if let Some(mtu) = p.path_mtu {
            m.push_str(&format!(
                "wgfleet_probe_path_mtu_bytes{{host=\"{host}\",network=\"{}\",peer=\"{}\"}} {mtu}\n",
                p.network, p.name
            ));
        }
    }
    m.push_str("# HELP wgfleet_probe_test_agrees 1 if the fleet test's live verdict is the description's.\n# TYPE wgfleet_probe_test_agrees gauge\n");
    for t in &r.tests {
        m.push_str(&format!(
            "wgfleet_probe_test_agrees{{host=\"{host}\",network=\"{}\",from=\"{}\",to=\"{}\",port=\"{}\"}} {}\n",
            t.network,
            t.from,
            t.to,
            t.port,
            u8::from(t.agrees)
        ));
    }
    m
}

/// The node-exporter textfile format; label values are names the fleet validated (no quotes).
fn prometheus(host: &str, networks: &[NetworkStatus]) -> String {
    let mut m = String::from(
        "# HELP wgfleet_unit_active Whether wg-quick@<network> is active.\n# TYPE wgfleet_unit_active gauge\n",
    );
    for n in networks {
        m.push_str(&format!(
            "wgfleet_unit_active{{host=\"{host}\",network=\"{}\"}} {}\n",
            n.network,
            u8::from(n.active_state == "active")
        ));
    }
    let metrics: [Metric; 4] = [
        (
            "wgfleet_peer_handshake_age_seconds",
            "gauge",
            "Seconds since the peer's latest handshake (absent: never).",
            |p| p.handshake_age,
        ),
        (
            "wgfleet_peer_receive_bytes_total",
            "counter",
            "Bytes received from the peer.",
            |p| Some(p.rx_bytes),
        ),
        (
            "wgfleet_peer_transmit_bytes_total",
            "counter",
            "Bytes sent to the peer.",
            |p| Some(p.tx_bytes),
        ),
        (
            "wgfleet_peer_in_fleet",
            "gauge",
            "1 if the live peer is in the fleet, 0 if not (drift).",
            |p| Some(u64::from(p.in_fleet)),
        ),
    ];
    for (name, kind, help, value) in metrics {
        m.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for n in networks {
            for p in &n.peers {
                if let Some(v) = value(p) {
                    m.push_str(&format!(
                        "{name}{{host=\"{host}\",network=\"{}\",peer=\"{}\",public_key=\"{}\"}} {v}\n",
                        n.network, p.peer, p.public_key
                    ));
                }
            }
        }
    }
    m
}
