//! The Debian package (`packaging/deb.sh`, `[package.metadata.deb]` in Cargo.toml) installed
//! with `dpkg -i` on a real systemd host of the nspawn testbed (DESIGN.md §8), and removed again.
//!
//! The package is the one `packaging/deb.sh` builds, or the file `WGFLEET_DEB` names (to save
//! the release build when it is already made). The host has a writable /usr
//! (`Testbed::writable_usr`: an overlay whose upper directory goes with the teardown) and shares
//! the machine's packages, so the dependencies (wireguard-tools, git, …) are already installed
//! and dpkg needs no network. Checked: the binary runs; the units are there and run
//! /usr/bin/wgfleet; nothing is enabled or started; the man pages, completions and docs are
//! where the package says; `dpkg -r` stops a started timer and takes everything away. Nothing of
//! it may reach the machine itself.
//!
//! Then the whole life of a new host, with only the package on it: `wgfleet join` (its key made
//! there, the source saved, the timers started over D-Bus), one signed commit adding the
//! printed entry, one run of wgfleet.service on it and one apply on the hub: they ping.

#[path = "support/git_source.rs"]
mod git_source;
#[path = "support/testbed.rs"]
mod testbed;
#[path = "support/wgfleet_on.rs"]
mod wgfleet_on;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use git_source::{GIT_IP, Repo, git, serve, signing_key};
use serde_json::{Value, json};
use testbed::{Host, Testbed};
use wgfleet_on::{printed, provision, seed000_fleet, seed000_hosts};

/// Paths the package installs; none may exist on the machine before or after the test.
const INSTALLED: &[&str] = &[
    "/usr/bin/wgfleet",
    "/usr/share/man/man1/wgfleet.1.gz",
    "/usr/share/man/man1/wgfleet-apply.1.gz",
    "/usr/share/bash-completion/completions/wgfleet",
    "/usr/share/zsh/vendor-completions/_wgfleet",
    "/usr/share/fish/vendor_completions.d/wgfleet.fish",
    "/lib/systemd/system/wgfleet.service",
    "/lib/systemd/system/wgfleet.timer",
    "/lib/systemd/system/wgfleet-endpoints.service",
    "/lib/systemd/system/wgfleet-endpoints.timer",
    "/usr/share/doc/wgfleet/README.md",
    "/usr/share/doc/wgfleet/SECURITY.md",
];

const UNITS: &[&str] = &[
    "wgfleet.service",
    "wgfleet.timer",
    "wgfleet-endpoints.service",
    "wgfleet-endpoints.timer",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The .deb: `WGFLEET_DEB`, or the last line printed by `packaging/deb.sh`, built once for
/// both tests (two deb.sh at once would share target/deb-assets).
fn deb() -> PathBuf {
    static DEB: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DEB.get_or_init(build_deb).clone()
}

fn build_deb() -> PathBuf {
    if let Some(path) = std::env::var_os("WGFLEET_DEB") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "WGFLEET_DEB={}: no such file",
            path.display()
        );
        return path;
    }
    let start = Instant::now();
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("packaging/deb.sh"))
        .current_dir(root())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    // As from a shell: none of the variables cargo sets for this test binary.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let keep = ["CARGO_HOME", "CARGO_TARGET_DIR"].contains(&key.as_ref());
        if (key == "CARGO" || key.starts_with("CARGO_")) && !keep {
            cmd.env_remove(key.as_ref());
        }
    }
    let out = cmd.output().expect("run packaging/deb.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "packaging/deb.sh failed ({})",
        out.status
    );
    let path = PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("deb.sh printed nothing")
            .trim(),
    );
    eprintln!(
        "packaging/deb.sh: {} in {:.1}s",
        path.display(),
        start.elapsed().as_secs_f64()
    );
    assert!(path.is_file(), "deb.sh's last line is not a file: {stdout}");
    path
}

