//! The guides that run on hosts (a `<!-- testbed: NAME=ADDRESS/PREFIX … -->` line): every block
//! marked `host=NAME` runs inside that host, booted with real systemd on a bridge of its own
//! (tests/support/testbed.rs), in a copy of the operator's directory at `/x/work`, as if the
//! fleet repository were checked out there; the other blocks run on the operator's machine,
//! in order. The addresses are the documentation ranges the guides' endpoints use, so the
//! fleets run unchanged; no packet leaves the test's bridge.
//!
//! `setup=handmade:SEED` first brings every host up by hand from
//! tests/fixtures/import/SEED/HOST/wg0.conf, its key decrypted inside the host, and leaves the
//! collected files in the operator's `collected/HOST/wg0.conf` (what a `skip=ssh` block shows).

#[path = "support/docs.rs"]
mod docs;
#[path = "support/testbed.rs"]
mod testbed;

use std::fs;
use std::path::Path;

use docs::{Doc, Operator};
use testbed::{Host, Testbed};

const TESTBED_DOCS: &[&str] = &[
    "docs/gitops.md",
    "docs/homelab.md",
    "docs/migrating.md",
    "docs/rotation.md",
];

#[test]
fn gitops_guide_runs_on_real_hosts() {
    run_doc("docs/gitops.md");
}

#[test]
fn homelab_guide_runs_on_real_hosts() {
    run_doc("docs/homelab.md");
}

#[test]
fn migrating_guide_runs_on_real_hosts() {
    run_doc("docs/migrating.md");
}

#[test]
fn rotation_guide_runs_on_real_hosts() {
    run_doc("docs/rotation.md");
}

#[test]
fn every_testbed_guide_has_a_test() {
    let with_testbed: Vec<String> = docs::all_docs()
        .into_iter()
        .filter(|rel| Doc::read(rel).testbed.is_some())
        .collect();
    assert_eq!(with_testbed, TESTBED_DOCS);
}

fn run_doc(rel: &str) {
    let doc = Doc::read(rel);
    let spec = doc.testbed.clone().expect("a <!-- testbed: … --> line");
    let setup = spec.get("setup").cloned();
    let specs: Vec<(&str, &str)> = spec
        .iter()
        .filter(|(k, _)| *k != "setup")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let bed = Testbed::new(rel).expect("testbed");
    let hosts = bed.add_hosts(&specs).expect("hosts");
    let mut operator = Operator::new();
    for h in &hosts {
        fs::create_dir_all(h.dir().join("bin")).unwrap();
        fs::copy(env!("CARGO_BIN_EXE_wgfleet"), h.dir().join("bin/wgfleet")).unwrap();
        sync(&operator, h);
    }
    if let Some(seed) = setup.as_deref().and_then(|s| s.strip_prefix("handmade:")) {
        for h in &hosts {
            set_up_by_hand(h, seed, operator.dir.path());
        }
    }

    let failures = docs::check_doc(&doc, |block, steps| match &block.host {
        None => operator.run(steps),
        Some(name) => {
            let host = hosts.iter().find(|h| h.name() == name).unwrap_or_else(|| {
                panic!("{rel}:{}: no host {name} in the testbed line", block.line)
            });
            sync(&operator, host);
            let ran = on_host(host, steps);
            if let Some(path) = &block.fetch {
                let from = host.dir().join("work").join(path);
                fs::copy(&from, operator.dir.path().join(path))
                    .unwrap_or_else(|e| panic!("{rel}:{}: fetch={path}: {e}", block.line));
            }
            ran
        }
    });
    assert!(
        failures.is_empty(),
        "{} command(s) of {rel} do not do what it says:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The operator's directory, as the host's checkout of the fleet repository (`/x/work`).
fn sync(operator: &Operator, host: &Host) {
    let to = host.dir().join("work");
    fs::create_dir_all(&to).unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(operator.dir.path().join("."))
        .arg(&to)
        .status()
        .expect("cp");
    assert!(status.success());
}

/// Runs the steps inside the host, from `/x/work`.
fn on_host(host: &Host, steps: &[&docs::Step]) -> Vec<docs::Ran> {
    let results = host.dir().join("results");
    let _ = fs::remove_dir_all(&results);
    fs::create_dir_all(&results).unwrap();
    let prelude = "export PATH=/x/bin:\"$PATH\" TZ=UTC LC_ALL=C.UTF-8 NO_COLOR=1";
    fs::write(
        results.join("script.sh"),
        docs::script(steps, "/x/work", "/x/results", prelude),
    )
    .unwrap();
    host.sh("bash /x/results/script.sh")
        .expect("run on the host");
    docs::read_results(&results, steps.len()).0
}

/// The host as an operator set it up before wgfleet: its wg0.conf written by hand (the key
/// decrypted inside the host, never passing through the test), the port opened with iptables,
/// `wg-quick@wg0` enabled and started. Its file is then collected on the operator's machine.
fn set_up_by_hand(host: &Host, seed: &str, operator: &Path) {
    let name = host.name();
    host.sh_ok(&format!(
        "set -e; umask 077; mkdir -p /etc/wireguard; \
         key=$(age -d -i /x/work/secrets/test-identity.txt /x/work/secrets/examples/{seed}/{name}.age); \
         sed \"s|<age:{seed}/{name}>|$key|\" /x/work/tests/fixtures/import/{seed}/{name}/wg0.conf \
           > /etc/wireguard/wg0.conf; \
         port=$(sed -n 's/^ListenPort *= *//p' /etc/wireguard/wg0.conf); \
         if [ -n \"$port\" ]; then iptables -C INPUT -p udp --dport $port -j ACCEPT 2>/dev/null || \
           iptables -A INPUT -p udp --dport $port -j ACCEPT; fi; \
         systemctl enable --now wg-quick@wg0; \
         install -m 600 /etc/wireguard/wg0.conf /x/collected.conf"
    ))
    .unwrap_or_else(|e| panic!("set up {name} by hand: {e}"));
    let to = operator.join("collected").join(name);
    fs::create_dir_all(&to).unwrap();
    fs::rename(host.dir().join("collected.conf"), to.join("wg0.conf")).unwrap();
}
