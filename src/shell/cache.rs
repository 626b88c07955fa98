//! The last full run's desired state, reused while nothing it was computed from has changed.
//!
//! Loading, validating, planning, decrypting and rendering the fleet is most of a run that
//! finds nothing to do: about 0.9 s of CPU at 100,000 peers, on every host at every timer run
//! (issue 15). It is a function of the fleet file's bytes, the age files the plans name, the
//! identity files that decrypt them, the host, this binary and the time (clients expire). When
//! a full run finds nothing to do, apply records the result beside a digest of those inputs; a
//! later run takes it while
//! - the digest is the same;
//! - the time is inside the window in which no client expires or enters its expiry warning, and
//!   within an hour of the full run (a bound on anything time-dependent missed here);
//! - each interface's file on disk is the one the recorded state rendered. The file is where
//!   the secrets are: the cache holds none of them, only the file's SHA-256.
//!
//! Everything after (observing the host, the diff, acting) runs as always, so drift is found and
//! healed the same way. `.nix` fleets are not cached: what they import is not one file.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::desired::Desired;
use super::read_private;
use crate::fleet::ValidFleet;
use crate::fleet::load::resolve_beside;
use crate::fsutil::{SMALL_FILE_LIMIT, ensure_private_dir, read_bounded, write_atomic};
use crate::paths::Paths;
use crate::plan::InterfacePlan;

pub const FILE_NAME: &str = "desired-state.json";
/// Bumped whenever what is recorded, or how the inputs are hashed, changes.
const FORMAT: u32 = 1;
/// The longest a recorded state is used without a full run.
pub const MAX_AGE_SECS: i64 = 3600;

/// The digest of a run's inputs, but the age files (which the plans name: they are hashed once
/// the plans are known).
pub struct Key {
    inputs: String,
    fleet: PathBuf,
}

impl Key {
    /// The key of the fleet file `fleet` holding `text`; `None` for a fleet that is not JSON,
    /// or an identity that cannot be read (the full run then says why).
    pub fn compute(fleet: &Path, text: &[u8], host: &str, identities: &[PathBuf]) -> Option<Key> {
        if fleet.extension().and_then(|e| e.to_str()) != Some("json") {
            return None;
        }
        let mut h = Sha256::new();
        field(
            &mut h,
            Some(format!("wgfleet desired state {FORMAT}").as_bytes()),
        );
        field(&mut h, Some(exe_identity()?.as_bytes()));
        field(&mut h, Some(host.as_bytes()));
        field(&mut h, Some(fleet.as_os_str().as_bytes()));
        field(&mut h, Some(text));
        for id in identities {
            field(&mut h, Some(id.as_os_str().as_bytes()));
            field(&mut h, Some(&read_bounded(id, SMALL_FILE_LIMIT).ok()?));
        }
        Some(Key {
            inputs: hex(&h.finalize()),
            fleet: fleet.to_owned(),
        })
    }
}

/// One length-prefixed field, so that no two different inputs hash alike; `None`: missing.
fn field(h: &mut Sha256, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        }
        None => h.update(u64::MAX.to_le_bytes()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// This binary as the file it was started from: another build is another function.
fn exe_identity() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(std::env::current_exe().ok()?).ok()?;
    Some(format!(
        "{}:{}:{}:{}.{}:{}.{}",
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    ))
}

/// The age files the plans name (private keys, preshared keys), each with its bytes. Taken
/// before they are decrypted: a file changed in between is then a miss at the next run.
pub fn secrets_digest<'p>(
    fleet: &Path,
    local_keys: &Path,
    plans: impl Iterator<Item = &'p InterfacePlan>,
) -> String {
    let mut files = BTreeSet::new();
    let mut kept = BTreeSet::new();
    for plan in plans {
        if plan.key_on_host {
            kept.insert(crate::secrets::local::fingerprint(
                local_keys,
                &plan.public_key,
            ));
        }
        files.extend(plan.private_key_file.as_deref());
        files.extend(
            plan.peers
                .iter()
                .filter_map(|p| p.preshared_key_file.as_deref()),
        );
    }
    let mut h = Sha256::new();
    for file in files {
        field(&mut h, Some(file.as_bytes()));
        field(
            &mut h,
            std::fs::read(resolve_beside(fleet, file)).ok().as_deref(),
        );
    }
    for fingerprint in kept {
        field(&mut h, Some(fingerprint.as_bytes()));
    }
    hex(&h.finalize())
}

