//! Finds the line of a JSON path in the source text, so that validation errors point at the line
//! an operator has to edit. A small scanner rather than a second parser: it only skips values.

use super::path::{JsonPath, Seg};

/// The 1-based line of the deepest part of `path` that exists in `src`.
pub fn line_of(src: &str, path: &JsonPath) -> Option<usize> {
    let mut s = Scanner {
        b: src.as_bytes(),
        pos: 0,
        line: 1,
    };
    s.ws();
    let mut best = s.line;
    // Where the path stops existing, the deepest part found is the best place to point at.
    let _ = s.descend(&path.0, &mut best);
    Some(best)
}

struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
    line: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.bump();
        }
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.bump()? == c).then_some(())
    }

    /// Reads a string literal (cursor on the opening quote) and returns it decoded.
    fn string(&mut self) -> Option<String> {
        let start = self.pos;
        self.bump().filter(|&c| c == b'"')?;
        loop {
            match self.bump()? {
                b'\\' => {
                    self.bump()?;
                }
                b'"' => break,
                _ => {}
            }
        }
        serde_json::from_slice(&self.b[start..self.pos]).ok()
    }

    fn skip_value(&mut self) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.bump();
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.bump();
                }
            }
            _ => {
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
                ) {
                    self.bump();
                }
                Some(())
            }
        }
    }

    /// With the cursor before a value, follows `segs` into it, recording in `best` the line of
    /// each segment found.
    fn descend(&mut self, segs: &[Seg], best: &mut usize) -> Option<()> {
        let Some((first, rest)) = segs.split_first() else {
            return Some(());
        };
        self.ws();
        match (self.peek()?, first) {
            (b'{', Seg::Key(want)) => {
                self.bump();
                loop {
                    self.ws();
                    if self.peek()? == b'}' {
                        return None;
                    }
                    let line = self.line;
                    let key = self.string()?;
                    self.expect(b':')?;
                    if *key == **want {
                        *best = line;
                        return self.descend(rest, best);
                    }
                    self.skip_value()?;
                    self.ws();
                    if self.bump()? != b',' {
                        return None;
                    }
                }
            }
            (b'[', Seg::Index(want)) => {
                self.bump();
                for i in 0.. {
                    self.ws();
                    if self.peek()? == b']' {
                        return None;
                    }
                    if i == *want {
                        *best = self.line;
                        return self.descend(rest, best);
                    }
                    self.skip_value()?;
                    self.ws();
                    if self.bump()? != b',' {
                        return None;
                    }
                }
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = r#"{
  "version": 1,
  "networks": {
    "wg0": {
      "members": {
        "a": { "id": 0 },
        "b": {
          "address": "10.0.0.9"
        }
      },
      "flows": [ {"from": "a"},
        {"from": "b"} ]
    }
  }
}"#;

    #[test]
    fn finds_keys_and_indexes() {
        let at = |keys: &[&str]| line_of(SRC, &JsonPath::keys(keys));
        assert_eq!(at(&["version"]), Some(2));
        assert_eq!(at(&["networks", "wg0", "members", "b", "address"]), Some(8));
        let flow1 = JsonPath::keys(&["networks", "wg0", "flows"])
            .index(1)
            .key("from");
        assert_eq!(line_of(SRC, &flow1), Some(12));
    }

    #[test]
    fn missing_field_points_at_its_parent() {
        assert_eq!(
            line_of(SRC, &JsonPath::keys(&["networks", "wg0", "subnet"])),
            Some(4)
        );
    }

    #[test]
    fn garbage_is_not_a_panic() {
        for src in ["", "{", "[", "{\"a\":", "\"\\", "{\"a\" 1}", "]]]]"] {
            let _ = line_of(src, &JsonPath::keys(&["a", "b"]));
        }
    }
}
