//! The fleet from a signed git source on real hosts: a git host serves the fleet repository
//! (`git daemon` on the testbed bridge), the hub and a worker pull it with `apply --source`.
//! Signed commits are applied; unsigned, foreign-signed and force-pushed-back ones are refused
//! with exit 5 while the last accepted fleet stays in force; the git host powered off does not
//! stop the hub from healing drift; a client removed in a signed commit is gone after one run,
//! the audit naming the commit; hostile sources (a transport helper, options in disguise, a
//! fleet path out of the checkout, a symbolic link, a submodule) are refused. The size limits are
//! tested with small limits in tests/source.rs.

#[path = "support/git_source.rs"]
mod git_source;
#[path = "support/testbed.rs"]
mod testbed;
#[path = "support/wgfleet_on.rs"]
mod wgfleet_on;

use std::process::{Command, Output};

use git_source::{GIT_IP, Repo, git, serve, signing_key};
use serde_json::{Value, json};
use testbed::{Host, Testbed};
use wgfleet_on::{printed, provision, seed000_fleet, seed000_hosts};

/// `wgfleet ARGS --source …` on the host; the flags are saved once by `source set` below, so
/// later runs take none.
fn wgfleet(host: &Host, args: &str) -> Output {
    host.sh(&format!(
        "/x/wgfleet {args} --host {} -i /x/identity.txt",
        host.name()
    ))
    .unwrap()
}

fn apply_code(host: &Host) -> (Option<i32>, String) {
    let out = wgfleet(host, "apply");
    (out.status.code(), printed(&out))
}

#[test]
fn the_fleet_reaches_hosts_from_a_signed_git_source() {
    let bed = Testbed::new("source").unwrap();
    let mut hosts = seed000_hosts(&bed, &["cp", "worker-1"]);
    let git_host = bed.add_host("git", &format!("{GIT_IP}/24")).unwrap();
    let (cp, worker) = (hosts.remove(0), hosts.remove(0));

    // The fleet repository, served by the git host; seed 000's keys in it.
    let keys = tempfile::tempdir().unwrap();
    let signers = signing_key(keys.path(), "ops");
    signing_key(keys.path(), "mallory");
    let repo = Repo {
        dir: git_host.dir().join("repo"),
        keys: keys.path(),
    };
    std::fs::create_dir_all(repo.dir.join("secrets")).unwrap();
    for name in ["cp", "worker-1"] {
        std::fs::copy(
            wgfleet_on::root().join(format!("secrets/examples/seed-000/{name}.age")),
            repo.dir.join(format!("secrets/{name}.age")),
        )
        .unwrap();
    }
    git(&repo.dir, &["init", "-q"]);
    let mut fleet = seed000_fleet(&["worker-1"]);
    let client_key = Command::new("sh")
        .args(["-c", "wg genkey | wg pubkey"])
        .output()
        .unwrap();
    let client_key = String::from_utf8_lossy(&client_key.stdout)
        .trim()
        .to_owned();
    fleet["networks"]["wg0"]["clients"] =
        json!({"contractor": {"publicKey": client_key, "id": 90, "owner": "c@example.com"}});
    let first = repo.commit(&fleet, Some("ops"));
    serve(&git_host);

    for host in [&cp, &worker] {
        provision(host, &[host.name()]);
        std::fs::write(host.dir().join("allowed_signers"), &signers).unwrap();
        let set = host
            .sh(&format!(
                "/x/wgfleet source set --source git://{GIT_IP}/repo --allowed-signers /x/allowed_signers"
            ))
            .unwrap();
        assert!(set.status.success(), "{}", printed(&set));
    }

    // 1. Both hosts pull the signed fleet and form the tunnel.
    for host in [&cp, &worker] {
        let (code, text) = apply_code(host);
        assert_eq!(code, Some(0), "{text}");
        assert!(
            text.contains(&format!("commit {} signed by ops, accepted", &first[..12])),
            "{text}"
        );
    }
    worker.sh_ok("ping -c 3 -W 2 10.50.0.1").unwrap();
    assert!(cp.sh_ok("wg show wg0 peers").unwrap().contains(&client_key));
    // An unmoved tip: nothing to do, one round trip.
    let (code, text) = apply_code(&cp);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("wg0: nothing to do"), "{text}");

    // 2. Refused: unsigned, signed by a key not allowed, a force-push back to an older signed
    // commit. Each time exit 5, the accepted fleet stays, and status says why.
    let mut second = fleet.clone();
    second["networks"]["wg0"]["persistentKeepalive"] = json!(21);
    let second_commit = repo.commit(&second, Some("ops"));
    assert_eq!(apply_code(&cp).0, Some(0));
    for (signer, why) in [
        (None, "not signed"),
        (Some("mallory"), "not an allowed signer"),
    ] {
        let mut bad = second.clone();
        bad["networks"]["wg0"]["clients"]["mallory"] =
            json!({"publicKey": client_key.replace('A', "B"), "id": 91});
        repo.commit(&bad, signer);
        let (code, text) = apply_code(&cp);
        assert_eq!(code, Some(5), "{text}");
        assert!(text.contains(why), "{text}");
        assert!(
            text.contains(&format!("last accepted commit {}", &second_commit[..12])),
            "{text}"
        );
        git(&repo.dir, &["reset", "-q", "--hard", &second_commit]);
    }
    git(&repo.dir, &["reset", "-q", "--hard", &first]);
    let (code, text) = apply_code(&cp);
    assert_eq!(code, Some(5), "{text}");
    assert!(text.contains("older than the accepted commit"), "{text}");
    let status = cp
        .sh_ok("/x/wgfleet status --host cp")
        .unwrap_or_else(|e| e);
    assert!(
        status.contains("older than the accepted commit"),
        "{status}"
    );
    git(&repo.dir, &["reset", "-q", "--hard", &second_commit]);

    // 3. The git host gone from the network (its daemon killed, its link down: as powered off,
    // without a shutdown racing the testbed's own): the hub still heals drift.
    git_host
        .sh_ok("kill -KILL $(cat /run/git-daemon.pid) && ip link set host0 down")
        .unwrap();
    cp.sh_ok(&format!("wg set wg0 peer {client_key} remove"))
        .unwrap();
    let (code, text) = apply_code(&cp);
    assert_eq!(code, Some(5), "{text}");
    assert!(text.contains("unreachable"), "{text}");
    assert!(
        cp.sh_ok("wg show wg0 peers").unwrap().contains(&client_key),
        "{text}"
    );
    let plan = wgfleet(&cp, "plan --detailed-exitcode");
    assert_eq!(plan.status.code(), Some(5), "{}", printed(&plan));
    assert!(
        printed(&plan).contains("wg0: nothing to do"),
        "{}",
        printed(&plan)
    );
}

