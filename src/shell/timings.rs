//! How long each stage of one run took (`plan|apply --timings`): where a change's cost goes.

use std::time::Instant;

/// Stages in the order they ran, each with its wall time in milliseconds.
pub struct Timings {
    started: Instant,
    last: Instant,
    stages: Vec<(&'static str, f64)>,
}

impl Default for Timings {
    fn default() -> Self {
        let now = Instant::now();
        Timings {
            started: now,
            last: now,
            stages: Vec::new(),
        }
    }
}

impl Timings {
    /// Ends `stage`: the time since the last stage ended (or since the start), added to the
    /// stage's earlier laps (one per interface).
    pub fn lap(&mut self, stage: &'static str) {
        let now = Instant::now();
        let ms = (now - self.last).as_secs_f64() * 1000.0;
        match self.stages.iter_mut().find(|(s, _)| *s == stage) {
            Some((_, total)) => *total += ms,
            None => self.stages.push((stage, ms)),
        }
        self.last = now;
    }

    /// Takes over the stages another `Timings` measured since this one's last lap.
    pub fn extend(&mut self, inner: Timings) {
        self.stages.extend(inner.stages);
        self.last = inner.last.max(self.last);
    }

    fn total(&self) -> f64 {
        (self.last - self.started).as_secs_f64() * 1000.0
    }

    /// `{"stage": ms, …, "total": ms}` (stages in the order they ran).
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (stage, ms) in &self.stages {
            map.insert((*stage).to_owned(), round(*ms));
        }
        map.insert("total".into(), round(self.total()));
        serde_json::Value::Object(map)
    }

    /// One line: `timings: load 10.1 ms, …, total 52.3 ms`.
    pub fn describe(&self) -> String {
        let stages: Vec<String> = self
            .stages
            .iter()
            .map(|(stage, ms)| format!("{stage} {ms:.1} ms"))
            .collect();
        format!(
            "timings: {}, total {:.1} ms\n",
            stages.join(", "),
            self.total()
        )
    }
}

fn round(ms: f64) -> serde_json::Value {
    serde_json::json!((ms * 10.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_kept_in_order_with_the_total() {
        let mut t = Timings::default();
        t.lap("load");
        let mut inner = Timings::default();
        inner.lap("render");
        t.extend(inner);
        t.lap("act");
        t.lap("act");
        assert_eq!(t.stages.len(), 3);
        let json = t.to_json();
        let mut keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["act", "load", "render", "total"]);
        let line = t.describe();
        assert!(
            line.starts_with("timings: load ") && line.contains(", render "),
            "{line}"
        );
    }
}
