//! Host-wide state beside the interfaces: wgfleet's firewall chains (IPv4 and IPv6), their copy
//! on disk with the `wg-quick@` drop-in that restores them whenever an interface starts (so they
//! hold after a reboot, before wgfleet runs), and the forwarding sysctls.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::diff::HostDiff;
use crate::error::{Error, Result};
use crate::firewall::{self, CHAINS, Family, FirewallDiff};
use crate::fsutil::{ensure_private_dir, write_atomic};
use crate::paths::Paths;
use crate::plan::InterfacePlan;

const FAMILIES: [Family; 2] = [Family::V4, Family::V6];

/// Where a root-owned wgfleet is looked for when the running one may be changed by others
/// (SECURITY.md): the drop-in then runs that one.
pub const TRUSTED_FALLBACKS: &[&str] = &[
    "/usr/local/sbin/wgfleet",
    "/usr/local/bin/wgfleet",
    "/usr/sbin/wgfleet",
    "/usr/bin/wgfleet",
    "/run/current-system/sw/bin/wgfleet",
];

/// `exe` as the path the drop-in may run as root: its real path, when the file and every
/// directory above it are owned by root and writable by no one else. A directory writable by its
/// group is accepted only with the sticky bit and no world write (the Nix store, 1775).
pub fn trusted_exe(exe: &Path) -> std::result::Result<std::path::PathBuf, String> {
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::canonicalize(exe).map_err(|e| format!("{}: {e}", exe.display()))?;
    let meta = std::fs::metadata(&real).map_err(|e| format!("{}: {e}", real.display()))?;
    if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is owned by uid {} with mode {:o}: someone other than root can change it",
            real.display(),
            meta.uid(),
            meta.mode() & 0o7777
        ));
    }
    for dir in real.ancestors().skip(1) {
        let m = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mode = m.mode();
        let sticky_group = mode & 0o020 != 0 && mode & 0o1000 != 0;
        if m.uid() != 0 || mode & 0o002 != 0 || (mode & 0o020 != 0 && !sticky_group) {
            return Err(format!(
                "{} is in {}, owned by uid {} with mode {:o}: someone other than root can replace it",
                real.display(),
                dir.display(),
                m.uid(),
                mode & 0o7777
            ));
        }
    }
    Ok(real)
}

/// The binary the drop-in runs: `exe` when only root can change it, else the first trusted
/// fallback; `Err` says why there is none.
fn dropin_exe(exe: &Path) -> std::result::Result<std::path::PathBuf, String> {
    trusted_exe(exe).or_else(|why| {
        TRUSTED_FALLBACKS
            .iter()
            .find_map(|c| trusted_exe(Path::new(c)).ok())
            .ok_or_else(|| {
                format!(
                    "{why}. The wg-quick@ drop-in runs wgfleet as root at every tunnel start, so it \
                     must name a binary only root can change, and none of {} is one: install \
                     wgfleet as root (e.g. /usr/local/bin/wgfleet) and run that; nothing was changed",
                    TRUSTED_FALLBACKS.join(", ")
                )
            })
    })
}

/// One argument of an `Exec*=` line, quoted when needed: systemd splits on spaces, expands `%`
/// specifiers and `$` variables, and reads C escapes inside quotes. A control character (a
/// newline would start a new directive) is refused.
pub fn systemd_arg(arg: &str) -> std::result::Result<String, String> {
    if arg.chars().any(char::is_control) {
        return Err(format!("{arg:?} holds a control character"));
    }
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:=@".contains(c));
    if plain {
        return Ok(arg.to_owned());
    }
    let mut out = String::from("\"");
    for c in arg.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

pub(super) fn run(cmd: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
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
/// adds the routes of a wgfleet file with `Table = off` once it is up (without wg-quick's
/// `ip route` process per AllowedIPs entry), and reloads without `wg-quick strip` (a bash loop
/// over every line of the file: 97% of a reload of a 10,000-peer hub), keeping the reload in
/// systemd's hands.
fn dropin(exe: &Path, root: Option<&Path>) -> std::result::Result<String, String> {
    let utf8 = |p: &Path| {
        p.to_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{} is not UTF-8", p.display()))
    };
    let root_arg = match root {
        Some(r) => format!(" --root {}", systemd_arg(&utf8(r)?)?),
        None => String::new(),
    };
    let exe = systemd_arg(&utf8(exe)?)?;
    Ok(format!(
        "# Managed by wgfleet: restore wgfleet's firewall chains before a WireGuard interface starts,\n\
         # add the routes of a file it wrote with `Table = off` in one batch once it is up (see\n\
         # `wgfleet routes-interface`), and reload by feeding the stripped file to `wg syncconf`\n\
         # (see `wgfleet reload-interface`).\n\
         [Service]\nExecStartPre=-{exe} firewall-restore{root_arg}\n\
         ExecStartPost={exe} routes-interface %i{root_arg}\n\
         ExecReload=\nExecReload={exe} reload-interface %i{root_arg}\n"
    ))
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
    if any_rules || !plans.is_empty() {
        match dropin_exe(&exe).and_then(|exe| dropin(&exe, root)) {
            Ok(text) => d.files.push((paths.dropin(), Some(text))),
            Err(why) => d.refused = Some(why),
        }
    } else {
        d.files.push((paths.dropin(), None));
    }
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
    if let Some(why) = &d.refused {
        return Err(Error::System {
            what: "the wg-quick@ drop-in".into(),
            message: why.clone(),
        });
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropin_arguments_are_quoted_for_systemd() {
        let text = dropin(
            Path::new("/usr/local/bin/wgfleet"),
            Some(Path::new("/srv/a b%$\"x")),
        )
        .unwrap();
        assert!(
            text.contains(
                "ExecStartPre=-/usr/local/bin/wgfleet firewall-restore --root \"/srv/a b%%$$\\\"x\"\n"
            ),
            "{text}"
        );
        assert!(
            dropin(
                Path::new("/usr/bin/wgfleet"),
                Some(Path::new("/a\nExecStartPre=/bin/sh"))
            )
            .is_err()
        );
        assert_eq!(systemd_arg("/x/wgfleet").unwrap(), "/x/wgfleet");
        assert_eq!(systemd_arg("").unwrap(), "\"\"");
    }

    #[test]
    fn only_a_binary_only_root_can_change_is_trusted() {
        // /proc/self/exe's real file is this test binary, under the user's target directory; the
        // shell is root's.
        assert!(trusted_exe(Path::new("/bin/sh")).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        std::fs::copy("/bin/true", open.join("wgfleet")).unwrap();
        let why = trusted_exe(&open.join("wgfleet")).unwrap_err();
        // As root the copy is root's, so the open directory is what makes it untrusted; as
        // anyone else (the Nix build sandbox's nobody) the copy itself is already theirs.
        let uid =
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(open.join("wgfleet")).unwrap());
        let expected = if uid == 0 {
            "mode 777".to_owned()
        } else {
            format!("owned by uid {uid} ")
        };
        assert!(why.contains(&expected), "{why}");
    }
}
