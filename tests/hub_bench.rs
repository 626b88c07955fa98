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
//! The testbed runs WireGuard in userspace (no kernel module), by default Debian's wireguard-go,
//! which holds at most 65,536 peers (its `MaxPeers`; `wg syncconf` of a 100,000-peer file stops
//! there with SIGPIPE). WGFLEET_BENCH_WG=gotatun runs the hub on Mullvad's gotatun instead (a
//! drop-in for wg-quick@.service sets WG_QUICK_USERSPACE_IMPLEMENTATION; bench/hub.sh installs
//! it): it takes 100,000 peers by `wg setconf`, but its `wg syncconf` at that size does not end
//! in minutes, so the reload cases are tried once (`wg syncconf` of the floor's file, killed
//! after WGFLEET_BENCH_HUB_SYNC_LIMIT, 120 s) and skipped with that reason when it does not end,
//! and stock `wg-quick up` runs once above 10000 (killed after WGFLEET_BENCH_HUB_STOCK_UP_LIMIT,
//! 900 s; a lower bound then).
//!
//! With wireguard-go the hub grows from one N to the next by a reload (apply). With gotatun
//! (or WGFLEET_BENCH_HUB_START_BY_HAND=1) a first apply of a 10-peer hub installs wgfleet's
//! drop-in, and each N is reached by a hand-run `systemctl start` of the file wgfleet renders
//! (apply waits 90 s for a job, and a 100,000-peer `wg-quick up` is slower than that); the apply
//! after it must find nothing to do. WGFLEET_BENCH_HUB_ONLY_NOOP=1 stops each N after validate,
//! render, no-op apply and plan (and their peak RSS).
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
/// The drop-in that makes the hub's wg-quick@ units run on another userspace WireGuard; its
/// name sorts after wgfleet's own `wgfleet-firewall.conf` and touches none of its keys.
const USERSPACE_DROP_IN: &str = "/etc/systemd/system/wg-quick@.service.d/zz-bench-userspace.conf";
/// The peers of the first apply when the hub is brought to N by a hand-run start.
const SEED_N: usize = 10;

/// The userspace WireGuard the hub runs on (WGFLEET_BENCH_WG): wg-quick starts it when
/// `ip link add type wireguard` fails (the testbed has no kernel module).
#[derive(Clone, Copy, PartialEq)]
enum Userspace {
    /// Debian's wireguard-go (wg-quick's default): at most 65,536 peers (its MaxPeers).
    WireguardGo,
    /// Mullvad's gotatun (`cargo install gotatun-cli`, bench/hub.sh does it): no peer limit
    /// found, `wg setconf` of 100,000 peers in ~15 s, but `wg syncconf` at that size does not
    /// finish in minutes, so it cannot reload a 100,000-peer hub.
    Gotatun,
}

impl Userspace {
    fn from_env() -> Self {
        match std::env::var("WGFLEET_BENCH_WG").as_deref() {
            Err(_) | Ok("") | Ok("wireguard-go") => Userspace::WireguardGo,
            Ok("gotatun") => Userspace::Gotatun,
            Ok(other) => panic!("WGFLEET_BENCH_WG={other:?}: wireguard-go or gotatun"),
        }
    }

    /// `env` prefix for wg-quick run by hand in the host's shell (the units get the drop-in).
    /// WG_SUDO=1: gotatun drops privileges to getlogin()'s user otherwise, which fails without
    /// a tty. WG_LOG_LEVEL=error: its default (info) logs more than wireguard-go's (error).
    fn env(self) -> &'static str {
        match self {
            Userspace::WireguardGo => "",
            Userspace::Gotatun => {
                "env WG_QUICK_USERSPACE_IMPLEMENTATION=gotatun WG_SUDO=1 WG_LOG_LEVEL=error "
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Userspace::WireguardGo => "wireguard-go",
            Userspace::Gotatun => "gotatun",
        }
    }
}

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

/// `wg-quick down` run by hand. gotatun, unlike wireguard-go, does not exit when its link is
/// deleted (systemd's stop ends it with the unit's cgroup): it would keep UDP 51820, and the
/// next `wg-quick up` fails its `wg setconf` (EINVAL). So it is ended here, by its PID.
fn down_by_hand(host: &Host, cmd: &str) {
    sh(
        host,
        &format!("p=$(pgrep -x gotatun); {cmd} && {{ [ -z \"$p\" ] || kill $p; }}"),
    );
    gone(host);
}

