//! Words for output a person reads.

/// `1 peer`, `2 peers`: a count with its noun.
pub fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}
