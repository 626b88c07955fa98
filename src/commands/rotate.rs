//! `rekey --rotate HOST` and `rekey --finish HOST`: a host's key rotation staged in the fleet,
//! and ended. Both edit a JSON fleet's text in place (its formatting kept) and check the edit by
//! reading it back; for a Nix fleet, or a text the edit cannot be sure of, they say what to set.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use super::secrets::secret_err;
use super::{check_valid, write_fleet, write_out};
use crate::cli::{PromoteArgs, RekeyArgs};
use crate::error::{Error, Result};
use crate::fleet::Loaded;
use crate::fleet::edit::{insert_after_string, remove_member, replace_string};
use crate::fleet::schema::Host;
use crate::fleet::time::format_rfc3339;
use crate::fsutil::write_atomic;
use crate::secrets::age::{encrypt, parse_recipient};
use crate::secrets::keys::SecretKey;
use crate::secrets::recipients::RecipientsFile;

const NEXT_FIELDS: [&str; 3] = ["nextPublicKey", "nextPrivateKeyFile", "nextSwitchAt"];

pub fn cmd_rotate(
    args: &RekeyArgs,
    host: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    let (loaded, _, now) = check_valid(&args.fleet, err)?;
    let h = host_of(&loaded, host)?;
    if let Some(next) = &h.next_public_key {
        return Err(Error::Usage(format!(
            "host {host} already has a staged rotation (nextPublicKey {next}); end it with \
             `wgfleet rekey --finish {host}` first"
        )));
    }
    let current = h.private_key_file.as_deref().ok_or_else(|| {
        Error::Usage(format!(
            "host {host} has no privateKeyFile (a key kept on the host is not rotated by the \
             fleet); the next key's file is named after it"
        ))
    })?;
    let next_file = next_file_name(current);
    let next_path = loaded.resolve(&next_file);
    if next_path.exists() {
        return Err(Error::Exists { path: next_path });
    }
    let key = SecretKey::generate_private();
    let public = key.public_key();
    let (sealed, recipients) = seal_next(args, "--rotate", &[host], "its next key", &key)?;
    let switch_at = format_rfc3339(now.saturating_add(args.switch_after as i64));
    let fields = [
        ("nextPublicKey", public.as_str()),
        ("nextPrivateKeyFile", next_file.as_str()),
        ("nextSwitchAt", switch_at.as_str()),
    ];
    let edited = edit(&loaded, host, |h| {
        for (name, value) in fields {
            h.insert(name.to_owned(), json!(value));
        }
    })
    .and_then(|want| {
        let text = insert_after_string(loaded.json_source.as_deref()?, &h.public_key, &fields)?;
        same(&text, &want).then_some(text)
    });
    let updated = write_staged(&loaded, &next_path, &sealed, edited.as_deref())?;
    if args.json {
        let doc = json!({
            "host": host, "nextPublicKey": public, "nextPrivateKeyFile": next_file,
            "nextSwitchAt": switch_at, "recipients": recipients, "fleetUpdated": updated,
        });
        write_out(out, &format!("{doc:#}\n"))?;
        return Ok(0);
    }
    let mut text = format!(
        "wrote {host}'s next private key to {}, encrypted to {} recipient(s)\n",
        next_path.display(),
        recipients
    );
    if updated {
        text.push_str(&format!(
            "{}: hosts.{host} now stages nextPublicKey {public}, switching at {switch_at}\n",
            loaded.path.display()
        ));
    } else {
        text.push_str(&format!(
            "set in {}, under hosts.{host}:\n  nextPublicKey = \"{public}\";\n  nextPrivateKeyFile = \"{next_file}\";\n  nextSwitchAt = \"{switch_at}\";\n",
            loaded.path.display()
        ));
    }
    text.push_str(&format!(
        "next: commit it and let every host apply before {switch_at} (each peer stages the key, \
         carrying no traffic); {host} switches at its first apply after that, and each peer \
         promotes the key at its first handshake. When `wgfleet status` shows it promoted, run \
         `wgfleet rekey --finish {host}`.\n"
    ));
    write_out(out, &text)?;
    Ok(0)
}

