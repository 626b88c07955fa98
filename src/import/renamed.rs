//! One tunnel under two interface names (`wgA.conf` on one host, `wgB.conf` on the other, as a
//! site-to-site guide writes it): the files whose hosts list each other become one network, and
//! the hosts whose file has another name keep it as their member's `interface`.

use super::*;

/// The network each interface name of the files belongs to: its own, or the one it is merged
/// into (the first name in order), with a note for each merge.
pub(super) fn networks(
    files: &[ConfFile],
    findings: &mut Vec<Finding>,
) -> BTreeMap<String, String> {
    let mut names: BTreeMap<String, String> = files
        .iter()
        .map(|f| (f.src.network.clone(), f.src.network.clone()))
        .collect();
    let hosts_of = |net: &str, names: &BTreeMap<String, String>| -> BTreeSet<String> {
        files
            .iter()
            .filter(|f| names[&f.src.network] == net)
            .map(|f| f.src.host.clone())
            .collect()
    };
    let key_of = |f: &ConfFile| f.private_key.as_ref().map(|(k, _)| k.public_key());
    let lists = |f: &ConfFile, key: &str| f.peers.iter().any(|p| p.key() == Some(key));
    for (i, a) in files.iter().enumerate() {
        for b in &files[i + 1..] {
            let (na, nb) = (names[&a.src.network].clone(), names[&b.src.network].clone());
            if na == nb || a.src.host == b.src.host {
                continue;
            }
            let (Some(ka), Some(kb)) = (key_of(a), key_of(b)) else {
                continue;
            };
            // Both ends list each other, and no host would have two files in one network.
            let mutual = lists(a, &kb) && lists(b, &ka);
            if !mutual || !hosts_of(&na, &names).is_disjoint(&hosts_of(&nb, &names)) {
                continue;
            }
            let (keep, gone) = if na <= nb { (na, nb) } else { (nb, na) };
            for v in names.values_mut() {
                if *v == gone {
                    *v = keep.clone();
                }
            }
            let mut lines: Vec<Place> = a.places(a.interface_line);
            lines.extend(b.places(b.interface_line));
            findings.push(Finding {
                severity: Severity::Note,
                kind: "interface-names",
                network: Some(keep.clone()),
                message: format!(
                    "{} and {} are the two ends of one tunnel under two interface names: imported as one network, {keep}, whose members on {gone} keep their interface name (`\"interface\": \"{gone}\"`)",
                    a.src.display, b.src.display
                ),
                lines,
            });
        }
    }
    names
}
