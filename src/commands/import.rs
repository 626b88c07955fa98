//! `wgfleet import`: read the hosts' wg-quick files, write the fleet (and the encrypted keys), and
//! report what was not imported and what does not add up. The logic is in `crate::import`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::write_out;
use crate::cli::ImportArgs;
use crate::error::{Error, Result};
use crate::fsutil::{ensure_private_dir, write_atomic};
use crate::import::{self, Options, Severity};
use crate::secrets::age::parse_recipient;
use crate::secrets::recipients::RecipientsFile;

pub fn cmd_import(args: &ImportArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    let mut sources = Vec::new();
    for arg in &args.configs {
        sources.push(import::source_from_arg(arg).map_err(Error::Usage)?);
    }
    if let Some(dir) = &args.dir {
        sources.extend(import::sources_in_dir(dir).map_err(Error::Usage)?);
    }
    if sources.is_empty() {
        return Err(Error::Usage(
            "nothing to import: name each host's file as HOST=PATH, or pass --dir DIR holding HOST/wg0.conf"
                .into(),
        ));
    }
    let secret_err = |source| Error::Secret {
        context: "import".into(),
        source,
    };
    for r in &args.recipients {
        parse_recipient(r).map_err(secret_err)?;
    }
    let recipients_file = args
        .recipients_file
        .as_deref()
        .map(RecipientsFile::read)
        .transpose()
        .map_err(secret_err)?;
    if let Some(path) = &args.out
        && path.exists()
        && !args.force
    {
        return Err(Error::Exists { path: path.clone() });
    }
    let inputs = sources
        .into_iter()
        .map(import::read_input)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|message| Error::System {
            what: "import".into(),
            message,
        })?;

    let fleet_dir: PathBuf = match args.out.as_deref().and_then(Path::parent) {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let secrets_dir = match &args.secrets_dir {
        Some(dir) => dir.clone(),
        None if fleet_dir == Path::new(".") => PathBuf::from("secrets"),
        None => fleet_dir.join("secrets"),
    };
    let fleet_name = args
        .out
        .as_ref()
        .map_or_else(|| "<stdout>".to_owned(), |p| p.display().to_string());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let opts = Options {
        recipients: &args.recipients,
        recipients_file: recipients_file.as_ref(),
        secrets_dir: &secrets_dir,
        fleet_dir: &fleet_dir,
        fleet_name: &fleet_name,
        now,
    };
    let imported = import::import(&inputs, &opts).map_err(|message| Error::System {
        what: "import".into(),
        message,
    })?;
    drop(inputs);

    // Nothing is written unless everything can be.
    if !args.force
        && let Some(s) = imported.secrets.iter().find(|s| s.path.exists())
    {
        return Err(Error::Exists {
            path: s.path.clone(),
        });
    }
    if !imported.secrets.is_empty() {
        ensure_private_dir(&secrets_dir).map_err(|source| Error::Write {
            path: secrets_dir.clone(),
            source,
        })?;
    }
    for s in &imported.secrets {
        write_atomic(&s.path, &s.sealed, 0o600).map_err(|source| Error::Write {
            path: s.path.clone(),
            source,
        })?;
    }
    let fleet_json = imported.fleet_json();
    if let Some(path) = &args.out {
        write_atomic(path, fleet_json.as_bytes(), 0o644).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
    }

    let errors = imported.count(Severity::Error);
    let code = if imported.valid && errors == 0 { 0 } else { 1 };
    if args.json {
        let secrets: Vec<_> = imported
            .secrets
            .iter()
            .map(|s| json!({"file": s.path.display().to_string(), "reference": s.reference, "what": s.what, "recipients": s.recipients}))
            .collect();
        let doc = json!({
            "out": args.out.as_ref().map(|p| p.display().to_string()),
            "valid": imported.valid,
            "fleet": imported.fleet,
            "networks": imported.networks,
            "secrets": secrets,
            "findings": imported.findings,
            "summary": {
                "errors": imported.count(Severity::Error),
                "warnings": imported.count(Severity::Warning),
                "notes": imported.count(Severity::Note),
            },
        });
        write_out(out, &format!("{doc:#}\n"))?;
    } else {
        if args.out.is_none() {
            write_out(out, &fleet_json)?;
        }
        let _ = err.write_all(import::report_text(&imported).as_bytes());
        for s in &imported.secrets {
            let _ = writeln!(
                err,
                "wrote {} ({}, encrypted to {} recipient(s))",
                s.path.display(),
                s.what,
                s.recipients
            );
        }
        if let Some(path) = &args.out {
            let _ = writeln!(err, "wrote {}", path.display());
        }
        if !imported.valid {
            let _ = writeln!(
                err,
                "the imported fleet does not validate (see the errors above); fix it before `wgfleet apply`"
            );
        } else if errors > 0 {
            let _ = writeln!(
                err,
                "the import is incomplete (see the errors above): fix the files and import again before `wgfleet apply`"
            );
        }
    }
    Ok(code)
}
