//! Benchmark of a timer run whose git source did not move (issue 25: one round trip, no
//! checkout, no re-validation; target: at most 50 ms over the no-op apply of a file). Ignored
//! by default: run it with `bash bench/source.sh` (root, the testbed lock).
//!
//! Hosts: "hub" (192.0.2.10) runs the hub of `bench/gen_fleet.py hub N` (N = 1000) with the
//! real key of seed 000's control plane; "git" serves the same fleet, signed, with `git daemon`
//! on the testbed bridge. Timed inside the hub by bash, interleaved, after warm-up:
//! 1. `wgfleet apply --fleet /x/fleet.json` (today's no-op apply, the fleet as a file);
//! 2. `wgfleet apply` with the saved source, tip unmoved (`ls-remote`, then the record);
//! 3. the floor of 2's extra: `git ls-remote git://GIT/repo refs/heads/main` alone, with git's
//!    default protocol v2 and with v0 (which wgfleet uses over git://: one exchange, where v2's
//!    second waits out a delayed ACK);
//! 4. the floor of the whole: `wg show wg0 dump`.
//!
//! Also: the bytes one unmoved pull puts on the wire (the git host's interface counters over
//! the v0 runs of 3), for the 10,000-hosts estimate in docs/gitops.md. The table goes to stdout
//! between `<!-- source-bench:begin -->` and `<!-- source-bench:end -->`.
//!
//! Knobs: WGFLEET_BENCH_NOOP_N (1000), WGFLEET_BENCH_RUNS (20).

#[path = "support/bench.rs"]
mod bench;
#[path = "support/git_source.rs"]
mod git_source;
#[path = "support/testbed.rs"]
mod testbed;
#[path = "support/wgfleet_on.rs"]
mod wgfleet_on;

use bench::*;
use git_source::{GIT_IP, Repo, git, serve, signing_key};
use testbed::{Host, Testbed};
use wgfleet_on::set_fleet;

const APPLY_FILE: &str = "/x/wgfleet apply --fleet /x/fleet.json --host hub -i /x/identity.txt";
const APPLY_SOURCE: &str = "/x/wgfleet apply --host hub -i /x/identity.txt";

fn ls_remote() -> String {
    format!("git ls-remote git://{GIT_IP}/repo refs/heads/main")
}

/// The same with git's protocol v0: the server speaks first and once.
fn ls_remote_v0() -> String {
    format!("git -c protocol.version=0 ls-remote git://{GIT_IP}/repo refs/heads/main")
}

fn wire_bytes(git_host: &Host) -> u64 {
    let read = |what: &str| -> u64 {
        sh(
            git_host,
            &format!("cat /sys/class/net/host0/statistics/{what}_bytes"),
        )
        .trim()
        .parse()
        .unwrap()
    };
    read("rx") + read("tx")
}

