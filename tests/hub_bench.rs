//! Benchmark of a big hub's whole life on one nspawn testbed host (issue 15, parts 3 and 4),
//! each wgfleet command beside the stock command it replaces, in the same run. Ignored by
//! default: run it with `bash bench/hub.sh` (root, the testbed lock).
//!
//! For each N of WGFLEET_BENCH_HUB_NS (default "10000"), the hub of
//! `bench/gen_fleet.py hub N` with seed 000's control-plane key (as tests/apply_bench.rs):
//!
//! 1. validate and render (the pure core; the fleet is loaded and validated by both);
//! 2. no-op `apply` against the stock `wg syncconf wg0 <(wg-quick strip wg0)`;
//! 3. one peer added: `apply` (+1 spoke) against the floor, `wg syncconf` of a file stripped
//!    beforehand with one `[Peer]` appended;
//! 4. start: `systemctl start wg-quick@wg0` (wg-quick up with `Table = off`, then the drop-in's
//!    `routes-interface`) and `systemctl restart`, against stock `wg-quick up` of the same file
//!    without `Table = off` (one `ip route` lookup per AllowedIPs entry); beside them `wg-quick
//!    up` of the `Table = off` file outside systemd and `wg-quick strip` (the bash parse alone);
//! 5. peak RSS of validate, render and apply (`/usr/bin/time -f %M`).
//!
//! wg-quick's bash parse grows faster than the file, so above WGFLEET_BENCH_HUB_FULL_MAX
//! (10000) peers the runs drop to two and the start section to one timed `systemctl restart`:
//! stock `wg-quick up` there would parse the file twice more (up, down) and run 100,000 `ip`.
//!
//! The testbed runs WireGuard on wireguard-go, which holds at most 65,536 peers (its `MaxPeers`;
//! `wg syncconf` of a 100,000-peer file stops there with SIGPIPE): N above 65,535 needs a
//! testbed with the kernel module. The pure core at 100,000 peers is `HUB_N=100000 bash
//! bench/run.sh`.
//!
//! The hub grows from one N to the next by a reload (apply), never by a first start: apply waits
//! 90 s for a job, and a 100,000-peer `wg-quick up` is slower than that under load.
//! Knobs: WGFLEET_BENCH_HUB_NS, WGFLEET_BENCH_HUB_RUNS (3: wgfleet runs per case),
//! WGFLEET_BENCH_HUB_STOCK_RUNS (2: stock runs per case at N ≤ 10000, 1 above); start and
//! restart run once above N = 10000.
//! The markdown goes to stdout between `<!-- hub-bench:begin -->` and `<!-- hub-bench:end -->`.

#[path = "support/bench.rs"]
mod bench;
#[path = "support/testbed.rs"]
mod testbed;

#[path = "support/wgfleet_on.rs"]
mod wgfleet_on;

use bench::*;
use testbed::{Host, Testbed};
use wgfleet_on::set_fleet;

const APPLY: &str = "/x/wgfleet apply --fleet /x/fleet.json --host hub -i /x/identity.txt";
const PLAN: &str = "/x/wgfleet plan --fleet /x/fleet.json --host hub -i /x/identity.txt";
const VALIDATE: &str = "/x/wgfleet validate --fleet /x/fleet.json";
const RENDER: &str = "/x/wgfleet render --fleet /x/fleet.json --host hub";
const PIPELINE: &str = "bash -c 'wg syncconf wg0 <(wg-quick strip wg0)'";
const FLOOR: &str = "wg syncconf wg0 /tmp/wg0.stripped";
const START: &str = "systemctl start wg-quick@wg0";
const RESTART: &str = "systemctl restart wg-quick@wg0";
const STOCK_UP: &str = "wg-quick up /tmp/stock/wg0.conf";
const OFF_UP: &str = "wg-quick up /tmp/off/wg0.conf";
const STRIP_OFF: &str = "wg-quick strip /tmp/off/wg0.conf";

fn apply_ok(host: &Host) -> (f64, String) {
    let ms = time_in(host, "/tmp/bench-apply.out", APPLY);
    (ms, sh(host, "cat /tmp/bench-apply.out"))
}

fn peers(host: &Host) -> usize {
    sh(host, "wg show wg0 peers | wc -l")
        .trim()
        .parse()
        .unwrap()
}

fn converged(host: &Host) {
    let code = host
        .sh(&format!("{PLAN} --detailed-exitcode"))
        .unwrap()
        .status
        .code();
    assert_eq!(code, Some(0), "plan after apply");
}

