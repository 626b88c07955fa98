//! The imperative shell: everything that touches the system. One run of `plan` or `apply` is
//! `pipeline`: the desired state (from the record, or computed from the fleet), then observe
//! (files, units, live interfaces, the host-wide state) diffed against it by the pure core,
//! then act on the operations the core computed, then record. Nothing is touched before the
//! fleet is valid and every secret decrypted and checked; a failed start or reload restores
//! the previous file and brings the old tunnel back.
//!
//! The pairs with the pure core: `crate::confirm` decides whether a change is held to a
//! handshake, `handshake_wait` waits for it; `crate::endpoints` decides which endpoint a peer
//! should have, `endpoint_follow` resolves names and sets it live.

pub mod act;
pub mod audit;
pub mod cache;
pub mod desired;
pub mod endpoint_follow;
pub mod handshake_wait;
pub mod host;
pub mod live_set;
pub mod lock;
pub mod observe;
pub mod paths;
pub mod pending;
pub mod pipeline;
pub mod probe;
pub mod reload;
pub mod replay;
pub mod rotation;
pub mod routes;
pub mod systemd;
pub mod timings;

use std::path::Path;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::operations;
use crate::unit::SystemdError;

/// The error of a systemd call, naming the network (or the host-wide step) it was for.
fn sys(what: &str) -> impl Fn(SystemdError) -> Error + '_ {
    move |source| Error::Systemd {
        what: if what == operations::HOST {
            "(host)".into()
        } else {
            format!("network {what}")
        },
        source,
    }
}

/// A file that may hold a private key, read into a zeroizing buffer (`None`: no such file).
fn read_private(path: &Path) -> Result<Option<Zeroizing<String>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(Zeroizing::new(
            String::from_utf8_lossy(&Zeroizing::new(bytes)).into_owned(),
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_owned(),
            what: "file",
            source,
        }),
    }
}

/// `--host`, or this machine's hostname.
pub fn host_or_hostname(host: Option<&str>) -> Result<String> {
    match host {
        Some(h) => Ok(h.to_owned()),
        None => nix::unistd::gethostname()
            .map_err(|e| Error::Hostname(e.to_string()))?
            .into_string()
            .map_err(|_| Error::Hostname("the hostname is not UTF-8".into())),
    }
}

/// Seconds since the epoch, by this machine's clock.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
