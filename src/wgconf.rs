//! A wg-quick file read the way wg-quick reads it (keys case-insensitive, `#` comments,
//! repeated AllowedIPs joined), so that two files can be compared for meaning, not bytes.

use std::collections::{BTreeMap, BTreeSet};

/// The meaning of a wg-quick file. Holds key material: keep it short-lived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WgConf {
    /// `[Interface]` keys (lowercased) with their values, in file order.
    pub interface: BTreeMap<String, Vec<String>>,
    /// `[Peer]` sections by public key.
    pub peers: BTreeMap<String, PeerConf>,
}

impl WgConf {
    /// The interface's `Address` entries (`10.0.0.1/24`, or a bare address as a host prefix);
    /// what does not parse is left out.
    pub fn addresses(&self) -> BTreeSet<ipnet::IpNet> {
        self.interface
            .get("address")
            .into_iter()
            .flatten()
            .flat_map(|v| v.split(','))
            .filter_map(|a| {
                let a = a.trim();
                a.parse()
                    .ok()
                    .or_else(|| a.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
            })
            .collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerConf {
    pub allowed_ips: BTreeSet<String>,
    pub endpoint: Option<String>,
    pub keepalive: Option<String>,
    pub preshared_key: Option<String>,
    /// Keys wgfleet does not write (kept so that they count as a difference).
    pub other: BTreeMap<String, String>,
}

impl PeerConf {
    /// What differs from `old` to `self`, one phrase a field; key material is never shown.
    pub fn changes_from(&self, old: &PeerConf) -> Vec<String> {
        let set = |s: &BTreeSet<String>| {
            if s.is_empty() {
                "(none)".to_owned()
            } else {
                s.iter().cloned().collect::<Vec<_>>().join(", ")
            }
        };
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "(none)".to_owned());
        let mut fields = Vec::new();
        if old.allowed_ips != self.allowed_ips {
            let (a, b) = (set(&old.allowed_ips), set(&self.allowed_ips));
            fields.push(format!("AllowedIPs {a} → {b}"));
        }
        if old.endpoint != self.endpoint {
            let (a, b) = (opt(&old.endpoint), opt(&self.endpoint));
            fields.push(format!("Endpoint {a} → {b}"));
        }
        if old.keepalive != self.keepalive {
            let (a, b) = (opt(&old.keepalive), opt(&self.keepalive));
            fields.push(format!("PersistentKeepalive {a} → {b}"));
        }
        match (&old.preshared_key, &self.preshared_key) {
            (a, b) if a == b => {}
            (None, Some(_)) => fields.push("PresharedKey added".into()),
            (Some(_), None) => fields.push("PresharedKey removed".into()),
            _ => fields.push("PresharedKey changed".into()),
        }
        let other: BTreeSet<String> = old
            .other
            .keys()
            .chain(self.other.keys())
            .filter(|k| old.other.get(*k) != self.other.get(*k))
            .map(|k| canonical_key(k))
            .collect();
        if !other.is_empty() {
            fields.push(format!("{} changed", set(&other)));
        }
        fields
    }
}

/// Interface keys `wg syncconf` applies to a running interface; any other change needs the
/// interface rebuilt (wg-quick applies Address, MTU, DNS, Table and hooks only on `up`).
pub const RELOADABLE_INTERFACE_KEYS: &[&str] = &["privatekey", "listenport", "fwmark"];

/// wg-quick's `Table = off`: it adds no routes at `up`; in a file wgfleet renders, wgfleet's
/// drop-in adds them instead, in one batch (`wgfleet routes-interface`).
pub const TABLE_OFF: &str = "off";

/// Whether a change of `[Interface]` `Table` from `old` to `new` is wgfleet taking the routes
/// over from wg-quick (absent or `auto` → `off`): the routes on the running interface stay what
/// wg-quick made them, so neither a restart nor a new import finding is due.
pub fn table_handover(old: Option<&Vec<String>>, new: Option<&Vec<String>>) -> bool {
    fn last(v: Option<&Vec<String>>) -> Option<&str> {
        v.and_then(|v| v.last()).map(String::as_str)
    }
    matches!(last(old), None | Some("auto")) && last(new) == Some(TABLE_OFF)
}

pub fn parse(text: &str) -> WgConf {
    let mut conf = WgConf::default();
    // Collected, then built in bulk: a 100,000-peer file is parsed at each run.
    let mut peers: Vec<(String, PeerConf)> = Vec::new();
    let mut section = "";
    let mut peer: Option<(Option<String>, PeerConf)> = None;
    let finish = |peer: Option<(Option<String>, PeerConf)>, peers: &mut Vec<_>| {
        if let Some((Some(key), p)) = peer {
            peers.push((key, p));
        }
    };
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            finish(peer.take(), &mut peers);
            section = if line.eq_ignore_ascii_case("[peer]") {
                peer = Some((None, PeerConf::default()));
                "peer"
            } else if line.eq_ignore_ascii_case("[interface]") {
                "interface"
            } else {
                ""
            };
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        let is = |k: &str| key.eq_ignore_ascii_case(k);
        match (section, &mut peer) {
            ("interface", _) => conf
                .interface
                .entry(key.to_ascii_lowercase())
                .or_default()
                .push(value.to_owned()),
            ("peer", Some((pubkey, p))) => {
                if is("publickey") {
                    *pubkey = Some(value.to_owned());
                } else if is("allowedips") {
                    p.allowed_ips.extend(
                        value
                            .split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned),
                    );
                } else if is("endpoint") {
                    p.endpoint = Some(value.to_owned());
                } else if is("persistentkeepalive") {
                    p.keepalive = Some(value.to_owned()).filter(|v| v != "0" && v != "off");
                } else if is("presharedkey") {
                    p.preshared_key = Some(value.to_owned());
                } else {
                    p.other.insert(key.to_ascii_lowercase(), value.to_owned());
                }
            }
            _ => {}
        }
    }
    finish(peer, &mut peers);
    conf.peers = by_key(peers);
    conf
}

