//! The fleet from a signed git repository: a host pulls it, trusts only a tip signed by the
//! fleet's signers (git's SSH signatures, an allowed-signers file), never goes back to an older
//! commit or over to another history, and hands the caller a checked copy of the tip's files.
//!
//! Threat model: whoever controls the remote or the network is hostile; only the signing keys
//! are trusted. So git runs with no configuration but ours, no hooks, only the transports
//! listed in `check`, under a time and size bound; nothing is checked out (the tip's blobs are
//! written out by us, refusing links and submodules), and a refused or unreachable source
//! leaves the last accepted tree as it was.
//!
//! State, under `STATE_DIR/source/` (0700): `repo.git` (a bare repository, full history, so
//! ancestry can be checked), `trees/COMMIT/` (the accepted tip's files, 0600), `state.json`
//! (the accepted commit, its signer, when it was fetched, the last refusal), `allowed_signers`
//! (the pin: the operator's file, then whatever a trusted commit rotates it to) and
//! `source.json` (a saved source, so the timer's `apply` needs no flags).

mod check;
mod git;
mod pull;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use check::{check, redact};
pub use pull::{LastError, Pulled, Vet, accepted, last_error, pull};

/// Where a rotated allowed-signers file lives in the fleet's repository.
pub const SIGNERS_IN_REPO: &str = ".wgfleet/allowed_signers";

/// What a host pulls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    pub url: String,
    /// A branch.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The fleet file inside the repository (.json or .nix).
    pub path: String,
    /// The signers trusted first (ssh-keygen's allowed-signers format).
    pub allowed_signers: PathBuf,
    /// An SSH key for a private repository over ssh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<PathBuf>,
    /// A file holding `user:token` for a private repository over https.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_credentials: Option<PathBuf>,
}

pub const DEFAULT_REF: &str = "main";
pub const DEFAULT_PATH: &str = "fleet.json";

/// How much one pull may cost.
#[derive(Debug, Clone)]
pub struct Limits {
    /// One git command, from start to end.
    pub timeout: Duration,
    /// The bare repository on disk, history included.
    pub max_repo_bytes: u64,
    /// The tip's files written out.
    pub max_tree_bytes: u64,
    pub max_files: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(60),
            max_repo_bytes: 256 << 20,
            max_tree_bytes: 64 << 20,
            max_files: 10_000,
        }
    }
}

/// The commit a host last accepted, and its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    pub commit: String,
    /// The directory holding the commit's files.
    pub tree: PathBuf,
    /// The fleet file in it.
    pub fleet: PathBuf,
    /// Who signed it: the principal of the allowed-signers line that matched.
    pub signer: String,
    pub accepted_at: i64,
    /// When the remote last answered.
    pub fetched_at: i64,
}

/// Why a source gave no new fleet.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source: {what} {value:?}: {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: String,
    },
    #[error("source {url}: unreachable: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("source {url}: refused {reason}")]
    Refused { url: String, reason: Refusal },
    #[error("source: {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("source {url}: git {what} failed: {detail}")]
    Git {
        url: String,
        what: &'static str,
        detail: String,
    },
}

impl SourceError {
    /// Refused or unreachable: the remote's doing, not the operator's flags.
    pub fn is_remote(&self) -> bool {
        matches!(
            self,
            SourceError::Unreachable { .. } | SourceError::Refused { .. }
        )
    }
}