/// wg0 is down and its userspace process has exited. Also resets systemd's start rate limit
/// (5 starts in 10 s), which the quick cycles of a small hub reach.
fn gone(host: &Host) {
    sh(
        host,
        "! ip link show wg0 >/dev/null 2>&1 && systemctl reset-failed wg-quick@wg0",
    );
    sh(
        host,
        "for _ in $(seq 300); do pgrep -x 'gotatun|wireguard-go' >/dev/null || exit 0; sleep 0.1; done; \
         echo 'the userspace WireGuard did not exit in 30 s' >&2; exit 1",
    );
}

fn routes(host: &Host) -> usize {
    sh(host, "ip -4 route show dev wg0 | wc -l")
        .trim()
        .parse()
        .unwrap()
}

/// Writes /etc/wireguard/wg0.conf as apply would (the rendered file with the hub's decrypted
/// key, 0600) with the unit stopped, and times a hand-run `systemctl start`: how the hub reaches
/// N when a reload cannot (gotatun's `wg syncconf` at 100,000 peers) and a first apply's start
/// could outlast apply's 90 s job wait. The apply after it must find nothing to do.
fn start_by_hand(host: &Host) -> f64 {
    sh(host, "systemctl stop wg-quick@wg0");
    gone(host);
    sh(
        host,
        "umask 077; k=$(age -d -i /x/identity.txt /x/secrets/hub.age) \
         && /x/wgfleet render --fleet /x/fleet.json --host hub > /tmp/wg0.rendered \
         && sed \"s|^PrivateKey = <private key from secrets/hub.age>$|PrivateKey = $k|\" /tmp/wg0.rendered \
            > /etc/wireguard/wg0.conf.bench && rm /tmp/wg0.rendered \
         && mv /etc/wireguard/wg0.conf.bench /etc/wireguard/wg0.conf \
         && ! grep -q '^PrivateKey = <' /etc/wireguard/wg0.conf",
    );
    time_in(host, "/tmp/bench.out", START)
}

/// `wg show wg0 allowed-ips`: each peer's key and its AllowedIPs (comma-joined, as `wg set`
/// takes them).
fn allowed_ips(host: &Host) -> std::collections::BTreeMap<String, String> {
    sh(host, "wg show wg0 allowed-ips")
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let key = f.next()?.to_owned();
            let ips: Vec<&str> = f.filter(|ip| *ip != "(none)").collect();
            Some((key, ips.join(",")))
        })
        .collect()
}

/// The arguments of one `wg set wg0 …` that turns the peers of `from` into those of `to`
/// (removals first, as wgfleet's own delta): the physical floor of a change.
fn wg_set_delta(
    from: &std::collections::BTreeMap<String, String>,
    to: &std::collections::BTreeMap<String, String>,
) -> String {
    let mut args = String::new();
    for key in from.keys().filter(|k| !to.contains_key(*k)) {
        args.push_str(&format!(" peer {key} remove"));
    }
    for (key, ips) in to.iter().filter(|(k, ips)| from.get(*k) != Some(ips)) {
        args.push_str(&format!(" peer {key} allowed-ips {ips}"));
    }
    assert!(!args.is_empty(), "the change changes no peer");
    format!("wg set wg0{args}")
}

/// One change (issue 29), each run from the fleet `before` (where the hub starts and ends):
/// `apply` of the fleet `after` (timed, with `--timings`), against the floor (`wg syncconf` of
/// the file that apply wrote, stripped, run from the state before) and the physical floor (one
/// `wg set` carrying exactly the peers that differ). Untimed applies of `before` put the hub
/// back between them; each must find its way by the same delta.
struct Change {
    ours: Vec<f64>,
    floor: Vec<f64>,
    one_set: Vec<f64>,
    /// The `--timings` line of the last run.
    stages: String,
}

fn change_case(
    hub: &Host,
    before: &serde_json::Value,
    after: &serde_json::Value,
    runs: usize,
) -> Change {
    let back = |hub: &Host| {
        set_fleet(hub, before);
        apply_ok(hub);
        converged(hub);
    };
    let from = allowed_ips(hub);
    let mut c = Change {
        ours: Vec::new(),
        floor: Vec::new(),
        one_set: Vec::new(),
        stages: String::new(),
    };
    for _ in 0..runs {
        set_fleet(hub, after);
        c.ours.push(time_in(
            hub,
            "/tmp/bench-apply.out",
            &format!("{APPLY} --timings"),
        ));
        let out = sh(hub, "cat /tmp/bench-apply.out");
        assert!(out.contains("reload"), "{out}");
        converged(hub);
        if let Some(line) = out.lines().find(|l| l.starts_with("timings: ")) {
            c.stages = line.trim_start_matches("timings: ").to_owned();
        }
        let to = allowed_ips(hub);
        sh(
            hub,
            "umask 077; grep -vE '^(Address|Table|MTU) = ' /etc/wireguard/wg0.conf > /tmp/wg0.changed",
        );
        back(hub);
        c.floor.push(time_in(
            hub,
            "/tmp/bench.out",
            "wg syncconf wg0 /tmp/wg0.changed",
        ));
        assert_eq!(allowed_ips(hub), to, "the floor makes the same change");
        back(hub);
        c.one_set
            .push(time_in(hub, "/tmp/bench.out", &wg_set_delta(&from, &to)));
        assert_eq!(
            allowed_ips(hub),
            to,
            "the physical floor makes the same change"
        );
        back(hub);
    }
    sh(hub, "rm -f /tmp/wg0.changed");
    c
}

