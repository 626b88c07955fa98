//! What wg-quick itself refuses: lines that stop `wg-quick up` (checked against wg-quick's
//! parse_options and `wg setconf`, which reject them with "Line unrecognized").

/// Keys of [Interface]: wg-quick's own, then those it hands to `wg setconf`.
const INTERFACE_KEYS: &[&str] = &[
    "address",
    "mtu",
    "dns",
    "table",
    "preup",
    "predown",
    "postup",
    "postdown",
    "saveconfig",
    "privatekey",
    "listenport",
    "fwmark",
];

/// Keys of [Peer] (all of them handed to `wg setconf`).
const PEER_KEYS: &[&str] = &[
    "publickey",
    "presharedkey",
    "allowedips",
    "endpoint",
    "persistentkeepalive",
];

/// Why wg-quick refuses a key in a section (`section`: "interface", "peer", or "" before any
/// section or in an unknown one); `None` when it takes it.
pub(super) fn refused_key(section: &str, key: &str) -> Option<String> {
    let (known, name): (&[&str], &str) = match section {
        "interface" => (INTERFACE_KEYS, "[Interface]"),
        "peer" => (PEER_KEYS, "[Peer]"),
        _ => return Some("a key outside [Interface] and [Peer]".to_owned()),
    };
    if known.contains(&key) {
        return None;
    }
    let hint = known
        .iter()
        .find(|k| k.contains(key) || key.contains(**k))
        .map(|k| format!(" (did you mean {}?)", crate::wgconf::canonical_key(k)))
        .unwrap_or_default();
    Some(format!("{name} has no key {key:?}{hint}"))
}

/// Why wg-quick refuses a line that is neither a section nor `key = value` (after removing a
/// `#` comment), e.g. a `;` comment.
pub(super) fn refused_line(body: &str) -> String {
    if body.starts_with(';') {
        "`;` does not start a comment in a wg-quick file (only `#` does)".to_owned()
    } else {
        "not a section or a `Key = value` line".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_wg_setconf_refuses() {
        // Each as `wg setconf` answered on a wireguard-go interface: "Line unrecognized".
        assert_eq!(
            refused_key("peer", "keepalive").as_deref(),
            Some("[Peer] has no key \"keepalive\" (did you mean PersistentKeepalive?)")
        );
        assert_eq!(
            refused_key("peer", "allowedip").as_deref(),
            Some("[Peer] has no key \"allowedip\" (did you mean AllowedIPs?)")
        );
        assert!(refused_key("peer", "address").is_some());
        assert!(refused_key("", "listenport").is_some());
        assert_eq!(refused_key("interface", "fwmark"), None);
        assert_eq!(refused_key("peer", "persistentkeepalive"), None);
        assert!(refused_line("; a comment").contains("only `#`"));
    }
}
