#![no_main]
//! `iptables-save` / `ip6tables-save` output, which holds every rule anyone put on the host:
//! parsing it, finding hand-made port rules, diffing it against wgfleet's rules, and reading the
//! rules ahead of wgfleet's chains for `probe`'s findings may not panic.

use libfuzzer_sys::fuzz_target;
use wgfleet::firewall;

mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let observed = firewall::parse_save(text);
    let facts = wgfleet::probe::HostFacts {
        iptables: Some(text.to_owned()),
        ..Default::default()
    };
    let _ = wgfleet::probe::host_findings(&facts, &common::seed000_policy_plans());
    let _ = firewall::foreign_port_rules(text, &[51820, 51821, 1]);
    let desired = vec![
        "-A WGFLEET-FORWARD -i wg0 -o wg0 -j ACCEPT".to_owned(),
        "-A WGFLEET-INPUT -p udp --dport 51820 -j ACCEPT".to_owned(),
    ];
    for want in [&desired[..], &[]] {
        let diff = firewall::diff(want, &observed);
        if let Some(restore) = &diff.restore {
            let _ = restore.len();
        }
    }
});
