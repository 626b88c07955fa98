//! Private keys kept on the host itself (`keyOnHost`): generated there by `wgfleet join`, one
//! file per public key under `STATE_DIR/keys/` (0700, files 0600), never encrypted, copied or
//! printed. Named by public key, so a second key (a rotation) sits beside the first.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::SecretError;
use super::keys::SecretKey;
use crate::fsutil::{SMALL_FILE_LIMIT, ensure_secret_dir, read_bounded};

/// The directory of a host's own keys.
pub fn store(state_dir: &Path) -> PathBuf {
    state_dir.join("keys")
}

/// The file of the private key whose public key is `public` (base64 made file-name safe).
pub fn path_for(store: &Path, public: &str) -> PathBuf {
    let name: String = public
        .chars()
        .map(|c| match c {
            '/' => '_',
            '+' => '-',
            c => c,
        })
        .collect();
    store.join(format!("{}.key", name.trim_end_matches('=')))
}

/// Generates a private key into `store` (0600, created exclusively) and returns its public key.
pub fn generate(store: &Path) -> std::io::Result<String> {
    ensure_secret_dir(store)?;
    let key = SecretKey::generate_private();
    let public = key.public_key();
    let path = path_for(store, &public);
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    let text = key.to_base64();
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(public)
}

/// The kept private key of `public`, checked: present, readable by root alone, a key, and the
/// key of `public`.
pub fn read(store: &Path, public: &str) -> Result<SecretKey, SecretError> {
    let file = path_for(store, public);
    let meta = match std::fs::symlink_metadata(&file) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SecretError::NoLocalKey {
                file,
                public: public.to_owned(),
            });
        }
        Err(source) => return Err(SecretError::SecretRead { file, source }),
    };
    if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
        return Err(SecretError::LocalKeyExposed { file });
    }
    let text = read_bounded(&file, SMALL_FILE_LIMIT).map_err(|source| SecretError::SecretRead {
        file: file.clone(),
        source,
    })?;
    let key = SecretKey::from_base64(&text).ok_or(SecretError::NotAKey { file: file.clone() })?;
    let derived = key.public_key();
    if derived != public {
        return Err(SecretError::KeyMismatch {
            file,
            declared: public.to_owned(),
            derived,
        });
    }
    Ok(key)
}

/// What says the kept key of `public` changed (for the desired-state record), without its
/// contents: absent, or the file's identity and times.
pub fn fingerprint(store: &Path, public: &str) -> String {
    match std::fs::symlink_metadata(path_for(store, public)) {
        Ok(m) => format!(
            "{}:{}:{}:{}:{:o}",
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.mode()
        ),
        Err(_) => "absent".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_reads_back_private_and_checked() {
        let dir = std::env::temp_dir().join(format!("wgfleet-local-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let public = generate(&dir).unwrap();
        let path = path_for(&dir, &public);
        assert!(!path.file_name().unwrap().to_string_lossy().contains('/'));
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(read(&dir, &public).unwrap().public_key(), public);

        let other = SecretKey::generate_private().public_key();
        assert!(matches!(
            read(&dir, &other),
            Err(SecretError::NoLocalKey { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read(&dir, &public),
            Err(SecretError::LocalKeyExposed { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
