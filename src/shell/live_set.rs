//! A change of peers alone, made live: one `wg set IFACE peer … peer …` carrying exactly the
//! peers the diff found changed (`diff::PeerDelta`), then the routes their AllowedIPs need.
//! The unit's reload would have `wg syncconf` read every peer of the interface and of the
//! file, and systemd run a job for it. Preshared keys reach `wg` through pipes, never a file.

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Command, Stdio};

use zeroize::Zeroizing;

use super::routes;
use crate::diff::{self, Clause, PeerDelta, Psk};
use crate::error::{Error, Result};
use crate::wgconf::WgConf;

/// Sets the delta's peers on `iface` as `conf` (the file just written, parsed) has them.
pub fn set_peers(iface: &str, conf: &WgConf, delta: &PeerDelta) -> Result<()> {
    let fail = |message: String| Error::System {
        what: format!("network {iface}"),
        message,
    };
    crate::fleet::syntax::check_interface(iface).map_err(fail)?;
    let clauses = diff::clauses(conf, delta);
    // One pipe a preshared key: written and closed here, read by `wg` as /dev/fd/N.
    let mut readers: Vec<OwnedFd> = Vec::new();
    for c in &clauses {
        if let Clause::Set {
            psk: Psk::Key(k), ..
        } = c
        {
            readers
                .push(key_pipe(k).map_err(|e| fail(format!("a pipe for a preshared key: {e}")))?);
        }
    }
    let mut args = diff::wg_set_args(&clauses, |i| format!("/dev/fd/{}", readers[i].as_raw_fd()));
    // Test-only fault (tests/apply_testbed.rs): a clause `wg` refuses, so that the real `wg`
    // fails before it sets anything, as no real fault that spares `wg syncconf` makes it.
    if std::env::var_os("WGFLEET_TEST_WG_SET_FAILS").is_some() {
        args.extend(["peer".into(), "not-a-key".into()]);
    }
    let set = wg_set(
        iface,
        &args,
        &format!("`wg set {iface}` of {} peer(s)", delta.len()),
    );
    drop(readers);
    set?;
    // `wg set` adds no routes; the set peers' AllowedIPs may need some.
    let set = WgConf {
        interface: Default::default(),
        peers: delta
            .set
            .iter()
            .filter_map(|k| Some((k.clone(), conf.peers.get(k)?.clone())))
            .collect(),
    };
    routes::add_missing(iface, &set)
}

/// Runs `wg set IFACE ARGS…`; a failure says `what` failed and what `wg` printed.
pub fn wg_set<S: AsRef<std::ffi::OsStr>>(iface: &str, args: &[S], what: &str) -> Result<()> {
    let fail = |message: String| Error::System {
        what: format!("network {iface}"),
        message,
    };
    let out = Command::new("wg")
        .arg("set")
        .arg(iface)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| fail(format!("cannot run wg: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A pipe holding `key` and a newline, its write end closed; the read end is inherited by the
/// next child (no close-on-exec), and closed here once the child has run.
fn key_pipe(key: &str) -> std::io::Result<OwnedFd> {
    let (read, write) = nix::unistd::pipe()?;
    let line = Zeroizing::new(format!("{key}\n"));
    nix::unistd::write(&write, line.as_bytes())?;
    Ok(read)
}