pub fn cmd_finish(
    args: &RekeyArgs,
    host: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    let (loaded, _, _) = check_valid(&args.fleet, err)?;
    let h = host_of(&loaded, host)?;
    let (Some(next), Some(next_file), Some(current_file)) = (
        h.next_public_key.as_deref(),
        h.next_private_key_file.as_deref(),
        h.private_key_file.as_deref(),
    ) else {
        return Err(Error::Usage(format!(
            "host {host} has no staged rotation to finish (no nextPublicKey); start one with \
             `wgfleet rekey --rotate {host}`"
        )));
    };
    let (current_path, next_path) = (loaded.resolve(current_file), loaded.resolve(next_file));
    let edited = edit(&loaded, host, |h| {
        h.insert("publicKey".to_owned(), json!(next));
        for name in NEXT_FIELDS {
            h.remove(name);
        }
    })
    .and_then(|want| {
        let mut text = replace_string(loaded.json_source.as_deref()?, &h.public_key, next)?;
        for name in NEXT_FIELDS {
            text = remove_member(&text, name)?;
        }
        same(&text, &want).then_some(text)
    });
    let Some(text) = edited else {
        write_out(
            out,
            &format!(
                "in {}, under hosts.{host}: set publicKey = \"{next}\" and remove {}; then \
                 `mv {} {}`\n",
                loaded.path.display(),
                NEXT_FIELDS.join(", "),
                next_path.display(),
                current_path.display()
            ),
        )?;
        return Ok(0);
    };
    finish_files(&loaded, &current_path, &next_path, &text)?;
    if args.json {
        let doc = json!({"host": host, "publicKey": next, "privateKeyFile": current_file});
        write_out(out, &format!("{doc:#}\n"))?;
    } else {
        write_out(
            out,
            &format!(
                "{}: hosts.{host}.publicKey is now {next}, its key in {} (the old key is gone); \
                 commit it: every host that applies drops the old key at once\n",
                loaded.path.display(),
                current_path.display()
            ),
        )?;
    }
    Ok(0)
}

pub fn cmd_abandon(
    args: &RekeyArgs,
    host: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    let (loaded, _, _) = check_valid(&args.fleet, err)?;
    let h = host_of(&loaded, host)?;
    let Some(next_file) = h.next_private_key_file.as_deref() else {
        return Err(Error::Usage(format!(
            "host {host} has no staged rotation to abandon (no nextPrivateKeyFile)"
        )));
    };
    let next_path = loaded.resolve(next_file);
    let edited = edit(&loaded, host, |h| {
        for name in NEXT_FIELDS {
            h.remove(name);
        }
    })
    .and_then(|want| {
        let mut text = loaded.json_source.clone()?;
        for name in NEXT_FIELDS {
            text = remove_member(&text, name)?;
        }
        same(&text, &want).then_some(text)
    });
    let what = format!("under hosts.{host}: remove {}", NEXT_FIELDS.join(", "));
    abandon_files(args, &loaded, &what, &next_path, edited.as_deref(), out)
}

/// Ends an abandoned rotation on disk: the fleet without its next fields, then the next key
/// file deleted (a fleet that cannot be edited in place is told, and nothing is deleted).
pub(super) fn abandon_files(
    args: &RekeyArgs,
    loaded: &Loaded,
    what: &str,
    next_path: &Path,
    fleet_text: Option<&str>,
    out: &mut dyn Write,
) -> Result<u8> {
    let Some(text) = fleet_text else {
        let path = (loaded.path.display(), next_path.display());
        write_out(
            out,
            &format!("in {}, {what}; then `rm {}`\n", path.0, path.1),
        )?;
        return Ok(0);
    };
    write_fleet(&loaded.path, text)?;
    let _ = std::fs::remove_file(next_path);
    if args.json {
        let doc = json!({"fleet": loaded.path, "removed": next_path});
        write_out(out, &format!("{doc:#}\n"))?;
    } else {
        write_out(
            out,
            &format!(
                "{}: the rotation is dropped ({what}) and {} deleted; commit it: every host that \
                 applies keeps, or goes back to, the current key\n",
                loaded.path.display(),
                next_path.display()
            ),
        )?;
    }
    Ok(0)
}

pub(super) fn host_of<'l>(loaded: &'l Loaded, host: &str) -> Result<&'l Host> {
    loaded.fleet.hosts.get(host).ok_or_else(|| {
        let known: Vec<&str> = loaded.fleet.hosts.keys().map(String::as_str).collect();
        Error::UnknownHost {
            path: loaded.path.clone(),
            host: host.to_owned(),
            known: known.join(", "),
        }
    })
}

