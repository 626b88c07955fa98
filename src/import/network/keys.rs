//! Keys: private keys nobody peers with, stale keys, preshared keys between members.

use super::*;

impl<'f> NetImport<'f, '_> {
    pub(crate) fn report_keys(&mut self) {
        if self.members.len() < 2 {
            return;
        }
        let names: Vec<String> = self.members.keys().cloned().collect();
        for to in &names {
            let m = &self.members[to];
            if m.key_from_peers {
                continue;
            }
            let known = self.entries.iter().any(|((_, t), e)| t == to && !e.stale);
            let stale: Vec<(&String, &Entry)> = self
                .entries
                .iter()
                .filter(|((_, t), e)| t == to && e.stale)
                .map(|((f, _), e)| (f, e))
                .collect();
            let key_line = m.file.private_key.as_ref().map(|(_, l)| *l);
            let mut places = m.file.places(key_line);
            for (_, e) in &stale {
                places.extend(e.key_place());
            }
            let stale_text = stale
                .iter()
                .map(|(f, e)| format!("{f} has {to} under {}", e.sec.key().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("; ");
            let hosts = stale
                .iter()
                .map(|(f, _)| f.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            if !known && stale.is_empty() {
                self.f.warn(
                    "key-nowhere",
                    format!(
                        "{to}'s private key belongs to {}, which appears in no other file of {}: no host peers with {to} under this key",
                        m.key, self.name
                    ),
                    places,
                );
            } else if !known {
                self.f.warn(
                    "key-nowhere",
                    format!(
                        "{to}'s private key belongs to {}, which appears in no other file; {stale_text} instead: was {to}'s key regenerated? Imported with {} (from the private key); applying replaces the old key on {hosts}",
                        m.key, m.key
                    ),
                    places,
                );
            } else if !stale.is_empty() {
                self.f.warn(
                    "stale-key",
                    format!(
                        "{stale_text}, which is no host's key, while the others know {to} as {}: an old key of {to}? Imported with {}; applying replaces it on {hosts}",
                        m.key, m.key
                    ),
                    places,
                );
            }
        }
    }

    pub(crate) fn pair_psks(&mut self) -> Vec<(String, String, &'f SecretKey, (String, usize))> {
        let mut out = Vec::new();
        let names: Vec<String> = self.members.keys().cloned().collect();
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                let ab = self.entries.get(&(a.clone(), b.clone()));
                let ba = self.entries.get(&(b.clone(), a.clone()));
                let psk = |e: Option<&Entry<'f>>| {
                    e.and_then(|e| {
                        e.sec
                            .psk
                            .as_ref()
                            .map(|(k, l)| (k, (e.file.src.display.clone(), *l)))
                    })
                };
                let (pa, pb) = (psk(ab), psk(ba));
                let a_has = pa.is_some();
                let place = |e: Option<&Entry<'f>>| {
                    e.and_then(|e| e.sec.psk.as_ref().map(|(_, l)| e.file.place(*l)))
                };
                match (pa, pb) {
                    (None, None) => {}
                    (Some((ka, sa)), Some((kb, _))) if ka.to_base64() == kb.to_base64() => {
                        out.push((a.clone(), b.clone(), ka, sa))
                    }
                    (Some((ka, sa)), Some(_)) => {
                        self.f.warn(
                            "psk-mismatch",
                            format!("{a} and {b} use different PresharedKeys for each other: the handshake fails; {a}'s is imported, so applying changes {b}'s"),
                            [place(ab), place(ba)].into_iter().flatten().collect(),
                        );
                        out.push((a.clone(), b.clone(), ka, sa));
                    }
                    (Some((k, src)), None) | (None, Some((k, src))) => {
                        let (has, lacks) = if a_has { (a, b) } else { (b, a) };
                        if ab.is_some() && ba.is_some() {
                            self.f.warn(
                                "psk-mismatch",
                                format!("{has} has a PresharedKey for {lacks}, but {lacks} has none for {has}: the handshake fails; imported, so applying adds it on {lacks}"),
                                [place(ab), place(ba)].into_iter().flatten().collect(),
                            );
                        }
                        out.push((a.clone(), b.clone(), k, src));
                    }
                }
            }
        }
        out
    }
}
