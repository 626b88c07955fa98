//! Reading a fleet from `.json`, or from `.nix` through `nix-instantiate --eval --strict --json`.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

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
        resolve_beside(&self.path, relative)
    }
}

/// `relative` (a file the fleet at `fleet` names) against the fleet file's directory.
pub fn resolve_beside(fleet: &Path, relative: &str) -> PathBuf {
    let joined = fleet.parent().unwrap_or(Path::new(".")).join(relative);
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

pub fn load(path: &Path) -> Result<Loaded> {
    load_with(path, &[])
}

/// As `load`; a `.nix` fleet may also read files under the `nix_allow` directories.
pub fn load_with(path: &Path, nix_allow: &[PathBuf]) -> Result<Loaded> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => {
            let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
                path: path.to_owned(),
                what: "fleet",
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
            let json = eval_nix(path, nix_allow)?;
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

/// How long a `.nix` fleet may evaluate before the whole `nix-instantiate` process group is
/// killed. `WGFLEET_NIX_TIMEOUT` (seconds) overrides it for the operator, never for the fleet.
const NIX_TIMEOUT: Duration = Duration::from_secs(60);

/// The most `nix-instantiate` may print (the fleet as JSON, or its error).
const NIX_OUTPUT_LIMIT: u64 = 64 * 1024 * 1024;

/// The `nix-instantiate` command line for a `.nix` fleet. Evaluation runs as root on every host,
/// so it is confined, with every option pinned here rather than taken from the environment or a
/// user's nix.conf: restricted mode (no file, `<path>` or URL outside the fleet's own directory
/// tree and the `allow` directories; `getEnv` sees nothing), no import from derivation, no
/// `builtins.exec`, nothing written to the store, and an empty environment.
pub fn nix_command(fleet: &Path, allow: &[PathBuf]) -> Command {
    let dir = fleet.parent().unwrap_or(Path::new("/"));
    let mut cmd = Command::new("nix-instantiate");
    cmd.env_clear()
        // Only to find nix-instantiate and its helpers; builtins.exec, the one way a fleet could
        // use PATH, is off.
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        // No user nix.conf, no cache in someone's home.
        .env("HOME", "/nonexistent")
        .args(["--eval", "--strict", "--json", "--readonly-mode"])
        .args(["--option", "restrict-eval", "true"])
        .args(["--option", "allow-import-from-derivation", "false"])
        .args([
            "--option",
            "allow-unsafe-native-code-during-evaluation",
            "false",
        ])
        .args(["--option", "allowed-uris", ""])
        .args(["--option", "nix-path", ""])
        .arg("-I")
        .arg(dir);
    for extra in allow {
        cmd.arg("-I").arg(extra);
    }
    cmd.arg(fleet).stdin(Stdio::null());
    cmd
}

fn eval_nix(path: &Path, allow: &[PathBuf]) -> Result<String> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let allow: Vec<PathBuf> = allow
        .iter()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let timeout = std::env::var("WGFLEET_NIX_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(NIX_TIMEOUT, Duration::from_secs);
    let output = run_bounded(nix_command(&absolute, &allow), timeout).map_err(|e| match e {
        RunError::Spawn(e) if e.kind() == std::io::ErrorKind::NotFound => Error::NixMissing {
            path: path.to_owned(),
        },
        RunError::Spawn(source) => Error::Read {
            path: path.to_owned(),
            what: "fleet",
            source,
        },
        RunError::Timeout => Error::NixEval {
            path: path.to_owned(),
            stderr: format!(
                "the evaluation took more than {} s and was stopped (WGFLEET_NIX_TIMEOUT sets the limit)",
                timeout.as_secs()
            ),
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

enum RunError {
    Spawn(std::io::Error),
    Timeout,
}

/// The process group of the running `nix-instantiate`, for the signal handler (0: none).
static CHILD_GROUP: AtomicI32 = AtomicI32::new(0);

/// On SIGTERM, SIGINT or SIGHUP while Nix evaluates: kill its process group (nix-instantiate
/// ignores SIGTERM while it evaluates), then die of the signal as usual. Only async-signal-safe
/// calls.
extern "C" fn kill_child_and_die(signal: nix::libc::c_int) {
    let group = CHILD_GROUP.load(Ordering::SeqCst);
    // SAFETY: kill, signal and raise are async-signal-safe.
    unsafe {
        if group > 0 {
            nix::libc::kill(-group, nix::libc::SIGKILL);
        }
        nix::libc::signal(signal, nix::libc::SIG_DFL);
        nix::libc::raise(signal);
    }
}

/// Runs `cmd` in a process group of its own, collects its output (capped), and kills the whole
/// group when it outlives `timeout` or when wgfleet itself is told to stop.
fn run_bounded(mut cmd: Command, timeout: Duration) -> Result<Output, RunError> {
    use nix::sys::signal::{
        SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, pthread_sigmask, sigaction,
    };
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let handler = SigAction::new(
        SigHandler::Handler(kill_child_and_die),
        SaFlags::empty(),
        SigSet::empty(),
    );
    let signals = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];
    // SAFETY: the handler only makes async-signal-safe calls.
    let previous: Vec<_> = signals
        .iter()
        .map(|s| unsafe { sigaction(*s, &handler) }.ok())
        .collect();
    let result = (|| {
        // A signal between the spawn and the store would find no group to kill and leave Nix
        // running: held back until the group is known (the child starts with an empty mask).
        let mut held = SigSet::empty();
        for s in signals {
            held.add(s);
        }
        let mut mask = SigSet::empty();
        let blocked = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&held), Some(&mut mask)).is_ok();
        let spawned = cmd.spawn();
        if let Ok(child) = &spawned {
            CHILD_GROUP.store(i32::try_from(child.id()).unwrap_or(0), Ordering::SeqCst);
        }
        if blocked {
            let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&mask), None);
        }
        let mut child = spawned.map_err(RunError::Spawn)?;
        let group = i32::try_from(child.id()).unwrap_or(0);
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(p) = pipe {
                    let _ = p.take(NIX_OUTPUT_LIMIT).read_to_end(&mut buf);
                }
                buf
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if start.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    // SAFETY: kill on our own child's process group.
                    unsafe { nix::libc::kill(-group, nix::libc::SIGKILL) };
                    let _ = child.wait();
                    break Err(RunError::Timeout);
                }
            }
        };
        CHILD_GROUP.store(0, Ordering::SeqCst);
        // The group is gone; a grandchild holding the pipes open was killed with it.
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        Ok(Output {
            status: status?,
            stdout,
            stderr,
        })
    })();
    for (signal, old) in signals.iter().zip(previous) {
        if let Some(old) = old {
            // SAFETY: restoring what was installed before.
            let _ = unsafe { sigaction(*signal, &old) };
        }
    }
    result
}
