//! `secrets/recipients.txt`: who may decrypt what. A line with only a recipient is an operator
//! (decrypts every secret); `NAME RECIPIENT` is a host, which gets only the secrets it needs.
//!
//! ```text
//! # operators
//! age1p5n7d9pff49z4nfuskszu7h9jp8yrk52q2g6qp6lr7eaw4u0kuyqf6wg2s
//! # hosts: their SSH host keys (ssh-keyscan, or /etc/ssh/ssh_host_ed25519_key.pub)
//! cp ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI… root@cp
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use super::SecretError;
use super::age::parse_recipient;

#[derive(Debug, Default, Clone)]
pub struct RecipientsFile {
    pub operators: Vec<String>,
    pub hosts: BTreeMap<String, Vec<String>>,
}

impl RecipientsFile {
    pub fn read(path: &Path) -> Result<Self, SecretError> {
        let read_err = |source| SecretError::IdentityRead {
            path: path.to_owned(),
            source,
        };
        // Public keys only, but bounded all the same: at most a few hundred lines of SSH keys.
        let bytes = crate::fsutil::read_bounded(path, 16 * crate::fsutil::SMALL_FILE_LIMIT)
            .map_err(read_err)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| read_err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        Self::parse(path, text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, SecretError> {
        let mut file = RecipientsFile::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let is_recipient = |s: &str| s.starts_with("age1") || s.starts_with("ssh-");
            let (name, recipient) = match line.split_once(char::is_whitespace) {
                Some((first, rest)) if !is_recipient(first) => (Some(first), rest.trim()),
                _ => (None, line),
            };
            parse_recipient(recipient).map_err(|e| SecretError::RecipientsLine {
                path: path.to_owned(),
                line: i + 1,
                reason: e.to_string(),
            })?;
            match name {
                None => file.operators.push(recipient.to_owned()),
                Some(n) => file
                    .hosts
                    .entry(n.to_owned())
                    .or_default()
                    .push(recipient.to_owned()),
            }
        }
        Ok(file)
    }

    /// The operators and the named hosts: who may read a secret these hosts need.
    pub fn for_hosts<'a>(&'a self, hosts: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        let mut out: Vec<&str> = self.operators.iter().map(String::as_str).collect();
        for h in hosts {
            out.extend(self.hosts.get(h).into_iter().flatten().map(String::as_str));
        }
        // One stanza per recipient, even when a key is both an operator's and a host's.
        let mut seen = std::collections::HashSet::new();
        out.retain(|r| seen.insert(*r));
        out
    }
}
