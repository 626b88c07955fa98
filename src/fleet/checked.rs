//! The fleet as a command needs it: loaded, validated at a given time, every finding located
//! in the file; and one host's plans picked out of it, with errors that name the host.

use std::path::{Path, PathBuf};

use super::diag::Located;
use super::validate::{self, Options};
use super::{Loaded, ValidFleet};
use crate::error::{Error, Result};

/// How far ahead of a client's expiry commands that need a valid fleet warn about it.
pub const EXPIRY_WARNING_SECS: i64 = 14 * 86_400;

/// A loaded and validated fleet with its warnings.
pub struct Checked {
    pub loaded: Loaded,
    pub valid: Option<ValidFleet>,
    pub findings: Vec<Located>,
    pub now: i64,
}

/// Loads `path` and validates it at `now`, every finding located in the file.
pub fn check(
    path: &Path,
    nix_allow: &[PathBuf],
    now: i64,
    expiry_warning_days: u32,
) -> Result<Checked> {
    let loaded = super::load::load_with(path, nix_allow)?;
    let opts = Options {
        now,
        expiry_warning: i64::from(expiry_warning_days) * 86_400,
    };
    let (valid, diags) = validate::validate(&loaded.fleet, opts);
    let mut findings: Vec<Located> = diags
        .0
        .iter()
        .map(|d| Located::new(&loaded.path, loaded.json_source.as_deref(), d))
        .collect();
    findings.sort_by_key(|d| d.line);
    Ok(Checked {
        loaded,
        valid,
        findings,
        now,
    })
}

/// A fleet that must be valid: the invalid one is an error carrying every finding; the
/// warnings come back as the lines to print.
pub fn valid_with_warnings(
    path: &Path,
    nix_allow: &[PathBuf],
    now: i64,
) -> Result<(Loaded, ValidFleet, Vec<String>)> {
    let c = check(path, nix_allow, now, (EXPIRY_WARNING_SECS / 86_400) as u32)?;
    match c.valid {
        Some(valid) => {
            let warnings = c.findings.iter().map(ToString::to_string).collect();
            Ok((c.loaded, valid, warnings))
        }
        None => Err(Error::Invalid {
            diagnostics: c.findings,
        }),
    }
}

/// The plans of `host`, restricted to `network` when given.
pub fn plans_for(
    path: &Path,
    valid: &ValidFleet,
    host: &str,
    network: Option<&str>,
    now: i64,
) -> Result<Vec<crate::plan::InterfacePlan>> {
    if !valid.hosts.contains_key(host) {
        let known: Vec<&str> = valid.hosts.keys().map(String::as_str).collect();
        return Err(Error::UnknownHost {
            path: path.to_owned(),
            host: host.to_owned(),
            known: known.join(", "),
        });
    }
    match network {
        None => Ok(crate::plan::plan_host(valid, host, now)),
        Some(name) => {
            let not_member = || Error::NotAMember {
                path: path.to_owned(),
                host: host.to_owned(),
                network: name.to_owned(),
            };
            let net = valid.networks.get(name).ok_or_else(not_member)?;
            Ok(vec![
                crate::plan::plan_interface(valid, net, host, now).ok_or_else(not_member)?,
            ])
        }
    }
}
