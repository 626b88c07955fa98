//! What an import returns (the fleet, its findings, the age files to write, a summary of each
//! network), and the findings as the phases collect them.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Note,
}

/// A line of an input file, secrets redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Place {
    pub file: String,
    pub line: usize,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// A stable identifier of the kind of finding (`unknown-peer`, `not-imported`, …).
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    pub message: String,
    pub lines: Vec<Place>,
}

/// An age file to write: never the plain key.
pub struct SecretFile {
    /// Where to write it (under the secrets directory).
    pub path: PathBuf,
    /// How the fleet names it (relative to the fleet file).
    pub reference: String,
    pub what: String,
    pub recipients: usize,
    pub sealed: Vec<u8>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSummary {
    pub network: String,
    pub topology: String,
    pub hubs: Vec<String>,
    pub members: Vec<String>,
    pub clients: Vec<String>,
    pub subnet: Option<String>,
    pub subnet6: Option<String>,
    pub listen_port: u16,
}

pub struct Imported {
    pub fleet: Fleet,
    pub findings: Vec<Finding>,
    pub secrets: Vec<SecretFile>,
    /// The fleet passes `validate`.
    pub valid: bool,
    pub networks: Vec<NetworkSummary>,
}

impl Imported {
    pub fn fleet_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.fleet).unwrap_or_default();
        text.push('\n');
        text
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }
}

impl NetworkSummary {
    pub(super) fn hubs_or_members(&self) -> Vec<String> {
        if self.hubs.is_empty() {
            self.members.clone()
        } else {
            self.hubs.clone()
        }
    }
}

pub(super) struct Findings {
    pub(super) list: Vec<Finding>,
    pub(super) network: Option<String>,
}

impl Findings {
    pub(super) fn push(
        &mut self,
        severity: Severity,
        kind: &'static str,
        message: String,
        lines: Vec<Place>,
    ) {
        self.list.push(Finding {
            severity,
            kind,
            network: self.network.clone(),
            message,
            lines,
        });
    }

    pub(super) fn error(&mut self, kind: &'static str, message: String, lines: Vec<Place>) {
        self.push(Severity::Error, kind, message, lines);
    }

    pub(super) fn warn(&mut self, kind: &'static str, message: String, lines: Vec<Place>) {
        self.push(Severity::Warning, kind, message, lines);
    }

    pub(super) fn note(&mut self, kind: &'static str, message: String, lines: Vec<Place>) {
        self.push(Severity::Note, kind, message, lines);
    }
}
