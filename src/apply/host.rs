//! Host-wide state beside the interfaces: wgfleet's firewall chains (IPv4 and IPv6), their copy
//! on disk with the `wg-quick@` drop-in that restores them whenever an interface starts (so they
//! hold after a reboot, before wgfleet runs), and the forwarding sysctls.

use std::path::Path;
use std::process::{Command, Stdio};

use serde::Serialize;

use super::Paths;
use crate::error::{Error, Result};
use crate::firewall::{self, CHAINS, Family, FirewallDiff};
use crate::fsutil::{ensure_private_dir, write_atomic};
use crate::plan::InterfacePlan;

const FAMILIES: [Family; 2] = [Family::V4, Family::V6];

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
}

impl HostDiff {
    pub fn is_empty(&self) -> bool {
        self.firewall.iter().all(|(_, d)| d.is_empty())
            && self.sysctls.is_empty()
            && self.files.is_empty()
    }
}

fn run(cmd: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let fail = |message: String| Error::System {
        what: cmd.to_owned(),
        message,
    };
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run {cmd}: {e}")))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write as _;
        pipe.write_all(input.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(format!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn observe_family(family: Family) -> Result<firewall::Observed> {
    Ok(firewall::parse_save(&run(family.save_cmd(), &[], None)?))
}

fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

fn wanted_sysctls(plans: &[InterfacePlan]) -> Vec<(&'static str, &'static str)> {
    let forwarding = plans.iter().filter(|p| p.forwarding);
    let mut out = Vec::new();
    if forwarding.clone().next().is_some() {
        out.push(("net.ipv4.ip_forward", "1"));
    }
    if forwarding
        .clone()
        .any(|p| p.addresses.iter().any(|a| matches!(a, ipnet::IpNet::V6(_))))
    {
        out.push(("net.ipv6.conf.all.forwarding", "1"));
    }
    out
}

/// The drop-in on every `wg-quick@` unit: it restores the chains before an interface comes up,
/// and reloads without `wg-quick strip` (a bash loop over every line of the file: 97% of a
/// reload of a 10,000-peer hub), keeping the reload in systemd's hands.
fn dropin(exe: &Path, root: Option<&Path>) -> String {
    let root_arg = root
        .map(|r| format!(" --root {}", r.display()))
        .unwrap_or_default();
    let exe = exe.display();
    format!(
        "# Managed by wgfleet: restore wgfleet's firewall chains before a WireGuard interface starts,\n\
         # and reload by feeding the stripped file to `wg syncconf` (see `wgfleet reload-interface`).\n\
         [Service]\nExecStartPre=-{exe} firewall-restore{root_arg}\n\
         ExecReload=\nExecReload={exe} reload-interface %i{root_arg}\n"
    )
}

pub fn observe(plans: &[InterfacePlan], paths: &Paths, root: Option<&Path>) -> Result<HostDiff> {
    let mut d = HostDiff::default();
    let ports: Vec<u16> = plans.iter().filter_map(|p| p.listen_port).collect();
    for family in FAMILIES {
        let want = firewall::desired(plans, family);
        let save = run(family.save_cmd(), &[], None)?;
        d.foreign_rules.extend(
            firewall::foreign_port_rules(&save, &ports)
                .into_iter()
                .map(|r| format!("{}: {r}", family.cmd())),
        );
        d.firewall
            .push((family, firewall::diff(&want, &firewall::parse_save(&save))));
        let content = (!want.is_empty()).then(|| firewall::restore_input(&want));
        d.files.push((paths.rules(family), content));
    }
    let any_rules = d.files.iter().any(|(_, c)| c.is_some());
    // A wrapper (the Nix package) names itself in WGFLEET_EXE: the drop-in must run the
    // wrapper, which sets PATH, not the wrapped binary.
    let exe = match std::env::var_os("WGFLEET_EXE") {
        Some(exe) => exe.into(),
        None => std::env::current_exe().map_err(|e| Error::System {
            what: "wgfleet".into(),
            message: e.to_string(),
        })?,
    };
    // Wherever wgfleet manages an interface (or has rules to restore).
    d.files.push((
        paths.dropin(),
        (any_rules || !plans.is_empty()).then(|| dropin(&exe, root)),
    ));
    let wanted = wanted_sysctls(plans);
    let conf: String = wanted.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    d.files.push((
        paths.sysctl_conf(),
        (!conf.is_empty()).then(|| format!("# Managed by wgfleet.\n{conf}")),
    ));
    for (key, value) in wanted {
        let live = std::fs::read_to_string(sysctl_path(key))
            .unwrap_or_default()
            .trim()
            .to_owned();
        if live != value {
            d.sysctls.push((key.to_owned(), live, value.to_owned()));
        }
    }
    // Keep only the files whose content differs from what is on disk.
    d.files
        .retain(|(path, want)| std::fs::read_to_string(path).ok() != *want);
    d.files_changed = d
        .files
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    Ok(d)
}

/// Returns whether the `wg-quick@` drop-in changed (systemd must then reload its units).
pub fn act(d: &HostDiff, paths: &Paths) -> Result<bool> {
    for (path, content) in &d.files {
        match content {
            Some(text) => {
                if let Some(dir) = path.parent() {
                    ensure_private_dir(dir).map_err(|source| Error::Write {
                        path: dir.to_owned(),
                        source,
                    })?;
                }
                write_atomic(path, text.as_bytes(), 0o644).map_err(|source| Error::Write {
                    path: path.clone(),
                    source,
                })?;
            }
            None => match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::Write {
                        path: path.clone(),
                        source: e,
                    });
                }
                _ => {}
            },
        }
    }
    for (key, _, value) in &d.sysctls {
        std::fs::write(sysctl_path(key), value).map_err(|source| Error::Write {
            path: sysctl_path(key).into(),
            source,
        })?;
    }
    for (family, fw) in &d.firewall {
        act_family(*family, fw)?;
    }
    Ok(d.files.iter().any(|(p, _)| *p == paths.dropin()))
}

