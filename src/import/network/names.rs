//! Names from comments: a peer's label as a fleet name.

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
