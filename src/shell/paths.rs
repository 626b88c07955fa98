//! The host's path layout, looked up: whether /etc/systemd/system can be written decides where
//! the drop-in goes (`Paths::under`).

use std::path::Path;

use crate::paths::Paths;

/// The layout under `root` (`--root`; `None` for this machine).
pub fn detect(root: Option<&Path>) -> Paths {
    let etc_systemd = Paths::under(root, true).systemd;
    let etc_writable = !etc_systemd.exists()
        || nix::unistd::access(&etc_systemd, nix::unistd::AccessFlags::W_OK).is_ok();
    Paths::under(root, etc_writable)
}
