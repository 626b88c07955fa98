//! Findings of validation: each names the field (as a JSON path) and says what is wrong with it.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::locate;
use super::path::JsonPath;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub path: JsonPath,
    pub message: String,
}

/// Diagnostics tied to the file they are about, with line numbers where the source is JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Located {
    pub file: String,
    pub line: Option<usize>,
    pub severity: Severity,
    pub path: String,
    pub message: String,
}

impl Located {
    pub fn new(file: &Path, json_source: Option<&str>, d: &Diagnostic) -> Self {
        Located {
            file: file.display().to_string(),
            line: json_source.and_then(|src| locate::line_of(src, &d.path)),
            severity: d.severity,
            path: d.path.to_string(),
            message: d.message.clone(),
        }
    }
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, ": {sev}: {}: {}", self.path, self.message)
    }
}

/// Collects diagnostics while walking the fleet.
#[derive(Debug, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn error(&mut self, path: &JsonPath, message: impl Into<String>) {
        self.push(Severity::Error, path, message.into());
    }

    pub fn warning(&mut self, path: &JsonPath, message: impl Into<String>) {
        self.push(Severity::Warning, path, message.into());
    }

    fn push(&mut self, severity: Severity, path: &JsonPath, message: String) {
        self.0.push(Diagnostic {
            severity,
            path: path.clone(),
            message,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }
}