/// Panics if any of the package's files is on the machine itself.
fn assert_none_on_machine(when: &str) {
    let found: Vec<&str> = INSTALLED
        .iter()
        .copied()
        .filter(|p| Path::new(p).symlink_metadata().is_ok())
        .collect();
    assert!(
        found.is_empty(),
        "{when} the test, the machine itself has {found:?}: the testbed hosts share its /usr, so \
         this test cannot tell what the package installed (and after it, the package leaked)"
    );
    let dpkg = Command::new("dpkg").args(["-s", "wgfleet"]).output();
    assert!(
        dpkg.is_ok_and(|o| !o.status.success()),
        "{when} the test, dpkg on the machine knows a package wgfleet"
    );
}

fn succeeds(host: &Host, cmd: &str) -> bool {
    host.sh(cmd).is_ok_and(|o| o.status.success())
}

/// What `systemctl CMD UNIT` prints, whatever its exit code (is-enabled, is-active).
/// One run of wgfleet.service, which must succeed; returns its journal.
fn unit_run(host: &Host) -> String {
    let run = host.sh("systemctl start wgfleet.service").unwrap();
    let journal = host
        .sh_ok("journalctl -u wgfleet.service --no-pager -o cat | tail -30")
        .unwrap_or_default();
    assert!(run.status.success(), "{}\n{journal}", printed(&run));
    journal
}