/// When the recorded state stops holding: the first time after `now` at which a client of the
/// fleet expires or enters its expiry warning (`warn_secs` before), at most `MAX_AGE_SECS` on.
pub fn valid_until(fleet: &ValidFleet, now: i64, warn_secs: i64) -> i64 {
    fleet
        .networks
        .values()
        .flat_map(|net| net.peers.values())
        .filter_map(|p| p.expires)
        .flat_map(|t| [t.saturating_sub(warn_secs), t])
        .filter(|&t| t > now)
        .fold(now.saturating_add(MAX_AGE_SECS), i64::min)
}

/// The first line of the file: read alone, so that a stale record costs no parse of the rest.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    format: u32,
    inputs: String,
    secrets: String,
    computed_at: i64,
    valid_until: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    /// The fleet's digest, as the audit log records it.
    digest: String,
    /// The validation warnings the full run printed, printed again.
    warnings: Vec<String>,
    interfaces: Vec<Interface>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Interface {
    plan: InterfacePlan,
    config_sha256: String,
    names: BTreeMap<String, String>,
    owners: BTreeMap<String, Option<String>>,
    hub: bool,
}

/// A recorded state that holds.
pub struct Hit {
    pub desired: Vec<Desired>,
    pub digest: String,
    pub warnings: Vec<String>,
}

/// The recorded state, if it holds for `key` at `now` and the files on disk are its own.
pub fn lookup(paths: &Paths, key: &Key, now: i64) -> Option<Hit> {
    let text = std::fs::read_to_string(paths.state.join(FILE_NAME)).ok()?;
    let (head, body) = text.split_once('\n')?;
    let head: Head = serde_json::from_str(head).ok()?;
    let fresh = head.computed_at <= now && now < head.valid_until;
    if head.format != FORMAT || head.inputs != key.inputs || !fresh {
        return None;
    }
    let body: Body = serde_json::from_str(body).ok()?;
    let local_keys = crate::secrets::local::store(&paths.state);
    let plans = body.interfaces.iter().map(|i| &i.plan);
    if secrets_digest(&key.fleet, &local_keys, plans) != head.secrets {
        return None;
    }
    let mut desired = Vec::with_capacity(body.interfaces.len());
    for i in body.interfaces {
        let config = read_private(&paths.config(&i.plan.network)).ok()??;
        if sha256_hex(config.as_bytes()) != i.config_sha256 {
            return None;
        }
        let mut plan = i.plan;
        for peer in &mut plan.peers {
            // `endpoints` is written only when it holds more than `endpoint`.
            if peer.endpoints.is_empty() {
                peer.endpoints.extend(peer.endpoint.clone());
            }
        }
        desired.push(Desired {
            plan,
            config,
            names: i.names,
            owners: i.owners,
            hub: i.hub,
        });
    }
    Some(Hit {
        desired,
        digest: body.digest,
        warnings: body.warnings,
    })
}

/// What a full run computed, to be recorded once apply has acted.
pub struct Fresh {
    /// Of the fleet's text as loaded.
    pub key: Key,
    /// `secrets_digest` of the plans, before decrypting.
    pub secrets: String,
    pub computed_at: i64,
    pub valid_until: i64,
    pub warnings: Vec<String>,
}

