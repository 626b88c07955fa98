//! JSON paths (`networks.wg0.members["worker 1"].address`) that name the field an error is about.

use std::fmt;
use std::sync::Arc;

/// Keys are shared, so that extending a path (once per member of a large fleet) copies
/// pointers, not strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(Arc<str>),
    Index(usize),
}

/// A path from the document root to one value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonPath(pub Vec<Seg>);

impl JsonPath {
    pub fn root() -> Self {
        JsonPath(Vec::new())
    }

    /// This path extended by an object key.
    pub fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.into()));
        JsonPath(segs)
    }

    /// This path extended by an array index.
    pub fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        JsonPath(segs)
    }

    /// Shorthand for a chain of keys: `JsonPath::keys(&["networks", "wg0"])`.
    pub fn keys(keys: &[&str]) -> Self {
        JsonPath(keys.iter().map(|k| Seg::Key((*k).into())).collect())
    }
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '@' | '+'))
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                // Keys that could be misread (dots, spaces, control characters) are quoted and
                // escaped, so a hostile name can never forge a path or a terminal sequence.
                Seg::Key(k) if is_plain_key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Key(k) => write!(f, "[{}]", serde_json::Value::String(k.to_string()))?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}
