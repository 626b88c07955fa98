//! `wgfleet join`: this machine becomes a host of the fleet. Its WireGuard key is generated
//! here and kept (`secrets::local`), the source saved (`source::save`), the timers started;
//! what the operator commits is printed. Run again, it keeps the key.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::write_out;
use crate::cli::JoinArgs;
use crate::error::{Error, Result};
use crate::join::Joined;
use crate::secrets::local;
use crate::shell::paths::detect;
use crate::shell::systemd::Systemd;
use crate::unit::Job;

const TIMERS: [&str; 2] = ["wgfleet.timer", "wgfleet-endpoints.timer"];

pub fn cmd_join(args: &JoinArgs, out: &mut dyn Write) -> Result<u8> {
    crate::fleet::syntax::check_name(&args.host)
        .map_err(|why| Error::Usage(format!("--host {:?}: {why}", args.host)))?;
    if args.next_key {
        return cmd_next_key(args, out);
    }
    let Some(source) = args.source.source() else {
        return Err(Error::Usage(
            "join needs --source URL and --allowed-signers FILE: the fleet's repository and the \
             keys its commits are signed with"
                .into(),
        ));
    };
    crate::source::check(&source)?;
    let paths = detect(args.root.as_deref());
    let state = &paths.state;
    let store = local::store(state);
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Write { path, source }
    };

    let earlier = crate::join::load(state);
    if let Some(j) = earlier.as_ref().filter(|j| j.host != args.host) {
        return Err(Error::Usage(format!(
            "this machine joined the fleet as {:?} ({}); to give it another name, rename it in \
             the fleet, or remove {} first",
            j.host,
            j.public_key,
            state.join("joined.json").display()
        )));
    }
    let kept = earlier.filter(|j| local::read(&store, &j.public_key).is_ok());
    let (public_key, created) = match kept {
        Some(j) => (j.public_key, false),
        None => (local::generate(&store).map_err(write_err(&store))?, true),
    };
    let key_file = local::path_for(&store, &public_key);
    let saved = crate::source::save(state, &source)?;
    let joined = Joined {
        host: args.host.clone(),
        public_key: public_key.clone(),
    };
    crate::join::save(state, &joined).map_err(write_err(state))?;

    let timers = if args.no_timers || args.root.is_some() {
        Vec::new()
    } else {
        start_timers()?
    };

    let root = args.root.as_deref().unwrap_or(Path::new("/"));
    let host_key = root.join("etc/ssh/ssh_host_ed25519_key.pub");
    let recipient = std::fs::read_to_string(&host_key).ok().and_then(|text| {
        let mut parts = text.split_whitespace();
        let (kind, key) = (parts.next()?, parts.next()?);
        Some(format!("{} {kind} {key}", args.host))
    });
    let entry = format!(
        "\"{}\": {{\"publicKey\": \"{public_key}\", \"keyOnHost\": true}}",
        args.host
    );
    let url = crate::source::redact(&source.url);
    if args.json {
        let doc = json!({
            "host": args.host,
            "publicKey": public_key,
            "keyFile": key_file,
            "keyCreated": created,
            "recipient": recipient,
            "entry": entry,
            "source": {"url": url, "ref": source.git_ref, "path": source.path, "saved": saved},
            "timers": timers,
        });
        write_out(out, &format!("{doc:#}\n"))?;
        return Ok(0);
    }
    let mut text = format!(
        "host {}: private key {} {} (0600, never printed)\nsource {url} ({}, {}) saved in {}\n",
        args.host,
        key_file.display(),
        if created { "generated" } else { "kept" },
        source.git_ref,
        source.path,
        saved.display()
    );
    match timers.is_empty() {
        true => text.push_str("timers: not started (start them: systemctl enable --now wgfleet.timer wgfleet-endpoints.timer)\n"),
        false => text.push_str(&format!("timers: {} enabled and started\n", timers.join(", "))),
    }
    text.push_str(&format!(
        "\nAdd this host to the fleet's \"hosts\" (with an endpoint if peers dial it), make it a member \
         of its networks, and push that in a signed commit:\n  {entry}\n"
    ));
    match &recipient {
        Some(r) => text.push_str(&format!(
            "Its age recipient for the preshared keys others share with it (secrets/recipients.txt):\n  {r}\n"
        )),
        None => text.push_str(&format!(
            "No SSH host key at {}: preshared keys for this host need an age identity (--identity)\n",
            host_key.display()
        )),
    }
    write_out(out, &text)?;
    Ok(0)
}

/// `join --next-key`: the next key of a host that joined, generated into its key store beside
/// the current one, and the public key the operator stages (`rekey --next-public-key`).
fn cmd_next_key(args: &JoinArgs, out: &mut dyn Write) -> Result<u8> {
    let host = &args.host;
    let state = detect(args.root.as_deref()).state;
    match crate::join::load(&state) {
        Some(j) if j.host == *host => {}
        Some(j) => {
            return Err(Error::Usage(format!(
                "this machine joined the fleet as {:?}, not {host:?}: --next-key makes the next \
                 key of the host it runs on",
                j.host
            )));
        }
        None => {
            return Err(Error::Usage(format!(
                "this machine has not joined (no `wgfleet join`), so it keeps no key of its own; \
                 a host whose key is in the fleet is rotated with `wgfleet rekey --rotate {host} \
                 -R FILE` in the fleet's checkout"
            )));
        }
    }
    let store = local::store(&state);
    let public = local::generate(&store).map_err(|source| Error::Write {
        path: store.clone(),
        source,
    })?;
    let key_file = local::path_for(&store, &public);
    if args.json {
        let doc = json!({"host": host, "nextPublicKey": public, "keyFile": key_file});
        write_out(out, &format!("{doc:#}\n"))?;
        return Ok(0);
    }
    write_out(
        out,
        &format!(
            "host {host}: next private key {} generated (0600, never printed)\nstage it in the \
             fleet's checkout, and commit that:\n  wgfleet rekey --fleet FLEET --rotate {host} \
             --next-public-key {public}\n",
            key_file.display()
        ),
    )?;
    Ok(0)
}

/// Enables and starts both timers over D-Bus; their first run pulls the source.
fn start_timers() -> Result<Vec<String>> {
    let hint = |source| Error::Systemd {
        what: "the timers (systemd not reachable? --no-timers skips them)".into(),
        source,
    };
    let systemd = Systemd::connect().map_err(hint)?;
    for timer in TIMERS {
        systemd.enable(timer, false).map_err(hint)?;
        systemd.run(Job::Start, timer).map_err(hint)?;
    }
    Ok(TIMERS.iter().map(|t| t.to_string()).collect())
}
