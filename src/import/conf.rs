//! Reading a wg-quick file with its line numbers.

use super::*;

pub(super) struct Kv {
    pub(super) no: usize,
    pub(super) key: String,
    pub(super) value: String,
}

#[derive(Default)]
pub(super) struct PeerSec {
    pub(super) header: usize,
    pub(super) label: Option<String>,
    pub(super) public_key: Option<(String, usize)>,
    pub(super) allowed_ips: Vec<(String, usize)>,
    pub(super) endpoint: Option<(String, usize)>,
    pub(super) keepalive: Option<(String, usize)>,
    pub(super) psk: Option<(SecretKey, usize)>,
    pub(super) bad_psk: Option<usize>,
}

impl PeerSec {
    pub(super) fn key(&self) -> Option<&str> {
        self.public_key.as_ref().map(|(k, _)| k.as_str())
    }

    pub(super) fn allowed_lines(&self) -> Vec<usize> {
        let mut lines: Vec<usize> = self.allowed_ips.iter().map(|(_, l)| *l).collect();
        lines.dedup();
        lines
    }

    /// The keepalive in seconds; 0 when absent or off.
    pub(super) fn keepalive_secs(&self) -> u64 {
        self.keepalive
            .as_ref()
            .and_then(|(v, _)| v.parse().ok())
            .unwrap_or(0)
    }
}

pub(super) struct ConfFile {
    pub(super) src: Source,
    /// Every line, trimmed, secret values replaced.
    lines: Vec<String>,
    pub(super) interface_line: Option<usize>,
    pub(super) interface: Vec<Kv>,
    pub(super) private_key: Option<(SecretKey, usize)>,
    pub(super) bad_private_key: Option<usize>,
    pub(super) peers: Vec<PeerSec>,
    /// Lines wg-quick refuses, and why.
    pub(super) refused: Vec<(usize, String)>,
    /// The meaning of the file with secret values replaced by a marker (for the round trip).
    pub(super) meaning: WgConf,
}

impl ConfFile {
    pub(super) fn place(&self, no: usize) -> Place {
        Place {
            file: self.src.display.clone(),
            line: no,
            text: self.lines.get(no - 1).cloned().unwrap_or_default(),
        }
    }

    pub(super) fn places(&self, lines: impl IntoIterator<Item = usize>) -> Vec<Place> {
        lines.into_iter().map(|l| self.place(l)).collect()
    }

    /// The file begins as every file `wgfleet apply` writes does.
    pub(super) fn is_wgfleet_rendered(&self) -> bool {
        self.lines
            .first()
            .is_some_and(|l| l.starts_with(crate::render::MANAGED_MARKER))
    }

    pub(super) fn values(&self, key: &str) -> impl Iterator<Item = &Kv> {
        self.interface.iter().filter(move |kv| kv.key == key)
    }
}

pub(super) const SECRET_MARK: &str = "<secret>";
const SHOWN_SECRET: &str = "(secret, not shown)";

/// Words that mark a comment as describing a setting rather than naming the peer
/// ("# The VPS's public key").
const NOT_A_LABEL: &[&str] = &[
    "key",
    "allowedips",
    "allowed ips",
    "endpoint",
    "keepalive",
    "listenport",
    "[peer]",
    "[interface]",
];

pub(super) fn usable_label(text: &str) -> Option<String> {
    let t = super::network::without_installer_marks(text)?;
    let t = t.as_str();
    let lower = t.to_ascii_lowercase();
    let ok = !t.is_empty()
        && t.chars().count() <= 200
        && !t.chars().any(char::is_control)
        && !NOT_A_LABEL.iter().any(|w| lower.contains(w));
    ok.then(|| t.to_owned())
}

