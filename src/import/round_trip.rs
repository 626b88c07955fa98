//! Round trip: render every imported file from the fleet and compare meanings.

use super::*;

fn redact(mut conf: WgConf) -> WgConf {
    if let Some(v) = conf.interface.get_mut("privatekey") {
        *v = vec![SECRET_MARK.to_owned()];
    }
    for p in conf.peers.values_mut() {
        if p.preshared_key.is_some() {
            p.preshared_key = Some(SECRET_MARK.to_owned());
        }
    }
    conf
}

fn normalized_values(values: Option<&Vec<String>>) -> BTreeSet<String> {
    values
        .into_iter()
        .flatten()
        .flat_map(|v| v.split(',').map(|s| s.trim().to_owned()))
        .filter(|s| !s.is_empty())
        .collect()
}

/// `Table` absent in the imported file and `off` in the rendered one: wgfleet adds the same
/// routes as wg-quick did, in one batch (not a difference to report).
fn table_handover(key: &str, old: &WgConf, new: &WgConf) -> bool {
    key == "table" && wgconf::table_handover(old.interface.get(key), new.interface.get(key))
}

/// The differences between two meanings, as `key: old → new` lines (secrets never shown).
fn differences(old: &WgConf, new: &WgConf, names: &BTreeMap<String, String>) -> Vec<String> {
    let (old, new) = (redact(old.clone()), redact(new.clone()));
    let mut out = Vec::new();
    let keys: BTreeSet<&String> = old.interface.keys().chain(new.interface.keys()).collect();
    let show = |s: &BTreeSet<String>| {
        if s.is_empty() {
            "(none)".to_owned()
        } else {
            s.iter().cloned().collect::<Vec<_>>().join(", ")
        }
    };
    for k in keys {
        let (a, b) = (
            normalized_values(old.interface.get(k)),
            normalized_values(new.interface.get(k)),
        );
        if a != b && !table_handover(k, &old, &new) {
            let key = crate::wgconf::canonical_key(k);
            if k == "privatekey" {
                out.push(format!(
                    "{key} {}",
                    if b.is_empty() { "removed" } else { "added" }
                ));
            } else {
                out.push(format!("{key}: {} → {}", show(&a), show(&b)));
            }
        }
    }
    let name = |k: &str| {
        names
            .get(k)
            .map_or_else(|| k.to_owned(), |n| format!("{n} ({k})"))
    };
    let peers: BTreeSet<&String> = old.peers.keys().chain(new.peers.keys()).collect();
    for k in peers {
        match (old.peers.get(k), new.peers.get(k)) {
            (Some(_), None) => out.push(format!("- peer {}", name(k))),
            (None, Some(p)) => out.push(format!(
                "+ peer {} {}",
                name(k),
                p.allowed_ips.iter().cloned().collect::<Vec<_>>().join(", ")
            )),
            (Some(a), Some(b)) if a != b => {
                let fields = b.changes_from(a);
                out.push(format!("~ peer {}: {}", name(k), fields.join("; ")));
            }
            _ => {}
        }
    }
    out
}

pub(super) fn round_trip(
    valid: &crate::fleet::ValidFleet,
    nets: &[(String, NetOut<'_>)],
    now: i64,
    f: &mut Findings,
) {
    let mut same = Vec::new();
    for (name, out) in nets {
        let Some(model): Option<&NetworkModel> = valid.networks.get(name) else {
            continue;
        };
        for (host, file) in &out.files {
            // A file wg-quick refuses runs nothing today: its errors say so, a diff would not.
            if !file.refused.is_empty() {
                continue;
            }
            let Some(plan) = crate::plan::plan_interface(valid, model, host, now) else {
                continue;
            };
            let Ok(text) = crate::render::render_config(&plan) else {
                continue;
            };
            let diffs = differences(&file.meaning, &wgconf::parse(&text), &out.names);
            if diffs.is_empty() {
                same.push(file.src.display.clone());
            } else {
                let old = &file.meaning;
                let new = wgconf::parse(&text);
                let keys: BTreeSet<&String> =
                    old.interface.keys().chain(new.interface.keys()).collect();
                let restart = keys.into_iter().any(|k| {
                    !wgconf::RELOADABLE_INTERFACE_KEYS.contains(&k.as_str())
                        && !table_handover(k, old, &new)
                        && normalized_values(old.interface.get(k))
                            != normalized_values(new.interface.get(k))
                });
                let action = if restart {
                    "a restart of the interface"
                } else {
                    "a reload (wg syncconf: live sessions survive)"
                };
                f.note(
                    "will-change",
                    format!(
                        "what `wgfleet apply` will change on {host} ({name}), compared with {}, by {action}: {}",
                        file.src.display,
                        diffs.join("; ")
                    ),
                    vec![],
                );
            }
        }
    }
    if !same.is_empty() {
        f.note(
            "round-trip",
            format!(
                "the fleet renders back the same sections, keys and values (comments and order aside) for {}",
                same.join(", ")
            ),
            vec![],
        );
    }
}
