//! The shape: mesh or hub-and-spoke, and pairs the shape would add or remove.

use super::*;

impl<'f> NetImport<'f, '_> {
    pub(crate) fn choose_topology(&mut self) {
        let names: Vec<String> = self.members.keys().cloned().collect();
        let adjacent = |a: &str, b: &str| {
            self.entries.contains_key(&(a.to_owned(), b.to_owned()))
                || self.entries.contains_key(&(b.to_owned(), a.to_owned()))
        };
        let n = names.len();
        let complete = names
            .iter()
            .enumerate()
            .all(|(i, a)| names[i + 1..].iter().all(|b| adjacent(a, b)));
        // A lone server with peers no host owns (a road-warrior VPN and its phones): the
        // clients connect to it, which is hub-and-spoke.
        let has_clients = self
            .foreign
            .iter()
            .any(|(_, _, sec, _)| sec.key().is_some_and(|k| !self.key_owners.contains_key(k)));
        if n == 1 && has_clients {
            self.hubs = names.clone();
        }
        if n <= 1 {
            return;
        }
        if complete {
            if n == 2 {
                let (a, b) = (&names[0], &names[1]);
                let dials = |x: &str, y: &str| {
                    self.entries
                        .get(&(x.to_owned(), y.to_owned()))
                        .is_some_and(|e| e.sec.endpoint.is_some())
                };
                match (dials(a, b), dials(b, a)) {
                    (true, false) => self.hubs = vec![b.clone()],
                    (false, true) => self.hubs = vec![a.clone()],
                    _ => {}
                }
            }
        } else {
            let hubs: Vec<String> = names
                .iter()
                .filter(|h| names.iter().all(|o| o == *h || adjacent(h, o)))
                .cloned()
                .collect();
            if hubs.is_empty() {
                let missing: Vec<String> = names
                    .iter()
                    .enumerate()
                    .flat_map(|(i, a)| {
                        names[i + 1..]
                            .iter()
                            .filter(|b| !adjacent(a, b))
                            .map(move |b| format!("{a}–{b}"))
                    })
                    .collect();
                self.f.warn(
                    "topology",
                    format!(
                        "{}: neither a mesh nor hub-and-spoke (no host peers with all the others); imported as a mesh, so applying adds the missing pairs: {}",
                        self.name,
                        missing.join(", ")
                    ),
                    vec![],
                );
            } else {
                self.hubs = hubs;
                for (i, a) in names.iter().enumerate() {
                    for b in &names[i + 1..] {
                        if !self.is_hub(a) && !self.is_hub(b) && adjacent(a, b) {
                            let mut places = Vec::new();
                            for (x, y) in [(a, b), (b, a)] {
                                if let Some(e) = self.entries.get(&(x.clone(), y.clone())) {
                                    places.extend(e.key_place());
                                }
                            }
                            self.f.warn(
                                "spoke-to-spoke",
                                format!(
                                    "{a} and {b} peer with each other, but neither is a hub ({}): wgfleet peers spokes only with hubs, so applying removes this pair",
                                    self.hubs.join(", ")
                                ),
                                places,
                            );
                        }
                    }
                }
            }
        }
        // Pairs where only one side has the other.
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                let ab = self.entries.get(&(a.clone(), b.clone()));
                let ba = self.entries.get(&(b.clone(), a.clone()));
                let rendered = self.is_mesh() || self.is_hub(a) || self.is_hub(b);
                let (has, lacks, e) = match (ab, ba) {
                    (Some(e), None) => (a, b, e),
                    (None, Some(e)) => (b, a, e),
                    _ => continue,
                };
                if rendered {
                    self.f.warn(
                        "one-sided",
                        format!("{has} peers with {lacks}, but {lacks} has no [Peer] for {has}: the tunnel cannot come up; applying adds it to {lacks}"),
                        e.key_place(),
                    );
                }
            }
        }
    }
}