impl Fresh {
    /// Records `desired` (0600, atomically; no secret in it).
    pub fn store(&self, paths: &Paths, desired: &[Desired], digest: &str) -> std::io::Result<()> {
        let head = Head {
            format: FORMAT,
            inputs: self.key.inputs.clone(),
            secrets: self.secrets.clone(),
            computed_at: self.computed_at,
            valid_until: self.valid_until,
        };
        let body = Body {
            digest: digest.to_owned(),
            warnings: self.warnings.clone(),
            interfaces: desired
                .iter()
                .map(|d| Interface {
                    plan: d.plan.clone(),
                    config_sha256: sha256_hex(d.config.as_bytes()),
                    names: d.names.clone(),
                    owners: d.owners.clone(),
                    hub: d.hub,
                })
                .collect(),
        };
        let mut text = serde_json::to_string(&head)?;
        text.push('\n');
        text.push_str(&serde_json::to_string(&body)?);
        ensure_private_dir(&paths.state)?;
        write_atomic(&paths.state.join(FILE_NAME), text.as_bytes(), 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::validate::{Options, validate};
    use crate::secrets::HostSecrets;

    const HUB: &str = "j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=";
    const SPOKE: &str = "um/TOLbxUvqJwIOGdbFPn9uBh/Es4shlVXFlWyEYvng=";
    const PHONE: &str = "cOW07yOnwkL6IrWiXjj2ZtKizAAu+k9RWgxFiIvoJwU=";
    const DAY: i64 = 86_400;

    fn fleet_json(phone_expires: &str) -> String {
        serde_json::json!({
            "version": 1,
            "hosts": {
                "hub": {"publicKey": HUB, "privateKeyFile": "hub.age", "endpoint": "hub.example.org"},
                "spoke": {"publicKey": SPOKE, "privateKeyFile": "spoke.age"}},
            "networks": {"wg0": {
                "subnet": "10.9.0.0/24",
                "topology": {"hubAndSpoke": {"hubs": ["hub"]}},
                "members": {"hub": {"id": 1}, "spoke": {"id": 2}},
                "clients": {"phone": {"publicKey": PHONE, "id": 3, "expires": phone_expires,
                                      "presharedKeyFile": "phone.psk.age"}}}}
        })
        .to_string()
    }

    struct Bed {
        _dir: tempfile::TempDir,
        fleet: PathBuf,
        identity: PathBuf,
        paths: Paths,
    }

    fn bed(fleet_text: &str) -> Bed {
        let dir = tempfile::tempdir().unwrap();
        let fleet = dir.path().join("fleet.json");
        std::fs::write(&fleet, fleet_text).unwrap();
        for f in ["hub.age", "spoke.age", "phone.psk.age"] {
            std::fs::write(dir.path().join(f), format!("ciphertext of {f}")).unwrap();
        }
        let identity = dir.path().join("identity.txt");
        std::fs::write(&identity, "AGE-SECRET-KEY-1...").unwrap();
        let paths = crate::shell::paths::detect(Some(&dir.path().join("root")));
        std::fs::create_dir_all(&paths.wireguard).unwrap();
        Bed {
            _dir: dir,
            fleet,
            identity,
            paths,
        }
    }

    fn valid(text: &str, now: i64) -> ValidFleet {
        let fleet: crate::fleet::Fleet = serde_json::from_str(text).unwrap();
        let opts = Options {
            now,
            expiry_warning: 14 * DAY,
        };
        let (valid, d) = validate(&fleet, opts);
        valid.unwrap_or_else(|| panic!("{:?}", d.0))
    }

    /// A full run for `host` at `now`: its desired state, files written as apply writes them,
    /// and the record stored.
    fn full_run(bed: &Bed, host: &str, now: i64) -> (Key, Vec<Desired>) {
        let text = std::fs::read_to_string(&bed.fleet).unwrap();
        let valid = valid(&text, now);
        let plans = crate::plan::plan_host(&valid, host, now);
        let desired = Desired::build(plans, &HostSecrets::default(), &valid).unwrap();
        for d in &desired {
            std::fs::write(bed.paths.config(&d.plan.network), d.config.as_bytes()).unwrap();
        }
        let key = key_of(bed, &bed.fleet, host);
        let fresh = Fresh {
            key: key_of(bed, &bed.fleet, host),
            secrets: secrets_digest(
                &bed.fleet,
                &crate::secrets::local::store(&bed.paths.state),
                desired.iter().map(|d| &d.plan),
            ),
            computed_at: now,
            valid_until: valid_until(&valid, now, 14 * DAY),
            warnings: vec!["a warning".into()],
        };
        fresh.store(&bed.paths, &desired, "sha256:fleet").unwrap();
        (key, desired)
    }

    const NOW: i64 = 1_800_000_000;

    fn key_of(bed: &Bed, fleet: &Path, host: &str) -> Key {
        let text = std::fs::read(fleet).unwrap();
        Key::compute(fleet, &text, host, std::slice::from_ref(&bed.identity)).unwrap()
    }

    #[test]
    fn a_record_gives_back_what_the_full_run_computed() {
        let bed = bed(&fleet_json("2030-01-01T00:00:00Z"));
        for host in ["hub", "spoke"] {
            let (key, desired) = full_run(&bed, host, NOW);
            let hit = lookup(&bed.paths, &key, NOW + 60).expect("hit");
            assert_eq!(hit.digest, "sha256:fleet");
            assert_eq!(hit.warnings, ["a warning"]);
            assert_eq!(hit.desired.len(), desired.len());
            for (got, want) in hit.desired.iter().zip(&desired) {
                // The spoke dials the hub at one endpoint: `endpoints` comes back too.
                assert_eq!(got.plan, want.plan);
                assert_eq!(*got.config, *want.config);
                assert_eq!(got.names, want.names);
                assert_eq!(got.owners, want.owners);
                assert_eq!(got.hub, want.hub);
            }
        }
    }

    #[test]
    fn any_changed_input_is_a_miss() {
        let bed = bed(&fleet_json("2030-01-01T00:00:00Z"));
        let (key, _) = full_run(&bed, "hub", NOW);
        assert!(lookup(&bed.paths, &key, NOW).is_some());
        // Another host, and another fleet file.
        assert!(lookup(&bed.paths, &key_of(&bed, &bed.fleet, "spoke"), NOW).is_none());
        let other = bed.fleet.with_file_name("other.json");
        std::fs::copy(&bed.fleet, &other).unwrap();
        assert!(lookup(&bed.paths, &key_of(&bed, &other, "hub"), NOW).is_none());
        // Before the run, and an hour after it.
        assert!(lookup(&bed.paths, &key, NOW - 1).is_none());
        assert!(lookup(&bed.paths, &key, NOW + MAX_AGE_SECS).is_none());
        // An age file the plan names (the phone's preshared key), changed.
        let psk = bed.fleet.with_file_name("phone.psk.age");
        std::fs::write(&psk, "another ciphertext").unwrap();
        assert!(lookup(&bed.paths, &key, NOW).is_none());
        let (key, _) = full_run(&bed, "hub", NOW);
        // The file on disk, edited by hand.
        let conf = bed.paths.config("wg0");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str("# edited\n");
        std::fs::write(&conf, &text).unwrap();
        assert!(lookup(&bed.paths, &key, NOW).is_none());
        full_run(&bed, "hub", NOW);
        // The fleet itself, and the identity: a new key.
        std::fs::write(&bed.fleet, fleet_json("2031-01-01T00:00:00Z")).unwrap();
        assert!(key_of(&bed, &bed.fleet, "hub").inputs != key.inputs);
        std::fs::write(&bed.identity, "AGE-SECRET-KEY-2...").unwrap();
        let text = std::fs::read(&bed.fleet).unwrap();
        let ids = std::slice::from_ref(&bed.identity);
        assert!(Key::compute(&bed.fleet, &text, "hub", ids).unwrap().inputs != key.inputs);
        // A .nix fleet, or an identity that cannot be read: no key, the full run says why.
        let nix = bed.fleet.with_extension("nix");
        assert!(Key::compute(&nix, &text, "hub", ids).is_none());
        let gone = [bed.identity.with_file_name("missing")];
        assert!(Key::compute(&bed.fleet, &text, "hub", &gone).is_none());
    }

    #[test]
    fn a_record_ends_where_a_client_expires_or_enters_its_warning() {
        let at = |t: i64| crate::fleet::time::format_rfc3339(t);
        // No expiry near: the hour.
        let far = valid(&fleet_json(&at(NOW + 100 * DAY)), NOW);
        assert_eq!(valid_until(&far, NOW, 14 * DAY), NOW + MAX_AGE_SECS);
        // The warning starts in ten minutes.
        let warn = valid(&fleet_json(&at(NOW + 14 * DAY + 600)), NOW);
        assert_eq!(valid_until(&warn, NOW, 14 * DAY), NOW + 600);
        // Already warned about, expiring in ten minutes.
        let soon = valid(&fleet_json(&at(NOW + 600)), NOW);
        assert_eq!(valid_until(&soon, NOW, 14 * DAY), NOW + 600);
        // Expired: nothing ahead.
        let gone = valid(&fleet_json(&at(NOW - 600)), NOW);
        assert_eq!(valid_until(&gone, NOW, 14 * DAY), NOW + MAX_AGE_SECS);
    }
}
