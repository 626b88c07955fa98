//! age encryption and decryption: identities (age X25519 files, OpenSSH ed25519/RSA keys),
//! recipients, binary or ASCII-armored files. Never prompts: a passphrase-protected key is an
//! error, not a hang.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use zeroize::Zeroizing;

use super::SecretError;
use crate::fsutil::{SMALL_FILE_LIMIT, read_bounded};

/// SSH host keys tried when no `--identity` is given, as agenix does.
pub const DEFAULT_IDENTITIES: &[&str] =
    &["/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key"];

/// The keys a host decrypts with, and the files they came from (for error messages).
pub struct Identities {
    keys: Vec<Box<dyn age::Identity + Send + Sync>>,
    pub files: Vec<PathBuf>,
}

impl Identities {
    /// No identity: for a host with nothing to decrypt.
    pub fn none() -> Identities {
        Identities {
            keys: Vec::new(),
            files: Vec::new(),
        }
    }
}

/// The identity files a host decrypts with: `paths`, or with none given the default SSH host
/// keys that exist.
pub fn identity_paths(paths: &[PathBuf]) -> Vec<PathBuf> {
    if paths.is_empty() {
        DEFAULT_IDENTITIES
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .collect()
    } else {
        paths.to_vec()
    }
}

/// Loads `paths`; with none given, the default SSH host keys that exist.
pub fn load_identities(paths: &[PathBuf]) -> Result<Identities, SecretError> {
    let explicit = !paths.is_empty();
    let paths = identity_paths(paths);
    if paths.is_empty() && !explicit {
        return Err(SecretError::NoIdentity {
            tried: DEFAULT_IDENTITIES.join(", "),
        });
    }
    let mut ids = Identities {
        keys: Vec::new(),
        files: Vec::new(),
    };
    for path in paths {
        ids.keys.extend(load_identity_file(&path)?);
        ids.files.push(path);
    }
    Ok(ids)
}

fn load_identity_file(
    path: &Path,
) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, SecretError> {
    let text =
        read_bounded(path, SMALL_FILE_LIMIT).map_err(|source| SecretError::IdentityRead {
            path: path.to_owned(),
            source,
        })?;
    let invalid = |reason: &str| SecretError::IdentityInvalid {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if text.starts_with(b"-----BEGIN") {
        let id = age::ssh::Identity::from_buffer(&text[..], Some(path.display().to_string()))
            .map_err(|_| invalid("not an OpenSSH private key wgfleet can read"))?;
        return match id {
            age::ssh::Identity::Unencrypted(_) => Ok(vec![Box::new(id)]),
            age::ssh::Identity::Encrypted(_) => Err(SecretError::IdentityPassphrase {
                path: path.to_owned(),
            }),
            age::ssh::Identity::Unsupported(_) => Err(invalid(
                "this SSH key type is not supported (use ed25519 or RSA)",
            )),
        };
    }
    let file = age::IdentityFile::from_buffer(&text[..])
        .map_err(|_| invalid("not an age identity file or SSH private key"))?;
    let keys = file
        .into_identities()
        .map_err(|_| invalid("not an age identity file or SSH private key"))?;
    if keys.is_empty() {
        return Err(invalid("holds no key"));
    }
    Ok(keys)
}

/// The most recipient stanzas a key file may have (one per operator and host that decrypts it).
pub const MAX_STANZAS: usize = 512;

/// Decrypts one age file (binary or armored) into a zeroizing buffer.
pub fn decrypt_file(file: &Path, ids: &Identities) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    // Bounded before parsing: a key file is tiny, and the age header parser is not linear in
    // a hostile header's length.
    let sealed =
        read_bounded(file, SMALL_FILE_LIMIT).map_err(|source| SecretError::SecretRead {
            file: file.to_owned(),
            source,
        })?;
    let corrupt = |reason: String| SecretError::Corrupt {
        file: file.to_owned(),
        reason,
    };
    // De-armored first (linear), then the header's stanzas counted before age parses it: its
    // header parser is not linear in the number of stanzas (a 64 KiB header of empty stanzas
    // runs for minutes), and a key file has one stanza per recipient.
    let mut binary = Vec::with_capacity(sealed.len());
    ArmoredReader::new(&sealed[..])
        .take(SMALL_FILE_LIMIT)
        .read_to_end(&mut binary)
        .map_err(|e| corrupt(e.to_string()))?;
    let header_end = binary
        .windows(5)
        .position(|w| w == b"\n--- ")
        .unwrap_or(binary.len());
    let stanzas = binary[..header_end]
        .windows(4)
        .filter(|w| *w == b"\n-> ")
        .count();
    if stanzas > MAX_STANZAS {
        return Err(corrupt(format!(
            "{stanzas} recipient stanzas; a key file has one per recipient (at most {MAX_STANZAS})"
        )));
    }
    let decryptor =
        age::Decryptor::new_buffered(&binary[..]).map_err(|e| corrupt(e.to_string()))?;
    let mut stream = decryptor
        .decrypt(ids.keys.iter().map(|k| k.as_ref() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => SecretError::NoMatchingIdentity {
                file: file.to_owned(),
                identities: ids
                    .files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            other => corrupt(other.to_string()),
        })?;
    // Keys are tiny; a fixed capacity means the buffer is never reallocated, so no copy of the
    // plaintext is left behind un-zeroized.
    const LIMIT: usize = 4096;
    let mut plain = Zeroizing::new(Vec::with_capacity(LIMIT + 1));
    (&mut stream)
        .take(LIMIT as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|e| corrupt(e.to_string()))?;
    if plain.len() > LIMIT {
        return Err(corrupt("the plaintext is far larger than a key".into()));
    }
    Ok(plain)
}

/// Encrypts to `recipients`, ASCII-armored (diff-friendly in git).
pub fn encrypt(
    plaintext: &[u8],
    recipients: &[Box<dyn age::Recipient + Send>],
) -> Result<Vec<u8>, SecretError> {
    let err = |e: String| SecretError::Encrypt { reason: e };
    let encryptor = age::Encryptor::with_recipients(
        recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient),
    )
    .map_err(|e| err(e.to_string()))?;
    let mut out = Vec::new();
    let armored =
        ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).map_err(|e| err(e.to_string()))?;
    let mut writer = encryptor
        .wrap_output(armored)
        .map_err(|e| err(e.to_string()))?;
    writer
        .write_all(plaintext)
        .map_err(|e| err(e.to_string()))?;
    writer
        .finish()
        .and_then(|armor| armor.finish())
        .map_err(|e| err(e.to_string()))?;
    Ok(out)
}

/// Parses one recipient: `age1…`, `ssh-ed25519 …` or `ssh-rsa …`.
pub fn parse_recipient(text: &str) -> Result<Box<dyn age::Recipient + Send>, SecretError> {
    let text = text.trim();
    let bad = |reason: &str| SecretError::Recipient {
        text: text.to_owned(),
        reason: reason.to_owned(),
    };
    if text.starts_with("age1") {
        age::x25519::Recipient::from_str(text)
            .map(|r| Box::new(r) as _)
            .map_err(|_| bad("not a valid age1… key"))
    } else if text.starts_with("ssh-") {
        age::ssh::Recipient::from_str(text)
            .map(|r| Box::new(r) as _)
            .map_err(|_| bad("not a supported SSH public key (ssh-ed25519 or ssh-rsa)"))
    } else {
        Err(bad(
            "a recipient is an age1… key or an ssh-ed25519 / ssh-rsa public key",
        ))
    }
}