fn gone(host: &Host) {
    sh(host, "! ip link show wg0 >/dev/null 2>&1");
}

fn routes(host: &Host) -> usize {
    sh(host, "ip -4 route show dev wg0 | wc -l")
        .trim()
        .parse()
        .unwrap()
}

struct Case {
    what: String,
    ours: Vec<f64>,
    stock_what: String,
    stock: Vec<f64>,
}

fn cell(xs: &[f64]) -> String {
    if xs.is_empty() {
        return "—".into();
    }
    let s = stats(xs);
    if s.n == 1 {
        format!("{:.0} ms (1 run)", s.median)
    } else {
        format!("{:.0} ms (median of {}, min {:.0})", s.median, s.n, s.min)
    }
}

fn ratio(a: &[f64], b: &[f64]) -> String {
    if a.is_empty() || b.is_empty() {
        return "—".into();
    }
    format!("{:.2}×", stats(a).median / stats(b).median)
}

#[test]
#[ignore = "benchmark: run with bash bench/hub.sh (root, nspawn testbed)"]
fn big_hub_against_the_stock_commands() {
    let ns: Vec<usize> = std::env::var("WGFLEET_BENCH_HUB_NS")
        .unwrap_or_else(|_| "10000".into())
        .split_whitespace()
        .map(|n| n.parse().expect("WGFLEET_BENCH_HUB_NS: numbers"))
        .collect();
    let runs = knob("WGFLEET_BENCH_HUB_RUNS", 3);
    let full_max = knob("WGFLEET_BENCH_HUB_FULL_MAX", 10000);
    let bed = Testbed::new("hub-bench").expect("testbed");
    let hub = bed.add_host("hub", &format!("{HUB_IP}/24")).expect("host");
    provision(&hub);
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut md = String::new();
    let mut first = true;

    for &n in &ns {
        assert!(
            n < 65536,
            "N = {n}: wireguard-go (the testbed's WireGuard) holds at most 65,536 peers"
        );
        let runs = if n <= full_max { runs } else { runs.min(2) };
        let stock_runs = knob(
            "WGFLEET_BENCH_HUB_STOCK_RUNS",
            if n <= 10000 { 2 } else { 1 },
        );
        // One subnet for every N (the largest fits 100,000 spokes): growing the hub is then a
        // reload, not a restart for a new Address.
        let mut fleet = hub_fleet_args(n, &["--prefix-len", "12"]);
        set_fleet(&hub, &fleet);
        let (ms, out) = apply_ok(&hub);
        assert!(
            out.contains(if first { "enable and start" } else { "reload" }),
            "{out}"
        );
        eprintln!("N={n}: first apply {ms:.0} ms");
        first = false;
        assert_eq!(peers(&hub), n);
        converged(&hub);
        let conf_kib = sh(&hub, "stat -c %s /etc/wireguard/wg0.conf")
            .trim()
            .parse::<u64>()
            .unwrap()
            / 1024;
        let mut cases: Vec<Case> = Vec::new();

        // 1. The pure core.
        let validate: Vec<f64> = (0..runs)
            .map(|_| time_in(&hub, "/dev/null", VALIDATE))
            .collect();
        let render: Vec<f64> = (0..runs)
            .map(|_| time_in(&hub, "/dev/null", RENDER))
            .collect();
        eprintln!("N={n}: validate {validate:.0?} ms, render {render:.0?} ms");

        // 2. No-op apply against the stock pipeline.
        let mut noop = Vec::new();
        let mut plan = Vec::new();
        for _ in 0..runs {
            let (ms, out) = apply_ok(&hub);
            assert!(out.contains("wg0: nothing to do"), "{out}");
            noop.push(ms);
            plan.push(time_in(&hub, "/tmp/bench.out", PLAN));
        }
        let pipeline: Vec<f64> = (0..stock_runs)
            .map(|_| time_in(&hub, "/tmp/bench.out", PIPELINE))
            .collect();
        eprintln!(
            "N={n}: no-op apply {noop:.0?} ms, plan {plan:.0?}, stock pipeline {pipeline:.0?}"
        );

        // 3. One peer added, against `wg syncconf` of a stripped file with one peer appended.
        let (mut add, mut floor, mut reload) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..runs {
            add_spoke(&mut fleet, n, i);
            set_fleet(&hub, &fleet);
            let before = peers(&hub);
            let (ms, out) = apply_ok(&hub);
            assert!(out.contains("reload"), "{out}");
            assert_eq!(peers(&hub), before + 1);
            add.push(ms);
            // The floor: the file wgfleet wrote, stripped (its wg-quick-only keys are Address,
            // Table and MTU), one hand-made [Peer] appended; `wg syncconf` adds just that peer.
            let raw = key(&format!("wgfleet-hub-bench-raw-{n}-{i}"));
            sh(
                &hub,
                &format!(
                    "grep -vE '^(Address|Table|MTU) = ' /etc/wireguard/wg0.conf > /tmp/wg0.stripped \
                     && printf '\\n[Peer]\\nPublicKey = {raw}\\nAllowedIPs = 10.15.250.{}/32\\n' >> /tmp/wg0.stripped",
                    i + 1
                ),
            );
            floor.push(time_in(&hub, "/tmp/bench.out", FLOOR));
            assert_eq!(peers(&hub), before + 2);
            // Back to the fleet's state (untimed): a reload takes the hand-made peer away.
            let (_, out) = apply_ok(&hub);
            assert!(out.contains("reload"), "{out}");
            assert_eq!(peers(&hub), before + 1);
            converged(&hub);
            // The unit's reload alone (nothing to change): wgfleet's `reload-interface`.
            reload.push(time_in(
                &hub,
                "/tmp/bench.out",
                "systemctl reload wg-quick@wg0",
            ));
        }
        eprintln!(
            "N={n}: +1 peer apply {add:.0?} ms, floor {floor:.0?}, systemctl reload {reload:.0?}"
        );
        let expected = peers(&hub);

        // 4. Peak memory (before the start section, which may leave wg0 down).
        let rss_validate = peak_rss_kib(&hub, VALIDATE);
        let rss_render = peak_rss_kib(&hub, RENDER);
        let rss_noop = peak_rss_kib(&hub, APPLY);
        add_spoke(&mut fleet, n, runs);
        set_fleet(&hub, &fleet);
        let rss_add = peak_rss_kib(&hub, APPLY);
        let expected = expected + 1;
        assert_eq!(peers(&hub), expected);

        // 5. Start and restart against stock `wg-quick up`. wg-quick's bash parse grows faster
        // than the file (about 4 s of CPU at 10,000 peers, 19 s at 30,000): above `full_max`
        // only one restart is timed, and nothing that parses the file again.
        let full = n <= full_max;
        let start_runs = if full { runs } else { 1 };
        let (mut start, mut restart) = (Vec::new(), Vec::new());
        for _ in 0..start_runs {
            restart.push(time_in(&hub, "/tmp/bench.out", RESTART));
            assert_eq!(peers(&hub), expected);
            if full {
                sh(&hub, "systemctl stop wg-quick@wg0");
                gone(&hub);
                start.push(time_in(&hub, "/tmp/bench.out", START));
                assert_eq!(peers(&hub), expected);
            }
        }
        let our_routes = routes(&hub);
        let (mut stock_up, mut off_up, mut strip) = (Vec::new(), Vec::new(), Vec::new());
        let mut stock_routes = 0;
        if full {
            sh(&hub, "systemctl stop wg-quick@wg0");
            gone(&hub);
            sh(
                &hub,
                "umask 077; mkdir -p /tmp/stock /tmp/off \
                 && grep -v '^Table = off$' /etc/wireguard/wg0.conf > /tmp/stock/wg0.conf \
                 && cp /etc/wireguard/wg0.conf /tmp/off/wg0.conf",
            );
            for _ in 0..stock_runs {
                stock_up.push(time_in(&hub, "/tmp/bench.out", STOCK_UP));
                assert_eq!(peers(&hub), expected);
                stock_routes = routes(&hub);
                sh(&hub, "wg-quick down /tmp/stock/wg0.conf");
                gone(&hub);
                off_up.push(time_in(&hub, "/tmp/bench.out", OFF_UP));
                assert_eq!(peers(&hub), expected);
                sh(&hub, "wg-quick down /tmp/off/wg0.conf");
                gone(&hub);
            }
            strip.push(time_in(&hub, "/dev/null", STRIP_OFF));
            sh(&hub, "rm -rf /tmp/stock /tmp/off");
            sh(&hub, START);
            assert_eq!(peers(&hub), expected);
            converged(&hub);
        }
        eprintln!(
            "N={n}: start {start:.0?} ms, restart {restart:.0?}, stock wg-quick up {stock_up:.0?}, \
             wg-quick up with Table = off {off_up:.0?}, wg-quick strip {strip:.0?}"
        );

        cases.push(Case {
            what: "`wgfleet validate`".into(),
            ours: validate.clone(),
            stock_what: "—".into(),
            stock: vec![],
        });
        cases.push(Case {
            what: "`wgfleet render --host hub` (load, validate, plan, render)".into(),
            ours: render.clone(),
            stock_what: "—".into(),
            stock: vec![],
        });
        cases.push(Case {
            what: "no-op `wgfleet apply`".into(),
            ours: noop.clone(),
            stock_what: "`wg syncconf wg0 <(wg-quick strip wg0)`".into(),
            stock: pipeline.clone(),
        });
        cases.push(Case {
            what: "`wgfleet plan` (no-op; load, decrypt, observe, diff)".into(),
            ours: plan.clone(),
            stock_what: "`wg syncconf wg0 <(wg-quick strip wg0)`".into(),
            stock: pipeline.clone(),
        });
        cases.push(Case {
            what: "one peer added: `wgfleet apply`".into(),
            ours: add.clone(),
            stock_what: "`wg syncconf` of a file stripped beforehand, +1 peer (floor)".into(),
            stock: floor.clone(),
        });
        cases.push(Case {
            what:
                "`systemctl reload wg-quick@wg0` (wgfleet's `reload-interface`, nothing to change)"
                    .into(),
            ours: reload.clone(),
            stock_what: "the same floor".into(),
            stock: floor.clone(),
        });
        cases.push(Case {
            what: "`systemctl start wg-quick@wg0` (`Table = off` + `routes-interface`)".into(),
            ours: start.clone(),
            stock_what: "stock `wg-quick up` (no `Table = off`)".into(),
            stock: stock_up.clone(),
        });
        cases.push(Case {
            what: "`systemctl restart wg-quick@wg0` (down + up)".into(),
            ours: restart.clone(),
            stock_what: "stock `wg-quick up`".into(),
            stock: stock_up.clone(),
        });
        cases.push(Case {
            what: "`wg-quick up` of the `Table = off` file, outside systemd".into(),
            ours: off_up.clone(),
            stock_what: "stock `wg-quick up`".into(),
            stock: stock_up.clone(),
        });
        cases.push(Case {
            what: "`wg-quick strip` of the file (wg-quick's bash parse alone)".into(),
            ours: strip.clone(),
            stock_what: "stock `wg-quick up`".into(),
            stock: stock_up.clone(),
        });

        md.push_str(&format!(
            "\n**Hub with {n} peers** (wg0.conf {conf_kib} KiB; {runs} wgfleet runs, {stock_runs} stock run(s) per case; medians):\n\n\
             | case | wgfleet | stock / floor | ratio |\n| --- | --- | --- | --- |\n"
        ));
        for c in &cases {
            let stock = if c.stock.is_empty() {
                "—".to_owned()
            } else {
                format!("{}: {}", c.stock_what, cell(&c.stock))
            };
            md.push_str(&format!(
                "| {} | {} | {stock} | {} |\n",
                c.what,
                cell(&c.ours),
                ratio(&c.ours, &c.stock)
            ));
        }
        md.push_str(&format!(
            "\n{}Routes on wg0 after the start: {our_routes} (wgfleet), {stock_routes} (stock wg-quick up); \
             validate + render (medians) {:.0} ms. Peak RSS ({}): validate {}, render {}, no-op apply {}, \
             one-peer-added apply {}.\n",
            if n <= full_max {
                String::new()
            } else {
                format!("Above {full_max} peers, stock `wg-quick up`, `systemctl start`, and `wg-quick up` and `wg-quick strip` of the \
                         `Table = off` file are not run (each would parse the file in bash again). ")
            },
            stats(&validate).median + stats(&render).median,
            rss_method(),
            mib(rss_validate),
            mib(rss_render),
            mib(rss_noop),
            mib(rss_add),
        ));
    }
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let first3 = |s: &str| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    println!("<!-- hub-bench:begin -->");
    println!(
        "Testbed host `hub` (systemd-nspawn, wireguard-go), fleet from `bench/gen_fleet.py hub N` with the hub's key \
         from `secrets/examples/seed-000/cp.age`; every command timed inside the host by bash (`$EPOCHREALTIME` around \
         fork+exec). Load average before {}, after {}.",
        first3(&load_before),
        first3(&load_after)
    );
    println!("{md}");
    println!("<!-- hub-bench:end -->");
}
