//! The fleet from a signed git source (`wgfleet::source`), against the real git and
//! ssh-keygen: remotes are repositories made here, fetched over file://.

use std::path::{Path, PathBuf};
use std::process::Command;

use wgfleet::source::{self, Limits, Pulled, Refusal, Source, SourceError};

struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    remote: PathBuf,
    state: PathBuf,
    signers: PathBuf,
}

fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        let remote = root.join("remote");
        std::fs::create_dir_all(&remote).unwrap();
        run(&remote, "git", &["init", "-q", "-b", "main"]);
        let w = World {
            state: root.join("state"),
            signers: root.join("allowed_signers"),
            remote,
            root,
            _tmp: tmp,
        };
        let line = w.key("alice");
        std::fs::write(&w.signers, line).unwrap();
        w
    }

    /// A signing key; its allowed-signers line.
    fn key(&self, name: &str) -> String {
        let path = self.root.join(name);
        if !path.exists() {
            let p = path.to_str().unwrap();
            run(
                &self.root,
                "ssh-keygen",
                &["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p],
            );
        }
        let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        let mut parts = public.split_whitespace();
        let (kind, key) = (parts.next().unwrap(), parts.next().unwrap());
        format!("{name} namespaces=\"git\" {kind} {key}\n")
    }

    /// Writes `files` into the remote's work tree and commits them, signed by `signer`.
    fn commit(&self, files: &[(&str, &str)], signer: Option<&str>) -> String {
        for (path, text) in files {
            let p = self.remote.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        run(&self.remote, "git", &["add", "-A"]);
        let mut args = vec![
            "-c".to_owned(),
            "user.name=op".into(),
            "-c".into(),
            "user.email=op@example.com".into(),
            "-c".into(),
            "gpg.format=ssh".into(),
        ];
        if let Some(s) = signer {
            self.key(s);
            args.extend([
                "-c".into(),
                format!("user.signingkey={}", self.root.join(s).display()),
            ]);
        }
        args.extend([
            "commit".into(),
            "-q".into(),
            "--allow-empty".into(),
            "-m".into(),
            "c".into(),
        ]);
        if signer.is_some() {
            args.push("-S".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&self.remote, "git", &args);
        run(&self.remote, "git", &["rev-parse", "HEAD"])
    }

    fn source(&self) -> Source {
        Source {
            url: format!("file://{}", self.remote.display()),
            git_ref: "main".into(),
            path: "fleet.json".into(),
            allowed_signers: self.signers.clone(),
            ssh_key: None,
            http_credentials: None,
        }
    }

    fn pull(&self) -> Result<Pulled, SourceError> {
        self.pull_with(&self.source(), &Limits::default())
    }

    fn pull_with(&self, s: &Source, limits: &Limits) -> Result<Pulled, SourceError> {
        source::pull(&self.state, s, limits, 1_000, &|_| Ok(()))
    }

    fn refusal(&self) -> Refusal {
        match self.pull() {
            Err(SourceError::Refused { reason, .. }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// The accepted commit, its fleet file intact.
    fn accepted(&self) -> (String, String) {
        let a = source::accepted(&self.state).expect("an accepted commit");
        (a.commit.clone(), std::fs::read_to_string(&a.fleet).unwrap())
    }
}

#[test]
fn a_signed_tip_is_accepted_and_an_unmoved_one_costs_no_fetch() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new();
    let c1 = w.commit(
        &[("fleet.json", "{\"v\":1}"), ("secrets/a.age", "x")],
        Some("alice"),
    );
    let Pulled::Moved { accepted, previous } = w.pull().unwrap() else {
        panic!("a first pull accepts")
    };
    assert_eq!((accepted.commit.as_str(), previous), (c1.as_str(), None));
    assert_eq!(accepted.signer, "alice");
    assert_eq!(
        std::fs::read_to_string(&accepted.fleet).unwrap(),
        "{\"v\":1}"
    );
    assert_eq!(
        std::fs::read_to_string(accepted.tree.join("secrets/a.age")).unwrap(),
        "x"
    );
    let mode = std::fs::metadata(&accepted.fleet)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Unmoved: nothing fetched, nothing written under the repository.
    let repo = w.state.join("source/repo.git");
    let before = source_files(&repo);
    assert!(matches!(w.pull().unwrap(), Pulled::Unchanged(a) if a.commit == c1));
    assert_eq!(source_files(&repo), before);
    // Moved: accepted; the tree before stays one accept longer (a run may still read it).
    let c2 = w.commit(&[("fleet.json", "{\"v\":2}")], Some("alice"));
    let Pulled::Moved {
        accepted: a2,
        previous,
    } = w.pull().unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (a2.commit.as_str(), previous.as_deref()),
        (c2.as_str(), Some(c1.as_str()))
    );
    assert!(accepted.tree.exists());
    assert_eq!(w.accepted(), (c2.clone(), "{\"v\":2}".into()));
    w.commit(&[("fleet.json", "{\"v\":3}")], Some("alice"));
    let a3 = w.pull().unwrap();
    assert!(
        !accepted.tree.exists(),
        "two accepts on, the first tree goes"
    );
    assert!(a2.tree.exists() && a3.accepted().tree.exists());
    let pins: Vec<_> = std::fs::read_dir(w.state.join("source"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("allowed_signers"))
        .collect();
    assert_eq!(
        pins,
        ["allowed_signers"],
        "no working copy of the pin is left"
    );
}

fn source_files(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        if m.is_dir() {
            out.extend(source_files(&e.path()));
        } else {
            out.push((e.path(), m.modified().unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn unsigned_unknown_and_backwards_tips_are_refused_and_the_accepted_fleet_stays() {
    let w = World::new();
    let c1 = w.commit(&[("fleet.json", "1")], Some("alice"));
    w.pull().unwrap();
    let c2 = w.commit(&[("fleet.json", "2")], Some("alice"));
    w.pull().unwrap();
    let kept = (c2.clone(), "2".to_owned());

    w.commit(&[("fleet.json", "unsigned")], None);
    assert!(matches!(w.refusal(), Refusal::Unsigned { .. }));
    assert_eq!(w.accepted(), kept);
    let why = source::last_error(&w.state).unwrap().message;
    assert!(why.contains("not signed"), "{why}");

    run(&w.remote, "git", &["reset", "-q", "--hard", &c2]);
    w.commit(&[("fleet.json", "mallory")], Some("mallory"));
    assert!(matches!(w.refusal(), Refusal::SignerNotAllowed { .. }));
    assert_eq!(w.accepted(), kept);

    // A force-push back to an older commit, validly signed.
    run(&w.remote, "git", &["reset", "-q", "--hard", &c1]);
    let r = w.refusal();
    assert!(
        matches!(&r, Refusal::Rollback { commit, accepted } if *commit == c1 && *accepted == c2),
        "{r}"
    );
    assert_eq!(w.accepted(), kept);

    // Another history, signed.
    run(&w.remote, "git", &["checkout", "-q", "--orphan", "other"]);
    w.commit(&[("fleet.json", "other")], Some("alice"));
    run(&w.remote, "git", &["branch", "-q", "-M", "main"]);
    assert!(matches!(w.refusal(), Refusal::Unrelated { .. }));
    assert_eq!(w.accepted(), kept);

    // Back on the accepted history, a new signed commit goes through and clears the error.
    run(&w.remote, "git", &["reset", "-q", "--hard", &c2]);
    w.commit(&[("fleet.json", "3")], Some("alice"));
    assert!(matches!(w.pull().unwrap(), Pulled::Moved { .. }));
    assert!(source::last_error(&w.state).is_none());
}

#[test]
fn the_signers_rotate_only_through_a_trusted_commit() {
    let w = World::new();
    w.commit(&[("fleet.json", "1")], Some("alice"));
    w.pull().unwrap();
    // Bob joins in a commit alice signed; then bob's own commits are accepted.
    let signers = format!("{}{}", w.key("alice"), w.key("bob"));
    w.commit(&[(".wgfleet/allowed_signers", &signers)], Some("alice"));
    w.commit(&[("fleet.json", "by bob")], Some("bob"));
    let accepted = w.pull().unwrap();
    assert_eq!(accepted.accepted().signer, "bob");
    // Carol adds herself: refused, though her commit would verify under the file it carries.
    let with_carol = format!("{signers}{}", w.key("carol"));
    w.commit(
        &[
            (".wgfleet/allowed_signers", &with_carol),
            ("fleet.json", "carol"),
        ],
        Some("carol"),
    );
    assert!(matches!(
        w.refusal(),
        Refusal::SignersChangedUntrusted { .. }
    ));
    assert_eq!(w.accepted().1, "by bob");
}

#[test]
fn hostile_sources_are_refused() {
    let w = World::new();
    for (url, git_ref) in [
        ("ext::sh -c touch% /tmp/wgfleet-pwned", "main"),
        ("-uhttps://x", "main"),
        ("--upload-pack=touch /tmp/wgfleet-pwned", "main"),
        ("/srv/fleet", "--output=/tmp/x"),
        ("/srv/fleet", "-main"),
    ] {
        let s = Source {
            url: url.into(),
            git_ref: git_ref.into(),
            ..w.source()
        };
        let e = w.pull_with(&s, &Limits::default()).unwrap_err();
        assert!(
            matches!(e, SourceError::Invalid { .. }),
            "{url} {git_ref}: {e}"
        );
        assert!(!w.state.exists(), "git ran for {url}");
    }

    // A symlinked fleet (out of the checkout), a submodule.
    std::os::unix::fs::symlink("/etc/passwd", w.remote.join("fleet.json")).unwrap();
    w.commit(&[], Some("alice"));
    assert!(matches!(w.refusal(), Refusal::Symlink { path, .. } if path == "fleet.json"));
    assert!(source::accepted(&w.state).is_none());
    std::fs::remove_file(w.remote.join("fleet.json")).unwrap();
    // A nested repository is added as a gitlink.
    let sub = w.remote.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    run(&sub, "git", &["init", "-q"]);
    run(
        &sub,
        "git",
        &[
            "-c",
            "user.name=s",
            "-c",
            "user.email=s@example.com",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "s",
        ],
    );
    w.commit(&[("fleet.json", "1")], Some("alice"));
    assert!(matches!(w.refusal(), Refusal::Submodule { path, .. } if path == "sub"));
    assert!(
        source::accepted(&w.state).is_none(),
        "nothing was ever accepted"
    );

    // Over the size limit.
    let w = World::new();
    let big: String = (0..200_000u32)
        .map(|i| format!("{:x}", i.wrapping_mul(2_654_435_761)))
        .collect();
    w.commit(&[("fleet.json", "1"), ("big", &big)], Some("alice"));
    let small = Limits {
        max_repo_bytes: 64 << 10,
        ..Limits::default()
    };
    let e = w.pull_with(&w.source(), &small).unwrap_err();
    assert!(
        matches!(
            &e,
            SourceError::Refused {
                reason: Refusal::TooLarge { .. },
                ..
            }
        ),
        "{e}"
    );
    let tiny_tree = Limits {
        max_tree_bytes: 1 << 10,
        ..Limits::default()
    };
    let e = w.pull_with(&w.source(), &tiny_tree).unwrap_err();
    assert!(
        matches!(
            &e,
            SourceError::Refused {
                reason: Refusal::TooLarge { .. },
                ..
            }
        ),
        "{e}"
    );
    // A fleet path that is not in the commit.
    let s = Source {
        path: "prod/fleet.json".into(),
        ..w.source()
    };
    let e = w.pull_with(&s, &Limits::default()).unwrap_err();
    assert!(
        matches!(
            &e,
            SourceError::Refused {
                reason: Refusal::FleetMissing { .. },
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn an_unreachable_remote_keeps_the_accepted_fleet() {
    let w = World::new();
    let c1 = w.commit(&[("fleet.json", "1")], Some("alice"));
    w.pull().unwrap();
    std::fs::rename(&w.remote, w.root.join("gone")).unwrap();
    let e = w.pull().unwrap_err();
    assert!(matches!(e, SourceError::Unreachable { .. }), "{e}");
    assert_eq!(w.accepted(), (c1, "1".into()));
}

/// A fleet from git names no file of the host's: a key file outside the repository stops the
/// run before anything is observed or touched (exit 5, the file named).
#[test]
fn a_key_file_outside_the_repository_is_refused() {
    let w = World::new();
    let root = wgfleet_root();
    let mut fleet: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("examples/seed-000/fleet.json")).unwrap(),
    )
    .unwrap();
    fleet["hosts"]["cp"]["privateKeyFile"] = "../../../etc/cp.age".into();
    w.commit(&[("fleet.json", &fleet.to_string())], Some("alice"));
    let out = Command::new(env!("CARGO_BIN_EXE_wgfleet"))
        .args(["plan", "--host", "cp", "--allowed-signers"])
        .arg(&w.signers)
        .arg("--source")
        .arg(w.source().url)
        .arg("-i")
        .arg(root.join("secrets/test-identity.txt"))
        .arg("--root")
        .arg(w.root.join("host"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("\"../../../etc/cp.age\", outside the repository"),
        "{err}"
    );
}

/// A signed tip this host cannot apply (the caller's vet says why) is refused before it is
/// accepted: the last fleet stays in force, and a rotation of the signers on the way to it is
/// not kept either.
#[test]
fn a_tip_the_host_cannot_apply_is_refused_and_the_last_one_stays() {
    let w = World::new();
    let c1 = w.commit(&[("fleet.json", "good")], Some("alice"));
    w.pull().unwrap();
    let signers = format!("{}{}", w.key("alice"), w.key("bob"));
    w.commit(&[(".wgfleet/allowed_signers", &signers)], Some("alice"));
    w.commit(&[("fleet.json", "broken")], Some("alice"));
    let vet = |a: &source::Accepted| match std::fs::read_to_string(&a.fleet).unwrap().as_str() {
        "broken" => Err(Refusal::Unusable {
            commit: a.commit.clone(),
            detail: "no such host".into(),
        }),
        _ => Ok(()),
    };
    let pull = || source::pull(&w.state, &w.source(), &Limits::default(), 1_000, &vet);
    let e = pull().unwrap_err();
    assert!(
        e.to_string()
            .contains("its fleet cannot be applied on this host: no such host"),
        "{e}"
    );
    assert_eq!(w.accepted(), (c1.clone(), "good".into()));
    let trees = std::fs::read_dir(w.state.join("source/trees"))
        .unwrap()
        .count();
    assert_eq!(trees, 1, "the refused tip's files are not kept");
    let pin = std::fs::read_to_string(w.state.join("source/allowed_signers")).unwrap();
    assert_eq!(pin, w.key("alice"), "the rotation on the way is not kept");
    // Fixed in a commit on top: accepted, with bob now trusted.
    w.commit(&[("fleet.json", "fixed")], Some("bob"));
    assert_eq!(pull().unwrap().accepted().signer, "bob");
}

/// Through the CLI: a first tip whose fleet does not parse is refused (exit 5), nothing applied.
#[test]
fn an_invalid_fleet_in_a_signed_tip_is_refused_with_exit_5() {
    let w = World::new();
    w.commit(
        &[("fleet.json", "{\"version\": 1, \"hosts\": 3}")],
        Some("alice"),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_wgfleet"))
        .args(["plan", "--host", "cp", "--allowed-signers"])
        .arg(&w.signers)
        .arg("--source")
        .arg(w.source().url)
        .arg("--root")
        .arg(w.root.join("host"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("its fleet cannot be applied on this host"),
        "{err}"
    );
    assert!(source::accepted(&w.root.join("host/var/lib/wgfleet")).is_none());
}

fn wgfleet_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `join` keeps the key it generates (0600, in a 0700 directory, never printed), saves the
/// source with a copy of the signers, and prints the entry to commit; run again it keeps the
/// key, and it refuses to rename the host under the operator's feet.
#[test]
fn join_generates_a_kept_key_once_and_prints_the_entry() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new();
    let host = w.root.join("host");
    std::fs::create_dir_all(host.join("etc/ssh")).unwrap();
    let host_key = host.join("etc/ssh/ssh_host_ed25519_key");
    run(
        &w.root,
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            host_key.to_str().unwrap(),
        ],
    );
    let join = |name: &str| {
        Command::new(env!("CARGO_BIN_EXE_wgfleet"))
            .args(["join", "--json", "--host", name, "--allowed-signers"])
            .arg(&w.signers)
            .arg("--source")
            .arg(w.source().url)
            .arg("--root")
            .arg(&host)
            .output()
            .unwrap()
    };
    let first = join("worker-3");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let public = doc["publicKey"].as_str().unwrap().to_owned();
    assert_eq!(doc["keyCreated"], true);
    assert_eq!(doc["host"], "worker-3");
    assert_eq!(
        doc["entry"],
        format!("\"worker-3\": {{\"publicKey\": \"{public}\", \"keyOnHost\": true}}")
    );
    let ssh_pub = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
    let ssh_pub: Vec<&str> = ssh_pub.split_whitespace().take(2).collect();
    assert_eq!(doc["recipient"], format!("worker-3 {}", ssh_pub.join(" ")));
    let key_file = PathBuf::from(doc["keyFile"].as_str().unwrap());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key_file), 0o600);
    assert_eq!(mode(key_file.parent().unwrap()), 0o700);
    let secret = std::fs::read_to_string(&key_file).unwrap();
    assert!(!String::from_utf8_lossy(&first.stdout).contains(secret.trim()));
    // The signers are the host's own copy now.
    let saved = host.join("var/lib/wgfleet/source/source.json");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(saved).unwrap()).unwrap();
    let copy = PathBuf::from(saved["allowedSigners"].as_str().unwrap());
    assert_eq!(copy, host.join("var/lib/wgfleet/source/signers.first"));
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(&w.signers).unwrap()
    );

    let again: serde_json::Value = serde_json::from_slice(&join("worker-3").stdout).unwrap();
    assert_eq!(
        (again["publicKey"].as_str(), &again["keyCreated"]),
        (Some(public.as_str()), &serde_json::Value::Bool(false))
    );
    let renamed = join("worker-4");
    assert_eq!(renamed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&renamed.stderr).contains("joined the fleet as \"worker-3\""));
}

/// A fleet that says a host keeps its key renders no age file for it, and validation keeps
/// the two ways apart.
#[test]
fn a_host_that_keeps_its_key_renders_a_kept_key_placeholder() {
    let root = wgfleet_root();
    let mut fleet: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("examples/seed-000/fleet.json")).unwrap(),
    )
    .unwrap();
    let host = fleet["hosts"]["cp"].as_object_mut().unwrap();
    host.remove("privateKeyFile");
    host.insert("keyOnHost".into(), true.into());
    let public = host["publicKey"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.json");
    std::fs::write(&file, fleet.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wgfleet"))
        .args(["render", "--host", "cp", "--fleet"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "PrivateKey = <private key kept on this host for {public}>"
        )),
        "{text}"
    );
}

/// `source set` with a new signers file re-pins at once (after a stolen key), and the same
/// file again leaves a followed rotation alone.
#[test]
fn a_new_signers_file_re_pins_and_the_same_one_keeps_the_rotation() {
    let w = World::new();
    w.commit(&[("fleet.json", "1")], Some("alice"));
    w.pull().unwrap();
    let signers = format!("{}{}", w.key("alice"), w.key("bob"));
    w.commit(&[(".wgfleet/allowed_signers", &signers)], Some("alice"));
    w.commit(&[("fleet.json", "by bob")], Some("bob"));
    w.pull().unwrap();
    // The same file as the first time: bob stays trusted.
    source::save(&w.state, &w.source()).unwrap();
    let saved = source::saved(&w.state).unwrap().unwrap();
    w.commit(&[("fleet.json", "bob again")], Some("bob"));
    let pull = || source::pull(&w.state, &saved, &Limits::default(), 1_000, &|_| Ok(()));
    assert_eq!(pull().unwrap().accepted().signer, "bob");
    // Bob's key is stolen: the operator re-pins to carol alone.
    let fresh = w.root.join("carol_only");
    std::fs::write(&fresh, w.key("carol")).unwrap();
    let mut repinned = w.source();
    repinned.allowed_signers = fresh;
    source::save(&w.state, &repinned).unwrap();
    w.commit(&[("fleet.json", "bob, stolen")], Some("bob"));
    assert!(matches!(
        pull(),
        Err(SourceError::Refused {
            reason: Refusal::SignerNotAllowed { .. },
            ..
        })
    ));
    w.commit(&[("fleet.json", "carol")], Some("carol"));
    assert_eq!(pull().unwrap().accepted().signer, "carol");
    assert_eq!(w.accepted().1, "carol");
}

/// A host follows one branch: another one is refused, so that a tip of it accepted once
/// cannot make every later tip of the first look like a rollback.
#[test]
fn another_branch_is_refused_until_it_is_saved() {
    let w = World::new();
    w.commit(&[("fleet.json", "main")], Some("alice"));
    w.pull().unwrap();
    run(&w.remote, "git", &["checkout", "-q", "-b", "staging"]);
    w.commit(&[("fleet.json", "staging")], Some("alice"));
    let mut staging = w.source();
    staging.git_ref = "staging".into();
    let e = w.pull_with(&staging, &Limits::default()).unwrap_err();
    assert!(e.to_string().contains("this host follows"), "{e}");
    assert_eq!(w.accepted().1, "main");
    // Saved, it starts over.
    source::save(&w.state, &staging).unwrap();
    let saved = source::saved(&w.state).unwrap().unwrap();
    w.pull_with(&saved, &Limits::default()).unwrap();
    assert_eq!(w.accepted().1, "staging");
}

/// A revocation made in a merge (the merge takes the side's signers file) is followed: the
/// revoked key's tip on top of it is refused.
#[test]
fn a_signer_revoked_in_a_merge_is_revoked() {
    let w = World::new();
    let alice = w.key("alice");
    let base = w.commit(
        &[("fleet.json", "1"), (".wgfleet/allowed_signers", &alice)],
        Some("alice"),
    );
    w.pull().unwrap();
    let both = format!("{alice}{}", w.key("bob"));
    w.commit(&[(".wgfleet/allowed_signers", &both)], Some("alice"));
    w.pull().unwrap();
    // A side branch from before bob, merged back taking its signers file (bob revoked).
    run(&w.remote, "git", &["checkout", "-q", "-b", "side", &base]);
    w.commit(&[("fleet.json", "side")], Some("alice"));
    run(&w.remote, "git", &["checkout", "-q", "main"]);
    let signing = format!("user.signingkey={}", w.root.join("alice").display());
    let merge = |extra: &[&str]| {
        let mut args = vec![
            "-c",
            "user.name=op",
            "-c",
            "user.email=op@example.com",
            "-c",
            "gpg.format=ssh",
            "-c",
            &signing,
        ];
        args.extend_from_slice(extra);
        run(&w.remote, "git", &args);
    };
    merge(&["merge", "-q", "--no-commit", "--no-ff", "side"]);
    std::fs::write(w.remote.join(".wgfleet/allowed_signers"), &alice).unwrap();
    run(&w.remote, "git", &["add", "-A"]);
    merge(&["commit", "-q", "-S", "-m", "merge: bob revoked"]);
    w.commit(&[("fleet.json", "bob after his revocation")], Some("bob"));
    assert!(matches!(w.refusal(), Refusal::SignerNotAllowed { .. }));
}
