//! `rekey --rotate-psk A:B` and `rekey --finish A:B`: a pair's change of preshared key staged
//! in the fleet (`nextFile`, `switchAt` on its `presharedKeys` entry), and ended. As for a
//! host's key, a JSON fleet's text is edited in place and the edit read back; for a Nix fleet,
//! or a text the edit cannot be sure of, they say what to set.

use std::io::Write;

use serde_json::{Value, json};

use super::rotate::{abandon_files, finish_files, next_file_name, same, seal_next, write_staged};
use super::{check_valid, write_out};
use crate::cli::RekeyArgs;
use crate::error::{Error, Result};
use crate::fleet::Loaded;
use crate::fleet::edit::{insert_after_string, remove_member};
use crate::fleet::schema::PresharedKeyPair;
use crate::fleet::time::format_rfc3339;
use crate::secrets::keys::SecretKey;

/// The pair's entry: its network, its index in `presharedKeys`, and the entry.
struct Entry<'l> {
    network: &'l str,
    index: usize,
    pair: &'l PresharedKeyPair,
}

pub fn cmd_rotate_psk(
    args: &RekeyArgs,
    pair: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    let (loaded, _, now) = check_valid(&args.fleet, err)?;
    let (a, b) = split_pair(pair)?;
    let entry = entry_of(&loaded, args.network.as_deref(), a, b)?;
    if let Some(next) = &entry.pair.next_file {
        return Err(Error::Usage(format!(
            "{a} and {b} already stage a preshared key ({next}) on {}; end it first: `wgfleet \
             rekey --finish {a}:{b}` once both ends say confirmed, else `--abandon {a}:{b}`",
            entry.network
        )));
    }
    let next_file = next_file_name(&entry.pair.file);
    let next_path = loaded.resolve(&next_file);
    if next_path.exists() {
        return Err(Error::Exists { path: next_path });
    }
    let (sealed, recipients) = seal_next(
        args,
        "--rotate-psk",
        &[a, b],
        "the next preshared key",
        &SecretKey::generate_preshared(),
    )?;
    let switch_at = format_rfc3339(now.saturating_add(args.switch_after as i64));
    let fields = [
        ("nextFile", next_file.as_str()),
        ("switchAt", switch_at.as_str()),
    ];
    let edited = edit(&loaded, &entry, |e| {
        for (name, value) in fields {
            e.insert(name.to_owned(), json!(value));
        }
    })
    .and_then(|want| {
        let text = insert_after_string(loaded.json_source.as_deref()?, &entry.pair.file, &fields)?;
        same(&text, &want).then_some(text)
    });
    let updated = write_staged(&loaded, &next_path, &sealed, edited.as_deref())?;
    if args.json {
        let doc = json!({
            "network": entry.network, "peers": [a, b], "nextFile": next_file,
            "switchAt": switch_at, "recipients": recipients, "fleetUpdated": updated,
        });
        write_out(out, &format!("{doc:#}\n"))?;
        return Ok(0);
    }
    let mut text = format!(
        "wrote the next preshared key of {a} and {b} to {}, encrypted to {} recipient(s)\n",
        next_path.display(),
        recipients
    );
    let at = format!("networks.{}.presharedKeys[{}]", entry.network, entry.index);
    if updated {
        text.push_str(&format!(
            "{}: {at} now stages nextFile {next_file}, switching at {switch_at}\n",
            loaded.path.display()
        ));
    } else {
        text.push_str(&format!(
            "set in {}, in {at}:\n  nextFile = \"{next_file}\";\n  switchAt = \"{switch_at}\";\n",
            loaded.path.display()
        ));
    }
    text.push_str(&format!(
        "next: commit it and let {a} and {b} apply before {switch_at}; both change to the next \
         key then, keeping their session, and a handshake confirms it (with none, both go back). \
         When `wgfleet status` on both shows it confirmed, run `wgfleet rekey --finish {a}:{b}`.\n"
    ));
    write_out(out, &text)?;
    Ok(0)
}