#[test]
#[ignore = "benchmark: run with bash bench/source.sh (root, nspawn testbed)"]
fn unmoved_source_vs_file() {
    let n = knob("WGFLEET_BENCH_NOOP_N", 1000);
    let runs = knob("WGFLEET_BENCH_RUNS", 20);
    let bed = Testbed::new("source-bench").expect("testbed");
    let hub = bed.add_host("hub", &format!("{HUB_IP}/24")).expect("host");
    let git_host = bed.add_host("git", &format!("{GIT_IP}/24")).expect("host");
    provision(&hub);

    let fleet = hub_fleet(n);
    set_fleet(&hub, &fleet);
    let keys = tempfile::tempdir().unwrap();
    let signers = signing_key(keys.path(), "ops");
    let repo = Repo {
        dir: git_host.dir().join("repo"),
        keys: keys.path(),
    };
    std::fs::create_dir_all(repo.dir.join("secrets")).unwrap();
    std::fs::copy(
        hub.dir().join("secrets/hub.age"),
        repo.dir.join("secrets/hub.age"),
    )
    .unwrap();
    git(&repo.dir, &["init", "-q"]);
    let commit = repo.commit(&fleet, Some("ops"));
    serve(&git_host);
    std::fs::write(hub.dir().join("allowed_signers"), &signers).unwrap();

    // The interface up from the file, then the source accepted (one full pull, untimed).
    let first = sh(&hub, &format!("{APPLY_FILE} 2>&1"));
    assert!(first.contains("enable and start"), "{first}");
    sh(
        &hub,
        &format!(
            "/x/wgfleet source set --source git://{GIT_IP}/repo --allowed-signers /x/allowed_signers"
        ),
    );
    let accepted = sh(&hub, &format!("{APPLY_SOURCE} 2>&1"));
    assert!(
        accepted.contains(&format!("commit {}", &commit[..12])),
        "{accepted}"
    );
    for _ in 0..2 {
        time_in(&hub, "/tmp/b.out", APPLY_FILE);
        time_in(&hub, "/tmp/b.out", APPLY_SOURCE);
    }

    let (mut t_file, mut t_source, mut t_ls, mut t_dump) = (vec![], vec![], vec![], vec![]);
    let mut t_ls0 = vec![];
    let (mut wire, mut ls_runs) = (0, 0);
    for i in 0..runs {
        for which in (0..5).map(|k| (i + k) % 5) {
            match which {
                // Each timed apply follows an untimed one of its own kind, so that it finds its
                // own record (`shell::cache`) as the timer's next run does.
                0 => {
                    time_in(&hub, "/tmp/b.out", APPLY_FILE);
                    t_file.push(time_in(&hub, "/tmp/b.out", APPLY_FILE));
                }
                1 => {
                    time_in(&hub, "/tmp/b.out", APPLY_SOURCE);
                    t_source.push(time_in(&hub, "/tmp/b.out", APPLY_SOURCE));
                    let out = sh(&hub, "cat /tmp/b.out");
                    assert!(out.contains("wg0: nothing to do"), "run {i}: {out}");
                    assert!(
                        !out.contains("accepted"),
                        "run {i}: the tip did not move: {out}"
                    );
                }
                2 => t_ls.push(time_in(&hub, "/tmp/b.out", &ls_remote())),
                3 => {
                    let before = wire_bytes(&git_host);
                    t_ls0.push(time_in(&hub, "/tmp/b.out", &ls_remote_v0()));
                    wire += wire_bytes(&git_host) - before;
                    ls_runs += 1;
                }
                _ => t_dump.push(time_in(&hub, "/dev/null", "wg show wg0 dump")),
            }
        }
    }
    // The unmoved runs left the source's repository alone: nothing fetched.
    let fetch_head = sh(
        &hub,
        "ls /var/lib/wgfleet/source/repo.git/objects/pack | wc -l",
    );

    let base = stats(&t_file);
    let (s, l0) = (stats(&t_source), stats(&t_ls0));
    let overhead = s.median - base.median;
    let per_pull = wire as f64 / ls_runs as f64;
    println!("<!-- source-bench:begin -->");
    println!(
        "**No-op apply, hub with {n} peers, git source unmoved** ({runs} runs of each, interleaved, after 2 warm-up runs):\n"
    );
    println!(
        "| command (timed inside the host) | runs | mean ± σ | median | min | max | ratio to the file apply (mean / median) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "{}",
        row(
            "`wgfleet apply --fleet /x/fleet.json` (today's no-op)",
            &t_file,
            None
        )
    );
    println!(
        "{}",
        row(
            "`wgfleet apply` (saved source, tip unmoved)",
            &t_source,
            Some(&base)
        )
    );
    println!(
        "{}",
        row(
            "`git ls-remote git://…/repo refs/heads/main` (the round trip)",
            &t_ls,
            Some(&base)
        )
    );
    println!(
        "{}",
        row("the same with `-c protocol.version=0`", &t_ls0, Some(&base))
    );
    println!(
        "{}",
        row("`wg show wg0 dump` (the floor)", &t_dump, Some(&base))
    );
    println!(
        "\nOverhead of the source (medians): {overhead:+.1} ms over the file apply; target ≤ 50 ms: {}. \
         The round trip wgfleet makes (v0 over git://) alone is {:.1} ms, so the rest ({:+.1} ms) is wgfleet's own \
         (the source's state read and written, the record, the lock).",
        if overhead <= 50.0 {
            "pass"
        } else {
            "**MISSED**"
        },
        l0.median,
        overhead - l0.median
    );
    println!(
        "\nOn the wire, one unmoved pull (ls-remote v0 over git://, TCP included, both directions at the git host): \
         {per_pull:.0} bytes (mean of {ls_runs}). Pack files in the hub's source repository after the runs: {}.",
        fetch_head.trim()
    );
    println!("<!-- source-bench:end -->");
}