/// A figure, several runs, or why there is none.
enum Cell {
    Runs(Vec<f64>),
    Note(String),
}

fn runs_cell(xs: &[f64]) -> String {
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

impl Cell {
    fn text(&self) -> String {
        match self {
            Cell::Runs(xs) => runs_cell(xs),
            Cell::Note(note) => note.clone(),
        }
    }

    fn runs(&self) -> &[f64] {
        match self {
            Cell::Runs(xs) => xs,
            Cell::Note(_) => &[],
        }
    }
}

/// Runs, or the note when there are none.
fn or_note(xs: Vec<f64>, note: &str) -> Cell {
    if xs.is_empty() && !note.is_empty() {
        Cell::Note(note.into())
    } else {
        Cell::Runs(xs)
    }
}

struct Case {
    what: String,
    ours: Cell,
    stock_what: String,
    stock: Cell,
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
    let wg = Userspace::from_env();
    let ns: Vec<usize> = std::env::var("WGFLEET_BENCH_HUB_NS")
        .unwrap_or_else(|_| "10000".into())
        .split_whitespace()
        .map(|n| n.parse().expect("WGFLEET_BENCH_HUB_NS: numbers"))
        .collect();
    let runs = knob("WGFLEET_BENCH_HUB_RUNS", 3);
    let full_max = knob("WGFLEET_BENCH_HUB_FULL_MAX", 10000);
    // Reach each N by a hand-run start instead of a reload: gotatun's default.
    let by_start = knob(
        "WGFLEET_BENCH_HUB_START_BY_HAND",
        usize::from(wg == Userspace::Gotatun),
    ) != 0;
    // Only validate, render, no-op apply and plan, and their peak RSS (e.g. to rerun the no-op
    // case at 100,000 peers after a change to it).
    let only_noop = knob("WGFLEET_BENCH_HUB_ONLY_NOOP", 0) != 0;
    // No start section (start, restart, stock `wg-quick up`): the changes alone, quicker.
    let no_start = knob("WGFLEET_BENCH_HUB_NO_START", 0) != 0;
    // gotatun: one `wg syncconf` of the stripped file + 1 peer, killed after this many seconds;
    // the reload cases run only if it finished.
    let sync_limit = knob("WGFLEET_BENCH_HUB_SYNC_LIMIT", 120);
    // Stock `wg-quick up` above full_max (once, killed after STOCK_UP_LIMIT s): gotatun's default.
    let big_stock_up = knob(
        "WGFLEET_BENCH_HUB_BIG_STOCK_UP",
        usize::from(wg == Userspace::Gotatun),
    ) != 0;
    let stock_up_limit = knob("WGFLEET_BENCH_HUB_STOCK_UP_LIMIT", 900);
    let bed = Testbed::new("hub-bench").expect("testbed");
    let hub = bed.add_host("hub", &format!("{HUB_IP}/24")).expect("host");
    provision(&hub);
    let env = wg.env();
    let version = match wg {
        Userspace::WireguardGo => sh(&hub, "wireguard-go --version 2>&1 | head -1"),
        Userspace::Gotatun => {
            sh(
                &hub,
                &format!(
                    "mkdir -p /etc/systemd/system/wg-quick@.service.d && printf '%s\\n' '[Service]' \
                     Environment=WG_QUICK_USERSPACE_IMPLEMENTATION=gotatun Environment=WG_SUDO=1 \
                     Environment=WG_LOG_LEVEL=error > {USERSPACE_DROP_IN} && systemctl daemon-reload"
                ),
            );
            sh(&hub, "gotatun --version 2>&1 | head -1")
        }
    };
    let version = version.trim().to_owned();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut md = String::new();
    let mut first = true;

    for &n in &ns {
        assert!(
            n < 65536 || wg != Userspace::WireguardGo,
            "N = {n}: wireguard-go (the testbed's WireGuard) holds at most 65,536 peers; \
             WGFLEET_BENCH_WG=gotatun holds more"
        );
        // Above full_max two runs, as each reload there parses the file in bash; on gotatun
        // (where no reload runs at 100,000 peers) the asked number.
        let runs = if n <= full_max || wg == Userspace::Gotatun {
            runs
        } else {
            runs.min(2)
        };
        let stock_runs = knob(
            "WGFLEET_BENCH_HUB_STOCK_RUNS",
            if n <= 10000 { 2 } else { 1 },
        );
        // One subnet for every N (the largest fits 100,000 spokes): growing the hub is then a
        // reload, not a restart for a new Address.
        let mut fleet = hub_fleet_args(n, &["--prefix-len", "12"]);
        let mut notes = Vec::new();
        let mut hand_start = Vec::new();
        if by_start {
            if first {
                // wgfleet's first apply (drop-in, unit enabled) on a small hub.
                set_fleet(&hub, &hub_fleet_args(SEED_N, &["--prefix-len", "12"]));
                let (_, out) = apply_ok(&hub);
                assert!(out.contains("enable and start"), "{out}");
                assert_eq!(peers(&hub), SEED_N);
                assert!(
                    !sh(&hub, &format!("pgrep -x {} || true", wg.name()))
                        .trim()
                        .is_empty(),
                    "wg0 runs on {}",
                    wg.name()
                );
            }
            set_fleet(&hub, &fleet);
            let ms = start_by_hand(&hub);
            assert_eq!(peers(&hub), n);
            eprintln!("N={n}: systemctl start of the rendered file {ms:.0} ms");
            hand_start.push(ms);
            let (ms, out) = apply_ok(&hub);
            assert!(out.contains("wg0: nothing to do"), "{out}");
            eprintln!("N={n}: apply after the hand-run start {ms:.0} ms (nothing to do)");
            notes.push(format!(
                "The hub reached {n} peers by a hand-run `systemctl start wg-quick@wg0` of the file \
                 wgfleet renders (its key decrypted in), after a first `wgfleet apply` of a {SEED_N}-peer \
                 hub had installed the drop-in; the apply after that start found nothing to do."
            ));
        } else {
            set_fleet(&hub, &fleet);
            let (ms, out) = apply_ok(&hub);
            assert!(
                out.contains(if first { "enable and start" } else { "reload" }),
                "{out}"
            );
            eprintln!("N={n}: first apply {ms:.0} ms");
            assert_eq!(peers(&hub), n);
        }
        first = false;
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

        // 2. No-op apply against the stock pipeline and the floor (`wg show dump`), with the
        // desired state from the last run's record and, alternately, computed (`--no-cache`).
        // An untimed run first: the record is written by a run that finds nothing to do.
        assert!(apply_ok(&hub).1.contains("wg0: nothing to do"));
        let cached: serde_json::Value =
            serde_json::from_str(&sh(&hub, &format!("{PLAN} --json"))).unwrap();
        assert_eq!(cached["desiredStateCached"], serde_json::json!(true));
        let (mut noop, mut noop_full, mut plan, mut dump) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let (ms, out) = apply_ok(&hub);
            assert!(out.contains("wg0: nothing to do"), "{out}");
            noop.push(ms);
            noop_full.push(time_in(
                &hub,
                "/tmp/bench.out",
                &format!("{APPLY} --no-cache"),
            ));
            plan.push(time_in(&hub, "/tmp/bench.out", PLAN));
            dump.push(time_in(&hub, "/dev/null", "wg show wg0 dump"));
        }
        eprintln!(
            "N={n}: no-op apply {noop:.0?} ms, with --no-cache {noop_full:.0?}, plan {plan:.0?}, \
             wg show dump {dump:.0?}"
        );
        if only_noop {
            let rss_validate = peak_rss_kib(&hub, VALIDATE);
            let rss_render = peak_rss_kib(&hub, RENDER);
            let rss_noop = peak_rss_kib(&hub, APPLY);
            md.push_str(&format!(
                "\n**Hub with {n} peers** (wg0.conf {conf_kib} KiB; {runs} runs; only the no-op cases):\n\n\
                 | case | wgfleet |\n| --- | --- |\n\
                 | `wgfleet validate` | {} |\n| `wgfleet render --host hub` | {} |\n\
                 | no-op `wgfleet apply` (the desired state from the last run's record) | {} |\n\
                 | no-op `wgfleet apply --no-cache` (computed from the fleet) | {} |\n\
                 | `wgfleet plan` (no-op) | {} |\n\
                 | `wg show wg0 dump` (the floor: reading the interface) | {} |\n\n\
                 {}Peak RSS ({}): validate {}, render {}, no-op apply {}.\n",
                runs_cell(&validate),
                runs_cell(&render),
                runs_cell(&noop),
                runs_cell(&noop_full),
                runs_cell(&plan),
                runs_cell(&dump),
                notes.iter().map(|s| format!("{s} ")).collect::<String>(),
                rss_method(),
                mib(rss_validate),
                mib(rss_render),
                mib(rss_noop),
            ));
            continue;
        }
        let expected = peers(&hub);

        // gotatun: can it take a `wg syncconf` of this size at all? One try of the floor's file
        // (the stripped file + 1 peer), killed after sync_limit s; a restart then puts the hub
        // back to the fleet's state either way.
        let raw_file = |i: usize| {
            let raw = key(&format!("wgfleet-hub-bench-raw-{n}-{i}"));
            // The file wgfleet wrote, stripped (its wg-quick-only keys are Address, Table and
            // MTU), one hand-made [Peer] appended; `wg syncconf` adds just that peer.
            format!(
                "grep -vE '^(Address|Table|MTU) = ' /etc/wireguard/wg0.conf > /tmp/wg0.stripped \
                 && printf '\\n[Peer]\\nPublicKey = {raw}\\nAllowedIPs = 10.15.250.{}/32\\n' >> /tmp/wg0.stripped",
                i + 1
            )
        };
        let mut sync_note = String::new();
        let mut restart = Vec::new();
        if wg == Userspace::Gotatun {
            sh(&hub, &raw_file(99));
            let (ms, rc) = time_rc(
                &hub,
                "/tmp/bench.out",
                &format!("timeout {sync_limit} {FLOOR}"),
            );
            eprintln!("N={n}: gotatun wg syncconf +1 peer: {ms:.0} ms, exit {rc}");
            if rc != 0 {
                sync_note = format!(
                    "not run: on gotatun, `wg syncconf` of the stripped file + 1 peer (the floor) \
                     {}",
                    if rc == 124 {
                        format!("had not finished after {sync_limit} s (killed)")
                    } else {
                        format!("exited {rc} after {ms:.0} ms")
                    }
                );
            } else {
                notes.push(format!(
                    "On gotatun one `wg syncconf` of the stripped file + 1 peer took {ms:.0} ms."
                ));
            }
            restart.push(time_in(&hub, "/tmp/bench.out", RESTART));
            assert_eq!(peers(&hub), expected);
            converged(&hub);
            eprintln!("N={n}: restart after it {:.0} ms", restart[0]);
        }

        let mut pipeline = Vec::new();
        let (mut add, mut floor, mut reload) = (Vec::new(), Vec::new(), Vec::new());
        let mut changes: Vec<(&str, Change)> = Vec::new();
        // The physical floor: one `wg set` process carrying exactly the one peer.
        let mut one_set = Vec::new();
        if sync_note.is_empty() {
            pipeline = (0..stock_runs)
                .map(|_| time_in(&hub, "/tmp/bench.out", PIPELINE))
                .collect();
            eprintln!("N={n}: stock pipeline {pipeline:.0?}");

            // 3. One peer added, against `wg syncconf` of a stripped file with one peer appended.
            for i in 0..runs {
                add_spoke(&mut fleet, n, i);
                set_fleet(&hub, &fleet);
                let before = peers(&hub);
                let ms = time_in(&hub, "/tmp/bench-apply.out", &format!("{APPLY} --timings"));
                let out = sh(&hub, "cat /tmp/bench-apply.out");
                assert!(out.contains("reload"), "{out}");
                assert_eq!(peers(&hub), before + 1);
                add.push(ms);
                // Where the time goes: the stages of the last run (`--timings`).
                if i + 1 == runs
                    && let Some(line) = out.lines().find(|l| l.starts_with("timings: "))
                {
                    notes.push(format!("One peer added, its last run's stages: {line}."));
                }
                sh(&hub, &raw_file(i));
                floor.push(time_in(&hub, "/tmp/bench.out", FLOOR));
                assert_eq!(peers(&hub), before + 2);
                // Back to the fleet's state (untimed): a reload takes the hand-made peer away.
                let (_, out) = apply_ok(&hub);
                assert!(out.contains("reload"), "{out}");
                assert_eq!(peers(&hub), before + 1);
                let raw = key(&format!("wgfleet-hub-bench-raw-{n}-{i}"));
                one_set.push(time_in(
                    &hub,
                    "/tmp/bench.out",
                    &format!("wg set wg0 peer {raw} allowed-ips 10.15.250.{}/32", i + 1),
                ));
                assert_eq!(peers(&hub), before + 2);
                sh(&hub, &format!("wg set wg0 peer {raw} remove"));
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

            // 3b. Other changes of peers, each beside its floors: a spoke removed, a spoke's
            // AllowedIPs changed (a LAN behind it), 100 spokes added at once.
            let mut removed = fleet.clone();
            removed["hosts"].as_object_mut().unwrap().remove("s17");
            removed["networks"]["wg0"]["members"]
                .as_object_mut()
                .unwrap()
                .remove("s17");
            let mut lan = fleet.clone();
            lan["networks"]["wg0"]["members"]["s17"]["routes"] =
                serde_json::json!(["192.168.77.0/24"]);
            let mut hundred = fleet.clone();
            for i in 0..100 {
                add_spoke(&mut hundred, n, 1000 + i);
            }
            for (what, after) in [
                ("one peer removed", &removed),
                ("one peer's AllowedIPs changed (a LAN behind it)", &lan),
                ("100 peers added at once", &hundred),
            ] {
                let c = change_case(&hub, &fleet, after, runs);
                eprintln!(
                    "N={n}: {what}: apply {:.0?} ms, floor {:.0?}, one wg set {:.0?}",
                    c.ours, c.floor, c.one_set
                );
                changes.push((what, c));
            }
        }
        let expected = peers(&hub);

        // 4. Peak memory (before the start section, which may leave wg0 down).
        let rss_validate = peak_rss_kib(&hub, VALIDATE);
        let rss_render = peak_rss_kib(&hub, RENDER);
        let rss_noop = peak_rss_kib(&hub, APPLY);
        let mut rss_add = None;
        let mut expected = expected;
        if sync_note.is_empty() {
            add_spoke(&mut fleet, n, runs);
            set_fleet(&hub, &fleet);
            rss_add = Some(peak_rss_kib(&hub, APPLY));
            expected += 1;
            assert_eq!(peers(&hub), expected);
        }

        // 5. Start and restart against stock `wg-quick up`. wg-quick's bash parse grows faster
        // than the file (about 4 s of CPU at 10,000 peers, 19 s at 30,000): above `full_max`
        // only one restart is timed, and nothing that parses the file again (but stock
        // `wg-quick up` once when big_stock_up says so).
        let full = n <= full_max && !no_start;
        let start_runs = match (no_start, full) {
            (true, _) => 0,
            (false, true) => runs,
            (false, false) => 1,
        };
        let mut start = hand_start.clone();
        for _ in 0..start_runs.saturating_sub(restart.len()) {
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
        let mut stock_up_note = String::new();
        let mut stock_routes = 0;
        let stock_files = "umask 077; mkdir -p /tmp/stock /tmp/off \
             && grep -v '^Table = off$' /etc/wireguard/wg0.conf > /tmp/stock/wg0.conf \
             && cp /etc/wireguard/wg0.conf /tmp/off/wg0.conf";
        if full {
            sh(&hub, "systemctl stop wg-quick@wg0");
            gone(&hub);
            sh(&hub, stock_files);
            for _ in 0..stock_runs {
                stock_up.push(time_in(&hub, "/tmp/bench.out", &format!("{env}{STOCK_UP}")));
                assert_eq!(peers(&hub), expected);
                stock_routes = routes(&hub);
                down_by_hand(&hub, &format!("{env}wg-quick down /tmp/stock/wg0.conf"));
                off_up.push(time_in(&hub, "/tmp/bench.out", &format!("{env}{OFF_UP}")));
                assert_eq!(peers(&hub), expected);
                down_by_hand(&hub, &format!("{env}wg-quick down /tmp/off/wg0.conf"));
            }
            strip.push(time_in(&hub, "/dev/null", STRIP_OFF));
            sh(&hub, "rm -rf /tmp/stock /tmp/off");
            sh(&hub, START);
            assert_eq!(peers(&hub), expected);
            converged(&hub);
        } else if big_stock_up && !no_start {
            // Once, killed after stock_up_limit s; the interface goes by `ip link delete` (what
            // `wg-quick down` ends with, without its bash parse of the file).
            sh(&hub, "systemctl stop wg-quick@wg0");
            gone(&hub);
            sh(&hub, stock_files);
            let (ms, rc) = time_rc(
                &hub,
                "/tmp/bench.out",
                &format!("timeout {stock_up_limit} {env}{STOCK_UP}"),
            );
            stock_routes = routes(&hub);
            let stock_peers = peers(&hub);
            eprintln!(
                "N={n}: stock wg-quick up {ms:.0} ms, exit {rc}, {stock_peers} peers, {stock_routes} routes"
            );
            match rc {
                0 => {
                    assert_eq!(stock_peers, expected);
                    stock_up.push(ms);
                }
                124 => {
                    stock_up_note = format!(
                        "stock `wg-quick up`: > {stock_up_limit} s (killed at {:.0} ms, with {stock_peers} peers \
                         and {stock_routes} routes on wg0)",
                        ms
                    )
                }
                _ => panic!(
                    "stock wg-quick up exited {rc}: {}",
                    sh(&hub, "tail -5 /tmp/bench.out")
                ),
            }
            down_by_hand(&hub, "ip link delete dev wg0");
            sh(&hub, "rm -rf /tmp/stock /tmp/off");
            sh(&hub, START);
            assert_eq!(peers(&hub), expected);
            converged(&hub);
        }
        eprintln!(
            "N={n}: start {start:.0?} ms, restart {restart:.0?}, stock wg-quick up {stock_up:.0?}, \
             wg-quick up with Table = off {off_up:.0?}, wg-quick strip {strip:.0?}"
        );

        let stock_up_cell = || or_note(stock_up.clone(), &stock_up_note);
        cases.push(Case {
            what: "`wgfleet validate`".into(),
            ours: Cell::Runs(validate.clone()),
            stock_what: "—".into(),
            stock: Cell::Runs(vec![]),
        });
        cases.push(Case {
            what: "`wgfleet render --host hub` (load, validate, plan, render)".into(),
            ours: Cell::Runs(render.clone()),
            stock_what: "—".into(),
            stock: Cell::Runs(vec![]),
        });
        cases.push(Case {
            what: "no-op `wgfleet apply` (the desired state from the last run's record)".into(),
            ours: Cell::Runs(noop.clone()),
            stock_what: "`wg syncconf wg0 <(wg-quick strip wg0)`".into(),
            stock: or_note(pipeline.clone(), &sync_note),
        });
        cases.push(Case {
            what: "the same, against the floor".into(),
            ours: Cell::Runs(noop.clone()),
            stock_what: "`wg show wg0 dump` (reading the interface)".into(),
            stock: Cell::Runs(dump.clone()),
        });
        cases.push(Case {
            what: "no-op `wgfleet apply --no-cache` (computed from the fleet)".into(),
            ours: Cell::Runs(noop_full.clone()),
            stock_what: "`wg syncconf wg0 <(wg-quick strip wg0)`".into(),
            stock: or_note(pipeline.clone(), &sync_note),
        });
        cases.push(Case {
            what: "`wgfleet plan` (no-op; load, decrypt, observe, diff)".into(),
            ours: Cell::Runs(plan.clone()),
            stock_what: "`wg syncconf wg0 <(wg-quick strip wg0)`".into(),
            stock: or_note(pipeline.clone(), &sync_note),
        });
        cases.push(Case {
            what: "one peer added: `wgfleet apply`".into(),
            ours: or_note(add.clone(), &sync_note),
            stock_what: "`wg syncconf` of a file stripped beforehand, +1 peer (floor)".into(),
            stock: or_note(floor.clone(), &sync_note),
        });
        cases.push(Case {
            what: "the same, against the physical floor".into(),
            ours: or_note(add.clone(), &sync_note),
            stock_what: "one `wg set wg0 peer … allowed-ips …` of exactly that peer".into(),
            stock: or_note(one_set.clone(), &sync_note),
        });
        for (what, c) in &changes {
            cases.push(Case {
                what: format!("{what}: `wgfleet apply`"),
                ours: Cell::Runs(c.ours.clone()),
                stock_what: "`wg syncconf` of the changed file, stripped beforehand (floor)".into(),
                stock: Cell::Runs(c.floor.clone()),
            });
            cases.push(Case {
                what: "the same, against the physical floor".into(),
                ours: Cell::Runs(c.ours.clone()),
                stock_what: "one `wg set` of exactly the peers that differ".into(),
                stock: Cell::Runs(c.one_set.clone()),
            });
            notes.push(format!("{what}, its last run's stages: {}.", c.stages));
        }
        cases.push(Case {
            what:
                "`systemctl reload wg-quick@wg0` (wgfleet's `reload-interface`, nothing to change)"
                    .into(),
            ours: or_note(reload.clone(), &sync_note),
            stock_what: "the same floor".into(),
            stock: or_note(floor.clone(), &sync_note),
        });
        cases.push(Case {
            what: format!(
                "`systemctl start wg-quick@wg0` (`Table = off` + `routes-interface`){}",
                if hand_start.is_empty() {
                    ""
                } else {
                    "; the first run is the hand-run start that brought the hub to N"
                }
            ),
            ours: Cell::Runs(start.clone()),
            stock_what: "stock `wg-quick up` (no `Table = off`)".into(),
            stock: stock_up_cell(),
        });
        cases.push(Case {
            what: "`systemctl restart wg-quick@wg0` (down + up)".into(),
            ours: Cell::Runs(restart.clone()),
            stock_what: "stock `wg-quick up`".into(),
            stock: stock_up_cell(),
        });
        if full {
            cases.push(Case {
                what: "`wg-quick up` of the `Table = off` file, outside systemd".into(),
                ours: Cell::Runs(off_up.clone()),
                stock_what: "stock `wg-quick up`".into(),
                stock: stock_up_cell(),
            });
            cases.push(Case {
                what: "`wg-quick strip` of the file (wg-quick's bash parse alone)".into(),
                ours: Cell::Runs(strip.clone()),
                stock_what: "stock `wg-quick up`".into(),
                stock: stock_up_cell(),
            });
        }

        md.push_str(&format!(
            "\n**Hub with {n} peers** (wg0.conf {conf_kib} KiB; {runs} wgfleet runs, {stock_runs} stock run(s) per case; medians):\n\n\
             | case | wgfleet | stock / floor | ratio |\n| --- | --- | --- | --- |\n"
        ));
        for c in &cases {
            let stock = match &c.stock {
                Cell::Runs(xs) if xs.is_empty() => "—".to_owned(),
                Cell::Runs(_) => format!("{}: {}", c.stock_what, c.stock.text()),
                Cell::Note(note) => note.clone(),
            };
            md.push_str(&format!(
                "| {} | {} | {stock} | {} |\n",
                c.what,
                c.ours.text(),
                ratio(c.ours.runs(), c.stock.runs())
            ));
        }
        let skipped = if full {
            String::new()
        } else if no_start {
            "The start section (start, restart, stock `wg-quick up`) was not run (WGFLEET_BENCH_HUB_NO_START=1). "
                .to_owned()
        } else if big_stock_up {
            format!(
                "Above {full_max} peers, `systemctl start` runs only as said, `wg-quick up` and `wg-quick strip` of the \
                 `Table = off` file are not run (each would parse the file in bash again); stock `wg-quick up` runs once. "
            )
        } else {
            format!(
                "Above {full_max} peers, stock `wg-quick up`, {}`wg-quick up` and `wg-quick strip` of the \
                 `Table = off` file are not run (each would parse the file in bash again). ",
                if hand_start.is_empty() {
                    "`systemctl start`, and "
                } else {
                    "another `systemctl start`, and "
                }
            )
        };
        md.push_str(&format!(
            "\n{}{skipped}Routes on wg0 after the start: {our_routes} (wgfleet), {stock_routes} (stock wg-quick up); \
             validate + render (medians) {:.0} ms. Peak RSS ({}): validate {}, render {}, no-op apply {}, \
             one-peer-added apply {}.\n",
            notes.iter().map(|s| format!("{s} ")).collect::<String>(),
            stats(&validate).median + stats(&render).median,
            rss_method(),
            mib(rss_validate),
            mib(rss_render),
            mib(rss_noop),
            rss_add.map_or_else(|| "not run (no reload at this size)".to_owned(), mib),
        ));
    }
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let first3 = |s: &str| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    println!("<!-- hub-bench:begin -->");
    println!(
        "Testbed host `hub` (systemd-nspawn, WireGuard in userspace: {version}{}), fleet from `bench/gen_fleet.py hub N` \
         with the hub's key from `secrets/examples/seed-000/cp.age`; every command timed inside the host by bash \
         (`$EPOCHREALTIME` around fork+exec). Load average before {}, after {}.",
        if wg == Userspace::Gotatun {
            format!(
                ", through the drop-in {USERSPACE_DROP_IN} (WG_QUICK_USERSPACE_IMPLEMENTATION=gotatun, WG_SUDO=1, WG_LOG_LEVEL=error; the same env for wg-quick run by hand)"
            )
        } else {
            String::new()
        },
        first3(&load_before),
        first3(&load_after)
    );
    println!("{md}");
    println!("<!-- hub-bench:end -->");
}