fn systemctl(host: &Host, cmd: &str, unit: &str) -> String {
    let out = host.sh(&format!("systemctl {cmd} {unit}")).unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn the_deb_installs_on_a_systemd_host_enables_nothing_and_removes_cleanly() {
    let start = Instant::now();
    assert_none_on_machine("before");
    let deb = deb();
    let size = std::fs::metadata(&deb).unwrap().len();
    eprintln!("{}: {} bytes", deb.display(), size);
    let name = deb.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        name,
        format!("wgfleet_{}_amd64.deb", env!("CARGO_PKG_VERSION")),
        "the package's file name"
    );

    let bed = Testbed::new("deb").expect("testbed").writable_usr();
    let host = bed.add_host("deb", "192.0.2.31/24").expect("host");
    assert!(!succeeds(&host, "test -e /usr/bin/wgfleet"));
    std::fs::copy(&deb, host.dir().join(&name)).unwrap();

    let installed = host.sh_ok(&format!("dpkg -i /x/{name} 2>&1")).unwrap();
    eprintln!("dpkg -i:\n{installed}");
    let status = host
        .sh_ok("dpkg-query -W -f '${Status} ${Version}\\n${Depends}\\n' wgfleet")
        .unwrap();
    let mut status = status.lines();
    assert_eq!(
        status.next(),
        Some(format!("install ok installed {}", env!("CARGO_PKG_VERSION")).as_str())
    );
    let depends = status.next().unwrap_or_default();
    for dep in [
        "wireguard-tools",
        "git",
        "openssh-client",
        "iptables",
        "iproute2",
        "libc6",
    ] {
        assert!(depends.contains(dep), "Depends: {depends}");
    }

    // The binary, as the PATH finds it.
    let version = host.sh_ok("/usr/bin/wgfleet --version").unwrap();
    assert!(
        version.starts_with(&format!("wgfleet {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    assert_eq!(
        host.sh_ok("command -v wgfleet").unwrap().trim(),
        "/usr/bin/wgfleet"
    );

    // The units, as systemd sees them: the packaged copies, which run /usr/bin/wgfleet.
    let units = host
        .sh_ok("systemctl cat wgfleet.timer wgfleet.service wgfleet-endpoints.timer wgfleet-endpoints.service")
        .unwrap();
    assert!(!units.contains("/usr/local"), "{units}");
    for line in [
        "Environment=WGFLEET_FLEET=/etc/wgfleet/fleet.json",
        "ExecStart=/usr/bin/wgfleet apply $WGFLEET_ARGS",
        "ExecStart=/usr/bin/wgfleet apply --endpoints-only $WGFLEET_ARGS",
        "Unit=wgfleet.service",
        "Unit=wgfleet-endpoints.service",
    ] {
        assert!(units.lines().any(|l| l == line), "no {line:?} in:\n{units}");
    }
    let exec = host
        .sh_ok("systemctl show -p ExecStart --value wgfleet.service")
        .unwrap();
    assert!(exec.contains("path=/usr/bin/wgfleet "), "{exec}");
    // The hardening came along: the service still verifies as shipped.
    host.sh_ok("systemd-analyze verify /lib/systemd/system/wgfleet.service 2>&1")
        .unwrap();

    // Nothing enabled, nothing started: that is the operator's step.
    for unit in UNITS {
        let enabled = systemctl(&host, "is-enabled", unit);
        let expected = if unit.ends_with(".timer") {
            "disabled"
        } else {
            "static"
        };
        assert_eq!(enabled, expected, "{unit}");
        assert_eq!(systemctl(&host, "is-active", unit), "inactive", "{unit}");
    }
    assert!(!succeeds(&host, "test -e /var/lib/wgfleet"));
    assert!(!succeeds(&host, "test -e /etc/wgfleet"));

    // Man pages, completions, docs.
    assert_eq!(
        host.sh_ok("man -w wgfleet").unwrap().trim(),
        "/usr/share/man/man1/wgfleet.1.gz"
    );
    assert_eq!(
        host.sh_ok("man -w wgfleet-apply").unwrap().trim(),
        "/usr/share/man/man1/wgfleet-apply.1.gz"
    );
    host.sh_ok("man wgfleet-apply 2>&1 | grep -q -- --fleet")
        .unwrap();
    for path in INSTALLED {
        host.sh_ok(&format!("test -s {path}")).unwrap();
    }
    host.sh_ok("bash -c '. /usr/share/bash-completion/completions/wgfleet && complete -p wgfleet'")
        .unwrap();
    let listed = host.sh_ok("dpkg -L wgfleet").unwrap();
    for path in INSTALLED {
        assert!(
            listed.lines().any(|l| l == *path),
            "{path} not in:\n{listed}"
        );
    }

    // A timer the operator started is stopped by the removal, and everything goes.
    host.sh_ok("systemctl start wgfleet-endpoints.timer")
        .unwrap();
    assert_eq!(
        systemctl(&host, "is-active", "wgfleet-endpoints.timer"),
        "active"
    );
    let removed = host.sh_ok("dpkg -r wgfleet 2>&1").unwrap();
    eprintln!("dpkg -r:\n{removed}");
    for path in INSTALLED {
        assert!(!succeeds(&host, &format!("test -e {path}")), "{path} left");
    }
    assert!(!succeeds(&host, "command -v wgfleet"));
    assert!(!succeeds(&host, "systemctl cat wgfleet.service"));
    for unit in UNITS {
        assert_ne!(systemctl(&host, "is-active", unit), "active", "{unit}");
    }
    let state = host
        .sh_ok("dpkg-query -W -f '${db:Status-Abbrev}' wgfleet 2>/dev/null || true")
        .unwrap();
    assert!(
        state.trim().is_empty() || state.starts_with("rc") || state.starts_with("un"),
        "dpkg status after -r: {state:?}"
    );

    drop(bed);
    assert_none_on_machine("after");
    eprintln!("deb_testbed: {:.1}s in all", start.elapsed().as_secs_f64());
}

/// A Debian host with nothing but the package joins the fleet in two commands: `dpkg -i` and
/// `wgfleet join`. No key or file is copied to or from it; the fleet's git repository is the
/// only thing the operator touches.
#[test]
fn a_new_debian_host_joins_with_the_deb_and_one_signed_commit() {
    assert_none_on_machine("before");
    let deb = deb();
    let name = deb.file_name().unwrap().to_string_lossy().into_owned();
    let bed = Testbed::new("join").expect("testbed").writable_usr();
    let mut hosts = seed000_hosts(&bed, &["cp"]);
    let cp = hosts.remove(0);
    let git_host = bed.add_host("git", &format!("{GIT_IP}/24")).unwrap();
    let new = bed.add_host("worker-9", "192.0.2.19/24").unwrap();

    // The fleet repository: the hub alone, signed by ops.
    let keys = tempfile::tempdir().unwrap();
    let signers = signing_key(keys.path(), "ops");
    let repo = Repo {
        dir: git_host.dir().join("repo"),
        keys: keys.path(),
    };
    std::fs::create_dir_all(repo.dir.join("secrets")).unwrap();
    std::fs::copy(
        wgfleet_on::root().join("secrets/examples/seed-000/cp.age"),
        repo.dir.join("secrets/cp.age"),
    )
    .unwrap();
    git(&repo.dir, &["init", "-q"]);
    let mut fleet = seed000_fleet(&[]);
    repo.commit(&fleet, Some("ops"));
    serve(&git_host);
    let source = format!("--source git://{GIT_IP}/repo --allowed-signers /x/allowed_signers");
    provision(&cp, &["cp"]);
    std::fs::write(cp.dir().join("allowed_signers"), &signers).unwrap();
    let hub = |args: &str| {
        cp.sh(&format!("/x/wgfleet {args} --host cp -i /x/identity.txt"))
            .unwrap()
    };
    cp.sh_ok(&format!("/x/wgfleet source set {source}"))
        .unwrap();
    let out = hub("apply");
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));

    // The new host: the package, the signers file the operator hands it, and join.
    std::fs::copy(&deb, new.dir().join(&name)).unwrap();
    std::fs::write(new.dir().join("allowed_signers"), &signers).unwrap();
    new.sh_ok(&format!("dpkg -i /x/{name} >/dev/null 2>&1"))
        .unwrap();
    let joined = new
        .sh(&format!("wgfleet join --host worker-9 {source} --json"))
        .unwrap();
    assert!(joined.status.success(), "{}", printed(&joined));
    let joined: Value = serde_json::from_slice(&joined.stdout).unwrap();
    let public = joined["publicKey"].as_str().unwrap().to_owned();
    assert_eq!(
        joined["timers"],
        json!(["wgfleet.timer", "wgfleet-endpoints.timer"])
    );
    for timer in ["wgfleet.timer", "wgfleet-endpoints.timer"] {
        assert_eq!(systemctl(&new, "is-enabled", timer), "enabled", "{timer}");
        assert_eq!(systemctl(&new, "is-active", timer), "active", "{timer}");
    }
    // From here on the runs are the test's own, not the timers' at a random moment.
    new.sh_ok("systemctl stop wgfleet.timer wgfleet-endpoints.timer && systemctl reset-failed wgfleet.service || true")
        .unwrap();
    let key_file = joined["keyFile"].as_str().unwrap();
    assert_eq!(
        new.sh_ok(&format!("stat -c %a {key_file}")).unwrap().trim(),
        "600"
    );
    // Not in the fleet yet: its run refuses the tip (exit 5) and touches nothing.
    let early = new.sh("wgfleet apply").unwrap();
    assert_eq!(early.status.code(), Some(5), "{}", printed(&early));
    assert!(
        printed(&early).contains("\"worker-9\" is not in the fleet"),
        "{}",
        printed(&early)
    );
    assert!(!succeeds(&new, "test -e /etc/wireguard/wg0.conf"));

    // The operator adds the printed entry in a signed commit.
    let entry: Value =
        serde_json::from_str(&format!("{{{}}}", joined["entry"].as_str().unwrap())).unwrap();
    fleet["hosts"]["worker-9"] = entry["worker-9"].clone();
    fleet["networks"]["wg0"]["members"]["worker-9"] = json!({"id": 9});
    fleet["groups"]["workers"] = json!(["worker-9"]);
    let added = repo.commit(&fleet, Some("ops"));

    // One run on each: the new host through its unit (no flags), the hub by hand.
    let run = new.sh("systemctl start wgfleet.service").unwrap();
    let journal = new
        .sh_ok("journalctl -u wgfleet.service --no-pager -o cat | tail -30")
        .unwrap_or_default();
    assert!(run.status.success(), "{}\n{journal}", printed(&run));
    assert!(
        journal.contains(&format!("commit {} signed by ops, accepted", &added[..12])),
        "{journal}"
    );
    let out = hub("apply");
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    assert!(cp.sh_ok("wg show wg0 peers").unwrap().contains(&public));
    // The new host dialled first, before the hub knew it: its next handshake, within 5 s, works.
    new.sh_ok("ping -c 3 -w 20 10.50.0.1").unwrap();
    // The key never left: the hub's config holds only its public key.
    let secret = new.sh_ok(&format!("cat {key_file}")).unwrap();
    assert!(
        !cp.sh_ok("cat /etc/wireguard/wg0.conf")
            .unwrap()
            .contains(secret.trim())
    );
    let status = new.sh_ok("wgfleet status").unwrap();
    assert!(status.contains(&added[..12]), "{status}");

    // Its key rotates, the next one made on it too: `join --next-key` there, the
    // operator stages the printed public key in a signed commit, the hub stages it, the host
    // switches at its switch time (held to a handshake with the hub), the hub promotes it at
    // that handshake, and `--finish` ends it. The next key never leaves the host either.
    let made = new
        .sh("wgfleet join --host worker-9 --next-key --json")
        .unwrap();
    assert!(made.status.success(), "{}", printed(&made));
    let made: Value = serde_json::from_slice(&made.stdout).unwrap();
    let next = made["nextPublicKey"].as_str().unwrap().to_owned();
    let next_file = made["keyFile"].as_str().unwrap();
    assert_eq!(
        new.sh_ok(&format!("stat -c %a {next_file}"))
            .unwrap()
            .trim(),
        "600"
    );
    let operator = |args: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_wgfleet"))
            .current_dir(&repo.dir)
            .args(["rekey", "--fleet", "fleet.json"])
            .args(args.split_whitespace())
            .output()
            .unwrap();
        assert!(out.status.success(), "rekey {args}: {}", printed(&out));
        serde_json::from_str::<Value>(
            &std::fs::read_to_string(repo.dir.join("fleet.json")).unwrap(),
        )
        .unwrap()
    };
    let fleet = operator(&format!(
        "--rotate worker-9 --next-public-key {next} --switch-after 25s"
    ));
    assert_eq!(fleet["hosts"]["worker-9"]["nextPublicKey"], next.as_str());
    assert!(
        fleet["hosts"]["worker-9"]
            .get("nextPrivateKeyFile")
            .is_none()
    );
    let switch_at = wgfleet::fleet::time::parse_rfc3339(
        fleet["hosts"]["worker-9"]["nextSwitchAt"].as_str().unwrap(),
    )
    .unwrap();
    repo.commit(&fleet, Some("ops"));
    let out = hub("apply");
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    unit_run(&new);
    let plan = new.sh_ok("wgfleet plan").unwrap();
    assert!(plan.contains("~ rotation of worker-9 (staged)"), "{plan}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        now < switch_at,
        "the switch time passed before both applied"
    );
    std::thread::sleep(std::time::Duration::from_secs((switch_at - now + 1) as u64));
    let journal = unit_run(&new);
    assert!(
        journal.contains("confirmed by a handshake with cp"),
        "{journal}"
    );
    // The hub's watcher promotes the next key at its handshake.
    let promoted = (0..80).any(|_| {
        let ips = cp.sh_ok("wg show wg0 allowed-ips").unwrap();
        let carries = |l: &str| l.starts_with(&next) && !l.ends_with("(none)");
        let done = ips.lines().any(carries) && !ips.contains(&public);
        if !done {
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        done
    });
    assert!(promoted, "{}", cp.sh_ok("wg show wg0 allowed-ips").unwrap());
    new.sh_ok("ping -c 3 -w 20 10.50.0.1").unwrap();
    let fleet = operator("--finish worker-9");
    assert_eq!(fleet["hosts"]["worker-9"]["publicKey"], next.as_str());
    assert!(fleet["hosts"]["worker-9"].get("nextPublicKey").is_none());
    repo.commit(&fleet, Some("ops"));
    let out = hub("apply");
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    unit_run(&new);
    // Both are as the fleet says; on the new host, a plan from a shell agrees with its unit's
    // runs, the boot drop-in included.
    let on_cp = cp
        .sh("/x/wgfleet plan --detailed-exitcode --host cp -i /x/identity.txt")
        .unwrap();
    assert_eq!(on_cp.status.code(), Some(0), "{}", printed(&on_cp));
    let on_new = new.sh("wgfleet plan --detailed-exitcode").unwrap();
    assert_eq!(on_new.status.code(), Some(0), "{}", printed(&on_new));
    let peers = cp.sh_ok("wg show wg0 peers").unwrap();
    assert!(peers.contains(&next) && !peers.contains(&public), "{peers}");
    new.sh_ok("ping -c 3 -w 20 10.50.0.1").unwrap();

    drop(bed);
    assert_none_on_machine("after");
}