#[test]
fn a_revoked_client_is_gone_after_one_run_and_hostile_sources_are_refused() {
    let bed = Testbed::new("source-revoke").unwrap();
    let mut hosts = seed000_hosts(&bed, &["cp"]);
    let git_host = bed.add_host("git", &format!("{GIT_IP}/24")).unwrap();
    let cp = hosts.remove(0);
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
    let key = Command::new("sh")
        .args(["-c", "wg genkey | wg pubkey"])
        .output()
        .unwrap();
    let key = String::from_utf8_lossy(&key.stdout).trim().to_owned();
    fleet["networks"]["wg0"]["clients"] = json!({"contractor": {"publicKey": key, "id": 90}});
    repo.commit(&fleet, Some("ops"));
    serve(&git_host);
    provision(&cp, &["cp"]);
    std::fs::write(cp.dir().join("allowed_signers"), &signers).unwrap();
    let source = format!("--source git://{GIT_IP}/repo --allowed-signers /x/allowed_signers");
    let out = wgfleet(&cp, &format!("apply {source}"));
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    assert!(cp.sh_ok("wg show wg0 peers").unwrap().contains(&key));

    // The contractor removed in a signed commit: gone after one run; the audit names it.
    fleet["networks"]["wg0"]["clients"] = json!({});
    let revoked = repo.commit(&fleet, Some("ops"));
    let out = wgfleet(&cp, &format!("apply {source} --json"));
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["source"]["commit"], revoked.as_str());
    assert_eq!(doc["source"]["status"], "moved");
    assert!(!cp.sh_ok("wg show wg0 peers").unwrap().contains(&key));
    let audit = cp.sh_ok("cat /var/lib/wgfleet/audit.jsonl").unwrap();
    let removal = audit
        .lines()
        .find(|l| l.contains("peer-removed") && l.contains(&key))
        .unwrap_or_else(|| panic!("no removal in the audit:\n{audit}"));
    assert!(
        removal.contains(&format!("\"commit\":\"{revoked}\"")),
        "{removal}"
    );
    assert!(audit.contains("source-accepted"), "{audit}");

    // Hostile sources: refused before git runs, nothing applied.
    let before = cp.sh_ok("wg show wg0 dump | sort | md5sum").unwrap();
    for bad in [
        "--source 'ext::sh -c touch% /tmp/pwned' --allowed-signers /x/allowed_signers".to_owned(),
        "--source=-oProxyCommand=x --allowed-signers /x/allowed_signers".to_owned(),
        format!("{source} --ref=--upload-pack=x"),
        format!("{source} --path ../../etc/fleet.json"),
    ] {
        let out = wgfleet(&cp, &format!("apply {bad}"));
        assert_eq!(out.status.code(), Some(1), "{bad}: {}", printed(&out));
        assert!(
            printed(&out).contains("source:"),
            "{bad}: {}",
            printed(&out)
        );
    }
    assert!(cp.sh("test -e /tmp/pwned").unwrap().status.code() != Some(0));
    // A fleet path that is a symbolic link out of the checkout: refused (exit 5).
    std::os::unix::fs::symlink("/etc/passwd", repo.dir.join("linked.json")).unwrap();
    repo.commit(&fleet, Some("ops"));
    let out = wgfleet(&cp, &format!("apply {source} --path linked.json"));
    assert_eq!(out.status.code(), Some(5), "{}", printed(&out));
    assert!(printed(&out).contains("symbolic link"), "{}", printed(&out));
    // A submodule (a gitlink in the signed tip's tree): refused (exit 5), nothing fetched into it.
    let head = git(&repo.dir, &["rev-parse", "HEAD"]);
    git(&repo.dir, &["rm", "-q", "linked.json"]);
    let gitlink = format!("160000,{head},vendor");
    git(
        &repo.dir,
        &["update-index", "--add", "--cacheinfo", &gitlink],
    );
    let signing = format!("user.signingkey={}", keys.path().join("ops").display());
    git(
        &repo.dir,
        &["-c", &signing, "commit", "-q", "-S", "-m", "a submodule"],
    );
    let out = wgfleet(&cp, &format!("apply {source}"));
    assert_eq!(out.status.code(), Some(5), "{}", printed(&out));
    assert!(
        printed(&out).contains("vendor is a submodule"),
        "{}",
        printed(&out)
    );
    assert_eq!(
        cp.sh_ok("wg show wg0 dump | sort | md5sum").unwrap(),
        before
    );
}
