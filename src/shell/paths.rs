//! The host's path layout, looked up: whether the drop-in's directory under /etc/systemd/system
//! can be written decides where the drop-in goes (`Paths::under`).

use std::path::Path;

use crate::paths::Paths;

/// The layout under `root` (`--root`; `None` for this machine).
pub fn detect(root: Option<&Path>) -> Paths {
    // The directory itself when it is there: wgfleet.service makes it and may write it alone
    // (ReadWritePaths), so that a run in the unit and one from a shell agree on the place.
    let etc = Paths::under(root, true);
    let dropins = etc.dropin();
    let probe = match dropins.parent() {
        Some(dir) if dir.exists() => dir.to_owned(),
        _ => etc.systemd,
    };
    let etc_writable =
        !probe.exists() || nix::unistd::access(&probe, nix::unistd::AccessFlags::W_OK).is_ok();
    Paths::under(root, etc_writable)
}
