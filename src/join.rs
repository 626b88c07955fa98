//! What `wgfleet join` left on a host: the fleet name it joined as and the public key of the
//! key it keeps (`STATE_DIR/joined.json`, 0600). Later runs take the name from it, so a host
//! whose hostname differs from its fleet name needs no `--host`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Joined {
    pub host: String,
    pub public_key: String,
}

fn file(state_dir: &Path) -> PathBuf {
    state_dir.join("joined.json")
}

/// The record, if this host joined; an unreadable one counts as none (join writes it anew).
pub fn load(state_dir: &Path) -> Option<Joined> {
    let bytes =
        crate::fsutil::read_bounded(&file(state_dir), crate::fsutil::SMALL_FILE_LIMIT).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub fn save(state_dir: &Path, joined: &Joined) -> std::io::Result<PathBuf> {
    crate::fsutil::ensure_private_dir(state_dir)?;
    let path = file(state_dir);
    let mut text = serde_json::to_vec_pretty(joined).map_err(std::io::Error::other)?;
    text.push(b'\n');
    crate::fsutil::write_atomic(&path, &text, 0o600)?;
    Ok(path)
}
