//! Secrets: age-encrypted private and preshared keys, decrypted only on the host that needs
//! them, held in zeroizing buffers, and never written, logged or printed in plain text.

pub mod age;
pub mod keys;
pub mod local;
pub mod recipients;

use crate::render::{private_key_placeholder, secret_placeholder};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::fleet::Loaded;
use crate::plan::InterfacePlan;
use keys::SecretKey;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read identity {path}: {source}")]
    IdentityRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "identity {path} is passphrase-protected; wgfleet never prompts, so use an unencrypted \
         host key or an age identity file"
    )]
    IdentityPassphrase { path: PathBuf },
    #[error("identity {path}: {reason}")]
    IdentityInvalid { path: PathBuf, reason: String },
    #[error("no identity to decrypt with: none of {tried} exists; pass --identity PATH")]
    NoIdentity { tried: String },
    #[error("cannot read {file}: {source}")]
    SecretRead {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file} is not a readable age file: {reason}")]
    Corrupt { file: PathBuf, reason: String },
    #[error("{file} is not encrypted to any of the identities tried ({identities})")]
    NoMatchingIdentity { file: PathBuf, identities: String },
    #[error("{file} decrypts, but not to a WireGuard key (32 bytes of base64)")]
    NotAKey { file: PathBuf },
    #[error(
        "the private key in {file} belongs to public key {derived}, but the fleet declares \
         {declared}; nothing was changed"
    )]
    KeyMismatch {
        file: PathBuf,
        declared: String,
        derived: String,
    },
    #[error(
        "{file} holds the private key of host {host} (public key {public}), not a preshared \
         key; nothing was written"
    )]
    PrivateKeyAsPreshared {
        file: PathBuf,
        host: String,
        public: String,
    },
    #[error("no privateKeyFile is declared for this host")]
    NoKeyFile,
    #[error(
        "the fleet says this host keeps its key (keyOnHost), but {file} is not here: run \
         `wgfleet join` on this host (or declare its privateKeyFile) for public key {public}"
    )]
    NoLocalKey { file: PathBuf, public: String },
    #[error("{file}: the host's own private key must be a plain file only root can read (0600)")]
    LocalKeyExposed { file: PathBuf },
    #[error("recipient {text:?}: {reason}")]
    Recipient { text: String, reason: String },
    #[error("{path}:{line}: {reason}")]
    RecipientsLine {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("encrypting: {reason}")]
    Encrypt { reason: String },
}

/// Why the secrets a plan needs could not be loaded; `crate::Error` takes each as it is, so
/// this module does not depend on the crate's error type (which holds `SecretError`).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A key needs an identity to decrypt and none was given: the caller's mistake.
    #[error("{0}")]
    Usage(String),
    /// A key could not be decrypted or checked; `context` names the host or client and network.
    #[error("{context}: {source}")]
    Secret {
        context: String,
        source: SecretError,
    },
}

/// The decrypted secrets of one host, ready to be put into its configs.
#[derive(Debug, Default)]
pub struct HostSecrets {
    /// By the placeholder `render` wrote for them.
    by_placeholder: BTreeMap<String, SecretKey>,
}

impl HostSecrets {
    /// `config` with every placeholder replaced by its key, in a zeroizing buffer.
    pub fn fill(&self, config: &str) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(
            config.len() + 64 * self.by_placeholder.len(),
        ));
        for line in config.split_inclusive('\n') {
            let (body, newline) = line.strip_suffix('\n').map_or((line, ""), |b| (b, "\n"));
            // Only the two key lines take a secret; a comment holding placeholder-like text
            // stays as it is.
            let secret = body
                .split_once(" = ")
                .filter(|(k, _)| matches!(*k, "PrivateKey" | "PresharedKey"))
                .and_then(|(k, v)| Some((k, self.by_placeholder.get(v)?)));
            match secret {
                Some((key, secret)) => {
                    out.push_str(key);
                    out.push_str(" = ");
                    out.push_str(&secret.to_base64());
                }
                None => out.push_str(body),
            }
            out.push_str(newline);
        }
        out
    }

    pub fn len(&self) -> usize {
        self.by_placeholder.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_placeholder.is_empty()
    }
}

impl HostSecrets {
    /// Adds a key under the placeholder that stands for it.
    pub fn insert(&mut self, placeholder: String, key: SecretKey) {
        self.by_placeholder.insert(placeholder, key);
    }
}

/// Decrypts a client's preshared key (if it has one) for its own config.
pub fn load_client_secrets(
    loaded: &Loaded,
    plan: &crate::plan::ClientPlan,
    ids: Option<&age::Identities>,
) -> Result<HostSecrets, LoadError> {
    let mut secrets = HostSecrets::default();
    if let Some(file) = &plan.preshared_key_file {
        let context = format!("client {}, network {}", plan.client, plan.network);
        let ids = ids.ok_or_else(|| {
            LoadError::Usage(format!(
                "{context}: its preshared key {file} needs --identity to decrypt"
            ))
        })?;
        let key = decrypt_preshared(loaded, file, ids)
            .map_err(|source| LoadError::Secret { context, source })?;
        secrets.insert(secret_placeholder(Some(file), "preshared key"), key);
    }
    Ok(secrets)
}

