//! One tunnel under two interface names (`wgA.conf` on one host, `wgB.conf` on the other, as a
//! site-to-site guide writes it): refused with the reason, since a network's interface has one
//! name on every host.

use super::*;

/// An error for each pair of files of different interface names whose hosts list each other.
pub(super) fn report(files: &[ConfFile], multi: bool, findings: &mut Vec<Finding>) {
    let key_of = |f: &ConfFile| f.private_key.as_ref().map(|(k, _)| k.public_key());
    let lists = |f: &ConfFile, key: &str| f.peers.iter().any(|p| p.key() == Some(key));
    let has_file = |host: &str, net: &str| {
        files
            .iter()
            .any(|f| f.src.host == host && f.src.network == net)
    };
    for (i, a) in files.iter().enumerate() {
        for b in &files[i + 1..] {
            if a.src.host == b.src.host || a.src.network == b.src.network {
                continue;
            }
            let (Some(ka), Some(kb)) = (key_of(a), key_of(b)) else {
                continue;
            };
            let mutual = lists(a, &kb) && lists(b, &ka);
            if !mutual
                || has_file(&a.src.host, &b.src.network)
                || has_file(&b.src.host, &a.src.network)
            {
                continue;
            }
            let (ha, hb) = (&a.src.host, &b.src.host);
            let (na, nb) = (&a.src.network, &b.src.network);
            let mut lines: Vec<Place> = a.places(a.interface_line);
            lines.extend(b.places(b.interface_line));
            findings.push(Finding {
                severity: Severity::Error,
                kind: "interface-names",
                network: multi.then(|| na.clone()),
                message: format!(
                    "{} and {} are the two ends of one tunnel under two interface names ({na} on {ha}, {nb} on {hb}); a network's interface has the same name on every host in the fleet, so the tunnel between them is not carried over (each file becomes a network of its own, without the other end): rename one (on {hb}: `wg-quick down {nb}`, move the file to {na}.conf, `wg-quick up {na}`) and import again",
                    a.src.display, b.src.display
                ),
                lines,
            });
        }
    }
}
