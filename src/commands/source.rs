//! `wgfleet source set|show`: the git source this host pulls its fleet from.

use std::io::Write;

use serde_json::json;

use super::write_out;
use crate::cli::SourceCommand;
use crate::error::{Error, Result};
use crate::fleet::time::format_rfc3339;
use crate::shell::paths::detect;

pub fn cmd_source(command: &SourceCommand, out: &mut dyn Write) -> Result<u8> {
    match command {
        SourceCommand::Set { source, root } => {
            let Some(source) = source.source() else {
                return Err(Error::Usage(
                    "source set needs --source URL and --allowed-signers FILE".into(),
                ));
            };
            let state = detect(root.as_deref()).state;
            let saved = crate::source::save(&state, &source)?;
            write_out(
                out,
                &format!(
                    "saved {}: {} ({}, {}); `wgfleet apply` now pulls it\n",
                    saved.display(),
                    crate::source::redact(&source.url),
                    source.git_ref,
                    source.path
                ),
            )?;
            Ok(0)
        }
        SourceCommand::Show { json, root } => {
            let state = detect(root.as_deref()).state;
            let saved = crate::source::saved(&state)?;
            let accepted = crate::source::accepted(&state);
            let last_error = crate::source::last_error(&state);
            if *json {
                let saved = saved.as_ref().map(|s| {
                    json!({"url": crate::source::redact(&s.url), "ref": s.git_ref, "path": s.path, "allowedSigners": s.allowed_signers})
                });
                let doc = json!({"source": saved, "accepted": accepted, "lastError": last_error});
                write_out(out, &format!("{doc:#}\n"))?;
                return Ok(0);
            }
            let mut text = match &saved {
                Some(s) => format!(
                    "source: {} ({}, {}), signers first trusted from {}\n",
                    crate::source::redact(&s.url),
                    s.git_ref,
                    s.path,
                    s.allowed_signers.display()
                ),
                None => "source: none saved (`wgfleet source set`)\n".to_owned(),
            };
            text.push_str(&describe_state(accepted.as_ref(), last_error.as_ref()));
            write_out(out, &text)?;
            Ok(0)
        }
    }
}

/// The accepted commit and the last refusal, as `source show` and `status` print them.
pub(crate) fn describe_state(
    accepted: Option<&crate::source::Accepted>,
    last_error: Option<&crate::source::LastError>,
) -> String {
    let mut text = match accepted {
        Some(a) => format!(
            "accepted: commit {} signed by {} at {}; the remote last answered at {}\n",
            a.commit,
            a.signer,
            format_rfc3339(a.accepted_at),
            format_rfc3339(a.fetched_at)
        ),
        None => "accepted: no commit yet\n".to_owned(),
    };
    if let Some(e) = last_error {
        text.push_str(&format!(
            "last pull ({}): {}\n",
            format_rfc3339(e.time),
            e.message
        ));
    }
    text
}
