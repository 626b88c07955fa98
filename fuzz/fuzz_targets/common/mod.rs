//! The pipeline both targets drive, as the CLI runs it: load, validate (locating every finding
//! in the source), then plan and render every host. Each target uses what it needs of it.
#![allow(dead_code)]

use std::path::Path;

use wgfleet::fleet::diag::Located;
use wgfleet::fleet::load::{Loaded, parse_json};
use wgfleet::fleet::locate::line_of;
use wgfleet::fleet::validate::{Options, validate};
use wgfleet::plan::plan_host;
use wgfleet::render::render_config;

pub fn run(text: &str, now: i64, expiry_warning: i64) {
    let path = Path::new("fleet.json");
    let Ok(fleet) = parse_json(path, text) else {
        return;
    };
    let loaded = Loaded { path: path.to_owned(), json_source: Some(text.to_owned()), fleet };
    let _ = loaded.digest();
    let (valid, diags) = validate(&loaded.fleet, Options { now, expiry_warning });
    for d in &diags.0 {
        let _ = line_of(text, &d.path);
        let _ = Located::new(path, Some(text), d).to_string();
    }
    let Some(valid) = valid else {
        return;
    };
    for host in valid.hosts.keys() {
        for plan in plan_host(&valid, host, now) {
            let _ = serde_json::to_string(&plan);
            let _ = render_config(&plan);
        }
    }
}

/// The plans of seed 000's policed hub (flows, forwarding): what `probe` reads rules against.
pub fn seed000_policy_plans() -> Vec<wgfleet::plan::InterfacePlan> {
    let text = include_str!("../../../examples/seed-000-policy/fleet.json");
    let fleet = parse_json(Path::new("fleet.json"), text).expect("the example parses");
    let (valid, _) = validate(&fleet, Options { now: 0, expiry_warning: 0 });
    plan_host(&valid.expect("the example is valid"), "cp", 0)
}
