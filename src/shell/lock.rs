//! One reconcile at a time: an exclusive lock held for the whole run. A second run waits.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Blocks until the lock is ours; released when the value is dropped (or the process dies).
    pub fn acquire(path: &Path) -> std::io::Result<Self> {
        let file = open(path)?;
        file.lock()?;
        Ok(RunLock { _file: file })
    }

    /// The lock if it is free now; `None` while a run holds it.
    pub fn try_acquire(path: &Path) -> std::io::Result<Option<Self>> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(RunLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// The lock file, made (0600, its directory too) when it is not there yet.
fn open(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
}
