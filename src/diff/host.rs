//! The host-wide diff: wgfleet's firewall chains, the sysctls and the files that make them hold
//! at boot, as observed against the plans; and its human lines.

use serde::Serialize;

use crate::firewall::{Family, FirewallDiff};

/// Host-wide changes, computed before acting.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostDiff {
    pub firewall: Vec<(Family, FirewallDiff)>,
    /// `(sysctl, live value, wanted value)`.
    pub sysctls: Vec<(String, String, String)>,
    /// Files that make the rules and sysctls survive a reboot, when they differ.
    #[serde(skip)]
    pub files: Vec<(std::path::PathBuf, Option<String>)>,
    pub files_changed: Vec<String>,
    /// Rules outside wgfleet's chains that also open a listen port of this host (left by a
    /// hand-made setup): reported, never touched, since they may be another tool's.
    pub foreign_rules: Vec<String>,
    /// Why the drop-in cannot be written: no wgfleet binary only root can change (apply then
    /// changes nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl HostDiff {
    pub fn is_empty(&self) -> bool {
        self.firewall.iter().all(|(_, d)| d.is_empty())
            && self.sysctls.is_empty()
            && self.files.is_empty()
            && self.refused.is_none()
    }
}

/// Human lines for `plan` and `apply`.
pub fn describe_host(d: &HostDiff) -> String {
    let mut out = String::new();
    for rule in &d.foreign_rules {
        out.push_str(&format!(
            "note: a rule outside wgfleet's chains opens the WireGuard port too ({rule}); \
             wgfleet's WGFLEET-INPUT does that where peers dial in: remove it when you are ready\n"
        ));
    }
    if let Some(why) = &d.refused {
        out.push_str(&format!("refused: {why}\n"));
    }
    if d.is_empty() {
        out.push_str("firewall and sysctls: nothing to do\n");
        return out;
    }
    for (family, fw) in d.firewall.iter().filter(|(_, f)| !f.is_empty()) {
        out.push_str(&format!(
            "firewall ({}): {}\n",
            family.cmd(),
            if fw.remove {
                "remove wgfleet's chains"
            } else {
                "update wgfleet's chains"
            }
        ));
        for l in &fw.added {
            out.push_str(&format!("  + {l}\n"));
        }
        for l in &fw.removed {
            out.push_str(&format!("  - {l}\n"));
        }
        for (table, builtin, ours) in &fw.add_jumps {
            out.push_str(&format!("  + jump {table}/{builtin} → {ours}\n"));
        }
    }
    for (key, live, want) in &d.sysctls {
        out.push_str(&format!("sysctl: {key} {live} → {want}\n"));
    }
    for f in &d.files_changed {
        out.push_str(&format!("boot persistence: update {f}\n"));
    }
    out
}
