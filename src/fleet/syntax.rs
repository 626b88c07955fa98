//! Value-level rules: what a name, key, endpoint or port may look like. Everything from the fleet
//! that reaches a config line, a unit name or an iptables rule passes one of these first.

use std::net::{IpAddr, Ipv6Addr};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

/// Host, client and group names: DNS-label-like, so they are safe in comments, unit names,
/// iptables comments and file names.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&name.len())
        && safe_chars(name)
        && name.as_bytes()[0].is_ascii_alphanumeric();
    ok.then_some(()).ok_or_else(|| {
        format!(
            "{name:?} is not a safe name: use 1–63 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    })
}

/// Letters, digits, '-', '_' and '.' only.
fn safe_chars(name: &str) -> bool {
    name.bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Interface names (`wg0`, and a host's `wanInterface`): the kernel's 15 bytes, wg-quick's
/// charset without the characters a shell or iptables would read specially.
pub fn check_interface(name: &str) -> Result<(), String> {
    let ok = (1..=15).contains(&name.len()) && name != "." && name != ".." && safe_chars(name);
    ok.then_some(()).ok_or_else(|| {
        format!("{name:?} is not a valid interface name: use 1–15 letters, digits, '-', '_' or '.'")
    })
}

/// A network's name is its interface name, and more: `wg show NAME` must mean that interface, so
/// the words `wg show` takes in its place (`all`, `interfaces`) are refused.
pub fn check_network_name(name: &str) -> Result<(), String> {
    check_interface(name)?;
    if matches!(name, "all" | "interfaces") {
        return Err(format!(
            "{name:?} cannot name a network: `wg show {name}` means something else; pick another interface name"
        ));
    }
    Ok(())
}

/// A WireGuard key: 32 bytes in standard base64 (44 characters with one '=').
pub fn check_key(key: &str) -> Result<[u8; 32], String> {
    let bytes = STANDARD.decode(key).map_err(|_| {
        format!("{key:?} is not base64; a WireGuard key looks like the output of `wg pubkey`")
    })?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "{key:?} decodes to {} bytes; a WireGuard key is 32 bytes",
            bytes.len()
        )
    })
}

/// Free text that ends up in `#` comment lines: one line, printable, bounded.
pub fn check_text(text: &str) -> Result<(), String> {
    if text.chars().count() > 200 {
        return Err("is longer than 200 characters".into());
    }
    if text.chars().any(char::is_control) {
        return Err(format!(
            "{text:?} contains a control character (a newline, a tab, …)"
        ));
    }
    Ok(())
}

/// A path to an age file, relative to the fleet file.
pub fn check_file_ref(path: &str) -> Result<(), String> {
    if path.is_empty() || path.chars().any(char::is_control) || path.contains(['<', '>']) {
        return Err(format!("{path:?} is not a usable file path"));
    }
    Ok(())
}

/// An owner: an e-mail address or similar handle, no spaces.
pub fn check_owner(owner: &str) -> Result<(), String> {
    if owner.is_empty()
        || owner.len() > 254
        || owner
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\'))
    {
        return Err(format!(
            "{owner:?} is not a valid owner; use an e-mail address"
        ));
    }
    Ok(())
}

/// Where a peer is dialled: `host`, `host:port`, `[v6]:port` or a bare IPv6 address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub host: String,
    pub port: Option<u16>,
}

impl Endpoint {
    /// `host:port` as wg-quick wants it, IPv6 in brackets.
    pub fn render(&self, default_port: u16) -> String {
        let port = self.port.unwrap_or(default_port);
        if self.host.contains(':') {
            format!("[{}]:{port}", self.host)
        } else {
            format!("{}:{port}", self.host)
        }
    }
}

pub fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    let bad = || {
        format!("{text:?} is not an endpoint; use an IP address or DNS name, optionally with :port")
    };
    if let Ok(v6) = text.parse::<Ipv6Addr>() {
        return Ok(Endpoint {
            host: v6.to_string(),
            port: None,
        });
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or_else(bad)?;
        let v6: Ipv6Addr = v6.parse().map_err(|_| bad())?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (v6.to_string(), port)
    } else {
        match text.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => return Err(bad()),
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (text.to_owned(), None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p).map_err(|_| bad())?),
    };
    if !host.contains(':') && host.parse::<IpAddr>().is_err() && !is_dns_name(&host) {
        return Err(bad());
    }
    Ok(Endpoint { host, port })
}

