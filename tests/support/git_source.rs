//! A fleet repository on the testbed: made and signed on the machine, served by a git host
//! (`git daemon` on the testbed bridge) at git://GIT_IP/repo.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::testbed::Host;

pub const GIT_IP: &str = "192.0.2.50";

/// git on the machine, in the repository the git host serves (its /x/repo).
pub fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=op", "-c", "user.email=op@example.com"])
        .args(["-c", "gpg.format=ssh", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A signing key in `dir`; its allowed-signers line.
pub fn signing_key(dir: &Path, name: &str) -> String {
    let key = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let mut parts = public.split_whitespace();
    format!(
        "{name} namespaces=\"git\" {} {}\n",
        parts.next().unwrap(),
        parts.next().unwrap()
    )
}

/// `git daemon` on the git host, serving /x/repo on the bridge (git://GIT_IP/repo).
pub fn serve(git_host: &Host) {
    git_host
        .sh_ok(&format!(
            "git daemon --detach --pid-file=/run/git-daemon.pid --base-path=/x --export-all \\
             --reuseaddr --listen={GIT_IP} /x/repo && \\
             for i in $(seq 50); do ss -ltn | grep -q ':9418' && exit 0; sleep 0.1; done; exit 1"
        ))
        .unwrap();
}

pub struct Repo<'a> {
    pub dir: std::path::PathBuf,
    pub keys: &'a Path,
}

impl Repo<'_> {
    /// Commits the fleet, signed by `signer` (unsigned with `None`); returns the commit.
    pub fn commit(&self, fleet: &Value, signer: Option<&str>) -> String {
        std::fs::write(
            self.dir.join("fleet.json"),
            serde_json::to_string_pretty(fleet).unwrap(),
        )
        .unwrap();
        git(&self.dir, &["add", "-A"]);
        let key = signer.map(|s| format!("user.signingkey={}", self.keys.join(s).display()));
        let mut args = Vec::new();
        if let Some(k) = &key {
            args.extend(["-c", k.as_str()]);
        }
        args.extend(["commit", "-q", "--allow-empty", "-m", "fleet"]);
        if signer.is_some() {
            args.push("-S");
        }
        git(&self.dir, &args);
        git(&self.dir, &["rev-parse", "HEAD"])
    }
}
