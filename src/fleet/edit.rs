//! Small edits of a JSON fleet's text that keep the operator's formatting (a rewrite through
//! serde would reorder and reindent the whole file). Each edit finds its anchor exactly once or
//! gives up; the caller parses the result and compares it with the edit made on the parsed
//! fleet, so a text edit that would mean anything else is never written.

/// `"old"` (a JSON string's text) replaced by `"new"`, when it occurs exactly once.
pub fn replace_string(text: &str, old: &str, new: &str) -> Option<String> {
    let quoted = format!("\"{old}\"");
    (text.matches(&quoted).count() == 1).then(|| text.replacen(&quoted, &format!("\"{new}\""), 1))
}

/// Members `"name": "value"` added right after the string `"anchor"` (exactly once in the
/// text), each on a line of its own with the anchor line's indent when the anchor ends its
/// line, else on the anchor's line.
pub fn insert_after_string(text: &str, anchor: &str, fields: &[(&str, &str)]) -> Option<String> {
    let quoted = format!("\"{anchor}\"");
    if text.matches(&quoted).count() != 1 {
        return None;
    }
    let at = text.find(&quoted)? + quoted.len();
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let indent: String = text[line_start..]
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect();
    let rest_of_line = text[at..].split('\n').next().unwrap_or("");
    let ends_line = matches!(rest_of_line.trim(), "" | ",");
    let mut added = String::new();
    for (name, value) in fields {
        let value = serde_json::to_string(value).ok()?;
        if ends_line {
            added.push_str(&format!(",\n{indent}\"{name}\": {value}"));
        } else {
            added.push_str(&format!(", \"{name}\": {value}"));
        }
    }
    Some(format!("{}{added}{}", &text[..at], &text[at..]))
}

/// The member `"name": <string>` removed with the comma that joins it to its neighbour, when
/// the name occurs exactly once as a key.
pub fn remove_member(text: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\"");
    if text.matches(&key).count() != 1 {
        return None;
    }
    let start = text.find(&key)?;
    let after_key = text[start + key.len()..].trim_start();
    let value = after_key.strip_prefix(':')?.trim_start();
    let value_len = string_len(value)?;
    let end = text.len() - value.len() + value_len;
    let before = text[..start].trim_end();
    if let Some(stripped) = before.strip_suffix(',') {
        // A member after another: the comma before it goes with it.
        return Some(format!("{stripped}{}", &text[end..]));
    }
    let after = text[end..].trim_start().strip_prefix(',')?.trim_start();
    Some(format!("{}{after}", &text[..start]))
}

/// The length of the JSON string at the start of `s`, quotes included.
fn string_len(s: &str) -> Option<usize> {
    let mut chars = s.char_indices();
    if chars.next()?.1 != '"' {
        return None;
    }
    let mut escaped = false;
    for (i, c) in chars {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRETTY: &str = "{\n  \"hosts\": {\n    \"w1\": {\n      \"publicKey\": \"K1\",\n      \"privateKeyFile\": \"w1.age\"\n    }\n  }\n}\n";

    #[test]
    fn fields_go_after_the_anchor_in_its_style() {
        let added = insert_after_string(PRETTY, "K1", &[("nextPublicKey", "K2")]).unwrap();
        assert!(
            added.contains(
                "\"publicKey\": \"K1\",\n      \"nextPublicKey\": \"K2\",\n      \"privateKeyFile\""
            ),
            "{added}"
        );
        let one_line = "{\"w1\": {\"publicKey\": \"K1\", \"endpoint\": \"e\"}}";
        let added = insert_after_string(one_line, "K1", &[("nextPublicKey", "K2")]).unwrap();
        assert_eq!(
            added,
            "{\"w1\": {\"publicKey\": \"K1\", \"nextPublicKey\": \"K2\", \"endpoint\": \"e\"}}"
        );
        assert!(insert_after_string("[\"K1\", \"K1\"]", "K1", &[]).is_none());
    }

    #[test]
    fn a_member_goes_with_its_comma() {
        let added = insert_after_string(PRETTY, "K1", &[("nextPublicKey", "K2")]).unwrap();
        assert_eq!(remove_member(&added, "nextPublicKey").unwrap(), PRETTY);
        let first = "{\"a\": \"x\\\"y\", \"b\": \"z\"}";
        assert_eq!(remove_member(first, "a").unwrap(), "{\"b\": \"z\"}");
        assert_eq!(remove_member(first, "b").unwrap(), "{\"a\": \"x\\\"y\"}");
        assert!(remove_member("{\"a\": 1}", "a").is_none(), "not a string");
    }
}
