//! The import's report, as text.

use super::*;
use crate::text::plural;

/// The findings for a person: `severity: message`, then the lines involved.
pub fn report_text(imported: &Imported) -> String {
    let mut out = String::new();
    for f in &imported.findings {
        let sev = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        };
        let net = f
            .network
            .as_ref()
            .map(|n| format!("{n}: "))
            .unwrap_or_default();
        out.push_str(&format!("{sev}: {net}{}\n", f.message));
        for p in &f.lines {
            out.push_str(&format!("  {}:{}: {}\n", p.file, p.line, p.text));
        }
    }
    out.push_str(&summary_text(imported));
    out
}

pub fn summary_text(imported: &Imported) -> String {
    let mut out = format!(
        "imported {} and {}:\n",
        plural(imported.fleet.hosts.len(), "host"),
        plural(imported.networks.len(), "network")
    );
    for n in &imported.networks {
        let shape = if n.hubs.is_empty() {
            "mesh".to_owned()
        } else {
            format!("hub-and-spoke, hubs {}", n.hubs.join(", "))
        };
        let subnets: Vec<&str> = [n.subnet.as_deref(), n.subnet6.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        out.push_str(&format!(
            "  {}: {shape}; {} {}; {}; subnet {}, port {}\n",
            n.network,
            plural(n.members.len(), "member"),
            n.members.join(", "),
            plural(n.clients.len(), "client"),
            subnets.join(", "),
            n.listen_port
        ));
    }
    out.push_str(&format!(
        "{}, {}, {}\n",
        plural(imported.count(Severity::Error), "error"),
        plural(imported.count(Severity::Warning), "warning"),
        plural(imported.count(Severity::Note), "note"),
    ));
    out
}
