//! Benchmark of `wgfleet apply` against the real tools, on one nspawn testbed host (DESIGN.md
//! §9). Ignored by default: run it with `bash bench/apply.sh`, or
//! `cargo test --release --test apply_bench -- --ignored --nocapture` (root, the testbed lock).
//!
//! One host "hub" (192.0.2.10/24) runs the hub of `bench/gen_fleet.py hub N`, with the real key
//! of seed 000's control plane (`secrets/examples/seed-000/cp.age`) so that apply can decrypt and
//! check it. Spokes never run: they are only distinct public keys. Every command is timed inside
//! the host by the same bash wrapper (`$EPOCHREALTIME` around a fork+exec), so the ratios compare
//! like with like:
//!
//! 1. no-op: with N = 1000 peers up, `wgfleet apply` with nothing changed, interleaved with
//!    `bash -c 'wg syncconf wg0 <(wg-quick strip wg0)'` (what a shell timer would run); checks
//!    that no apply wrote wg0.conf (inode + mtime) or ran a D-Bus job (wg-quick@wg0 journal);
//! 2. one peer added: with N = 10000, each run adds one spoke (new key) to the fleet and times
//!    `wgfleet apply` (ReloadUnit, i.e. the same syncconf pipeline run by systemd), then appends
//!    one `[Peer]` by hand to the file and times the raw syncconf pipeline, then restores the
//!    fleet's state with an untimed apply (and checks `plan` says there is nothing left to do);
//! 3. peak RSS of `wgfleet apply` in both scenarios (`/usr/bin/time -f %M`, else VmHWM).
//!
//! The markdown table goes to stdout between `<!-- apply-bench:begin -->` and
//! `<!-- apply-bench:end -->`; per-run figures go to stderr.
//!
//! Knobs (environment): WGFLEET_BENCH_NOOP_N (1000), WGFLEET_BENCH_ADD_N (10000),
//! WGFLEET_BENCH_NOOP_RUNS (20), WGFLEET_BENCH_ADD_RUNS (12), WGFLEET_BENCH_RSS_RUNS (3);
//! WGFLEET_BENCH_BASELINE=PATH: another wgfleet binary (an earlier commit's release build),
//! whose no-op apply is timed in the same runs, interleaved with this one's, so that a change's
//! cost is measured under the same load.

#[path = "support/bench.rs"]
mod bench;
#[path = "support/testbed.rs"]
mod testbed;
#[path = "support/wgfleet_on.rs"]
mod wgfleet_on;

use bench::*;
use testbed::{Host, Testbed};
use wgfleet_on::{file_id, set_fleet};

const APPLY: &str = "/x/wgfleet apply --fleet /x/fleet.json --host hub -i /x/identity.txt";
const APPLY_BASELINE: &str =
    "/x/wgfleet-baseline apply --fleet /x/fleet.json --host hub -i /x/identity.txt";
const PLAN: &str = "/x/wgfleet plan --fleet /x/fleet.json --host hub -i /x/identity.txt";
const SYNCCONF: &str = "bash -c 'wg syncconf wg0 <(wg-quick strip wg0)'";
const STRIP: &str = "wg-quick strip wg0";
/// `wg syncconf` alone, on a file stripped beforehand (untimed).
const SYNCCONF_STRIPPED: &str = "wg syncconf wg0 /tmp/wg0.stripped";
/// The unit's ExecReload (the same pipeline) through systemd, as apply's ReloadUnit runs it.
const SYSTEMCTL_RELOAD: &str = "systemctl reload wg-quick@wg0";

/// Times apply, then returns (ms, its output).
fn timed_apply(host: &Host) -> (f64, String) {
    let ms = time_in(host, "/tmp/bench-apply.out", APPLY);
    (ms, sh(host, "cat /tmp/bench-apply.out"))
}

fn apply(host: &Host) -> String {
    timed_apply(host).1
}

fn plan_exit(host: &Host) -> Option<i32> {
    host.sh(&format!("{PLAN} --detailed-exitcode"))
        .unwrap()
        .status
        .code()
}

fn peers(host: &Host) -> usize {
    sh(host, "wg show wg0 peers | wc -l")
        .trim()
        .parse()
        .unwrap()
}

fn journal_lines(host: &Host) -> String {
    sh(host, "journalctl -u wg-quick@wg0 -q --no-pager | wc -l")
        .trim()
        .to_owned()
}

const HEAD: &str = "| command (timed inside the host) | runs | mean ± σ | median | min | max | ratio to syncconf (mean / median) |\n| --- | --- | --- | --- | --- | --- | --- |";

