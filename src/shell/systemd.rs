//! `wg-quick@IFACE` through systemd's D-Bus API (org.freedesktop.systemd1), never `systemctl`.
//! Every job is waited for: subscribe to JobRemoved before the call, match the job path, check
//! the result, and give up after a timeout with a clear error.

use std::sync::mpsc;
use std::time::Duration;

use futures_util::StreamExt as _;
use zbus::{Connection, OwnedObjectPath, proxy};

use crate::diff::UnitState;
use crate::unit::{Job, SystemdError};

#[proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait Manager {
    fn subscribe(&self) -> zbus::Result<()>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn reload_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn get_unit_file_state(&self, file: &str) -> zbus::Result<String>;
    fn enable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
        force: bool,
    ) -> zbus::Result<(bool, Vec<(String, String, String)>)>;
    fn disable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
    ) -> zbus::Result<Vec<(String, String, String)>>;
    fn reload(&self) -> zbus::Result<()>;
    fn start_transient_unit(
        &self,
        name: &str,
        mode: &str,
        properties: &[(&str, zbus::Variant<'_>)],
        aux: &[(&str, &[(&str, zbus::Variant<'_>)])],
    ) -> zbus::Result<OwnedObjectPath>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

#[proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1"
)]
trait Unit {
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
}

/// CAP_NET_ADMIN (12) and CAP_NET_RAW (13): what wgfleet.service keeps.
const NET_CAPABILITIES: u64 = (1 << 12) | (1 << 13);

/// How long one job may take: wg-quick resolves endpoints, which can take a while.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(90);

/// How long connecting to the bus, or one method call, may take: a wedged bus (a socket that
/// accepts and never answers) is an error, not a hang.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// The error of a D-Bus call about `unit` that systemd refused (or that did not get through).
fn refused<'a>(
    what: &'static str,
    unit: &'a str,
) -> impl Fn(zbus::Error) -> SystemdError + Copy + 'a {
    move |e| SystemdError::Call {
        what,
        unit: unit.to_owned(),
        message: e.to_string(),
    }
}

/// A connection to the system manager.
#[derive(Clone)]
pub struct Systemd {
    conn: Connection,
}

impl Systemd {
    /// Connects and subscribes (once per connection) so that systemd sends job signals.
    pub fn connect() -> Result<Self, SystemdError> {
        // The authentication handshake has no timeout of its own: it runs on a thread, waited
        // for with a deadline. Every method call on the connection then has `CALL_TIMEOUT`.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(zbus::block_on(async {
                let conn = zbus::connection::Builder::system()
                    .method_timeout(CALL_TIMEOUT)
                    .build()
                    .await?;
                ManagerProxy::new(&conn).await?.subscribe().await?;
                Ok(Systemd { conn })
            }));
        });
        match rx.recv_timeout(CALL_TIMEOUT) {
            Ok(result) => result.map_err(|e: zbus::Error| SystemdError::Connect(e.to_string())),
            Err(_) => Err(SystemdError::Connect(format!(
                "no answer within {} s (is the bus at {} wedged?)",
                CALL_TIMEOUT.as_secs(),
                std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
                    .unwrap_or_else(|_| "/run/dbus/system_bus_socket".into())
            ))),
        }
    }

    async fn manager(&self) -> zbus::Result<ManagerProxy<'static>> {
        ManagerProxy::new(&self.conn).await
    }

    /// ActiveState and whether the unit file is enabled.
    pub fn state(&self, unit: &str) -> Result<UnitState, SystemdError> {
        let call = refused("reading the state of", unit);
        zbus::block_on(async {
            let manager = self.manager().await?;
            let path = manager.load_unit(unit).await?;
            let active_state = UnitProxy::builder(&self.conn)
                .path(path)
                .build()
                .await?
                .active_state()
                .await?;
            // An instance whose template is not enabled has no state of its own: "disabled".
            let file_state = manager
                .get_unit_file_state(unit)
                .await
                .unwrap_or_else(|_| "disabled".into());
            Ok(UnitState {
                active_state,
                enabled: matches!(file_state.as_str(), "enabled" | "enabled-runtime"),
            })
        })
        .map_err(call)
    }

    /// Starts `argv` as a transient service `unit` (not waited for), confined as
    /// wgfleet.service is: it stops by itself, or after `RuntimeMaxSec`, and leaves nothing
    /// behind when it ends, failed or not. `Duration::MAX`: no `RuntimeMaxSec`.
    pub fn start_transient(
        &self,
        unit: &str,
        description: &str,
        exe: &str,
        argv: Vec<String>,
        environment: Vec<String>,
        runtime_max: Duration,
    ) -> Result<(), SystemdError> {
        use zbus::Variant as Value;
        let call = refused("starting", unit);
        // u64::MAX is systemd's "infinity".
        let runtime_max = u64::try_from(runtime_max.as_micros()).unwrap_or(u64::MAX);
        zbus::block_on(async {
            let properties = [
                ("Description", Value::from(description)),
                (
                    "ExecStart",
                    Value::from(vec![(exe.to_owned(), argv, false)]),
                ),
                ("Environment", Value::from(environment)),
                ("RuntimeMaxUSec", Value::from(runtime_max)),
                // As wgfleet.service: it writes its state, the lock and (through the apply a
                // preshared key's switch runs) the interfaces' files, talks to WireGuard
                // (netlink, or wireguard-go's socket under /run), and needs nothing else.
                ("ProtectSystem", Value::from("strict")),
                (
                    "ReadWritePaths",
                    Value::from(vec![
                        "-/etc/wireguard",
                        "/var/lib/wgfleet",
                        "/run",
                        "-/etc/sysctl.d",
                    ]),
                ),
                ("ProtectHome", Value::from("yes")),
                ("PrivateTmp", Value::from(true)),
                ("NoNewPrivileges", Value::from(true)),
                ("CapabilityBoundingSet", Value::from(NET_CAPABILITIES)),
                ("CollectMode", Value::from("inactive-or-failed")),
            ];
            self.manager()
                .await?
                .start_transient_unit(unit, "fail", &properties, &[])
                .await
                .map(drop)
        })
        .map_err(call)
    }

    /// Runs one job and waits for it to finish successfully.
    pub fn run(&self, job: Job, unit: &str) -> Result<(), SystemdError> {
        let (tx, rx) = mpsc::channel();
        let this = self.clone();
        let unit_owned = unit.to_owned();
        // zbus is async-only; the job runs on its own thread so that the wait has a deadline.
        std::thread::spawn(move || {
            let _ = tx.send(zbus::block_on(this.run_job(job, &unit_owned)));
        });
        match rx.recv_timeout(JOB_TIMEOUT) {
            Ok(result) => result,
            Err(_) => Err(SystemdError::Timeout {
                what: job.verb(),
                unit: unit.to_owned(),
                secs: JOB_TIMEOUT.as_secs(),
            }),
        }
    }

    async fn run_job(&self, job: Job, unit: &str) -> Result<(), SystemdError> {
        let call = refused(job.verb(), unit);
        let manager = self.manager().await.map_err(call)?;
        // Subscribe to JobRemoved before submitting, or a fast job could finish unseen.
        let mut removed = manager.receive_job_removed().await.map_err(call)?;
        if matches!(job, Job::Start | Job::Restart) {
            // A failed unit keeps its failure counter; start it from a clean slate.
            let _ = manager.reset_failed_unit(unit).await;
        }
        let path = match job {
            Job::Start => manager.start_unit(unit, "replace").await,
            Job::Stop => manager.stop_unit(unit, "replace").await,
            Job::Reload => manager.reload_unit(unit, "replace").await,
            Job::Restart => manager.restart_unit(unit, "replace").await,
        }
        .map_err(call)?;
        while let Some(signal) = removed.next().await {
            let Ok(args) = signal.args() else { continue };
            if args.job == path {
                return match args.result.as_str() {
                    "done" => Ok(()),
                    other => Err(SystemdError::JobFailed {
                        what: job.verb(),
                        unit: unit.to_owned(),
                        result: other.to_owned(),
                    }),
                };
            }
        }
        Err(SystemdError::JobFailed {
            what: job.verb(),
            unit: unit.to_owned(),
            result: "signal stream ended".into(),
        })
    }

    /// Enables the unit for boot (the `multi-user.target.wants` symlink) and reloads systemd.
    pub fn enable(&self, unit: &str, runtime: bool) -> Result<(), SystemdError> {
        let call = refused("enabling", unit);
        zbus::block_on(async {
            let manager = self.manager().await?;
            let (_, changes) = manager.enable_unit_files(&[unit], runtime, false).await?;
            if !changes.is_empty() {
                manager.reload().await?;
            }
            Ok(())
        })
        .map_err(call)
    }

    /// `daemon-reload`: systemd rereads unit files and drop-ins.
    pub fn daemon_reload(&self) -> Result<(), SystemdError> {
        zbus::block_on(async { self.manager().await?.reload().await })
            .map_err(refused("reloading", "the systemd manager"))
    }

    pub fn disable(&self, unit: &str) -> Result<(), SystemdError> {
        let call = refused("disabling", unit);
        zbus::block_on(async {
            let manager = self.manager().await?;
            let mut changed = !manager.disable_unit_files(&[unit], false).await?.is_empty();
            changed |= !manager.disable_unit_files(&[unit], true).await?.is_empty();
            if changed {
                manager.reload().await?;
            }
            Ok(())
        })
        .map_err(call)
    }
}
