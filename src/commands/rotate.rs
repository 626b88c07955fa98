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
             `wgfleet rekey --finish {host}` (or drop it with `--abandon {host}`) first"
        )));
    }
    // The next key: made here and sealed to the host, or made on a host that keeps its key.
    let (public, sealed) = match (h.key_on_host, &args.next_public_key) {
        (true, Some(public)) => {
            crate::fleet::syntax::check_key(public)
                .map_err(|why| Error::Usage(format!("--next-public-key: {why}")))?;
            if *public == h.public_key {
                return Err(Error::Usage(format!(
                    "--next-public-key is host {host}'s current key: a rotation moves to a new one"
                )));
            }
            (public.clone(), None)
        }
        (true, None) => {
            return Err(Error::Usage(format!(
                "host {host} keeps its key on the host (keyOnHost), and so its next key: run \
                 `wgfleet join --host {host} --next-key` there, then here `wgfleet rekey \
                 --rotate {host} --next-public-key KEY` with the key it printed"
            )));
        }
        (false, Some(_)) => {
            return Err(Error::Usage(format!(
                "host {host} has its key in the fleet (privateKeyFile): --rotate makes its next \
                 key; --next-public-key is for a host that keeps its key (keyOnHost)"
            )));
        }
        (false, None) => {
            let current = h.private_key_file.as_deref().ok_or_else(|| {
                Error::Usage(format!(
                    "host {host} has no privateKeyFile; the next key's file is named after it"
                ))
            })?;
            let next_file = next_file_name(current);
            let next_path = loaded.resolve(&next_file);
            if next_path.exists() {
                return Err(Error::Exists { path: next_path });
            }
            let key = SecretKey::generate_private();
            let (sealed, recipients) = seal_next(args, "--rotate", &[host], "its next key", &key)?;
            (
                key.public_key(),
                Some((next_file, next_path, sealed, recipients)),
            )
        }
    };
    let switch_at = format_rfc3339(now.saturating_add(args.switch_after as i64));
    let mut fields = vec![("nextPublicKey", public.as_str())];
    if let Some((next_file, ..)) = &sealed {
        fields.push(("nextPrivateKeyFile", next_file.as_str()));
    }
    fields.push(("nextSwitchAt", switch_at.as_str()));
    let edited = edit(&loaded, host, |h| {
        for (name, value) in &fields {
            h.insert((*name).to_owned(), json!(value));
        }
    })
    .and_then(|want| {
        let text = insert_after_string(loaded.json_source.as_deref()?, &h.public_key, &fields)?;
        same(&text, &want).then_some(text)
    });
    let updated = match &sealed {
        Some((_, next_path, bytes, _)) => {
            write_staged(&loaded, next_path, bytes, edited.as_deref())?
        }
        None => match &edited {
            Some(text) => write_fleet(&loaded.path, text).map(|()| true)?,
            None => false,
        },
    };
    if args.json {
        let mut doc = json!({
            "host": host, "nextPublicKey": public, "nextSwitchAt": switch_at,
            "fleetUpdated": updated,
        });
        if let Some((next_file, _, _, recipients)) = &sealed {
            doc["nextPrivateKeyFile"] = json!(next_file);
            doc["recipients"] = json!(recipients);
        }
        write_out(out, &format!("{doc:#}\n"))?;
        return Ok(0);
    }
    let mut text = match &sealed {
        Some((_, next_path, _, recipients)) => format!(
            "wrote {host}'s next private key to {}, encrypted to {recipients} recipient(s)\n",
            next_path.display(),
        ),
        None => format!("{host}'s next private key stays on {host}\n"),
    };
    if updated {
        text.push_str(&format!(
            "{}: hosts.{host} now stages nextPublicKey {public}, switching at {switch_at}\n",
            loaded.path.display()
        ));
    } else {
        text.push_str(&format!(
            "set in {}, under hosts.{host}:\n",
            loaded.path.display()
        ));
        for (name, value) in &fields {
            text.push_str(&format!("  {name} = \"{value}\";\n"));
        }
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
    let Some(next) = h.next_public_key.as_deref() else {
        return Err(Error::Usage(format!(
            "host {host} has no staged rotation to finish (no nextPublicKey); start one with \
             `wgfleet rekey --rotate {host}`"
        )));
    };
    let edited = edit(&loaded, host, |h| {
        h.insert("publicKey".to_owned(), json!(next));
        for name in NEXT_FIELDS {
            h.remove(name);
        }
    })
    .and_then(|want| {
        let mut text = replace_string(loaded.json_source.as_deref()?, &h.public_key, next)?;
        for name in next_fields(h) {
            text = remove_member(&text, name)?;
        }
        same(&text, &want).then_some(text)
    });
    // A host that keeps its key has no files here: the fleet's public key is all that changes.
    let (Some(next_file), Some(current_file)) = (
        h.next_private_key_file.as_deref(),
        h.private_key_file.as_deref(),
    ) else {
        let Some(text) = edited else {
            let fields = next_fields(h).collect::<Vec<_>>().join(", ");
            let at = loaded.path.display();
            let todo = format!(
                "in {at}, under hosts.{host}: set publicKey = \"{next}\" and remove {fields}\n"
            );
            write_out(out, &todo)?;
            return Ok(0);
        };
        write_fleet(&loaded.path, &text)?;
        return finished(args, &loaded, host, next, None, out);
    };
    let (current_path, next_path) = (loaded.resolve(current_file), loaded.resolve(next_file));
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
    finished(
        args,
        &loaded,
        host,
        next,
        Some((current_file, &current_path)),
        out,
    )
}