pub fn cmd_finish_psk(
    args: &RekeyArgs,
    pair: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    let (loaded, _, _) = check_valid(&args.fleet, err)?;
    let (a, b) = split_pair(pair)?;
    let entry = entry_of(&loaded, args.network.as_deref(), a, b)?;
    let Some(next_file) = entry.pair.next_file.as_deref() else {
        return Err(Error::Usage(format!(
            "{a} and {b} stage no preshared key on {} (no nextFile); start a rotation with \
             `wgfleet rekey --rotate-psk {a}:{b}`",
            entry.network
        )));
    };
    let current_path = loaded.resolve(&entry.pair.file);
    let next_path = loaded.resolve(next_file);
    let edited = without_next(&loaded, &entry);
    let Some(text) = edited else {
        write_out(
            out,
            &format!(
                "in {}, in networks.{}.presharedKeys[{}]: remove nextFile and switchAt; then \
                 `mv {} {}`\n",
                loaded.path.display(),
                entry.network,
                entry.index,
                next_path.display(),
                current_path.display()
            ),
        )?;
        return Ok(0);
    };
    finish_files(&loaded, &current_path, &next_path, &text)?;
    if args.json {
        let doc = json!({"network": entry.network, "peers": [a, b], "file": entry.pair.file});
        write_out(out, &format!("{doc:#}\n"))?;
    } else {
        write_out(
            out,
            &format!(
                "{}: the preshared key of {a} and {b} on {} is now the one in {} (the old key is \
                 gone); commit it\n",
                loaded.path.display(),
                entry.network,
                current_path.display()
            ),
        )?;
    }
    Ok(0)
}

pub fn cmd_abandon_psk(
    args: &RekeyArgs,
    pair: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    let (loaded, _, _) = check_valid(&args.fleet, err)?;
    let (a, b) = split_pair(pair)?;
    let entry = entry_of(&loaded, args.network.as_deref(), a, b)?;
    let Some(next_file) = entry.pair.next_file.as_deref() else {
        return Err(Error::Usage(format!(
            "{a} and {b} stage no preshared key on {} to abandon (no nextFile)",
            entry.network
        )));
    };
    let next_path = loaded.resolve(next_file);
    let edited = without_next(&loaded, &entry);
    let what = format!(
        "in networks.{}.presharedKeys[{}]: remove nextFile and switchAt",
        entry.network, entry.index
    );
    abandon_files(
        args,
        &loaded,
        &what,
        Some(&next_path),
        edited.as_deref(),
        out,
    )
}

fn split_pair(pair: &str) -> Result<(&str, &str)> {
    match pair.split_once(':') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() && a != b && !b.contains(':') => Ok((a, b)),
        _ => Err(Error::Usage(format!(
            "{pair:?} is not a pair of members: give A:B (two member names)"
        ))),
    }
}

/// The pair's `presharedKeys` entry: in `network`, or in the one network that has it.
fn entry_of<'l>(loaded: &'l Loaded, network: Option<&str>, a: &str, b: &str) -> Result<Entry<'l>> {
    let found: Vec<Entry<'l>> = loaded
        .fleet
        .networks
        .iter()
        .filter(|(name, _)| network.is_none_or(|n| n == name.as_str()))
        .flat_map(|(name, net)| {
            net.preshared_keys
                .iter()
                .enumerate()
                .filter(|(_, p)| {
                    p.peers.len() == 2
                        && p.peers.iter().any(|x| x == a)
                        && p.peers.iter().any(|x| x == b)
                })
                .map(|(index, pair)| Entry {
                    network: name,
                    index,
                    pair,
                })
        })
        .collect();
    let mut found = found;
    if found.len() == 1 {
        return Ok(found.remove(0));
    }
    let networks: Vec<&str> = found.iter().map(|e| e.network).collect();
    match networks.len() {
        0 => Err(Error::Usage(format!(
            "{}: {a} and {b} share no preshared key{}; a rotation changes an existing one \
             (presharedKeys, `wgfleet keygen --psk`)",
            loaded.path.display(),
            network.map(|n| format!(" on {n}")).unwrap_or_default()
        ))),
        _ => Err(Error::Usage(format!(
            "{a} and {b} share a preshared key on {}; say which with --network",
            networks.join(" and ")
        ))),
    }
}

/// The fleet's text without the entry's nextFile and switchAt, when the edit in place is sure.
fn without_next(loaded: &Loaded, entry: &Entry<'_>) -> Option<String> {
    let want = edit(loaded, entry, |e| {
        e.remove("nextFile");
        e.remove("switchAt");
    })?;
    let text = remove_member(loaded.json_source.as_deref()?, "nextFile")?;
    let text = remove_member(&text, "switchAt")?;
    same(&text, &want).then_some(text)
}

/// The fleet as JSON with `change` made to the pair's entry: what the text edit must mean.
fn edit(
    loaded: &Loaded,
    entry: &Entry<'_>,
    change: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Option<Value> {
    let mut fleet: Value = serde_json::from_str(loaded.json_source.as_deref()?).ok()?;
    let object = fleet
        .get_mut("networks")?
        .get_mut(entry.network)?
        .get_mut("presharedKeys")?
        .get_mut(entry.index)?
        .as_object_mut()?;
    change(object);
    Some(fleet)
}
