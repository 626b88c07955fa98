//! Keys: public keys unique in a network, one secret per key file, and preshared keys between
//! pairs of members.

use super::*;
use crate::fleet::model::NextPsk;

/// By the pair of member names, in name order.
type PairMap<T> = BTreeMap<(String, String), T>;

/// What a key file holds, by the field that names it.
enum KeyRole<'f> {
    /// The private key of this host.
    Private(&'f str),
    Preshared,
}

/// Where a key file is named; its path is built only for a finding (a path allocates, and a
/// large fleet names a file per host).
enum KeyField<'f> {
    Host(&'f str),
    HostNext(&'f str),
    Member(&'f str, &'f str),
    Client(&'f str, &'f str),
    Pair(&'f str, usize),
    PairNext(&'f str, usize),
}

impl KeyField<'_> {
    fn path(&self) -> JsonPath {
        match *self {
            KeyField::Host(name) => JsonPath::keys(&["hosts", name, "privateKeyFile"]),
            KeyField::HostNext(name) => JsonPath::keys(&["hosts", name, "nextPrivateKeyFile"]),
            KeyField::Member(net, name) => {
                JsonPath::keys(&["networks", net, "members", name, "privateKeyFile"])
            }
            KeyField::Client(net, name) => {
                JsonPath::keys(&["networks", net, "clients", name, "presharedKeyFile"])
            }
            KeyField::Pair(net, i) => JsonPath::keys(&["networks", net, "presharedKeys"])
                .index(i)
                .key("file"),
            KeyField::PairNext(net, i) => JsonPath::keys(&["networks", net, "presharedKeys"])
                .index(i)
                .key("nextFile"),
        }
    }
}

/// One key file is one secret. The same file as a private key and a preshared key would hand a
/// host's private key to a client as its `PresharedKey` (and `rekey` would re-encrypt it to the
/// peer); as two hosts' private keys written differently (`./a.age`, `x/../a.age`), it is one key
/// on two hosts (the same spelling is `links::shared_key_files`' finding). Files are compared by
/// their lexically normalised path; an alias through a link is caught when the key is decrypted.
pub(super) fn check_key_files<'f>(fleet: &'f Fleet, d: &mut Diagnostics) {
    let mut uses: Vec<(std::borrow::Cow<'f, str>, &str, KeyRole<'f>, KeyField<'f>)> = Vec::new();
    let mut add = |file: &'f str, role, field| uses.push((normalise_ref(file), file, role, field));
    for (name, host) in &fleet.hosts {
        if let Some(file) = &host.private_key_file {
            add(file, KeyRole::Private(name), KeyField::Host(name));
        }
        if let Some(file) = &host.next_private_key_file {
            add(file, KeyRole::Private(name), KeyField::HostNext(name));
        }
    }
    for (net_name, net) in &fleet.networks {
        for (name, member) in &net.members {
            if let Some(file) = &member.private_key_file {
                add(
                    file,
                    KeyRole::Private(name),
                    KeyField::Member(net_name, name),
                );
            }
        }
        for (name, client) in &net.clients {
            if let Some(file) = &client.preshared_key_file {
                add(file, KeyRole::Preshared, KeyField::Client(net_name, name));
            }
        }
        for (i, pair) in net.preshared_keys.iter().enumerate() {
            add(&pair.file, KeyRole::Preshared, KeyField::Pair(net_name, i));
            if let Some(file) = &pair.next_file {
                add(file, KeyRole::Preshared, KeyField::PairNext(net_name, i));
            }
        }
    }
    // Hashed: only looked up (the findings follow `uses`), and a large fleet has a file per host.
    let mut owner: HashMap<&str, (&str, &str)> = HashMap::default();
    for (file, raw, role, _) in &uses {
        if let KeyRole::Private(host) = role {
            owner.entry(file.as_ref()).or_insert((host, raw));
        }
    }
    for (file, raw, role, field) in &uses {
        let Some(&(first, first_raw)) = owner.get(file.as_ref()) else {
            continue;
        };
        match role {
            KeyRole::Private(host) if *host != first && *raw != first_raw => d.error(
                &field.path(),
                format!(
                    "{file:?} is also host {first:?}'s private key file; every host needs its \
                     own key (wgfleet keygen)"
                ),
            ),
            KeyRole::Private(_) => {}
            KeyRole::Preshared => d.error(
                &field.path(),
                format!(
                    "{file:?} is host {first:?}'s private key file, not a preshared key; give \
                     the preshared key its own file (wgfleet keygen --psk)"
                ),
            ),
        }
    }
}

/// A file reference with `.` and `dir/..` folded, so that `./secrets/a.age` and
/// `secrets/x/../a.age` name the same file as `secrets/a.age`.
fn normalise_ref(file: &str) -> std::borrow::Cow<'_, str> {
    // The common case, a relative path with nothing to fold, is itself (no copy per host).
    if !file.starts_with('/') && file.split('/').all(|part| !matches!(part, "" | "." | "..")) {
        return std::borrow::Cow::Borrowed(file);
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in file.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    std::borrow::Cow::Owned(if file.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    })
}

impl NetworkCheck<'_> {
    pub(super) fn unique_keys(&mut self, model: &NetworkModel) {
        let mut seen: HashMap<&str, &str> = HashMap::default();
        // Hosts' own keys are compared under `hosts`; here only overrides and clients can clash anew.
        let host_key = |p: &Peer| {
            p.kind == PeerKind::Host
                && self
                    .fleet
                    .hosts
                    .get(&p.name)
                    .is_some_and(|h| h.public_key == p.public_key)
        };
        for peer in model.peers.values() {
            if let Some(other) = seen.insert(&peer.public_key, &peer.name)
                && !(host_key(peer) && model.peers.get(other).is_some_and(host_key))
            {
                let path = self.peer_path(peer);
                self.d.error(
                    &path,
                    format!(
                        "public key {:?} is also the key of {other:?}",
                        peer.public_key
                    ),
                );
            }
        }
    }

    /// The pairs' preshared keys, and the ones a staged rotation moves them to.
    pub(super) fn pair_psks(
        &mut self,
        net: &schema::Network,
    ) -> (PairMap<String>, PairMap<NextPsk>) {
        let mut pairs = BTreeMap::new();
        let mut next = BTreeMap::new();
        for (i, pair) in net.preshared_keys.iter().enumerate() {
            let path = self.path.key("presharedKeys").index(i);
            check_opt(
                self.d,
                &path,
                &[
                    ("file", Some(pair.file.as_str()), syntax::check_file_ref),
                    (
                        "nextFile",
                        pair.next_file.as_deref(),
                        syntax::check_file_ref,
                    ),
                ],
            );
            let staged = self.next_psk(&path, pair);
            let [a, b] = pair.peers.as_slice() else {
                self.d.error(
                    &path.key("peers"),
                    "a preshared key is between exactly two members",
                );
                continue;
            };
            for (j, name) in [a, b].into_iter().enumerate() {
                if !net.members.contains_key(name) {
                    self.d.error(
                        &path.key("peers").index(j),
                        format!("{name:?} is not a member of this network"),
                    );
                }
            }
            if a == b {
                self.d
                    .error(&path.key("peers"), "names the same member twice");
            }
            let key = crate::fleet::model::pair_key(a, b);
            if let Some(staged) = staged {
                next.insert(key.clone(), staged);
            }
            if pairs.insert(key, pair.file.clone()).is_some() {
                self.d.error(
                    &path.key("peers"),
                    format!("{a:?} and {b:?} already have a preshared key"),
                );
            }
        }
        (pairs, next)
    }

    /// A pair's staged preshared key, when `nextFile` and `switchAt` are given together.
    fn next_psk(&mut self, path: &JsonPath, pair: &schema::PresharedKeyPair) -> Option<NextPsk> {
        let (file, at) = match (&pair.next_file, &pair.switch_at) {
            (None, None) => return None,
            (Some(file), Some(at)) => (file, at),
            (given, _) => {
                let missing = if given.is_some() {
                    "switchAt"
                } else {
                    "nextFile"
                };
                self.d.error(
                    &path.key(missing),
                    "is missing: a staged preshared key needs nextFile and switchAt together \
                     (`wgfleet rekey --rotate-psk` writes both)",
                );
                return None;
            }
        };
        if normalise_ref(file) == normalise_ref(&pair.file) {
            self.d.error(
                &path.key("nextFile"),
                "is the current file: a rotation moves to a new preshared key",
            );
            return None;
        }
        let Some(switch_at) = crate::fleet::time::parse_rfc3339(at) else {
            self.d.error(
                &path.key("switchAt"),
                format!("{at:?} is not an RFC 3339 time (2026-12-07T15:00:00Z)"),
            );
            return None;
        };
        Some(NextPsk {
            file: file.clone(),
            switch_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::normalise_ref;

    #[test]
    fn normalised_references() {
        for (given, normal) in [
            ("secrets/a.age", "secrets/a.age"),
            ("./secrets/a.age", "secrets/a.age"),
            ("secrets/x/../a.age", "secrets/a.age"),
            ("secrets//a.age", "secrets/a.age"),
            ("../a.age", "../a.age"),
            ("/etc/wg/a.age", "/etc/wg/a.age"),
            ("/etc/./wg/../a.age", "/etc/a.age"),
        ] {
            assert_eq!(normalise_ref(given), normal, "{given}");
        }
    }
}
