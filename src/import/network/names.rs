//! Names from comments: a peer's label as a fleet name, without the marks installers put around it.

/// A comment as a client name: lowercase, runs of other characters as '-'.
pub(crate) fn sanitize_name(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if matches!(c, '.' | '_') && !out.is_empty() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches(['-', '.', '_']).to_owned();
    if out.len() > 63 {
        out[..63].trim_end_matches(['-', '.', '_']).to_owned()
    } else {
        out
    }
}

/// A comment without the marks road-warrior installers write around a peer's name, or `None`
/// for a mark that closes a peer's block (it names the peer before):
/// `BEGIN_PEER alice` / `END_PEER alice` (wireguard-install), `### begin alice ###` /
/// `### end alice ###` (PiVPN), `### Client alice` (another wireguard-install),
/// `Client: alice (UUID)` (web UIs).
pub(crate) fn without_installer_marks(text: &str) -> Option<String> {
    let t = text.trim().trim_matches('#').trim();
    let lower = t.to_ascii_lowercase();
    let word = |w: &str| {
        lower.starts_with(w)
            && (lower.len() == w.len()
                || w.ends_with(':')
                || lower[w.len()..].starts_with(char::is_whitespace))
    };
    if word("end_peer") || word("end") {
        return None;
    }
    let mut t = t;
    for mark in ["begin_peer", "begin", "client:", "client", "peer:"] {
        if word(mark) {
            t = t[mark.len()..].trim();
            break;
        }
    }
    if let Some(open) = t.rfind('(')
        && t.ends_with(')')
        && is_uuid(&t[open + 1..t.len() - 1])
        && !t[..open].trim().is_empty()
    {
        t = t[..open].trim();
    }
    (!t.is_empty()).then(|| t.to_owned())
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installer_marks_are_not_part_of_a_name() {
        let name = |t: &str| without_installer_marks(t).map(|l| sanitize_name(&l));
        assert_eq!(
            name("BEGIN_PEER alice-phone").as_deref(),
            Some("alice-phone")
        );
        assert_eq!(name("END_PEER alice-phone"), None);
        assert_eq!(name("## begin bob ###").as_deref(), Some("bob"));
        assert_eq!(name("## end bob ###"), None);
        assert_eq!(name("## Client carol").as_deref(), Some("carol"));
        assert_eq!(
            name("Client: dave (3f2a9c1e-8b7d-4e6f-a5c4-1b2d3e4f5a6b)").as_deref(),
            Some("dave")
        );
        assert_eq!(
            name("Client: 3f2a9c1e-8b7d-4e6f-a5c4-1b2d3e4f5a6b").as_deref(),
            Some("3f2a9c1e-8b7d-4e6f-a5c4-1b2d3e4f5a6b")
        );
        assert_eq!(name("client-laptop").as_deref(), Some("client-laptop"));
        assert_eq!(name("worker-1").as_deref(), Some("worker-1"));
        assert_eq!(
            name("endpoint of the hub").as_deref(),
            Some("endpoint-of-the-hub")
        );
    }
}