fn is_dns_name(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn parse_port(p: &str) -> Result<u16, ()> {
    match p.parse::<u16>() {
        Ok(n) if n > 0 && p.bytes().all(|c| c.is_ascii_digit()) => Ok(n),
        _ => Err(()),
    }
}

/// A port selector in a flow or test: `N/tcp`, `N-M/udp`, `icmp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum PortSpec {
    Tcp(u16, u16),
    Udp(u16, u16),
    Icmp,
}

/// Written as the fleet writes it, so that `parse_port_spec` reads it back.
impl std::fmt::Display for PortSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortSpec::Tcp(a, b) if a == b => write!(f, "{a}/tcp"),
            PortSpec::Tcp(a, b) => write!(f, "{a}-{b}/tcp"),
            PortSpec::Udp(a, b) if a == b => write!(f, "{a}/udp"),
            PortSpec::Udp(a, b) => write!(f, "{a}-{b}/udp"),
            PortSpec::Icmp => f.write_str("icmp"),
        }
    }
}

pub fn parse_port_spec(text: &str) -> Result<PortSpec, String> {
    if text == "icmp" {
        return Ok(PortSpec::Icmp);
    }
    let bad = || format!("{text:?} is not a port; use N/tcp, N-M/udp or icmp (N from 1 to 65535)");
    let (range, proto) = text.split_once('/').ok_or_else(bad)?;
    let (lo, hi) = match range.split_once('-') {
        Some((a, b)) => (
            parse_port(a).map_err(|_| bad())?,
            parse_port(b).map_err(|_| bad())?,
        ),
        None => {
            let n = parse_port(range).map_err(|_| bad())?;
            (n, n)
        }
    };
    if lo > hi {
        return Err(format!("{text:?}: the range runs backwards"));
    }
    match proto {
        "tcp" => Ok(PortSpec::Tcp(lo, hi)),
        "udp" => Ok(PortSpec::Udp(lo, hi)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs_are_written_as_they_are_read() {
        for text in ["8080/tcp", "1-65535/udp", "53/udp", "icmp"] {
            let spec = parse_port_spec(text).unwrap();
            assert_eq!(spec.to_string(), text);
        }
    }

    #[test]
    fn names() {
        assert!(check_name("worker-1").is_ok());
        assert!(check_name("a.b_c").is_ok());
        for bad in ["", "-x", "a b", "a;rm", "a\nb", "ä", &"x".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_interface("wg0").is_ok());
        for bad in ["", ".", "..", "wg0;ls", "a-very-long-name", "wg 0", "wg$0"] {
            assert!(check_interface(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys() {
        assert!(check_key("j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=").is_ok());
        assert!(check_key("j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM").is_err());
        assert!(check_key("AAAA").is_err());
        assert!(check_key("not base64!").is_err());
    }

    #[test]
    fn endpoints() {
        let ep = |s: &str| parse_endpoint(s).map(|e| e.render(51820));
        assert_eq!(ep("203.0.113.10"), Ok("203.0.113.10:51820".into()));
        assert_eq!(ep("203.0.113.10:1"), Ok("203.0.113.10:1".into()));
        assert_eq!(
            ep("vpn.example.com:51821"),
            Ok("vpn.example.com:51821".into())
        );
        assert_eq!(ep("2001:db8::1"), Ok("[2001:db8::1]:51820".into()));
        assert_eq!(ep("[2001:db8::1]:7"), Ok("[2001:db8::1]:7".into()));
        for bad in [
            "",
            "a b",
            "host:0",
            "host:99999",
            "[::1",
            "x;y",
            "h:1:2",
            "-a.com",
            "[::1]x",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port_spec("8080/tcp"), Ok(PortSpec::Tcp(8080, 8080)));
        assert_eq!(
            parse_port_spec("1000-2000/udp"),
            Ok(PortSpec::Udp(1000, 2000))
        );
        assert_eq!(parse_port_spec("icmp"), Ok(PortSpec::Icmp));
        for bad in ["80", "0/tcp", "80/sctp", "2-1/tcp", "+1/tcp", "65536/udp"] {
            assert!(parse_port_spec(bad).is_err(), "{bad:?}");
        }
    }
}
