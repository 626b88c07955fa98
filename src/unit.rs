//! The systemd facts a plan names: the unit that drives an interface, the kinds of job apply
//! asks for, and how systemd can fail them. Values only; `shell::systemd` talks to systemd.

/// The unit driving interface `iface`.
pub fn unit_name(iface: &str) -> String {
    format!("wg-quick@{iface}.service")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Job {
    Start,
    Stop,
    Reload,
    Restart,
}

impl Job {
    pub(crate) fn verb(self) -> &'static str {
        match self {
            Job::Start => "starting",
            Job::Stop => "stopping",
            Job::Reload => "reloading",
            Job::Restart => "restarting",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("cannot reach systemd on the system bus: {0}")]
    Connect(String),
    #[error("systemd refused {what} {unit}: {message}")]
    Call {
        what: &'static str,
        unit: String,
        message: String,
    },
    #[error("{what} {unit} finished with result {result:?}; see `journalctl -u {unit}`")]
    JobFailed {
        what: &'static str,
        unit: String,
        result: String,
    },
    #[error("{what} {unit} did not finish within {secs} s")]
    Timeout {
        what: &'static str,
        unit: String,
        secs: u64,
    },
}