/// `key` sealed to the operators and `hosts` of the recipients file (`-R`), and to how many
/// recipients. `flag` is the option it is for; `decrypts`, what the hosts' lines let them read.
pub(super) fn seal_next(
    args: &RekeyArgs,
    flag: &str,
    hosts: &[&str],
    decrypts: &str,
    key: &SecretKey,
) -> Result<(Vec<u8>, usize)> {
    let context = format!("rekey {flag}");
    let recipients_file = args
        .recipients_file
        .as_ref()
        .ok_or_else(|| Error::Usage(format!("{flag} needs -R FILE, the recipients file")))?;
    let rf = RecipientsFile::read(recipients_file).map_err(secret_err(context.clone()))?;
    if let Some(missing) = hosts.iter().find(|h| !rf.hosts.contains_key(**h)) {
        return Err(Error::Usage(format!(
            "{}: no recipient line for {missing}; add `{missing} RECIPIENT` (its SSH host key) \
             so that it can decrypt {decrypts}",
            recipients_file.display()
        )));
    }
    let recipients = rf
        .for_hosts(hosts.iter().copied())
        .iter()
        .map(|t| parse_recipient(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(secret_err(context.clone()))?;
    let mut plain = zeroize::Zeroizing::new(String::with_capacity(45));
    plain.push_str(&key.to_base64());
    plain.push('\n');
    let sealed = encrypt(plain.as_bytes(), &recipients).map_err(secret_err(context))?;
    Ok((sealed, recipients.len()))
}

/// Writes the sealed next key (0600), then the fleet when its edit could be made in place;
/// says whether it was.
pub(super) fn write_staged(
    loaded: &Loaded,
    next_path: &Path,
    sealed: &[u8],
    edited: Option<&str>,
) -> Result<bool> {
    write_key(next_path, sealed)?;
    match edited {
        Some(text) => write_fleet(&loaded.path, text).map(|()| true),
        None => Ok(false),
    }
}

/// Ends a rotation on disk: the next key takes the current key's file, so the fleet names the
/// same file as before, then the fleet is written; if it cannot be, the current key goes back.
/// The next file goes last.
pub(super) fn finish_files(
    loaded: &Loaded,
    current_path: &Path,
    next_path: &Path,
    fleet_text: &str,
) -> Result<()> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            what: "key file",
            source,
        })
    };
    let (old_key, new_key) = (read(current_path)?, read(next_path)?);
    write_key(current_path, &new_key)?;
    if let Err(e) = write_fleet(&loaded.path, fleet_text) {
        write_key(current_path, &old_key)?;
        return Err(e);
    }
    let _ = std::fs::remove_file(next_path);
    Ok(())
}

fn write_key(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes, 0o600).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

/// `secrets/worker-1.age` → `secrets/worker-1.next.age`.
pub(super) fn next_file_name(current: &str) -> String {
    match current.strip_suffix(".age") {
        Some(stem) => format!("{stem}.next.age"),
        None => format!("{current}.next"),
    }
}

/// The fleet as JSON with `change` made to host `host`'s object: what the text edit must mean.
fn edit(
    loaded: &Loaded,
    host: &str,
    change: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Option<Value> {
    let mut fleet: Value = serde_json::from_str(loaded.json_source.as_deref()?).ok()?;
    change(fleet.get_mut("hosts")?.get_mut(host)?.as_object_mut()?);
    Some(fleet)
}

pub(super) fn same(text: &str, want: &Value) -> bool {
    serde_json::from_str::<Value>(text).is_ok_and(|got| got == *want)
}

pub fn cmd_promote(args: &PromoteArgs, out: &mut dyn Write) -> Result<u8> {
    let paths = crate::shell::paths::detect(None);
    let host = super::this_host(args.host.as_deref(), &paths.state)?;
    let watch = args.watch.map(std::time::Duration::from_secs);
    let pass = crate::shell::rotation::promote(&paths, &host, watch)?;
    if args.json {
        let doc = serde_json::to_value(&pass).unwrap_or_default();
        write_out(out, &format!("{doc:#}\n"))?;
        return Ok(0);
    }
    let mut text = String::new();
    for p in &pass.promoted {
        text.push_str(&format!(
            "promoted {}'s next key {} on {}: it carries the traffic, the old key is removed\n",
            p.peer, p.next_public_key, p.interface
        ));
    }
    text.push_str(&match pass.waiting {
        0 => "nothing staged is waiting\n".to_owned(),
        n => format!("{n} staged key(s) still wait for a handshake\n"),
    });
    write_out(out, &text)?;
    Ok(0)
}