#[test]
#[ignore = "benchmark: run with bash bench/apply.sh (root, nspawn testbed)"]
fn apply_vs_syncconf() {
    let noop_n = knob("WGFLEET_BENCH_NOOP_N", 1000);
    let add_n = knob("WGFLEET_BENCH_ADD_N", 10000);
    let noop_runs = knob("WGFLEET_BENCH_NOOP_RUNS", 20);
    let add_runs = knob("WGFLEET_BENCH_ADD_RUNS", 12);
    let rss_runs = knob("WGFLEET_BENCH_RSS_RUNS", 3);
    assert!(add_runs + rss_runs + 1 < 250, "raw peers use 10.0.250.0/24");
    assert!(noop_runs >= 2 && add_runs >= 2 && rss_runs >= 1);

    let bed = Testbed::new("apply-bench").expect("testbed");
    let hub = bed.add_host("hub", &format!("{HUB_IP}/24")).expect("host");
    provision(&hub);
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let versions = sh(
        &hub,
        "v() { grep -o 'v[0-9][0-9.]*' | head -1; }; \
         echo \"$(systemctl --version | head -1 | cut -d' ' -f1-2), wireguard-tools $(wg --version | v), \
         wireguard-go $(wireguard-go --version 2>&1 | v)\"",
    )
    .trim()
    .to_owned();

    // ---- 1. no-op on a hub with noop_n peers --------------------------------------------------
    let mut fleet = hub_fleet(noop_n);
    set_fleet(&hub, &fleet);
    let out = apply(&hub);
    assert!(out.contains("enable and start"), "{out}");
    assert_eq!(peers(&hub), noop_n, "peers after the first apply");
    assert!(
        !sh(&hub, "pgrep -f '^wireguard-go wg0' || true")
            .trim()
            .is_empty(),
        "wg0 runs on wireguard-go"
    );
    for _ in 0..2 {
        // warm-up (page cache, first D-Bus connection, etc.)
        assert!(apply(&hub).contains("wg0: nothing to do"));
        time_in(&hub, "/tmp/bench.out", SYNCCONF);
    }
    sh(&hub, "wg-quick strip wg0 > /tmp/wg0.stripped");
    let (file0, journal0) = (file_id(&hub), journal_lines(&hub));
    let (mut t_apply, mut t_sync, mut t_plan, mut t_strip) = (vec![], vec![], vec![], vec![]);
    let mut t_wg = vec![];
    let baseline = std::env::var_os("WGFLEET_BENCH_BASELINE").is_some();
    let mut t_base = vec![];
    for i in 0..noop_runs {
        // Alternate the order, so neither command always follows the other.
        let mut one = |which: usize| match which {
            0 => {
                let (ms, out) = timed_apply(&hub);
                assert!(out.contains("wg0: nothing to do"), "run {i}: {out}");
                t_apply.push(ms);
            }
            1 => t_sync.push(time_in(&hub, "/tmp/bench.out", SYNCCONF)),
            2 => t_plan.push(time_in(&hub, "/tmp/bench.out", PLAN)),
            3 => t_strip.push(time_in(&hub, "/dev/null", STRIP)),
            4 => t_wg.push(time_in(&hub, "/tmp/bench.out", SYNCCONF_STRIPPED)),
            _ => {
                t_base.push(time_in(&hub, "/tmp/bench.out", APPLY_BASELINE));
                let out = sh(&hub, "cat /tmp/bench.out");
                assert!(
                    out.contains("wg0: nothing to do"),
                    "baseline run {i}: {out}"
                );
            }
        };
        // With a baseline, it runs right after (even runs) or right before (odd) this apply.
        let order: &[usize] = match (i % 2 == 0, baseline) {
            (true, false) => &[0, 1, 2, 3, 4],
            (false, false) => &[1, 0, 4, 3, 2],
            (true, true) => &[0, 5, 1, 2, 3, 4],
            (false, true) => &[1, 5, 0, 4, 3, 2],
        };
        for &w in order {
            one(w);
        }
        eprintln!(
            "no-op run {i}: apply {:.1} ms, syncconf {:.1} ms, plan {:.1} ms, strip {:.1} ms, \
             syncconf of the stripped file {:.1} ms",
            t_apply[i], t_sync[i], t_plan[i], t_strip[i], t_wg[i]
        );
    }
    let (file1, journal1) = (file_id(&hub), journal_lines(&hub));
    assert_eq!(file1, file0, "a no-op apply wrote wg0.conf");
    assert_eq!(journal1, journal0, "a no-op apply ran a D-Bus job");
    assert_eq!(plan_exit(&hub), Some(0));
    let noop_rss: u64 = (0..rss_runs)
        .map(|_| peak_rss_kib(&hub, APPLY))
        .max()
        .unwrap();
    let noop_sync_rss = peak_rss_kib(&hub, SYNCCONF);
    assert_eq!(file_id(&hub), file0, "the RSS runs wrote wg0.conf");
    assert_eq!(
        journal_lines(&hub),
        journal0,
        "the RSS runs ran a D-Bus job"
    );
    let noop_sync = stats(&t_sync);
    let noop_ratio = (
        stats(&t_apply).mean / noop_sync.mean,
        stats(&t_apply).median / noop_sync.median,
    );

    // ---- 2. one peer added on a hub with add_n peers ------------------------------------------
    fleet = hub_fleet(add_n);
    set_fleet(&hub, &fleet);
    let out = apply(&hub);
    assert!(out.contains("reload"), "{out}");
    assert_eq!(peers(&hub), add_n, "peers after growing the fleet");
    assert_eq!(plan_exit(&hub), Some(0));
    let conf_kib = sh(&hub, "stat -c %s /etc/wireguard/wg0.conf")
        .trim()
        .parse::<u64>()
        .unwrap()
        / 1024;

    let mut extra = 0; // spokes added so far
    let mut raw = 0; // [Peer] blocks appended by hand so far
    let (mut a_apply, mut a_sync, mut a_plan, mut a_strip) = (vec![], vec![], vec![], vec![]);
    let (mut a_reload, mut a_wg) = (vec![], vec![]);
    for i in 0..=add_runs {
        let warmup = i == 0;
        // wgfleet: one more spoke in the fleet; plan (no action) then apply (ReloadUnit).
        let name = add_spoke(&mut fleet, add_n, extra);
        extra += 1;
        set_fleet(&hub, &fleet);
        let before = peers(&hub);
        let plan_ms = time_in(&hub, "/tmp/bench.out", PLAN);
        let planned = sh(&hub, "cat /tmp/bench.out");
        assert!(planned.contains(&format!("+ peer {name}")), "{planned}");
        let (apply_ms, out) = timed_apply(&hub);
        assert!(
            out.contains("reload") && out.contains(&format!("+ peer {name}")),
            "run {i}: {out}"
        );
        assert_eq!(peers(&hub), before + 1, "the apply added one peer");
        assert_eq!(plan_exit(&hub), Some(0), "converged after the apply");

        // Raw: the same file with one [Peer] appended by hand, then the syncconf pipeline.
        raw += 1;
        let raw_key = key(&format!("wgfleet-bench-raw-{raw}"));
        sh(
            &hub,
            &format!(
                "printf '\\n[Peer]\\nPublicKey = {raw_key}\\nAllowedIPs = 10.0.250.{raw}/32\\n' >> /etc/wireguard/wg0.conf"
            ),
        );
        let sync_ms = time_in(&hub, "/tmp/bench.out", SYNCCONF);
        assert_eq!(peers(&hub), before + 2, "syncconf added the hand-made peer");
        // The stock reload's first half alone, on the same file (one peer more than the fleet).
        let strip_ms = time_in(&hub, "/dev/null", STRIP);
        // Its second half alone, with the same one-peer change: the file stripped (untimed), the
        // hand-made peer removed live, then added back by `wg syncconf` from the stripped file.
        sh(&hub, "wg-quick strip wg0 > /tmp/wg0.stripped");
        sh(&hub, &format!("wg set wg0 peer {raw_key} remove"));
        assert_eq!(peers(&hub), before + 1);
        let wg_ms = time_in(&hub, "/tmp/bench.out", SYNCCONF_STRIPPED);
        assert_eq!(
            peers(&hub),
            before + 2,
            "syncconf added the hand-made peer back"
        );

        // Restore the fleet's state (untimed): rewrite the file, reload away the hand-made peer.
        let out = apply(&hub);
        assert!(out.contains("reload"), "restore: {out}");
        assert_eq!(
            peers(&hub),
            before + 1,
            "the restore removed the hand-made peer"
        );
        assert_eq!(plan_exit(&hub), Some(0), "converged after the restore");
        // The same pipeline through systemd (nothing to change now): the floor of a reload.
        let reload_ms = time_in(&hub, "/tmp/bench.out", SYSTEMCTL_RELOAD);

        eprintln!(
            "+1 peer run {i}{}: apply {apply_ms:.1} ms, syncconf {sync_ms:.1} ms, plan {plan_ms:.1} ms, strip {strip_ms:.1} ms, syncconf of the stripped file {wg_ms:.1} ms, systemctl reload {reload_ms:.1} ms ({} peers)",
            if warmup {
                " (warm-up, not counted)"
            } else {
                ""
            },
            before + 1
        );
        if !warmup {
            a_apply.push(apply_ms);
            a_sync.push(sync_ms);
            a_plan.push(plan_ms);
            a_strip.push(strip_ms);
            a_reload.push(reload_ms);
            a_wg.push(wg_ms);
        }
    }
    let mut add_rss = 0;
    for _ in 0..rss_runs {
        add_spoke(&mut fleet, add_n, extra);
        extra += 1;
        set_fleet(&hub, &fleet);
        let before = peers(&hub);
        add_rss = add_rss.max(peak_rss_kib(&hub, APPLY));
        assert_eq!(peers(&hub), before + 1, "the RSS run added one peer");
    }
    let add_sync_rss = peak_rss_kib(&hub, SYNCCONF);
    let final_peers = peers(&hub);
    let add_sync = stats(&a_sync);
    let add_ratio = (
        stats(&a_apply).mean / add_sync.mean,
        stats(&a_apply).median / add_sync.median,
    );
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    // ---- report ------------------------------------------------------------------------------
    let noop_s = stats(&t_apply);
    let add_s = stats(&a_apply);
    let add_p = stats(&a_plan);
    let add_st = stats(&a_strip);
    let add_r = stats(&a_reload);
    let add_wg = stats(&a_wg);
    let noop_st = stats(&t_strip);
    let noop_wg = stats(&t_wg);
    let noop_pl = stats(&t_plan);
    let paired = |a: &[f64], b: &[f64]| {
        let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
        stats(&d)
    };
    let add_diff = paired(&a_apply, &a_sync);
    let noop_diff = paired(&t_apply, &t_sync);
    let mut md = String::new();
    let mut line = |s: &str| {
        md.push_str(s);
        md.push('\n');
    };
    line(&format!(
        "Testbed host `hub` (systemd-nspawn, {versions}), fleet from `bench/gen_fleet.py hub N` with the hub's key from `secrets/examples/seed-000/cp.age`. \
         Every command timed inside the host by bash (`$EPOCHREALTIME` around fork+exec); load average before {}, after {}.",
        load_before
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        load_after
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    ));
    line("");
    line(&format!(
        "**No-op, hub with {noop_n} peers** ({noop_runs} runs of each, interleaved, after 2 warm-up runs):"
    ));
    line("");
    line(HEAD);
    line(&row(
        "`wgfleet apply` (nothing changed)",
        &t_apply,
        Some(&noop_sync),
    ));
    if baseline {
        line(&row(
            "baseline `wgfleet apply` (`WGFLEET_BENCH_BASELINE`, interleaved with the one above)",
            &t_base,
            Some(&noop_sync),
        ));
    }
    line(&row(
        "`bash -c 'wg syncconf wg0 <(wg-quick strip wg0)'`",
        &t_sync,
        Some(&noop_sync),
    ));
    line(&row(
        "`wgfleet plan` (same load, decrypt, observe, diff; no lock, no audit)",
        &t_plan,
        Some(&noop_sync),
    ));
    line(&row(
        "`wg-quick strip wg0 > /dev/null` (first half of the pipeline)",
        &t_strip,
        Some(&noop_sync),
    ));
    line(&row(
        "`wg syncconf wg0 /tmp/wg0.stripped` (second half alone: file stripped beforehand)",
        &t_wg,
        Some(&noop_sync),
    ));
    if baseline {
        let (this, base) = (stats(&t_apply), stats(&t_base));
        let diff = paired(&t_apply, &t_base);
        line("");
        line(&format!(
            "Against the baseline binary: apply / baseline = {:.3} (means), {:.3} (medians), {:.3} (minima); \
             paired per run (timed back to back) apply − baseline = {:.1} ± {:.1} ms (median {:.1} ms).",
            this.mean / base.mean,
            this.median / base.median,
            this.min / base.min,
            diff.mean,
            diff.sd,
            diff.median,
        ));
    }
    line("");
    line(&format!(
        "Where the time goes (medians): the raw pipeline {:.0} ms is `wg-quick strip` {:.0} ms + `wg syncconf` on the stripped file {:.0} ms; \
         the no-op apply {:.0} ms is essentially `plan` {:.0} ms (load and validate the fleet, decrypt, observe, diff). \
         Paired per run (the two timed back to back): apply − pipeline = {:.0} ± {:.0} ms (median {:.0} ms).",
        noop_sync.median,
        noop_st.median,
        noop_wg.median,
        noop_s.median,
        noop_pl.median,
        noop_diff.mean,
        noop_diff.sd,
        noop_diff.median,
    ));
    line("");
    line(&format!(
        "Checks: every apply printed `wg0: nothing to do`; `/etc/wireguard/wg0.conf` inode + mtime unchanged over all {} applies (no write); \
         `journalctl -u wg-quick@wg0` line count unchanged over all of them ({journal0} → {journal1}: no D-Bus job).",
        noop_runs + rss_runs
    ));
    line("");
    line(&format!(
        "**One peer added, hub with {add_n} peers** ({add_runs} runs after 1 warm-up; the peer count grows by one per run, {}–{}):",
        add_n + 2,
        add_n + 1 + add_runs
    ));
    line("");
    line(HEAD);
    line(&row(
        "`wgfleet apply` (+1 spoke in the fleet → write file, ReloadUnit)",
        &a_apply,
        Some(&add_sync),
    ));
    line(&row(
        "`bash -c 'wg syncconf wg0 <(wg-quick strip wg0)'` (+1 `[Peer]` appended by hand)",
        &a_sync,
        Some(&add_sync),
    ));
    line(&row(
        "`wgfleet plan` (+1 spoke; everything before acting)",
        &a_plan,
        Some(&add_sync),
    ));
    line(&row(
        "`wg-quick strip wg0 > /dev/null` (first half of the pipeline)",
        &a_strip,
        Some(&add_sync),
    ));
    line(&row(
        "`wg syncconf wg0 /tmp/wg0.stripped` (second half alone, same +1 peer: file stripped beforehand)",
        &a_wg,
        Some(&add_sync),
    ));
    line(&row(
        "`systemctl reload wg-quick@wg0` (the unit's ExecReload: wgfleet's drop-in runs `wgfleet reload-interface`, the file stripped in process and piped to `wg syncconf`; nothing to change)",
        &a_reload,
        Some(&add_sync),
    ));
    line("");
    line(&format!(
        "Where the time goes (medians; wg0.conf is {conf_kib} KiB): the raw pipeline {:.0} ms is `wg-quick strip` {:.0} ms ({:.0}%) \
         + `wg syncconf` on the stripped file {:.0} ms. wgfleet apply {:.0} ms is `plan` {:.0} ms (load and validate the {}-host fleet, \
         decrypt, observe, diff) + the reload, which systemd runs as wgfleet's `reload-interface` (`systemctl reload` alone {:.0} ms) \
         + lock, atomic write, job wait and audit. Paired per run (apply, then the raw pipeline, back to back): \
         apply − pipeline = {:.0} ± {:.0} ms (median {:.0} ms).",
        add_sync.median,
        add_st.median,
        100.0 * add_st.median / add_sync.median,
        add_wg.median,
        add_s.median,
        add_p.median,
        add_n + 1,
        add_r.median,
        add_diff.mean,
        add_diff.sd,
        add_diff.median,
    ));
    line("");
    line("**Ratios against the targets** (DESIGN.md §9; ratio of means, medians in brackets):");
    line("");
    line("| benchmark | wgfleet apply | raw syncconf | ratio | target | result |");
    line("| --- | --- | --- | --- | --- | --- |");
    line(&format!(
        "| no-op, {noop_n} peers | {:.1} ms | {:.1} ms | {:.2}× ({:.2}×) | ≤ 1.0× | {} |",
        noop_s.mean,
        noop_sync.mean,
        noop_ratio.0,
        noop_ratio.1,
        verdict(noop_ratio.0, 1.0)
    ));
    line(&format!(
        "| one peer added, {add_n} peers | {:.1} ms | {:.1} ms | {:.2}× ({:.2}×) | ≤ 1.5× | {} |",
        add_s.mean,
        add_sync.mean,
        add_ratio.0,
        add_ratio.1,
        verdict(add_ratio.0, 1.5)
    ));
    line("");
    line(&format!(
        "**Peak memory** ({}, max of {rss_runs} runs for apply):",
        rss_method()
    ));
    line("");
    line("| scenario | `wgfleet apply` | raw syncconf pipeline (reference, one run) |");
    line("| --- | --- | --- |");
    line(&format!(
        "| no-op, {noop_n} peers | {} | {} |",
        mib(noop_rss),
        mib(noop_sync_rss)
    ));
    line(&format!(
        "| one peer added, {add_n} peers (up to {final_peers}) | {} | {} |",
        mib(add_rss),
        mib(add_sync_rss)
    ));
    println!("<!-- apply-bench:begin -->\n{md}<!-- apply-bench:end -->");
}
