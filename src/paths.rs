//! Where wgfleet reads and writes on a host: a value the shell builds (`shell::paths::detect`)
//! and passes to the pure operations, so `--root` and tests move every path at once.

use std::path::{Path, PathBuf};

/// Where wgfleet reads and writes; `--root` moves them all under a directory.
#[derive(Debug, Clone)]
pub struct Paths {
    pub wireguard: PathBuf,
    pub state: PathBuf,
    pub lock: PathBuf,
    /// Where the `wg-quick@` drop-in goes: /etc/systemd/system, or /run/systemd/system where
    /// /etc is read-only (NixOS); units are then enabled for this boot only (`runtime`), which
    /// the timer renews at every boot.
    pub systemd: PathBuf,
    pub runtime_units: bool,
    pub sysctl: PathBuf,
}

impl Paths {
    /// The layout under `root` (`/` when `None`). `etc_writable`: whether /etc/systemd/system
    /// can be written (`shell::paths::detect` looks); where it cannot (NixOS), the drop-in goes
    /// to /run and units are enabled for this boot only.
    pub fn under(root: Option<&Path>, etc_writable: bool) -> Self {
        let under =
            |p: &str| root.map_or_else(|| PathBuf::from(p), |r| r.join(p.trim_start_matches('/')));
        Paths {
            wireguard: under("/etc/wireguard"),
            state: under("/var/lib/wgfleet"),
            lock: under("/run/wgfleet.lock"),
            systemd: under(if etc_writable {
                "/etc/systemd/system"
            } else {
                "/run/systemd/system"
            }),
            runtime_units: !etc_writable,
            sysctl: under("/etc/sysctl.d"),
        }
    }

    /// The chains to restore at boot, as `iptables-restore` input.
    pub fn rules(&self, family: crate::firewall::Family) -> PathBuf {
        self.wireguard
            .join(format!("wgfleet.{}.rules", family.cmd()))
    }

    pub fn dropin(&self) -> PathBuf {
        self.systemd
            .join("wg-quick@.service.d/wgfleet-firewall.conf")
    }

    pub fn sysctl_conf(&self) -> PathBuf {
        self.sysctl.join("90-wgfleet.conf")
    }

    pub fn config(&self, iface: &str) -> PathBuf {
        self.wireguard.join(format!("{iface}.conf"))
    }

    /// The previous config, kept for rollback and for the operator.
    pub fn previous(&self, iface: &str) -> PathBuf {
        self.wireguard
            .join(format!("{iface}.conf.wgfleet-previous"))
    }
}