/// A map of peers built in bulk from (public key, value) pairs, a key given twice keeping its
/// last value (as one insert each would). They are nearly sorted first, by a prefix held
/// inline: the map's own stable sort compares the keys through their pointers, a cache miss
/// each (at 65,000 peers most of a parse), and has little left to do on sorted input.
pub fn by_key<V>(mut peers: Vec<(String, V)>) -> BTreeMap<String, V> {
    peers.sort_by_cached_key(|(key, _)| {
        let mut prefix = [0u8; 16];
        let n = key.len().min(16);
        prefix[..n].copy_from_slice(&key.as_bytes()[..n]);
        prefix
    });
    peers.into_iter().collect()
}

/// The `[Interface]` keys only wg-quick reads; `wg setconf` refuses them.
const WG_QUICK_ONLY: [&str; 9] = [
    "Address",
    "DNS",
    "MTU",
    "Table",
    "PreUp",
    "PreDown",
    "PostUp",
    "PostDown",
    "SaveConfig",
];

/// What `wg-quick strip` prints, line for line (trimmed, as its `read` trims): the file without
/// the keys only wg-quick reads, for `wg syncconf`. Like wg-quick, a key is what stands before
/// `=` outside a comment, compared without case.
pub fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut interface = false;
    for line in text.lines() {
        let line = line.trim();
        let key = line.split('#').next().unwrap_or("");
        let key = key.split('=').next().unwrap_or("").trim();
        if key.starts_with('[') {
            interface = key.eq_ignore_ascii_case("[Interface]");
        }
        if interface && WG_QUICK_ONLY.iter().any(|k| key.eq_ignore_ascii_case(k)) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A wg-quick key as wg-quick's documentation spells it (`listenport` → `ListenPort`).
pub fn canonical_key(key: &str) -> String {
    const KNOWN: &[&str] = &[
        "Address",
        "ListenPort",
        "PrivateKey",
        "MTU",
        "DNS",
        "Table",
        "FwMark",
        "PreUp",
        "PostUp",
        "PreDown",
        "PostDown",
        "SaveConfig",
        "PublicKey",
        "PresharedKey",
        "AllowedIPs",
        "Endpoint",
        "PersistentKeepalive",
    ];
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(key))
        .map_or_else(|| key.to_owned(), |k| (*k).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_given_twice_keeps_its_last_section_whatever_the_order() {
        let key = |i: u32| format!("{:0>43}=", i * 7919 % 1000);
        let mut text = String::from("[Interface]\nListenPort = 1\n");
        for i in (0..500).rev() {
            text.push_str(&format!(
                "[Peer]\nPublicKey = {}\nAllowedIPs = 10.0.0.{}/32\n",
                key(i),
                i % 250
            ));
        }
        text.push_str(&format!(
            "[Peer]\nPublicKey = {}\nAllowedIPs = 10.9.9.9/32\n",
            key(3)
        ));
        let conf = parse(&text);
        assert_eq!(conf.peers.len(), 500);
        assert!(conf.peers.keys().is_sorted());
        assert_eq!(
            conf.peers[&key(3)].allowed_ips,
            BTreeSet::from(["10.9.9.9/32".to_owned()])
        );
    }

    #[test]
    fn peer_changes_name_fields_and_hide_keys() {
        let old = PeerConf {
            allowed_ips: ["10.0.0.2/32".to_owned()].into(),
            preshared_key: Some("secret-a".into()),
            other: [("mtu".to_owned(), "1400".to_owned())].into(),
            ..PeerConf::default()
        };
        let new = PeerConf {
            allowed_ips: ["10.0.0.2/32".to_owned(), "10.0.1.0/24".to_owned()].into(),
            endpoint: Some("192.0.2.1:51820".into()),
            preshared_key: Some("secret-b".into()),
            ..PeerConf::default()
        };
        let changes = new.changes_from(&old);
        assert_eq!(
            changes,
            [
                "AllowedIPs 10.0.0.2/32 → 10.0.0.2/32, 10.0.1.0/24",
                "Endpoint (none) → 192.0.2.1:51820",
                "PresharedKey changed",
                "MTU changed",
            ]
        );
        assert!(!changes.concat().contains("secret"));
        assert!(new.changes_from(&new).is_empty());
    }

    #[test]
    fn only_auto_to_off_is_a_table_handover() {
        let v = |s: &str| vec![s.to_owned()];
        assert!(table_handover(None, Some(&v("off"))));
        assert!(table_handover(Some(&v("auto")), Some(&v("off"))));
        assert!(!table_handover(Some(&v("off")), None));
        assert!(!table_handover(Some(&v("1234")), Some(&v("off"))));
        assert!(!table_handover(None, Some(&v("1234"))));
        assert!(!table_handover(None, None));
    }

    #[test]
    fn reads_like_wg_quick() {
        let a = parse(
            "[Interface]\nAddress = 10.0.0.1/24\nPrivateKey = k\n\n# x\n[Peer]\nPublicKey = P\nAllowedIPs = 10.0.0.2/32\nallowedips = 10.1.0.0/16 # lan\n",
        );
        let b = parse(
            "[interface]\nprivatekey=k\naddress=10.0.0.1/24\n[peer]\nallowedips=10.1.0.0/16,10.0.0.2/32\npublickey=P\n",
        );
        assert_eq!(a, b);
        assert_eq!(a.peers["P"].allowed_ips.len(), 2);
    }
}
