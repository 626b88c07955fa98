//! The keys found in the files: age-encrypted on the spot and named in the fleet by a path
//! relative to it, or left out with what to do.

use super::*;

pub(super) fn seal(
    fleet: &mut Fleet,
    planned: &[PlannedSecret<'_>],
    opts: &Options<'_>,
    f: &mut Findings,
) -> Result<Vec<SecretFile>, String> {
    let mut out = Vec::new();
    let mut left_out: Vec<&PlannedSecret<'_>> = Vec::new();
    let mut operators_only: Vec<&str> = Vec::new();
    for p in planned {
        let mut texts: Vec<&str> = opts.recipients.iter().map(String::as_str).collect();
        if let Some(rf) = opts.recipients_file {
            texts.extend(rf.for_hosts(p.needed_by.iter().map(String::as_str)));
            if matches!(p.target, Target::Host(_))
                && p.needed_by.iter().any(|h| !rf.hosts.contains_key(h))
            {
                operators_only.extend(p.needed_by.iter().map(String::as_str));
            }
        }
        let mut seen = BTreeSet::new();
        texts.retain(|t| seen.insert(*t));
        if texts.is_empty() {
            left_out.push(p);
            continue;
        }
        let recipients = texts
            .iter()
            .map(|t| parse_recipient(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let mut plain = p.key.to_base64();
        plain.push('\n');
        let sealed = encrypt(plain.as_bytes(), &recipients).map_err(|e| e.to_string())?;
        let path = opts.secrets_dir.join(&p.file_name);
        let reference = relative_path(&path, opts.fleet_dir);
        match &p.target {
            Target::Host(h) => {
                if let Some(host) = fleet.hosts.get_mut(h) {
                    host.private_key_file = Some(reference.clone());
                }
            }
            Target::Member(n, h) => {
                if let Some(m) = fleet.networks.get_mut(n).and_then(|n| n.members.get_mut(h)) {
                    m.private_key_file = Some(reference.clone());
                }
            }
            Target::Pair(n, a, b) => {
                if let Some(net) = fleet.networks.get_mut(n) {
                    net.preshared_keys.push(schema::PresharedKeyPair {
                        peers: vec![a.clone(), b.clone()],
                        file: reference.clone(),
                        ..Default::default()
                    });
                }
            }
            Target::Client(n, c) => {
                if let Some(cl) = fleet.networks.get_mut(n).and_then(|n| n.clients.get_mut(c)) {
                    cl.preshared_key_file = Some(reference.clone());
                }
            }
        }
        out.push(SecretFile {
            path,
            reference,
            what: p.what.clone(),
            recipients: recipients.len(),
            sealed,
        });
    }
    if !out.is_empty() {
        let files: Vec<&str> = out.iter().map(|s| s.reference.as_str()).collect();
        let counts: BTreeSet<usize> = out.iter().map(|s| s.recipients).collect();
        let counts: Vec<String> = counts.iter().map(ToString::to_string).collect();
        f.note(
            "secrets",
            format!(
                "the keys found in the files were encrypted on the spot (to {} recipient(s)), never written in plain text: {}",
                counts.join("/"),
                files.join(", ")
            ),
            vec![],
        );
    }
    if !operators_only.is_empty() {
        operators_only.sort();
        operators_only.dedup();
        f.note(
            "secrets",
            format!(
                "the recipients file has no line for {}: their keys are encrypted to the operators only, so these hosts cannot decrypt them yet; add `HOST ssh-ed25519 …` lines (their /etc/ssh/ssh_host_ed25519_key.pub) and run `wgfleet rekey`",
                operators_only.join(", ")
            ),
            vec![],
        );
    }
    if !left_out.is_empty() {
        let lines: Vec<String> = left_out
            .iter()
            .map(|p| {
                let path = opts.secrets_dir.join(&p.file_name);
                let field = match &p.target {
                    Target::Host(h) => format!("hosts.{h}.privateKeyFile"),
                    Target::Member(n, h) => format!("networks.{n}.members.{h}.privateKeyFile"),
                    Target::Pair(n, ..) => format!("networks.{n}.presharedKeys[].file"),
                    Target::Client(n, c) => format!("networks.{n}.clients.{c}.presharedKeyFile"),
                };
                let from = p
                    .source
                    .as_ref()
                    .map(|(file, line)| format!(", from {file}:{line}"))
                    .unwrap_or_default();
                format!(
                    "\n    {field} = \"{}\" ({}{from})",
                    relative_path(&path, opts.fleet_dir),
                    p.what
                )
            })
            .collect();
        let example = left_out
            .iter()
            .find_map(|p| {
                let (file, _) = p.source.as_ref()?;
                let key = if matches!(p.target, Target::Pair(..) | Target::Client(..)) {
                    "PresharedKey"
                } else {
                    "PrivateKey"
                };
                Some(format!(
                    "sed -n 's/^[[:space:]]*{key}[[:space:]]*=[[:space:]]*//Ip' {file} | age -a -r RECIPIENT -o {}",
                    display_path(&opts.secrets_dir.join(&p.file_name))
                ))
            })
            .unwrap_or_default();
        f.note(
            "secrets",
            format!(
                "no recipients (-r/-R): the keys found in the files were left out of the fleet, and none was written. Import again with -r RECIPIENT or -R recipients.txt, or encrypt each key from its file by hand (e.g. `{example}`) and add:{}\n  A new key instead (`wgfleet keygen -o secrets/HOST.age -R recipients.txt --host HOST`) changes the host's publicKey; every peer learns it on the next apply",
                lines.concat()
            ),
            vec![],
        );
    }
    Ok(out)
}

/// `target` relative to `base`, lexically, with '/' separators.
pub fn relative_path(target: &Path, base: &Path) -> String {
    let abs = |p: &Path| {
        crate::fsutil::normalize(&std::path::absolute(p).unwrap_or_else(|_| p.to_owned()))
    };
    let (t, b) = (abs(target), abs(base));
    let tc: Vec<Component<'_>> = t.components().collect();
    let bc: Vec<Component<'_>> = b.components().collect();
    let common = tc.iter().zip(&bc).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".to_owned(); bc.len() - common];
    parts.extend(
        tc[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative_path(Path::new("secrets/cp.age"), Path::new(".")),
            "secrets/cp.age"
        );
        assert_eq!(
            relative_path(Path::new("/a/secrets/cp.age"), Path::new("/a/fleet")),
            "../secrets/cp.age"
        );
    }
}
