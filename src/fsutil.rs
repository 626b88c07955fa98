//! Files that are never seen half-written and never readable by others.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

use zeroize::Zeroizing;

/// The most a key, identity or recipients file may hold: keys are tens of bytes, an RSA identity
/// a few KiB.
pub const SMALL_FILE_LIMIT: u64 = 64 * 1024;

/// Reads a small file someone else may have put there: only a regular file (a FIFO, a device
/// such as /dev/zero, or a directory is refused without blocking), and at most `limit` bytes, so
/// that nothing downstream parses an unbounded input. The buffer is zeroized on drop and never
/// reallocated, so no copy of a secret is left behind.
pub fn read_bounded(path: &Path, limit: u64) -> io::Result<Zeroizing<Vec<u8>>> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what}, not a regular file"),
        ));
    }
    let cap = usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let mut data = Zeroizing::new(Vec::with_capacity(cap));
    file.take(limit.saturating_add(1)).read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {} KiB; this is not a key file", limit / 1024),
        ));
    }
    Ok(data)
}

/// Replaces `path` with `contents` atomically: a temp file in the same directory, created with
/// `mode` from the start (never chmod-ed after the secret is in it), fsync'd, renamed over the
/// target, then the directory fsync'd so the rename itself survives a crash.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("not a file path"))?;
    let tmp = dir.join(format!(".{}.wgfleet-tmp", name.to_string_lossy()));
    // A leftover from a killed run is ours (runs are serialised): replace it.
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` (and parents) as 0700 when missing; an existing directory is left as it is.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// The directory of files holding secrets (/etc/wireguard): created 0700; an existing one is
/// tightened to 0700, and a symbolic link is refused (the keys would go wherever it points).
pub fn ensure_secret_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a symbolic link; keys are written only into a real directory",
        )),
        Ok(m) if m.is_dir() => {
            if m.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
            Ok(())
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a directory",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => ensure_private_dir(dir),
        Err(e) => Err(e),
    }
}

/// `p` with `.` dropped and `dir/..` folded, lexically (no link is followed): an absolute
/// component restarts the path.
pub fn normalize(p: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn bounded_reads_refuse_devices_fifos_and_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, b"key").unwrap();
        assert_eq!(read_bounded(&small, 16).unwrap().as_slice(), b"key");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 17]).unwrap();
        assert!(
            read_bounded(&big, 16)
                .unwrap_err()
                .to_string()
                .contains("larger")
        );
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(
            read_bounded(&fifo, 16)
                .unwrap_err()
                .to_string()
                .contains("FIFO")
        );
        let zero = read_bounded(Path::new("/dev/zero"), 16).unwrap_err();
        assert!(zero.to_string().contains("device"), "{zero}");
        assert!(read_bounded(dir.path(), 16).is_err());
    }

    #[test]
    fn secret_dirs_are_tightened_and_never_links() {
        let dir = tempfile::tempdir().unwrap();
        let wg = dir.path().join("wireguard");
        std::fs::create_dir(&wg).unwrap();
        std::fs::set_permissions(&wg, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_secret_dir(&wg).unwrap();
        assert_eq!(
            std::fs::metadata(&wg).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&wg, &link).unwrap();
        assert!(ensure_secret_dir(&link).is_err());
        ensure_secret_dir(&dir.path().join("new")).unwrap();
    }

    #[test]
    fn replaces_atomically_with_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wg0.conf");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
