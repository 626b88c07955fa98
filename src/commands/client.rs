//! `wgfleet client-config`: a client's own wg-quick file, optionally with a new key pair.

use std::io::Write;

use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;

use super::{check_valid, write_out};
use crate::cli::ClientConfigArgs;
use crate::error::{Error, Result};
use crate::fleet::Loaded;
use crate::fleet::model::PeerKind;
use crate::fsutil::write_atomic;
use crate::plan::plan_client;
use crate::render::{client_key_placeholder, render_client_config};
use crate::secrets::{self, age, keys::SecretKey};

pub fn cmd_client_config(
    args: &ClientConfigArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    let (loaded, valid, now) = check_valid(&args.fleet, err)?;
    let name = &args.name;
    let in_networks: Vec<&String> = valid
        .networks
        .iter()
        .filter(|(n, net)| {
            args.network.as_ref().is_none_or(|w| w == *n)
                && net
                    .peers
                    .get(name)
                    .is_some_and(|p| p.kind == PeerKind::Client)
        })
        .map(|(n, _)| n)
        .collect();
    let network = match in_networks.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::Usage(format!(
                "{}: no client {name:?}{}",
                loaded.path.display(),
                args.network
                    .as_ref()
                    .map(|n| format!(" in {n}"))
                    .unwrap_or_default()
            )));
        }
        many => {
            let list: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
            return Err(Error::Usage(format!(
                "client {name:?} is in {}; pick one with --network",
                list.join(", ")
            )));
        }
    };
    if let Some(path) = &args.out
        && !args.force
        && std::fs::symlink_metadata(path).is_ok()
    {
        return Err(Error::Exists { path: path.clone() });
    }
    let net = &valid.networks[network];
    let plan = plan_client(net, name, now)
        .ok_or_else(|| Error::Usage(format!("client {name:?} has expired; it is on no host")))?;
    // A lone server imported from its own file has no endpoint yet: a client file where no
    // peer has one could never connect.
    if let Some(hub) = plan
        .peers
        .first()
        .filter(|_| plan.peers.iter().all(|p| p.endpoint.is_none()))
    {
        return Err(Error::Usage(format!(
            "{} has no endpoint, so client {name:?} could not dial it; set hosts.{}.endpoint (the address clients connect to)",
            hub.name, hub.name
        )));
    }
    let ids = if args.identities.is_empty() {
        None
    } else {
        Some(
            age::load_identities(&args.identities).map_err(|source| Error::Secret {
                context: format!("client {name}"),
                source,
            })?,
        )
    };
    let mut secrets = secrets::load_client_secrets(&loaded, &plan, ids.as_ref())?;
    let mut new_public = None;
    if args.generate {
        let key = SecretKey::generate_private();
        new_public = Some(key.public_key());
        secrets.insert(client_key_placeholder(name), key);
    }
    let config = secrets.fill(&render_client_config(&plan)?);
    let text = if args.qr {
        let code = QrCode::new(config.as_bytes()).map_err(|e| Error::Render {
            what: format!("the QR code of {name}"),
            message: e.to_string(),
        })?;
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .build()
            + "\n"
    } else {
        config.to_string()
    };
    // The configuration first, the fleet after: when the configuration cannot be written, the
    // fleet still holds the old key (the private key of the new one exists nowhere else).
    match &args.out {
        Some(path) => {
            write_atomic(path, text.as_bytes(), 0o600).map_err(|source| Error::Write {
                path: path.clone(),
                source,
            })?
        }
        None => write_out(out, &text)?,
    }
    if let Some(public) = new_public {
        let old = &net.peers[name].public_key;
        let said = record_public_key(&loaded, network, name, old, &public).map_err(|e| {
            Error::Usage(format!(
                "{e}\nthe configuration holds a new key whose public key is {public}: set \
                 networks.{network}.clients.{name}.publicKey to it by hand"
            ))
        })?;
        let _ = writeln!(err, "{said}");
    }
    Ok(0)
}

/// Puts a client's new public key into a JSON fleet where its old key appears exactly once,
/// keeping the file's formatting; otherwise says what the operator must change.
fn record_public_key(
    loaded: &Loaded,
    network: &str,
    client: &str,
    old: &str,
    new: &str,
) -> Result<String> {
    let field = format!("networks.{network}.clients.{client}.publicKey");
    if let Some(updated) = loaded
        .json_source
        .as_deref()
        .and_then(|text| crate::fleet::edit::replace_string(text, old, new))
    {
        super::write_fleet(&loaded.path, &updated)?;
        return Ok(format!(
            "{}: {field} is now {new}; commit it, and the hubs pick it up at their next apply",
            loaded.path.display()
        ));
    }
    Ok(format!(
        "set {field} to {new} in {} (the hubs pick it up at their next apply)",
        loaded.path.display()
    ))
}
