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
    if args.generate {
        let key = SecretKey::generate_private();
        let public = key.public_key();
        secrets.insert(client_key_placeholder(name), key);
        let _ = writeln!(
            err,
            "{}",
            record_public_key(&loaded, network, name, &net.peers[name].public_key, &public)?
        );
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
    match &args.out {
        Some(path) => {
            write_atomic(path, text.as_bytes(), 0o600).map_err(|source| Error::Write {
                path: path.clone(),
                source,
            })?
        }
        None => write_out(out, &text)?,
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
    let quoted = format!("\"{old}\"");
    if let Some(text) = &loaded.json_source
        && text.matches(&quoted).count() == 1
    {
        let updated = text.replace(&quoted, &format!("\"{new}\""));
        write_atomic(&loaded.path, updated.as_bytes(), 0o644).map_err(|source| Error::Write {
            path: loaded.path.clone(),
            source,
        })?;
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
