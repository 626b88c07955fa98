//! git, run with nothing of the machine's or the repository's configuration: an empty
//! environment but ours, no system or global config, no hooks, no prompts, only the allowed
//! transports, fsck on every object received; bounded in time, and for a fetch in the size
//! the repository grows to.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::{Limits, Source, SourceError};

/// How git is run for one source.
pub struct Git<'a> {
    pub source: &'a Source,
    pub repo: PathBuf,
    pub home: PathBuf,
    pub limits: &'a Limits,
    /// The allowed-signers file signatures are verified against.
    pub pin: PathBuf,
    pub url: String,
}

/// What a git command printed.
pub struct Ran {
    pub ok: bool,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

const OUTPUT_LIMIT: u64 = 64 << 20;

impl Git<'_> {
    fn command(&self) -> Result<Command, SourceError> {
        let mut cmd = Command::new("git");
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("LC_ALL", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "/bin/false")
            .env("SSH_ASKPASS", "/bin/false")
            .env("GIT_NO_REPLACE_OBJECTS", "1")
            .env("GIT_PROTOCOL_FROM_USER", "0");
        for (key, value) in [
            ("protocol.allow", "never"),
            ("protocol.https.allow", "always"),
            ("protocol.ssh.allow", "always"),
            ("protocol.git.allow", "always"),
            ("protocol.file.allow", "always"),
            ("core.hooksPath", "/dev/null"),
            ("core.fsmonitor", "false"),
            ("transfer.fsckObjects", "true"),
            ("fetch.recurseSubmodules", "false"),
            ("submodule.recurse", "false"),
            ("credential.helper", ""),
            ("gpg.format", "ssh"),
        ] {
            cmd.arg("-c").arg(format!("{key}={value}"));
        }
        cmd.arg("-c")
            .arg(format!("gpg.ssh.allowedSignersFile={}", self.pin.display()));
        let mut config = Vec::new();
        if let Some(key) = &self.source.ssh_key {
            cmd.env("GIT_SSH_COMMAND", ssh_command(key)?);
        }
        if let Some(file) = &self.source.http_credentials {
            config.push(("http.extraHeader", basic_auth(file)?));
        }
        cmd.env("GIT_CONFIG_COUNT", config.len().to_string());
        for (i, (key, value)) in config.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), key);
            cmd.env(format!("GIT_CONFIG_VALUE_{i}"), value.as_str());
        }
        Ok(cmd)
    }

    /// `git ARGS` in the bare repository (or anywhere, for `ls-remote`).
    pub fn run(&self, what: &'static str, args: &[&str]) -> Result<Ran, SourceError> {
        self.run_with(what, args, None, false)
    }

    /// As `run`, with `stdin` fed in; `watch_size`: killed once the repository outgrows
    /// `max_repo_bytes`.
    pub fn run_with(
        &self,
        what: &'static str,
        args: &[&str],
        stdin: Option<&[u8]>,
        watch_size: bool,
    ) -> Result<Ran, SourceError> {
        let mut cmd = self.command()?;
        cmd.arg("--git-dir").arg(&self.repo).args(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| SourceError::Git {
            url: self.url.clone(),
            what,
            detail: format!("cannot run git: {e}"),
        })?;
        let feeder = stdin.map(|data| {
            let data = data.to_vec();
            let pipe = child.stdin.take();
            std::thread::spawn(move || {
                if let Some(mut p) = pipe {
                    let _ = p.write_all(&data);
                }
            })
        });
        let out = drain(child.stdout.take());
        let err = drain(child.stderr.take());
        let ended = self.wait(&mut child, watch_size);
        if let Some(f) = feeder {
            let _ = f.join();
        }
        let stdout = out.join().unwrap_or_default();
        let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default())
            .trim()
            .to_owned();
        match ended {
            Ended::Exited(ok) => Ok(Ran { ok, stdout, stderr }),
            Ended::TimedOut => Err(SourceError::Unreachable {
                url: self.url.clone(),
                detail: format!(
                    "git {what} did not finish within {} s",
                    self.limits.timeout.as_secs()
                ),
            }),
            Ended::TooLarge => Err(SourceError::Refused {
                url: self.url.clone(),
                reason: super::Refusal::TooLarge {
                    what: "the repository".into(),
                    limit: format!("{} MiB", self.limits.max_repo_bytes >> 20),
                },
            }),
        }
    }

    fn wait(&self, child: &mut Child, watch_size: bool) -> Ended {
        let start = Instant::now();
        let mut last_size_check = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ended::Exited(status.success()),
                Ok(None) => {}
                Err(_) => return Ended::Exited(false),
            }
            let over = watch_size && last_size_check.elapsed() > Duration::from_millis(200) && {
                last_size_check = Instant::now();
                dir_size(&self.repo) > self.limits.max_repo_bytes
            };
            if over || start.elapsed() > self.limits.timeout {
                let _ = child.kill();
                let _ = child.wait();
                return if over {
                    Ended::TooLarge
                } else {
                    Ended::TimedOut
                };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

enum Ended {
    Exited(bool),
    TimedOut,
    TooLarge,
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(p) = pipe {
            let _ = p.take(OUTPUT_LIMIT).read_to_end(&mut buf);
        }
        buf
    })
}

/// The bytes under `dir` (what a fetch has written so far).
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// ssh with the given key only, never asking anything. The path goes into a command line
/// git hands to a shell, so only plain path characters are taken.
fn ssh_command(key: &Path) -> Result<String, SourceError> {
    let text = key.to_string_lossy();
    let plain = key.is_absolute()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
    if !plain {
        return Err(SourceError::Invalid {
            what: "ssh key",
            value: text.into_owned(),
            why: "must be an absolute path of letters, digits and / . _ -".into(),
        });
    }
    Ok(format!(
        "ssh -i {text} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new"
    ))
}

/// `Authorization: Basic …` from a file holding `user:token` (environment, never argv).
fn basic_auth(file: &Path) -> Result<Zeroizing<String>, SourceError> {
    use base64::Engine as _;
    let bytes =
        crate::fsutil::read_bounded(file, crate::fsutil::SMALL_FILE_LIMIT).map_err(|source| {
            SourceError::Io {
                path: file.to_owned(),
                source,
            }
        })?;
    let text = String::from_utf8_lossy(&bytes);
    let pair = text.trim();
    if !pair.contains(':') || pair.contains('\n') {
        return Err(SourceError::Invalid {
            what: "credentials file",
            value: file.display().to_string(),
            why: "must hold one line `user:token`".into(),
        });
    }
    Ok(Zeroizing::new(format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
    )))
}
