//! The library's errors. Every variant names the file or host it is about; `exit_code` is the
//! documented contract with scripts and timers (README, "Exit codes").

use std::path::PathBuf;

use crate::fleet::diag::Located;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: cannot read the fleet: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{path}:{line}:{column}: {field}: {message}")]
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

    #[error("{path}: Nix evaluation failed:\n{stderr}")]
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

impl Error {
    /// 1 for every error: 0 and 2 are reserved for success and "changes pending".
    pub fn exit_code(&self) -> u8 {
        1
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
