//! The bound of a probe run on a hub with 100 spokes (issue 27): wall time and packets sent, when
//! every spoke answers and when 97 of them never run (each probe then waits its full timeout).
//! Beside it, what an operator runs today: a `ping -c 1 -W 1` loop over the same addresses.
//! Run with `bash bench/probe.sh`.

#[path = "support/testbed.rs"]
mod testbed;
#[path = "support/wgfleet_on.rs"]
mod wgfleet_on;

use std::time::Instant;

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wgfleet_on::{apply, provision, seed000_fleet, seed000_hosts, set_fleet};

const HOSTS: [&str; 3] = ["cp", "worker-1", "worker-2"];
const ABSENT: usize = 97;

/// Seed 000's cp and two workers, and `ABSENT` spokes that never run.
fn fleet(absent: usize) -> Value {
    let mut doc = seed000_fleet(&["worker-1", "worker-2"]);
    for i in 0..absent {
        let name = format!("absent-{i}");
        let key = base64::engine::general_purpose::STANDARD
            .encode(Sha256::digest(format!("probe-bench-{i}").as_bytes()));
        doc["hosts"][&name] =
            json!({ "publicKey": key, "privateKeyFile": format!("secrets/{name}.age") });
        doc["networks"]["wg0"]["members"][&name] = json!({ "id": 10 + i });
    }
    doc
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
#[ignore = "benchmark: run with bash bench/probe.sh (root, nspawn testbed)"]
fn probe_of_a_hundred_peer_hub() {
    let runs: usize = std::env::var("WGFLEET_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let bed = testbed::Testbed::new("probe-bench").expect("testbed");
    let hosts = seed000_hosts(&bed, &HOSTS);
    let cp = &hosts[0];
    for h in &hosts {
        provision(h, &HOSTS);
        set_fleet(h, &fleet(0));
        apply(h);
    }
    for h in &hosts[1..] {
        h.sh_ok("ping -c 1 -w 30 10.50.0.1").unwrap();
    }
    cp.sh_ok("iptables -N PROBE-COUNT && iptables -I OUTPUT 1 -o wg0 -j PROBE-COUNT && iptables -A PROBE-COUNT -j RETURN").unwrap();
    let counted = || -> u64 {
        let out = cp
            .sh_ok("iptables -nvxL PROBE-COUNT -Z | sed -n 3p")
            .unwrap();
        out.split_whitespace().next().unwrap().parse().unwrap()
    };
    let mut rows = Vec::new();
    for (case, absent) in [
        ("2 spokes, both answer", 0),
        ("100 spokes, 97 never run", ABSENT),
    ] {
        set_fleet(cp, &fleet(absent));
        apply(cp);
        let addresses: Vec<String> = (0..2 + absent)
            .map(|i| format!("10.50.0.{}", if i < 2 { i + 2 } else { 11 + i - 2 }))
            .collect();
        let (mut wall, mut packets, mut counts, mut stock) = (vec![], 0, 0, vec![]);
        for _ in 0..runs {
            counted();
            let t = Instant::now();
            let out = cp
                .sh("/x/wgfleet probe --json --fleet /x/fleet.json --host cp")
                .unwrap();
            wall.push(t.elapsed().as_secs_f64() * 1000.0);
            let r: Value = serde_json::from_slice(&out.stdout).expect("probe --json");
            let reached = r["peers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["reachable"] == true)
                .count();
            assert_eq!(
                (r["peers"].as_array().unwrap().len(), reached),
                (2 + absent, 2),
                "{r:#}"
            );
            packets = r["packets"].as_u64().unwrap();
            counts = counted();
            let t = Instant::now();
            cp.sh(&format!(
                "for a in {}; do ping -n -c 1 -W 1 $a >/dev/null; done",
                addresses.join(" ")
            ))
            .unwrap();
            stock.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        eprintln!(
            "{case}: probe {wall:?} ms, stock loop {stock:?} ms, {packets} packets ({counts} counted on wg0)"
        );
        rows.push(format!(
            "| {case} | {:.0} ms | {packets} ({counts} counted out of wg0) | {:.0} ms (reachability only) |",
            median(wall),
            median(stock)
        ));
    }
    println!("<!-- probe-bench:begin -->");
    println!(
        "| hub cp | `wgfleet probe` (median of {runs}) | packets sent | `ping -c 1 -W 1` loop |"
    );
    println!("|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    println!("<!-- probe-bench:end -->");
}
