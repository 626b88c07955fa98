//! What the `wg-quick@` drop-in runs: `reload-interface` (ExecReload: `wg syncconf` of the
//! stripped file, then the routes for new AllowedIPs) and `routes-interface` (ExecStartPost).

use std::process::{Command, Stdio};

use zeroize::Zeroizing;

use super::{read_private, routes};
use crate::error::{Error, Result};
use crate::paths::Paths;
use crate::render::MANAGED_MARKER;

/// What `systemctl reload wg-quick@IFACE` runs under wgfleet's drop-in (`wgfleet
/// reload-interface`): the file stripped in process (as `wg-quick strip` would, without its bash
/// loop over every line) and fed to `wg syncconf` through a pipe, so the private key touches no
/// other file; then, for a file wgfleet wrote, the routes for new AllowedIPs. The drop-in applies
/// to every `wg-quick@` unit: a hand-made file is reloaded exactly as the stock ExecReload
/// would (no routes: its `Table` may name another routing table).
pub fn reload_interface(paths: &Paths, iface: &str) -> Result<()> {
    use std::io::Write as _;
    let fail = |message: String| Error::System {
        what: format!("network {iface}"),
        message,
    };
    crate::fleet::syntax::check_interface(iface).map_err(fail)?;
    let path = paths.config(iface);
    let config = read_private(&path)?.ok_or_else(|| Error::Read {
        path: path.clone(),
        what: "WireGuard config",
        source: std::io::ErrorKind::NotFound.into(),
    })?;
    let stripped = Zeroizing::new(crate::wgconf::strip(&config));
    let mut child = Command::new("wg")
        .args(["syncconf", iface, "/dev/stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run wg: {e}")))?;
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stripped.as_bytes())
            .map_err(|e| fail(format!("wg syncconf: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("wg syncconf: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "`wg syncconf {iface}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    // `wg syncconf` adds no routes for new AllowedIPs; wg-quick adds them only on `up`.
    if config.starts_with(MANAGED_MARKER) {
        routes::add_missing(iface, &crate::wgconf::parse(&config))?;
    }
    Ok(())
}

/// What the drop-in's ExecStartPost runs (`wgfleet routes-interface`) once `wg-quick up` is
/// done: for a file wgfleet wrote with `Table = off`, the routes wg-quick did not add, in one
/// batch. The drop-in is on every `wg-quick@` unit, so anything else (no file, a name wgfleet
/// never writes, a hand-made file, one with wg-quick's own routing) is left to wg-quick and
/// does not fail the start; only a managed file whose routes cannot be added does (the tunnel
/// would be half up).
pub fn routes_interface(paths: &Paths, iface: &str) -> Result<()> {
    // A name the check refuses is no interface wgfleet writes (nor a path to read).
    if crate::fleet::syntax::check_interface(iface).is_err() {
        return Ok(());
    }
    let Some(config) = read_private(&paths.config(iface))? else {
        return Ok(());
    };
    match routed_by_wgfleet(&config) {
        Some(conf) => routes::add_missing(iface, &conf),
        None => Ok(()),
    }
}

/// The parsed file if wgfleet wrote it with `Table = off` (its routes are wgfleet's to add).
fn routed_by_wgfleet(config: &str) -> Option<crate::wgconf::WgConf> {
    if !config.starts_with(MANAGED_MARKER) {
        return None;
    }
    let conf = crate::wgconf::parse(config);
    let table = conf.interface.get("table").and_then(|v| v.last());
    (table.map(String::as_str) == Some(crate::wgconf::TABLE_OFF)).then_some(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The drop-in's ExecStartPost runs for every `wg-quick@` unit: one wgfleet does not manage
    /// starts as it would without it.
    #[test]
    fn routes_interface_leaves_other_units_alone() {
        let root = tempfile::tempdir().unwrap();
        let paths = crate::shell::paths::detect(Some(root.path()));
        std::fs::create_dir_all(paths.config("wg0").parent().unwrap()).unwrap();
        // No file; a name wgfleet refuses (and never writes).
        routes_interface(&paths, "wg0").unwrap();
        routes_interface(&paths, "../../etc/passwd").unwrap();
        routes_interface(&paths, "a-name-too-long-for-linux").unwrap();
        // A hand-made file, and a managed one with wg-quick's own routing: nothing to do.
        let hand = "[Interface]\nTable = off\n[Peer]\nPublicKey = A\nAllowedIPs = 10.9.0.0/24\n";
        std::fs::write(paths.config("wg0"), hand).unwrap();
        routes_interface(&paths, "wg0").unwrap();
        assert!(routed_by_wgfleet(hand).is_none());
        let managed = format!("{MANAGED_MARKER}\n{}", hand.replace("Table = off\n", ""));
        std::fs::write(paths.config("wg0"), &managed).unwrap();
        routes_interface(&paths, "wg0").unwrap();
        assert!(routed_by_wgfleet(&managed).is_none());
        // Only a managed file with `Table = off` has routes for wgfleet to add.
        let off = format!("{MANAGED_MARKER}\n{hand}");
        let conf = routed_by_wgfleet(&off).unwrap();
        assert_eq!(
            routes::wanted(&conf),
            ["10.9.0.0/24".parse::<ipnet::IpNet>().unwrap()]
        );
    }
}
