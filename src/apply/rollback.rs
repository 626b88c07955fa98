//! What undoing a failed step achieved; `crate::Error` carries it beside the failure.

use serde::Serialize;

/// What a rollback achieved (the error it followed is beside it in `Error::RolledBack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolledBack {
    Restored,
    RestoredAndRestarted,
    RemovedNew,
}

impl std::fmt::Display for RolledBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RolledBack::Restored => "the previous config was restored",
            RolledBack::RestoredAndRestarted => {
                "the previous config was restored and the tunnel is back up"
            }
            RolledBack::RemovedNew => "the new config was removed",
        })
    }
}
