//! Secrets against the real tools: files made by the `age` CLI (X25519 and SSH recipients,
//! armored and binary) decrypt in wgfleet; `wgfleet keygen` output decrypts with `age -d` and
//! matches `wg pubkey`; SSH keys come from the real `ssh-keygen`. Every error is snapshotted, and
//! no secret ever shows up in output.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use std::io::Write as _;

fn run(dir: &Path, program: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(program)
        .current_dir(dir)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (installed by tests/run-all.sh)"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    }
    child.wait_with_output().expect("wait")
}

fn ok(dir: &Path, program: &str, args: &[&str], stdin: Option<&[u8]>) -> String {
    let out = run(dir, program, args, stdin);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn wgfleet(dir: &Path, args: &[&str]) -> Output {
    run(dir, env!("CARGO_BIN_EXE_wgfleet"), args, None)
}

/// A workspace with a one-host fleet whose key is `key_file`, declared with `public_key`.
struct Bed {
    dir: tempfile::TempDir,
}

impl Bed {
    fn new() -> Self {
        Bed {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn sh(&self, script: &str) -> String {
        ok(self.path(), "sh", &["-c", script], None)
    }

    /// A fresh WireGuard key pair made by the real `wg`; returns (private, public).
    fn wg_keypair(&self) -> (String, String) {
        let private = ok(self.path(), "wg", &["genkey"], None);
        let public = ok(self.path(), "wg", &["pubkey"], Some(private.as_bytes()));
        (private.trim().to_owned(), public.trim().to_owned())
    }

    fn fleet(&self, public_key: &str, key_file: &str) {
        let fleet = serde_json::json!({
            "version": 1,
            "hosts": {"cp": {"publicKey": public_key, "privateKeyFile": key_file, "endpoint": "192.0.2.1"}},
            "networks": {"wg0": {"subnet": "10.9.0.0/24", "topology": "mesh", "members": {"cp": {"id": 0}}}}
        });
        std::fs::write(self.path().join("fleet.json"), fleet.to_string()).expect("write fleet");
    }

    fn check(&self, identities: &[&str]) -> Output {
        let mut args = vec!["check-secrets", "--fleet", "fleet.json", "--host", "cp"];
        for id in identities {
            args.extend(["-i", id]);
        }
        wgfleet(self.path(), &args)
    }

    fn check_err(&self, identities: &[&str]) -> String {
        let out = self.check(identities);
        assert_eq!(
            out.status.code(),
            Some(1),
            "must fail: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).expect("utf-8")
    }
}

#[test]
fn files_encrypted_by_the_age_cli_decrypt_in_wgfleet() {
    let bed = Bed::new();
    // An age identity file with two keys and comments, and real OpenSSH keys.
    bed.sh("age-keygen -o ids.txt 2>/dev/null && age-keygen 2>/dev/null >> ids.txt");
    bed.sh("ssh-keygen -q -t ed25519 -N '' -C test -f ed25519 && ssh-keygen -q -t rsa -b 2048 -N '' -C test -f rsa");
    let second_age = bed.sh("age-keygen -y ids.txt | tail -n 1");
    let cases = [
        ("age-x25519", format!("-r {}", second_age.trim()), "ids.txt"),
        ("ssh-ed25519", "-R ed25519.pub".to_owned(), "ed25519"),
        ("ssh-rsa", "-R rsa.pub".to_owned(), "rsa"),
    ];
    for (name, recipient, identity) in &cases {
        for armor in ["", "-a"] {
            let (private, public) = bed.wg_keypair();
            let file = format!("{name}{armor}.age");
            ok(
                bed.path(),
                "sh",
                &["-c", &format!("age {recipient} {armor} -o {file}")],
                Some(format!("{private}\n").as_bytes()),
            );
            bed.fleet(&public, &file);
            let out = bed.check(&[identity]);
            assert!(
                out.status.success(),
                "{name} {armor}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                stdout.contains("matches the declared public key"),
                "{stdout}"
            );
            assert!(!stdout.contains(&private), "the key must never be printed");
        }
    }
}

#[test]
fn keygen_output_decrypts_with_age_and_matches_wg_pubkey() {
    let bed = Bed::new();
    bed.sh("age-keygen -o id.txt 2>/dev/null && ssh-keygen -q -t ed25519 -N '' -f host");
    let age_recipient = bed.sh("age-keygen -y id.txt").trim().to_owned();
    let ssh_recipient = std::fs::read_to_string(bed.path().join("host.pub"))
        .expect("pub")
        .trim()
        .to_owned();
    for (recipient, identity) in [(&age_recipient, "id.txt"), (&ssh_recipient, "host")] {
        let out = wgfleet(
            bed.path(),
            &["keygen", "--force", "-o", "key.age", "-r", recipient],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed = String::from_utf8(out.stdout).expect("utf-8");
        let decrypted = ok(bed.path(), "age", &["-d", "-i", identity, "key.age"], None);
        let public = ok(bed.path(), "wg", &["pubkey"], Some(decrypted.as_bytes()));
        assert_eq!(printed.trim(), public.trim());
        let on_disk = std::fs::read_to_string(bed.path().join("key.age")).expect("read");
        assert!(on_disk.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        assert!(!on_disk.contains(decrypted.trim()), "no plaintext on disk");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(bed.path().join("key.age"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A preshared key: 32 random bytes that `wg` accepts as a key.
    let out = wgfleet(
        bed.path(),
        &[
            "keygen",
            "--psk",
            "--json",
            "-o",
            "psk.age",
            "-r",
            &age_recipient,
        ],
    );
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(doc["publicKey"].is_null());
    let psk = ok(bed.path(), "age", &["-d", "-i", "id.txt", "psk.age"], None);
    ok(bed.path(), "wg", &["pubkey"], Some(psk.as_bytes()));
    // The generated keys are the keys their files hold: a fleet made from keygen checks out.
    let out = wgfleet(
        bed.path(),
        &["keygen", "--json", "-o", "cp.age", "-r", &age_recipient],
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    bed.fleet(doc["publicKey"].as_str().expect("publicKey"), "cp.age");
    assert!(bed.check(&["id.txt"]).status.success());
}

#[test]
fn keygen_refuses_to_overwrite_and_needs_recipients() {
    let bed = Bed::new();
    bed.sh("age-keygen -o id.txt 2>/dev/null; echo old > key.age");
    let recipient = bed.sh("age-keygen -y id.txt").trim().to_owned();
    let out = wgfleet(bed.path(), &["keygen", "-o", "key.age", "-r", &recipient]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("keygen-exists", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(bed.path().join("key.age")).expect("read"),
        "old\n"
    );
    let out = wgfleet(bed.path(), &["keygen", "-o", "new.age"]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("keygen-no-recipients", String::from_utf8_lossy(&out.stderr));
    let out = wgfleet(bed.path(), &["keygen", "-o", "new.age", "-r", "age1nope"]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("keygen-bad-recipient", String::from_utf8_lossy(&out.stderr));
    assert!(!bed.path().join("new.age").exists());
}

#[test]
fn every_secret_error_is_one_clear_message() {
    let bed = Bed::new();
    bed.sh("age-keygen -o right.txt 2>/dev/null && age-keygen -o wrong.txt 2>/dev/null");
    bed.sh("ssh-keygen -q -t ed25519 -N 'secret passphrase' -f locked");
    let (private, public) = bed.wg_keypair();
    let recipient = bed.sh("age-keygen -y right.txt").trim().to_owned();
    ok(
        bed.path(),
        "age",
        &["-r", &recipient, "-o", "cp.age"],
        Some(format!("{private}\n").as_bytes()),
    );
    bed.fleet(&public, "cp.age");
    assert!(bed.check(&["right.txt"]).status.success());

    insta::assert_snapshot!("passphrase-protected-ssh-key", bed.check_err(&["locked"]));
    insta::assert_snapshot!("missing-identity", bed.check_err(&["nowhere.txt"]));
    insta::assert_snapshot!("wrong-identity", bed.check_err(&["wrong.txt"]));
    bed.sh("echo 'not an identity' > junk.txt");
    insta::assert_snapshot!("identity-not-a-key", bed.check_err(&["junk.txt"]));

    bed.sh("head -c 200 /dev/urandom > corrupt.age");
    bed.fleet(&public, "corrupt.age");
    insta::assert_snapshot!("corrupt-file", bed.check_err(&["right.txt"]));
    bed.fleet(&public, "absent.age");
    insta::assert_snapshot!("missing-file", bed.check_err(&["right.txt"]));
    ok(
        bed.path(),
        "age",
        &["-r", &recipient, "-o", "text.age"],
        Some(b"hello, not a key\n"),
    );
    bed.fleet(&public, "text.age");
    insta::assert_snapshot!("not-a-wireguard-key", bed.check_err(&["right.txt"]));

    let (_, other_public) = bed.wg_keypair();
    bed.fleet(&other_public, "cp.age");
    let mismatch = bed
        .check_err(&["right.txt"])
        .replace(&other_public, "<DECLARED>")
        .replace(&public, "<DERIVED>");
    insta::assert_snapshot!("key-does-not-match-declared-public-key", mismatch);

    // None of these messages, nor any output, ever holds the key.
    for id in ["locked", "wrong.txt", "right.txt"] {
        let out = bed.check(&[id]);
        assert!(!String::from_utf8_lossy(&out.stderr).contains(&private));
        assert!(!String::from_utf8_lossy(&out.stdout).contains(&private));
    }
}

#[test]
fn render_never_needs_or_shows_a_secret() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let key = ok(
        root,
        "age",
        &[
            "-d",
            "-i",
            "secrets/test-identity.txt",
            "secrets/examples/seed-000/cp.age",
        ],
        None,
    );
    for args in [
        vec![
            "render",
            "--fleet",
            "examples/seed-000/fleet.json",
            "--host",
            "cp",
            "--json",
        ],
        vec![
            "validate",
            "--fleet",
            "examples/seed-000/fleet.json",
            "--json",
        ],
    ] {
        let out = wgfleet(root, &args);
        assert!(out.status.success());
        assert!(!String::from_utf8_lossy(&out.stdout).contains(key.trim()));
    }
    let out = ok(
        root,
        env!("CARGO_BIN_EXE_wgfleet"),
        &[
            "render",
            "--fleet",
            "examples/seed-000/fleet.json",
            "--host",
            "cp",
        ],
        None,
    );
    assert!(out.contains("PrivateKey = <private key from ../../secrets/examples/seed-000/cp.age>"));
}

#[test]
fn rekey_moves_secrets_to_new_recipients_atomically() {
    let bed = Bed::new();
    bed.sh("age-keygen -o operator.txt 2>/dev/null && age-keygen -o newop.txt 2>/dev/null && ssh-keygen -q -t ed25519 -N '' -f cp_host");
    let operator = bed.sh("age-keygen -y operator.txt").trim().to_owned();
    let (private, public) = bed.wg_keypair();
    ok(
        bed.path(),
        "age",
        &["-r", &operator, "-o", "cp.age"],
        Some(format!("{private}\n").as_bytes()),
    );
    bed.fleet(&public, "cp.age");

    // A recipients file without a line for host cp is refused before anything is touched.
    let newop = bed.sh("age-keygen -y newop.txt").trim().to_owned();
    std::fs::write(
        bed.path().join("recipients.txt"),
        format!("# operators\n{newop}\n"),
    )
    .expect("write");
    let before = std::fs::read(bed.path().join("cp.age")).expect("read");
    let out = wgfleet(
        bed.path(),
        &[
            "rekey",
            "--fleet",
            "fleet.json",
            "-R",
            "recipients.txt",
            "-i",
            "operator.txt",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(
        "rekey-host-without-recipient",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(bed.path().join("cp.age")).expect("read"),
        before
    );

    // The operator changes and the host gets its SSH host key: the old operator loses access.
    let host_key = std::fs::read_to_string(bed.path().join("cp_host.pub")).expect("pub");
    std::fs::write(
        bed.path().join("recipients.txt"),
        format!("{newop}\ncp {}\n", host_key.trim()),
    )
    .expect("write");
    let out = wgfleet(
        bed.path(),
        &[
            "rekey",
            "--fleet",
            "fleet.json",
            "-R",
            "recipients.txt",
            "-i",
            "operator.txt",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for identity in ["newop.txt", "cp_host"] {
        assert!(
            bed.check(&[identity]).status.success(),
            "{identity} can decrypt after rekey"
        );
        let plain = ok(bed.path(), "age", &["-d", "-i", identity, "cp.age"], None);
        assert_eq!(plain.trim(), private);
    }
    assert!(
        !bed.check(&["operator.txt"]).status.success(),
        "the old operator is locked out"
    );
    let names: Vec<String> = std::fs::read_dir(bed.path())
        .expect("dir")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("wgfleet-tmp")),
        "no temp file left: {names:?}"
    );
}

/// `rekey --abandon HOST` drops a staged rotation: the fleet is as before it, byte for byte, and
/// the next key's file is gone; a second one, with nothing staged, says so and changes nothing.
#[test]
fn rekey_abandon_leaves_the_fleet_as_before_the_rotation() {
    let bed = Bed::new();
    bed.sh("age-keygen -o operator.txt 2>/dev/null");
    let operator = bed.sh("age-keygen -y operator.txt").trim().to_owned();
    let (private, public) = bed.wg_keypair();
    ok(
        bed.path(),
        "age",
        &["-r", &operator, "-o", "cp.age"],
        Some(format!("{private}\n").as_bytes()),
    );
    bed.fleet(&public, "cp.age");
    std::fs::write(
        bed.path().join("recipients.txt"),
        format!("{operator}\ncp {operator}\n"),
    )
    .expect("write");
    let before = std::fs::read_to_string(bed.path().join("fleet.json")).expect("read");
    let rekey = |args: &[&str]| {
        let mut all = vec!["rekey", "--fleet", "fleet.json"];
        all.extend(args);
        wgfleet(bed.path(), &all)
    };
    let out = rekey(&["-R", "recipients.txt", "--rotate", "cp"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(bed.path().join("cp.next.age").exists());
    let out = rekey(&["--abandon", "cp", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        doc["removed"].as_str().unwrap().ends_with("cp.next.age"),
        "{doc}"
    );
    assert_eq!(
        std::fs::read_to_string(bed.path().join("fleet.json")).expect("read"),
        before
    );
    assert!(!bed.path().join("cp.next.age").exists());
    let out = rekey(&["--abandon", "cp"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("host cp has no staged rotation to abandon"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Security review (issue 14, finding 1): a preshared key that is some host's private key (here
/// through a link, which `validate` cannot see) is refused, and the key is never printed.
#[test]
fn a_private_key_is_never_handed_out_as_a_preshared_key() {
    let bed = Bed::new();
    bed.sh("age-keygen -o right.txt 2>/dev/null");
    let recipient = bed.sh("age-keygen -y right.txt").trim().to_owned();
    let (private, public) = bed.wg_keypair();
    ok(
        bed.path(),
        "age",
        &["-r", &recipient, "-o", "cp.age"],
        Some(format!("{private}\n").as_bytes()),
    );
    bed.sh("ln -s cp.age psk.age");
    let (_, client_public) = bed.wg_keypair();
    let fleet = serde_json::json!({
        "version": 1,
        "hosts": {"cp": {"publicKey": public, "privateKeyFile": "cp.age", "endpoint": "192.0.2.1"}},
        "networks": {"wg0": {"subnet": "10.9.0.0/24", "topology": {"hubAndSpoke": {"hubs": ["cp"]}},
            "members": {"cp": {"id": 0}},
            "clients": {"laptop": {"publicKey": client_public, "id": 5, "presharedKeyFile": "psk.age"}}}}
    });
    std::fs::write(bed.path().join("fleet.json"), fleet.to_string()).expect("write fleet");
    let out = wgfleet(
        bed.path(),
        &[
            "client-config",
            "laptop",
            "--fleet",
            "fleet.json",
            "-i",
            "right.txt",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "must be refused: {stderr}");
    assert!(
        stderr.contains("holds the private key of host cp"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&private));
    assert!(!stderr.contains(&private));
    // The hub's own apply/plan decrypt the same way (check-secrets is their dry run): refused.
    let hub = bed.check_err(&["right.txt"]);
    assert!(hub.contains("holds the private key of host cp"), "{hub}");
    assert!(!hub.contains(&private));
}

/// Runs wgfleet and fails the test if it has not finished within `limit`.
fn wgfleet_within(dir: &Path, args: &[&str], limit: std::time::Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgfleet"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wgfleet");
    let start = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wgfleet {args:?} still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// Security review (issue 14, finding 5): key and identity files are read only when they are
/// regular files, and at most 64 KiB of them, before any parsing: /dev/zero does not exhaust
/// memory, a FIFO does not block, and a 2 MB header of repeated stanzas (quadratic in age's
/// parser) is refused at once.
#[test]
fn key_files_are_read_bounded() {
    let bed = Bed::new();
    bed.sh("age-keygen -o right.txt 2>/dev/null");
    let (_, public) = bed.wg_keypair();
    bed.sh("mkfifo fifo.age");
    let mut header = b"age-encryption.org/v1\n".to_vec();
    while header.len() < 2_000_000 {
        header.extend_from_slice(b"-> a\n\n");
    }
    std::fs::write(bed.path().join("stanzas.age"), &header).expect("write");
    // Under the cap, but still ~10,000 stanzas: minutes in age's header parser, so counted first.
    header.truncate(60_000);
    std::fs::write(bed.path().join("many.age"), &header).expect("write");
    let limit = std::time::Duration::from_secs(20);
    for (key_file, identity, expect) in [
        ("/dev/zero", "right.txt", "a device, not a regular file"),
        ("fifo.age", "right.txt", "a FIFO, not a regular file"),
        ("stanzas.age", "right.txt", "larger than 64 KiB"),
        (
            "many.age",
            "right.txt",
            "recipient stanzas; a key file has one per recipient",
        ),
        ("fifo.age", "/dev/zero", "a device, not a regular file"),
    ] {
        bed.fleet(&public, key_file);
        let out = wgfleet_within(
            bed.path(),
            &[
                "check-secrets",
                "--fleet",
                "fleet.json",
                "--host",
                "cp",
                "-i",
                identity,
            ],
            limit,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{key_file}: {stderr}");
        assert!(stderr.contains(expect), "{key_file} / {identity}: {stderr}");
    }
}
