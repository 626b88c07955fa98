//! The library's errors. Every variant names the file or host it is about; `exit_code` is the
//! documented contract with scripts and timers (docs/exit-codes.md).

use std::path::PathBuf;

use crate::fleet::diag::Located;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: cannot read the {what}: {source}")]
    Read {
        path: PathBuf,
        /// What the file is to wgfleet: "fleet", "audit log", ….
        what: &'static str,
        source: std::io::Error,
    },

    // Field and message echo the input (an unknown key, a bad value): escaped, so that a hostile
    // key can neither forge a line nor send the terminal a sequence.
    #[error("{path}:{line}:{column}: {}: {}", printable(field), printable(message))]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        field: String,
        message: String,
    },

    #[error(
        "{path}: a .nix fleet is evaluated with nix-instantiate, which is not installed \
         (apt-get install nix-bin, or use a .json fleet)"
    )]
    NixMissing { path: PathBuf },

    #[error("{path}: Nix evaluation failed:\n{}", printable_lines(stderr))]
    NixEval { path: PathBuf, stderr: String },

    #[error("{path}: unknown file type; a fleet is a .json or .nix file")]
    UnknownFormat { path: PathBuf },

    #[error("{}", invalid_summary(.diagnostics))]
    Invalid { diagnostics: Vec<Located> },

    #[error("{path}: host {host:?} is not in the fleet (hosts: {known})")]
    UnknownHost {
        path: PathBuf,
        host: String,
        known: String,
    },

    #[error("{path}: host {host:?} is not a member of network {network:?}")]
    NotAMember {
        path: PathBuf,
        host: String,
        network: String,
    },

    #[error("{}", printable(&.0.to_string()))]
    Source(#[from] crate::source::SourceError),

    #[error("cannot find this machine's hostname for --host: {0}")]
    Hostname(String),

    #[error("{context}: {source}")]
    Secret {
        context: String,
        source: crate::secrets::SecretError,
    },

    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{path} exists; pass --force to replace it")]
    Exists { path: PathBuf },

    #[error("{0}")]
    Usage(String),

    #[error("{what}: {message}")]
    System { what: String, message: String },

    /// A systemd call or job that failed; `what` is the network (or `systemd`).
    #[error("{what}: {source}")]
    Systemd {
        what: String,
        source: crate::unit::SystemdError,
    },

    /// A change that touched this host's links to its hubs was followed by no handshake with
    /// any of them (confirmed apply); the step is rolled back.
    #[error(
        "network {network}: no handshake with {peers} within {secs} s of the change ({because}); \
         it would cut this host off"
    )]
    NotConfirmed {
        network: String,
        peers: String,
        secs: u64,
        because: String,
    },

    /// A step failed and what it had changed was undone (exit code 3).
    #[error("{error}; {rollback}")]
    RolledBack {
        #[source]
        error: Box<Error>,
        rollback: crate::operations::RolledBack,
    },

    /// A step failed and undoing it failed too (exit code 4): the host needs a look.
    #[error("{error}; rollback failed too: {rollback}")]
    RollbackFailed {
        #[source]
        error: Box<Error>,
        rollback: Box<Error>,
    },

    /// wgfleet's own state under /var/lib/wgfleet.
    #[error("{path}: {message}")]
    State { path: PathBuf, message: String },

    /// Writing the command's output failed (not the fleet: nothing was read wrong).
    #[error("cannot write to standard output: {0}")]
    Output(#[source] std::io::Error),

    #[error("rendering {what}: {message}")]
    Render { what: String, message: String },
}

fn invalid_summary(diagnostics: &[Located]) -> String {
    let mut out: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == crate::fleet::diag::Severity::Error)
        .count();
    out.push(format!(
        "{errors} error(s); the fleet is invalid and nothing was done"
    ));
    out.join("\n")
}

/// The exit code of a run whose git source was refused or unreachable: the last accepted fleet
/// was applied (or nothing, when there is none yet).
pub const SOURCE_REFUSED: u8 = 5;