/// Decrypts every secret `plans` need (a kept key is read from `local_keys`) and checks each
/// private key against its declared public key. Fails before anything on the system is
/// touched; errors name the host and the file.
pub fn load_host_secrets(
    loaded: &Loaded,
    plans: &[InterfacePlan],
    ids: &age::Identities,
    local_keys: &Path,
) -> Result<HostSecrets, LoadError> {
    let mut secrets = HostSecrets::default();
    for plan in plans {
        let context = || format!("host {}, network {}", plan.host, plan.network);
        let wrap = |source| LoadError::Secret {
            context: context(),
            source,
        };
        let key = match (&plan.private_key_file, plan.key_on_host) {
            (Some(file), _) => {
                let key = decrypt_key(loaded, file, ids).map_err(wrap)?;
                let derived = key.public_key();
                if derived != plan.public_key {
                    return Err(wrap(SecretError::KeyMismatch {
                        file: loaded.resolve(file),
                        declared: plan.public_key.clone(),
                        derived,
                    }));
                }
                key
            }
            (None, true) => local::read(local_keys, &plan.public_key).map_err(wrap)?,
            (None, false) => return Err(wrap(SecretError::NoKeyFile)),
        };
        secrets
            .by_placeholder
            .insert(private_key_placeholder(plan), key);
        for peer in &plan.peers {
            if let Some(psk_file) = &peer.preshared_key_file {
                let placeholder = secret_placeholder(Some(psk_file), "preshared key");
                if let Entry::Vacant(slot) = secrets.by_placeholder.entry(placeholder) {
                    let psk = decrypt_preshared(loaded, psk_file, ids).map_err(|source| {
                        LoadError::Secret {
                            context: format!("{}, preshared key for peer {}", context(), peer.name),
                            source,
                        }
                    })?;
                    slot.insert(psk);
                }
            }
        }
    }
    Ok(secrets)
}

/// Whether a plan's own next key (`nextPrivateKeyFile`) decrypts here and matches
/// `nextPublicKey`: a host switches to it only then.
pub fn next_key_usable(
    loaded: &Loaded,
    plan: &InterfacePlan,
    ids: &age::Identities,
    local_keys: &Path,
) -> Result<(), SecretError> {
    let Some(next) = &plan.rotation else {
        return Ok(());
    };
    let Some(file) = &next.next_private_key_file else {
        return local::read(local_keys, &next.next_public_key).map(drop);
    };
    let key = decrypt_key(loaded, file, ids)?;
    let derived = key.public_key();
    if derived != next.next_public_key {
        return Err(SecretError::KeyMismatch {
            file: loaded.resolve(file),
            declared: next.next_public_key.clone(),
            derived,
        });
    }
    Ok(())
}

fn decrypt_key(
    loaded: &Loaded,
    file: &str,
    ids: &age::Identities,
) -> Result<SecretKey, SecretError> {
    let path = loaded.resolve(file);
    let plain = age::decrypt_file(&path, ids)?;
    SecretKey::from_base64(&plain).ok_or(SecretError::NotAKey { file: path })
}

/// Decrypts a preshared key, refusing one that is some host's private key: a key file reached
/// through a link or a copy is not caught by `validate`, but its public key gives it away.
fn decrypt_preshared(
    loaded: &Loaded,
    file: &str,
    ids: &age::Identities,
) -> Result<SecretKey, SecretError> {
    let key = decrypt_key(loaded, file, ids)?;
    let public = key.public_key();
    if let Some(host) = owner_of_public_key(&loaded.fleet, &public) {
        return Err(SecretError::PrivateKeyAsPreshared {
            file: loaded.resolve(file),
            host,
            public,
        });
    }
    Ok(key)
}

/// The host that declares `public` as its key (fleet-wide or in one network).
pub fn owner_of_public_key(fleet: &crate::fleet::Fleet, public: &str) -> Option<String> {
    let by_host = fleet
        .hosts
        .iter()
        .find(|(_, h)| h.public_key == public)
        .map(|(name, _)| name.clone());
    by_host.or_else(|| {
        fleet.networks.values().find_map(|net| {
            net.members
                .iter()
                .find(|(_, m)| m.public_key.as_deref() == Some(public))
                .map(|(name, _)| name.clone())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_exactly_the_placeholders() {
        let key = SecretKey::from_base64(b"yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=").unwrap();
        let psk = SecretKey::from_base64(b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        let mut secrets = HostSecrets::default();
        secrets
            .by_placeholder
            .insert("<private key from k.age>".into(), key);
        secrets
            .by_placeholder
            .insert("<preshared key from p.age>".into(), psk);
        let config = "[Interface]\nPrivateKey = <private key from k.age>\n# PrivateKey = <private key from k.age>\n[Peer]\nPresharedKey = <preshared key from p.age>\nAllowedIPs = 10.0.0.2/32";
        let filled = secrets.fill(config);
        assert_eq!(
            filled.as_str(),
            "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n# PrivateKey = <private key from k.age>\n[Peer]\nPresharedKey = AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nAllowedIPs = 10.0.0.2/32"
        );
    }
}
