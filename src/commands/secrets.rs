//! `keygen`, `rekey` and `check-secrets`: the only commands that touch key material, and none
//! of them prints or writes it in plain text.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use serde_json::json;
use zeroize::Zeroizing;

use super::{check_valid, plans_for, write_out};
use crate::cli::{CheckSecretsArgs, KeygenArgs, RekeyArgs};
use crate::error::{Error, Result};
use crate::fleet::ValidFleet;
use crate::fleet::model::PeerKind;
use crate::fsutil::write_atomic;
use crate::secrets::age::{self, decrypt_file, encrypt, parse_recipient};
use crate::secrets::keys::SecretKey;
use crate::secrets::recipients::RecipientsFile;
use crate::secrets::{SecretError, load_host_secrets};

pub(super) fn secret_err(context: impl Into<String>) -> impl FnOnce(SecretError) -> Error {
    let context = context.into();
    move |source| Error::Secret { context, source }
}

pub fn cmd_keygen(args: &KeygenArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    if args.out.exists() && !args.force {
        return Err(Error::Exists {
            path: args.out.clone(),
        });
    }
    let mut texts: Vec<String> = args.recipients.clone();
    if let Some(file) = &args.recipients_file {
        let rf = RecipientsFile::read(file).map_err(secret_err("keygen"))?;
        texts.extend(
            rf.for_hosts(args.host.as_deref())
                .into_iter()
                .map(str::to_owned),
        );
    } else if args.host.is_some() {
        return Err(Error::Usage(
            "--host selects lines of a recipients file; pass -R FILE".into(),
        ));
    }
    if texts.is_empty() {
        return Err(Error::Usage(
            "no recipients: pass -r RECIPIENT or -R FILE, or nobody could decrypt the key".into(),
        ));
    }
    let recipients = texts
        .iter()
        .map(|t| parse_recipient(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(secret_err("keygen"))?;
    let key = if args.psk {
        SecretKey::generate_preshared()
    } else {
        SecretKey::generate_private()
    };
    let mut plaintext = key.to_base64();
    plaintext.push('\n');
    let sealed = encrypt(plaintext.as_bytes(), &recipients).map_err(secret_err("keygen"))?;
    write_atomic(&args.out, &sealed, 0o600).map_err(|source| Error::Write {
        path: args.out.clone(),
        source,
    })?;
    let public_key = (!args.psk).then(|| key.public_key());
    if args.json {
        let doc = json!({"file": args.out.display().to_string(), "publicKey": public_key, "recipients": recipients.len()});
        write_out(out, &format!("{doc:#}\n"))?;
    } else {
        if let Some(pk) = &public_key {
            write_out(out, &format!("{pk}\n"))?;
        }
        let what = if args.psk {
            "preshared key"
        } else {
            "private key"
        };
        let _ = writeln!(
            err,
            "wrote the {what} to {}, encrypted to {} recipient(s)",
            args.out.display(),
            recipients.len()
        );
    }
    Ok(0)
}

/// Which hosts need each secret file of the fleet (paths as written in the fleet).
fn secret_needs(valid: &ValidFleet) -> BTreeMap<String, BTreeSet<String>> {
    let mut needs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut need = |file: &String, host: &str| {
        needs
            .entry(file.clone())
            .or_default()
            .insert(host.to_owned());
    };
    for (name, host) in &valid.hosts {
        if let Some(f) = &host.private_key_file {
            need(f, name);
        }
        if let Some(f) = host
            .next_key
            .as_ref()
            .and_then(|n| n.private_key_file.as_ref())
        {
            need(f, name);
        }
    }
    for net in valid.networks.values() {
        for peer in net.peers.values() {
            match (peer.kind, &peer.secret_file) {
                (PeerKind::Host, Some(f)) => need(f, &peer.name),
                (PeerKind::Client, Some(f)) => {
                    let members = net.peers.values().filter(|m| m.kind == PeerKind::Host);
                    for m in members.filter(|m| {
                        (net.is_mesh() || net.is_hub(&m.name)) && peer.connects_to(&m.name)
                    }) {
                        need(f, &m.name);
                    }
                }
                _ => {}
            }
        }
        for ((a, b), f) in &net.pair_psks {
            need(f, a);
            need(f, b);
        }
        for ((a, b), next) in &net.pair_next_psks {
            need(&next.file, a);
            need(&next.file, b);
        }
    }
    needs
}

pub fn cmd_rekey(args: &RekeyArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    if let Some(host) = &args.rotate {
        return super::rotate::cmd_rotate(args, host, out, err);
    }
    if let Some(pair) = &args.rotate_psk {
        return super::rotate_psk::cmd_rotate_psk(args, pair, out, err);
    }
    if let Some(target) = &args.finish {
        if target.contains(':') {
            return super::rotate_psk::cmd_finish_psk(args, target, out, err);
        }
        return super::rotate::cmd_finish(args, target, out, err);
    }
    if let Some(target) = &args.abandon {
        if target.contains(':') {
            return super::rotate_psk::cmd_abandon_psk(args, target, out, err);
        }
        return super::rotate::cmd_abandon(args, target, out, err);
    }
    let recipients_file = args
        .recipients_file
        .as_ref()
        .ok_or_else(|| Error::Usage("rekey needs -R FILE, the recipients file".into()))?;
    let (loaded, valid, _) = check_valid(&args.fleet, err)?;
    let rf = RecipientsFile::read(recipients_file).map_err(secret_err("rekey"))?;
    let needs = secret_needs(&valid);
    let missing: Vec<String> = needs
        .iter()
        .flat_map(|(file, hosts)| {
            hosts
                .iter()
                .filter(|h| !rf.hosts.contains_key(*h))
                .map(move |h| format!("{h} (needs {file})"))
        })
        .collect();
    if !missing.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no recipient line for {}; add `HOST RECIPIENT` lines (the host's SSH host key) so each host can decrypt its secrets",
            recipients_file.display(),
            missing.join(", ")
        )));
    }
    let ids = age::load_identities(&args.identity.identities).map_err(secret_err("rekey"))?;
    // Decrypt everything before writing anything: a rekey either can read every file or
    // changes none.
    let mut plain: Vec<(String, Zeroizing<Vec<u8>>)> = Vec::new();
    for file in needs.keys() {
        let data = decrypt_file(&loaded.resolve(file), &ids).map_err(secret_err("rekey"))?;
        plain.push((file.clone(), data));
    }
    let mut report = Vec::new();
    for (file, data) in &plain {
        let hosts = &needs[file];
        let texts = rf.for_hosts(hosts.iter().map(String::as_str));
        let recipients = texts
            .iter()
            .map(|t| parse_recipient(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(secret_err("rekey"))?;
        if !args.dry_run {
            let sealed = encrypt(data, &recipients).map_err(secret_err("rekey"))?;
            let path = loaded.resolve(file);
            write_atomic(&path, &sealed, 0o600).map_err(|source| Error::Write { path, source })?;
        }
        let shown = loaded.resolve(file).display().to_string();
        report.push(json!({"file": shown, "hosts": hosts, "recipients": recipients.len()}));
    }
    if args.json {
        write_out(
            out,
            &format!("{:#}\n", json!({"dryRun": args.dry_run, "files": report})),
        )?;
    } else {
        let verb = if args.dry_run {
            "would re-encrypt"
        } else {
            "re-encrypted"
        };
        for r in &report {
            let hosts: Vec<&str> = r["hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|h| h.as_str())
                .collect();
            write_out(
                out,
                &format!(
                    "{verb} {} for {} ({} recipients)\n",
                    r["file"].as_str().unwrap_or(""),
                    hosts.join(", "),
                    r["recipients"]
                ),
            )?;
        }
    }
    Ok(0)
}

pub fn cmd_check_secrets(
    args: &CheckSecretsArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    let (loaded, valid, now) = check_valid(&args.fleet, err)?;
    let state = crate::shell::paths::detect(None).state;
    let host = super::this_host(args.host.as_deref(), &state)?;
    let plans = plans_for(&loaded.path, &valid, &host, None, now)?;
    let ids = match plans.iter().any(crate::shell::pipeline::decrypts) {
        true => age::load_identities(&args.identity.identities)
            .map_err(secret_err(format!("host {host}")))?,
        false => age::Identities::none(),
    };
    let local_keys = crate::secrets::local::store(&state);
    let secrets = load_host_secrets(&loaded, &plans, &ids, &local_keys)?;
    let networks: Vec<&str> = plans.iter().map(|p| p.network.as_str()).collect();
    if args.json {
        let doc = json!({"host": host, "ok": true, "networks": networks, "secretsDecrypted": secrets.len()});
        write_out(out, &format!("{doc:#}\n"))?;
    } else {
        write_out(
            out,
            &format!(
                "host {host}: {} secret(s) decrypted; the private key of {} matches the declared public key\n",
                secrets.len(),
                if networks.is_empty() {
                    "(no network)".to_owned()
                } else {
                    networks.join(", ")
                }
            ),
        )?;
    }
    Ok(0)
}