impl Error {
    /// The documented exit code of each error (docs/exit-codes.md); 2 is reserved for
    /// `plan --detailed-exitcode`'s "changes pending".
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::RolledBack { .. } => 3,
            Error::RollbackFailed { .. } => 4,
            Error::Source(e) if e.is_remote() => SOURCE_REFUSED,
            _ if self.is_closed_output() => 0,
            _ => 1,
        }
    }

    /// The reader of our output went away (`wgfleet render | head`): not an error to report.
    pub fn is_closed_output(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// `text` with every control character (newlines included) and every bidirectional override
/// escaped as `\u{..}` / `\n`, so that it prints as one inert line.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    escape(text, false)
}

/// As `printable`, but line breaks stay (for multi-line messages of other programs).
pub fn printable_lines(text: &str) -> std::borrow::Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, keep_newlines: bool) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && !(keep_newlines && c == '\n'))
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<crate::render::RenderError> for Error {
    fn from(e: crate::render::RenderError) -> Self {
        Error::Render {
            what: e.what,
            message: e.message,
        }
    }
}

impl From<crate::secrets::LoadError> for Error {
    fn from(e: crate::secrets::LoadError) -> Self {
        use crate::secrets::LoadError;
        match e {
            LoadError::Usage(message) => Error::Usage(message),
            LoadError::Secret { context, source } => Error::Secret { context, source },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operations::RolledBack;
    use crate::unit::SystemdError;

    fn job_failed() -> Error {
        Error::Systemd {
            what: "network wg0".into(),
            source: SystemdError::JobFailed {
                what: "reloading",
                unit: "wg-quick@wg0.service".into(),
                result: "failed".into(),
            },
        }
    }

    #[test]
    fn each_outcome_has_its_documented_exit_code_and_keeps_its_cause() {
        let rolled = Error::RolledBack {
            error: Box::new(job_failed()),
            rollback: RolledBack::RestoredAndRestarted,
        };
        assert_eq!(rolled.exit_code(), 3);
        assert_eq!(
            rolled.to_string(),
            "network wg0: reloading wg-quick@wg0.service finished with result \"failed\"; see \
             `journalctl -u wg-quick@wg0.service`; the previous config was restored and the \
             tunnel is back up"
        );
        // The chain keeps the kinds: rolled back ← the job's error ← systemd's.
        let cause = std::error::Error::source(&rolled).expect("a source");
        let systemd = cause.source().expect("systemd's error");
        assert!(matches!(
            systemd.downcast_ref::<SystemdError>(),
            Some(SystemdError::JobFailed { .. })
        ));
        let failed = Error::RollbackFailed {
            error: Box::new(job_failed()),
            rollback: Box::new(job_failed()),
        };
        assert_eq!(failed.exit_code(), 4);
        assert!(
            failed
                .to_string()
                .contains("; rollback failed too: network wg0")
        );
        assert_eq!(job_failed().exit_code(), 1);
        // A change no handshake confirmed is rolled back like a failed job: exit code 3.
        let unconfirmed = Error::RolledBack {
            error: Box::new(Error::NotConfirmed {
                network: "wg0".into(),
                peers: "cp".into(),
                secs: 30,
                because: "cp's public key is new".into(),
            }),
            rollback: RolledBack::RestoredAndRestarted,
        };
        assert_eq!(unconfirmed.exit_code(), 3);
        assert_eq!(
            unconfirmed.to_string(),
            "network wg0: no handshake with cp within 30 s of the change (cp's public key is new); \
             it would cut this host off; the previous config was restored and the tunnel is back up"
        );
    }

    #[test]
    fn only_a_closed_output_is_quiet() {
        let closed = Error::Output(std::io::ErrorKind::BrokenPipe.into());
        assert!(closed.is_closed_output());
        assert_eq!(closed.exit_code(), 0);
        let full = Error::Output(std::io::Error::from_raw_os_error(28));
        assert!(!full.is_closed_output());
        assert_eq!(full.exit_code(), 1);
        assert!(
            full.to_string()
                .starts_with("cannot write to standard output: No space left on device")
        );
    }

    #[test]
    fn printable_escapes_controls_and_bidi_overrides() {
        assert_eq!(printable("plain é"), "plain é");
        assert_eq!(
            printable("a\u{1b}]0;x\u{7}\nb\u{202e}"),
            "a\\u{1b}]0;x\\u{7}\\nb\\u{202e}"
        );
        assert_eq!(printable_lines("a\nb\u{1b}"), "a\nb\\u{1b}");
    }
}