pub(super) fn parse_file(input: &Input) -> ConfFile {
    let mut f = ConfFile {
        src: input.source.clone(),
        lines: Vec::new(),
        interface_line: None,
        interface: Vec::new(),
        private_key: None,
        bad_private_key: None,
        peers: Vec::new(),
        refused: Vec::new(),
        meaning: WgConf::default(),
    };
    let mut redacted = String::with_capacity(input.text.len());
    let mut section = "";
    let mut pending: Vec<String> = Vec::new();
    let mut peer: Option<PeerSec> = None;
    let mut peer_has_key_line = false;
    for (i, raw) in input.text.lines().enumerate() {
        let no = i + 1;
        let (body, comment) = match raw.split_once('#') {
            Some((b, c)) => (b.trim(), Some(c.trim())),
            None => (raw.trim(), None),
        };
        if body.is_empty() {
            if let Some(c) = comment.filter(|c| !c.is_empty()) {
                pending.push(c.to_owned());
            }
            f.lines.push(raw.trim().to_owned());
            redacted.push_str(raw);
            redacted.push('\n');
            continue;
        }
        if body.starts_with('[') {
            if let Some(p) = peer.take() {
                f.peers.push(p);
            }
            if body.eq_ignore_ascii_case("[peer]") {
                section = "peer";
                let label = comment
                    .and_then(usable_label)
                    .or_else(|| pending.iter().rev().find_map(|c| usable_label(c)));
                peer = Some(PeerSec {
                    header: no,
                    label,
                    ..PeerSec::default()
                });
                peer_has_key_line = false;
            } else if body.eq_ignore_ascii_case("[interface]") {
                section = "interface";
                f.interface_line.get_or_insert(no);
            } else {
                section = "";
                f.refused
                    .push((no, format!("{body} is not a section of a wg-quick file")));
            }
            pending.clear();
            f.lines.push(raw.trim().to_owned());
            redacted.push_str(raw);
            redacted.push('\n');
            continue;
        }
        let Some((name, value)) = body.split_once('=') else {
            f.refused.push((no, super::refused::refused_line(body)));
            f.lines.push(raw.trim().to_owned());
            redacted.push_str(raw);
            redacted.push('\n');
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        let key = name.to_ascii_lowercase();
        let secret = matches!(key.as_str(), "privatekey" | "presharedkey");
        if secret {
            f.lines.push(format!("{name} = {SHOWN_SECRET}"));
            redacted.push_str(&format!("{name} = {SECRET_MARK}\n"));
        } else {
            f.lines.push(raw.trim().to_owned());
            redacted.push_str(raw);
            redacted.push('\n');
        }
        if let Some(why) = super::refused::refused_key(section, &key) {
            f.refused.push((no, why));
            pending.clear();
            continue;
        }
        match (section, peer.as_mut()) {
            ("interface", _) if key == "privatekey" => {
                match SecretKey::from_base64(value.as_bytes()) {
                    Some(k) => {
                        f.private_key = Some((k, no));
                        f.bad_private_key = None;
                    }
                    None => f.bad_private_key = Some(no),
                }
            }
            ("interface", _) => f.interface.push(Kv {
                no,
                key,
                value: value.to_owned(),
            }),
            ("peer", Some(p)) => {
                if !peer_has_key_line && p.label.is_none() {
                    p.label = pending.iter().find_map(|c| usable_label(c));
                }
                peer_has_key_line = true;
                match key.as_str() {
                    "publickey" => p.public_key = Some((value.to_owned(), no)),
                    "allowedips" => p.allowed_ips.extend(
                        value
                            .split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(|s| (s.to_owned(), no)),
                    ),
                    "endpoint" => p.endpoint = Some((value.to_owned(), no)),
                    "persistentkeepalive" => {
                        let v = if value.eq_ignore_ascii_case("off") {
                            "0"
                        } else {
                            value
                        };
                        p.keepalive = Some((v.to_owned(), no));
                    }
                    "presharedkey" => match SecretKey::from_base64(value.as_bytes()) {
                        Some(k) => p.psk = Some((k, no)),
                        None => p.bad_psk = Some(no),
                    },
                    _ => {}
                }
            }
            _ => {}
        }
        pending.clear();
    }
    if let Some(p) = peer.take() {
        f.peers.push(p);
    }
    f.meaning = wgconf::parse(&redacted);
    f
}
