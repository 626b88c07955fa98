//! How the rotation watcher runs this host's apply again (at a preshared key's switch time, or
//! when it goes back): the unit the apply ran in, started as the timer starts it (its own
//! environment, `EnvironmentFile` and sandbox included), else the same command line with the
//! same wgfleet settings from the environment, in the same directory.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::systemd::Systemd;
use crate::unit::Job;

/// How the last apply ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replay {
    /// The wgfleet service it ran in (`wgfleet.service` of the package or the NixOS module).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Else its arguments (without the program), …
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// … the `WGFLEET_*` settings it read from the environment (`WGFLEET_FLEET`), …
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// … and where it ran (its paths may be relative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
}

impl Replay {
    /// This process, when it can be run again: not when an argument is not UTF-8 or holds a
    /// password (a `--source` URL's `user:password@`), which the state file must not keep.
    pub fn of_this_run(watch_unit: &str) -> Option<Replay> {
        if let Some(unit) = own_unit().filter(|u| u != watch_unit) {
            return Some(Replay {
                unit: Some(unit),
                ..Replay::default()
            });
        }
        let args: Vec<String> = std::env::args_os()
            .skip(1)
            .map(|a| a.into_string().ok())
            .collect::<Option<_>>()?;
        if args.iter().any(|a| has_password(a)) {
            return None;
        }
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with("WGFLEET_") && !k.starts_with("WGFLEET_TEST_"))
            .collect();
        Some(Replay {
            unit: None,
            args,
            env,
            dir: std::env::current_dir().ok(),
        })
    }

    /// Runs the apply and waits for it; `Err` says why it did not end well (for the journal).
    pub fn run(&self) -> Result<(), String> {
        if let Some(unit) = &self.unit {
            let systemd = Systemd::connect().map_err(|e| e.to_string())?;
            return systemd.run(Job::Start, unit).map_err(|e| e.to_string());
        }
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
        let mut apply = std::process::Command::new(exe);
        apply
            .args(&self.args)
            .envs(&self.env)
            .stdin(std::process::Stdio::null());
        if let Some(dir) = &self.dir {
            apply.current_dir(dir);
        }
        match apply.status() {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!("apply {status}")),
            Err(e) => Err(format!("cannot run apply: {e}")),
        }
    }
}

/// The wgfleet service this process runs in, from its cgroup (`0::/system.slice/NAME`).
fn own_unit() -> Option<String> {
    std::env::var_os("INVOCATION_ID")?;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    unit_of_cgroup(&cgroup)
}

fn unit_of_cgroup(cgroup: &str) -> Option<String> {
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let unit = path.rsplit('/').next()?;
    (unit.starts_with("wgfleet") && unit.ends_with(".service")).then(|| unit.to_owned())
}

/// A URL with a password in it: `scheme://user:password@host/…`.
fn has_password(arg: &str) -> bool {
    let Some((_, rest)) = arg.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_is_a_wgfleet_service_of_the_cgroup() {
        let unit = |text: &str| unit_of_cgroup(text);
        assert_eq!(
            unit("0::/system.slice/wgfleet.service\n").as_deref(),
            Some("wgfleet.service")
        );
        // A shell, cron's jobs, a scope: the command line is run again instead.
        for other in [
            "0::/user.slice/user-0.slice/session-3.scope\n",
            "0::/system.slice/cron.service\n",
            "12:pids:/system.slice/wgfleet.service\n",
            "",
        ] {
            assert_eq!(unit(other), None, "{other:?}");
        }
    }

    #[test]
    fn a_password_in_a_url_is_not_kept() {
        for kept in [
            "--source",
            "git://192.0.2.9/repo",
            "ssh://git@example.org/fleet.git",
            "https://example.org/a:b@c",
            "--fleet=/etc/wgfleet/fleet.json",
        ] {
            assert!(!has_password(kept), "{kept}");
        }
        for secret in [
            "https://ops:hunter2@example.org/fleet.git",
            "--source=https://x:y@example.org/",
        ] {
            assert!(has_password(secret), "{secret}");
        }
    }
}
