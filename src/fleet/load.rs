//! Reading a fleet from `.json`, or from `.nix` through `nix-instantiate --eval --strict --json`.

use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use super::schema::Fleet;
use crate::error::{Error, Result};

/// A fleet as loaded, with what error reporting needs to point back into the file.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    /// The JSON text when the file is JSON: validation errors get line numbers from it.
    pub json_source: Option<String>,
    pub fleet: Fleet,
}

impl Loaded {
    /// `sha256:…` of the fleet's canonical JSON: equal fleets have equal digests, whatever their
    /// formatting or source language.
    pub fn digest(&self) -> String {
        let canonical = serde_json::to_vec(&self.fleet).unwrap_or_default();
        let hash = Sha256::digest(&canonical);
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    /// Resolves a file named in the fleet (an age file) against the fleet file's directory.
    pub fn resolve(&self, relative: &str) -> PathBuf {
        let joined = self.path.parent().unwrap_or(Path::new(".")).join(relative);
        // Lexically fold `dir/../` so messages name the file as a person would.
        let mut out = PathBuf::new();
        for c in joined.components() {
            match c {
                Component::ParentDir
                    if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
                {
                    out.pop();
                }
                other => out.push(other),
            }
        }
        out
    }
}

pub fn load(path: &Path) -> Result<Loaded> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => {
            let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
                path: path.to_owned(),
                source,
            })?;
            let fleet = parse_json(path, &text)?;
            Ok(Loaded {
                path: path.to_owned(),
                json_source: Some(text),
                fleet,
            })
        }
        Some("nix") => {
            let json = eval_nix(path)?;
            let fleet = parse_json(path, &json)?;
            Ok(Loaded {
                path: path.to_owned(),
                json_source: None,
                fleet,
            })
        }
        _ => Err(Error::UnknownFormat {
            path: path.to_owned(),
        }),
    }
}

/// Parses schema v1 JSON; the error names the field (`networks.wg0.mtu`) and its line.
pub fn parse_json(path: &Path, text: &str) -> Result<Fleet> {
    // The common case, a file that parses, does not pay for path tracking; only a failure is
    // parsed again to name the field.
    if let Ok(fleet) = serde_json::from_str(text) {
        return Ok(fleet);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed: Result<Fleet, _> = serde_path_to_error::deserialize(&mut de);
    let fleet = parsed.map_err(|e| {
        // serde_path_to_error marks a position it cannot name with '?'.
        let field = e.path().to_string().trim_end_matches(".?").to_owned();
        let inner = e.into_inner();
        Error::Parse {
            path: path.to_owned(),
            line: inner.line(),
            column: inner.column(),
            field: if field == "." {
                "(top level)".into()
            } else {
                field
            },
            message: strip_position(&inner.to_string()),
        }
    })?;
    de.end().map_err(|e| Error::Parse {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        field: "(top level)".into(),
        message: strip_position(&e.to_string()),
    })?;
    Ok(fleet)
}

/// serde_json appends " at line L column C"; the position is already in our own prefix.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn eval_nix(path: &Path) -> Result<String> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let output = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(&absolute)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NixMissing {
                path: path.to_owned(),
            },
            _ => Error::Read {
                path: path.to_owned(),
                source: e,
            },
        })?;
    if !output.status.success() {
        return Err(Error::NixEval {
            path: path.to_owned(),
            stderr: String::from_utf8_lossy(&output.stderr)
                .trim_end()
                .to_owned(),
        });
    }
    String::from_utf8(output.stdout).map_err(|_| Error::NixEval {
        path: path.to_owned(),
        stderr: "nix-instantiate printed something that is not UTF-8".into(),
    })
}