fn act_family(family: Family, d: &FirewallDiff) -> Result<()> {
    let cmd = family.cmd();
    if let Some(input) = &d.restore {
        run(family.restore_cmd(), &["-w", "--noflush"], Some(input))?;
    }
    for (table, builtin, ours) in &d.add_jumps {
        run(
            cmd,
            &["-w", "-t", table, "-I", builtin, "1", "-j", ours],
            None,
        )?;
    }
    if d.remove {
        let observed = observe_family(family)?;
        for (table, builtin, ours) in CHAINS {
            let jumps = observed
                .jumps
                .iter()
                .find(|(c, _)| c == ours)
                .map_or(0, |(_, n)| *n);
            for _ in 0..jumps {
                run(cmd, &["-w", "-t", table, "-D", builtin, "-j", ours], None)?;
            }
            if observed.chains.contains(*ours) {
                run(cmd, &["-w", "-t", table, "-F", ours], None)?;
                run(cmd, &["-w", "-t", table, "-X", ours], None)?;
            }
        }
    }
    Ok(())
}

/// `wgfleet firewall-restore`: puts the saved chains back (run by the drop-in at interface start).
pub fn restore_saved(paths: &Paths) -> Result<()> {
    for family in FAMILIES {
        let Ok(saved) = std::fs::read_to_string(paths.rules(family)) else {
            continue;
        };
        let want: Vec<String> = saved
            .lines()
            .filter(|l| l.starts_with("-A WGFLEET-"))
            .map(str::to_owned)
            .collect();
        act_family(family, &firewall::diff(&want, &observe_family(family)?))?;
    }
    Ok(())
}

/// Human lines for `plan` and `apply`.
pub fn describe(d: &HostDiff) -> String {
    let mut out = String::new();
    for rule in &d.foreign_rules {
        out.push_str(&format!(
            "note: a rule outside wgfleet's chains opens the WireGuard port too ({rule}); \
             wgfleet's WGFLEET-INPUT does that where peers dial in: remove it when you are ready\n"
        ));
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
