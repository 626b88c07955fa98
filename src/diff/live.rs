//! What is live, as values: the unit's state, `wg show IFACE dump` and `ip address` parsed.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use serde::Serialize;

use crate::secrets::keys::SecretKey;

/// The unit as systemd reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitState {
    pub active_state: String,
    pub enabled: bool,
}

impl UnitState {
    pub fn is_running(&self) -> bool {
        matches!(self.active_state.as_str(), "active" | "reloading")
    }
}

/// What `wg show IFACE dump` and `ip` say about the running interface (no key material kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    pub listen_port: Option<String>,
    /// The public key of the live private key (derived here; the private key is not kept).
    pub public_key: Option<String>,
    /// The interface's global addresses and MTU (`None`: not observed).
    pub addresses: Option<BTreeSet<IpNet>>,
    pub mtu: Option<String>,
    /// By public key: allowed IPs, keepalive ("off" or seconds), whether a PSK is set.
    pub peers: BTreeMap<String, LivePeer>,
}

/// WireGuard's REJECT_AFTER_TIME: a session lives this long after its handshake, so a link that
/// carries data has a handshake younger than this (plus a keepalive, for the side that answered).
pub const SESSION_SECS: u64 = 180;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LivePeer {
    pub allowed_ips: BTreeSet<String>,
    pub keepalive: Option<String>,
    pub has_psk: bool,
    pub endpoint: Option<String>,
    /// Unix seconds of the latest handshake; 0: never.
    pub latest_handshake: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// Parses `wg show IFACE dump`. Of the private key (first field) only its public key is kept;
/// PSKs are skipped.
pub fn parse_dump(dump: &str) -> Live {
    let mut lines = dump.lines();
    let first: Vec<&str> = lines
        .next()
        .map_or_else(Vec::new, |l| l.split('\t').collect());
    let listen_port = first.get(2).map(|s| (*s).to_owned());
    let public_key = first
        .first()
        .and_then(|k| SecretKey::from_base64(k.as_bytes()))
        .map(|k| k.public_key());
    // Collected, then built in bulk (a 100,000-peer dump is read at each run).
    let mut peers = Vec::new();
    for line in lines {
        let mut fields = line.split('\t');
        let f: [&str; 8] = std::array::from_fn(|_| fields.next().unwrap_or(""));
        if f[7].is_empty() {
            continue;
        }
        let allowed_ips = f[3]
            .split(',')
            .filter(|s| !s.is_empty() && *s != "(none)")
            .map(str::to_owned)
            .collect();
        let keepalive = Some(f[7].to_owned()).filter(|k| k != "off");
        let number = |i: usize| f[i].parse().unwrap_or(0);
        peers.push((
            f[0].to_owned(),
            LivePeer {
                allowed_ips,
                keepalive,
                has_psk: f[1] != "(none)",
                endpoint: Some(f[2].to_owned()).filter(|e| e != "(none)"),
                latest_handshake: number(4),
                rx_bytes: number(5),
                tx_bytes: number(6),
            },
        ));
    }
    Live {
        listen_port,
        public_key,
        peers: crate::wgconf::by_key(peers),
        ..Live::default()
    }
}

/// The global addresses in `ip -o address show dev IFACE` (link-local ones are the kernel's).
pub fn parse_addresses(text: &str) -> BTreeSet<IpNet> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            words.next()?.parse().ok()
        })
        .collect()
}