/// Why a fetched tip was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "commit {commit}: it is not signed; sign it (git commit -S with gpg.format=ssh) with a key of the allowed signers"
    )]
    Unsigned { commit: String },
    #[error("commit {commit}: its signature does not verify ({detail})")]
    BadSignature { commit: String, detail: String },
    #[error(
        "commit {commit}: signed by a key that is not an allowed signer ({detail}); add it to the allowed-signers file in a commit signed by a trusted key"
    )]
    SignerNotAllowed { commit: String, detail: String },
    #[error(
        "commit {commit}: it is older than the accepted commit {accepted} (a force-push back? an old fleet could re-admit a revoked peer); push a new signed commit on top of {accepted}"
    )]
    Rollback { commit: String, accepted: String },
    #[error(
        "commit {commit}: it does not descend from the accepted commit {accepted} (another history); push a new signed commit on top of {accepted}"
    )]
    Unrelated { commit: String, accepted: String },
    #[error(
        "commit {commit}: it changes {SIGNERS_IN_REPO} but is not signed by a key this host already trusts"
    )]
    SignersChangedUntrusted { commit: String },
    #[error("commit {commit}: {path} is a submodule; a fleet repository holds plain files only")]
    Submodule { commit: String, path: String },
    #[error(
        "commit {commit}: {path} is a symbolic link; a fleet repository holds plain files only"
    )]
    Symlink { commit: String, path: String },
    #[error("commit {commit}: {path:?} is not a path wgfleet writes out")]
    BadPath { commit: String, path: String },
    #[error(
        "commit {commit}: the fleet names the key file {file:?}, outside the repository; key files of a fleet from git must be in its repository"
    )]
    KeyOutside { commit: String, file: String },
    #[error(
        "this host follows {accepted}; its commits are the ones it never goes back from. To follow another source, `wgfleet source set` it (the next tip is then accepted as a first one)"
    )]
    OtherSource { accepted: String },
    #[error("commit {commit}: its fleet cannot be applied on this host: {detail}")]
    Unusable { commit: String, detail: String },
    #[error("{what} over the limit of {limit}")]
    TooLarge { what: String, limit: String },
    #[error("commit {commit}: it has no file {path}")]
    FleetMissing { commit: String, path: String },
    #[error("the remote has no branch {git_ref:?}")]
    NoSuchRef { git_ref: String },
}

/// The source a host saved (`wgfleet source set`), if any.
pub fn saved(state_dir: &Path) -> Result<Option<Source>, SourceError> {
    let path = dir(state_dir).join("source.json");
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SourceError::Io {
                path,
                source: std::io::Error::other(e),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SourceError::Io { path, source }),
    }
}

/// Saves `source` as this host's (checked first); the next `apply` without flags pulls it.
/// The allowed-signers file is copied in (`signers.first`): the trust a host starts from does
/// not hang on a file elsewhere that may be moved, edited or gone.
pub fn save(state_dir: &Path, source: &Source) -> Result<PathBuf, SourceError> {
    check(source)?;
    let dir = dir(state_dir);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SourceError::Io { path, source }
    };
    crate::fsutil::ensure_private_dir(&dir).map_err(io(&dir))?;
    // Another repository or branch starts over: its history is not the accepted one's.
    let followed = saved(state_dir)?
        .map(|s| (s.url, s.git_ref))
        .or_else(|| pull::follows(&dir));
    if followed.is_some_and(|f| f != (source.url.clone(), source.git_ref.clone())) {
        pull::forget(&dir);
    }
    let first = dir.join("signers.first");
    let mut source = source.clone();
    if source.allowed_signers != first {
        let signers =
            crate::fsutil::read_bounded(&source.allowed_signers, crate::fsutil::SMALL_FILE_LIMIT)
                .map_err(io(&source.allowed_signers))?;
        let has_signer = String::from_utf8_lossy(&signers)
            .lines()
            .any(|l| l.split_whitespace().count() >= 3 && !l.trim_start().starts_with('#'));
        if !has_signer {
            return Err(SourceError::Invalid {
                what: "allowed signers",
                value: source.allowed_signers.display().to_string(),
                why: "no signer line (PRINCIPAL [OPTIONS] KEYTYPE KEY, as ssh-keygen's \
                      ALLOWED SIGNERS): every commit would be refused"
                    .into(),
            });
        }
        let before = std::fs::read(&first).ok();
        crate::fsutil::write_atomic(&first, &signers, 0o600).map_err(io(&first))?;
        // A new file is the operator's word: the pin at once (re-pinning after a stolen key),
        // whatever rotations were followed; the accepted commit stays, so rollback protection
        // does. The same file again (join run twice) leaves a followed rotation alone.
        let pin = dir.join("allowed_signers");
        if before.as_deref() != Some(&signers[..]) && pin.exists() {
            crate::fsutil::write_atomic(&pin, &signers, 0o600).map_err(io(&pin))?;
        }
        source.allowed_signers = first;
    }
    let path = dir.join("source.json");
    let mut text = serde_json::to_string_pretty(&source).unwrap_or_default();
    text.push('\n');
    crate::fsutil::write_atomic(&path, text.as_bytes(), 0o600).map_err(io(&path))?;
    Ok(path)
}

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("source")
}
