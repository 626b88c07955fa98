//! What the benchmarks on the nspawn testbed share (tests/apply_bench.rs, tests/hub_bench.rs):
//! the hub fleet of `bench/gen_fleet.py` with a real key, commands timed inside a host by its
//! bash, peak RSS, and summary statistics. Include with the testbed and wgfleet_on:
//! `#[path = "support/testbed.rs"] mod testbed;`, `#[path = "support/wgfleet_on.rs"] mod
//! wgfleet_on;` and `#[path = "support/bench.rs"] mod bench;`.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::testbed::Host;
use crate::wgfleet_on::root;

pub const HUB_IP: &str = "192.0.2.10";
/// Public key of `secrets/examples/seed-000/cp.age` (decrypted with `secrets/test-identity.txt`).
pub const HUB_KEY: &str = "j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=";

/// Runs a command (fork + exec from bash), output to OUT; prints "START END EXIT".
pub const TIMEIT: &str = r#"#!/bin/bash
out=$1; shift
s=$EPOCHREALTIME
"$@" >"$out" 2>&1
rc=$?
e=$EPOCHREALTIME
echo "$s $e $rc"
"#;

pub fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        })
        .unwrap_or(default)
}

/// `bench/gen_fleet.py hub n`, with the hub's real key, key file and testbed endpoint.
pub fn hub_fleet(n: usize) -> Value {
    hub_fleet_args(n, &[])
}

/// As [`hub_fleet`], with more arguments for the generator (`--prefix-len 12`).
pub fn hub_fleet_args(n: usize, args: &[&str]) -> Value {
    let out = Command::new("python3")
        .arg(root().join("bench/gen_fleet.py"))
        .args(["hub", &n.to_string()])
        .args(args)
        .output()
        .expect("run python3 bench/gen_fleet.py");
    assert!(
        out.status.success(),
        "gen_fleet.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut doc: Value = serde_json::from_slice(&out.stdout).expect("gen_fleet.py prints JSON");
    let hub = &mut doc["hosts"]["hub"];
    hub["publicKey"] = json!(HUB_KEY);
    hub["privateKeyFile"] = json!("secrets/hub.age");
    hub["endpoint"] = json!(HUB_IP);
    // The generator's keys are random: make sure none of them is the hub's.
    let hosts = doc["hosts"].as_object().unwrap();
    assert_eq!(
        hosts
            .values()
            .filter(|h| h["publicKey"] == json!(HUB_KEY))
            .count(),
        1
    );
    doc
}

/// A distinct, valid (32 bytes, base64) public key for a label.
pub fn key(label: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(label.as_bytes()))
}

/// Adds spoke `extra-{i}` with a new key and the next free id after `n` generated spokes.
pub fn add_spoke(doc: &mut Value, n: usize, i: usize) -> String {
    let name = format!("extra-{i}");
    doc["hosts"][&name] = json!({
        "publicKey": key(&format!("wgfleet-bench-spoke-{i}")),
        "privateKeyFile": format!("secrets/{name}.age"),
    });
    doc["networks"]["wg0"]["members"][&name] = json!({ "id": n + 1 + i });
    name
}

pub fn provision(host: &Host) {
    let dir = host.dir();
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_wgfleet"), dir.join("wgfleet")).unwrap();
    std::fs::copy(
        root().join("secrets/examples/seed-000/cp.age"),
        dir.join("secrets/hub.age"),
    )
    .unwrap();
    std::fs::copy(
        root().join("secrets/test-identity.txt"),
        dir.join("identity.txt"),
    )
    .unwrap();
    std::fs::write(dir.join("timeit.sh"), TIMEIT).unwrap();
    // tests/apply_bench.rs: another wgfleet binary to time beside this one.
    if let Some(baseline) = std::env::var_os("WGFLEET_BENCH_BASELINE") {
        std::fs::copy(&baseline, dir.join("wgfleet-baseline"))
            .unwrap_or_else(|e| panic!("WGFLEET_BENCH_BASELINE={baseline:?}: {e}"));
    }
}

pub fn sh(host: &Host, cmd: &str) -> String {
    host.sh_ok(cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// Wall time (ms) of `cmd` inside the host, measured by the host's bash; output to `out`.
pub fn time_in(host: &Host, out: &str, cmd: &str) -> f64 {
    let (ms, rc) = time_rc(host, out, cmd);
    if rc != 0 {
        let text = host.sh(&format!("cat {out}")).unwrap();
        panic!(
            "`{cmd}` exited {rc} in the host:\n{}",
            String::from_utf8_lossy(&text.stdout)
        );
    }
    ms
}

/// As [`time_in`], but a non-zero exit is returned (e.g. 124 from `timeout`), not a panic.
pub fn time_rc(host: &Host, out: &str, cmd: &str) -> (f64, i32) {
    let line = sh(host, &format!("bash /x/timeit.sh {out} {cmd}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.len(), 3, "timeit printed {line:?}");
    let (s, e): (f64, f64) = (f[0].parse().unwrap(), f[1].parse().unwrap());
    ((e - s) * 1000.0, f[2].parse().unwrap())
}

/// Peak RSS in KiB of `cmd` run inside the host.
pub fn peak_rss_kib(host: &Host, cmd: &str) -> u64 {
    let text = if Path::new("/usr/bin/time").exists() {
        sh(
            host,
            &format!(
                "/usr/bin/time -f %M -o /tmp/bench-rss {cmd} >/dev/null 2>&1; tail -n1 /tmp/bench-rss"
            ),
        )
    } else {
        // VmHWM of the process, polled until it exits (children not included).
        sh(
            host,
            &format!(
                "{cmd} >/dev/null 2>&1 & p=$!; m=0; while kill -0 $p 2>/dev/null; do \
                 v=$(awk '/^VmHWM/ {{print $2}}' /proc/$p/status 2>/dev/null); \
                 [ -n \"$v\" ] && [ \"$v\" -gt \"$m\" ] && m=$v; done; wait $p; echo $m"
            ),
        )
    };
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("peak RSS of `{cmd}`: {text:?}"))
}

pub fn rss_method() -> &'static str {
    if Path::new("/usr/bin/time").exists() {
        "`/usr/bin/time -f %M` (max RSS of the process and the children it waited for)"
    } else {
        "VmHWM from /proc/PID/status, polled (the process itself)"
    }
}

pub struct Stats {
    pub mean: f64,
    pub median: f64,
    pub sd: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

pub fn stats(xs: &[f64]) -> Stats {
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
    let mut s = xs.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    Stats {
        mean,
        median,
        sd: var.sqrt(),
        min: s[0],
        max: s[n - 1],
        n,
    }
}

pub fn row(what: &str, xs: &[f64], base: Option<&Stats>) -> String {
    let s = stats(xs);
    let ratio = match base {
        Some(b) => format!("{:.2}× / {:.2}×", s.mean / b.mean, s.median / b.median),
        None => "—".into(),
    };
    format!(
        "| {what} | {} | {:.1} ± {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {ratio} |",
        s.n, s.mean, s.sd, s.median, s.min, s.max
    )
}

pub fn verdict(ratio: f64, target: f64) -> &'static str {
    if ratio <= target {
        "pass"
    } else {
        "**MISSED**"
    }
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