/// What `--finish` did: the key's file, or none when the host keeps it.
fn finished(
    args: &RekeyArgs,
    loaded: &Loaded,
    host: &str,
    next: &str,
    file: Option<(&str, &Path)>,
    out: &mut dyn Write,
) -> Result<u8> {
    if args.json {
        let doc = json!({"host": host, "publicKey": next, "privateKeyFile": file.map(|f| f.0)});
        return write_out(out, &format!("{doc:#}\n")).map(|()| 0);
    }
    let kept = match file {
        Some((_, path)) => format!("its key in {} (the old key is gone)", path.display()),
        None => format!("its key kept on {host}"),
    };
    write_out(
        out,
        &format!(
            "{}: hosts.{host}.publicKey is now {next}, {kept}; commit it: every host that \
             applies drops the old key at once\n",
            loaded.path.display()
        ),
    )?;
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
    if h.next_public_key.is_none() && h.next_private_key_file.is_none() {
        return Err(Error::Usage(format!(
            "host {host} has no staged rotation to abandon (no nextPublicKey)"
        )));
    }
    // A host that keeps its key keeps the next one there too: nothing to delete here.
    let next_path = h
        .next_private_key_file
        .as_deref()
        .map(|f| loaded.resolve(f));
    let edited = edit(&loaded, host, |h| {
        for name in NEXT_FIELDS {
            h.remove(name);
        }
    })
    .and_then(|want| {
        let mut text = loaded.json_source.clone()?;
        for name in next_fields(h) {
            text = remove_member(&text, name)?;
        }
        same(&text, &want).then_some(text)
    });
    let fields = next_fields(h).collect::<Vec<_>>().join(", ");
    let what = format!("under hosts.{host}: remove {fields}");
    abandon_files(
        args,
        &loaded,
        &what,
        next_path.as_deref(),
        edited.as_deref(),
        out,
    )
}

/// Ends an abandoned rotation on disk: the fleet without its next fields, then the next key
/// file deleted (a fleet that cannot be edited in place is told, and nothing is deleted).
pub(super) fn abandon_files(
    args: &RekeyArgs,
    loaded: &Loaded,
    what: &str,
    next_path: Option<&Path>,
    fleet_text: Option<&str>,
    out: &mut dyn Write,
) -> Result<u8> {
    let rm = next_path.map(|p| format!("`rm {}`", p.display()));
    let Some(text) = fleet_text else {
        let then = rm.map(|rm| format!("; then {rm}")).unwrap_or_default();
        write_out(
            out,
            &format!("in {}, {what}{then}\n", loaded.path.display()),
        )?;
        return Ok(0);
    };
    write_fleet(&loaded.path, text)?;
    if let Some(path) = next_path {
        let _ = std::fs::remove_file(path);
    }
    if args.json {
        let doc = json!({"fleet": loaded.path, "removed": next_path});
        write_out(out, &format!("{doc:#}\n"))?;
    } else {
        let deleted = next_path
            .map(|p| format!(" and {} deleted", p.display()))
            .unwrap_or_default();
        write_out(
            out,
            &format!(
                "{}: the rotation is dropped ({what}){deleted}; commit it: every host that \
                 applies keeps, or goes back to, the current key\n",
                loaded.path.display()
            ),
        )?;
    }
    Ok(0)
}

/// The rotation fields the host has (a host that keeps its key has no nextPrivateKeyFile).
fn next_fields(h: &Host) -> impl Iterator<Item = &'static str> + '_ {
    let given = [
        h.next_public_key.is_some(),
        h.next_private_key_file.is_some(),
        h.next_switch_at.is_some(),
    ];
    NEXT_FIELDS
        .into_iter()
        .zip(given)
        .filter_map(|(name, given)| given.then_some(name))
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
