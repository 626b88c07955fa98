//! The security review's findings (issue 14) that need no testbed, each against the real binary
//! and, for Nix, the real `nix-instantiate`. SECURITY.md says what is defended; these show it.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn wgfleet(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgfleet"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run wgfleet")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// No terminal control character but line ends (so no ESC, no BEL) in `output`.
fn assert_inert(what: &str, output: &str) {
    assert!(
        !output.chars().any(|c| c.is_control() && c != '\n'),
        "{what} prints a control character: {output:?}"
    );
}

const KEY_A: &str = "j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=";
const KEY_B: &str = "um/TOLbxUvqJwIOGdbFPn9uBh/Es4shlVXFlWyEYvng=";

fn small_fleet(client_key: &str) -> serde_json::Value {
    serde_json::json!({
        "version": 1,
        "hosts": {"cp": {"publicKey": KEY_A, "endpoint": "192.0.2.1"}},
        "networks": {"wg0": {"subnet": "10.9.0.0/24", "topology": {"hubAndSpoke": {"hubs": ["cp"]}},
            "members": {"cp": {"id": 0}},
            "clients": {"laptop": {"publicKey": client_key, "id": 5}}}}
    })
}

// ---------------------------------------------------------------------------------------------
// Finding 7: terminal escapes.

#[test]
fn an_unknown_field_cannot_forge_output_or_send_escapes() {
    let dir = tempfile::tempdir().unwrap();
    for key in ["\u{1b}]0;pwned\u{7}", "x\nwgfleet: all good", "\u{1b}[2J"] {
        let mut fleet = small_fleet(KEY_B);
        fleet["hosts"]["cp"][key] = serde_json::json!(1);
        std::fs::write(dir.path().join("fleet.json"), fleet.to_string()).unwrap();
        let out = wgfleet(dir.path(), &["validate", "--fleet", "fleet.json"]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        assert_inert("an unknown-field error", &stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
        assert!(stderr.contains("unknown field"), "{stderr}");
    }
}

#[test]
fn audit_logs_print_as_inert_text() {
    let dir = tempfile::tempdir().unwrap();
    let line = serde_json::json!({
        "time": "2026-01-01T00:00:00Z", "host": "cp\nforged: line", "network": "wg0",
        "peers": [{"name": "\u{1b}]0;pwned\u{7}", "owner": "\u{1b}[31mbob"}]
    });
    std::fs::write(dir.path().join("a.jsonl"), format!("{line}\n")).unwrap();
    let out = wgfleet(dir.path(), &["audit", "--log", "a.jsonl"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_inert("audit", &stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    // A bad line's error echoes the input escaped, too.
    std::fs::write(
        dir.path().join("b.jsonl"),
        "{\"time\": 1, \"\u{1b}]0;x\u{7}\": 2}\n",
    )
    .unwrap();
    let out = wgfleet(dir.path(), &["audit", "--log", "b.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    assert_inert("an audit parse error", &text(&out.stderr));
}

// ---------------------------------------------------------------------------------------------
// Finding 9 (info): validate --json on a fleet that does not parse.

#[test]
fn validate_json_reports_a_syntax_error_as_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("fleet.json"),
        "{\"version\": 1,\n  \"hosts\": {,}}\n",
    )
    .unwrap();
    let out = wgfleet(dir.path(), &["validate", "--fleet", "fleet.json", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", text(&out.stdout)));
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["diagnostics"][0]["severity"], "error");
    assert_eq!(doc["diagnostics"][0]["line"], 2);
    assert!(
        doc["diagnostics"][0]["message"]
            .as_str()
            .unwrap()
            .contains("key must be a string")
    );
}

// ---------------------------------------------------------------------------------------------
// Finding 6: client-config --generate.

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn client_config_generate_is_atomic_and_keeps_the_fleet_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The fleet lives elsewhere (a checkout) and is reached through a link; it is 0600.
    std::fs::create_dir(d.join("repo")).unwrap();
    let fleet = d.join("repo/fleet.json");
    std::fs::write(&fleet, format!("{:#}\n", small_fleet(KEY_B))).unwrap();
    std::fs::set_permissions(&fleet, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("repo/fleet.json", d.join("fleet.json")).unwrap();
    let before = std::fs::read_to_string(&fleet).unwrap();

    // An -o that cannot be written: nothing changes, the fleet keeps the old key.
    let out = wgfleet(
        d,
        &[
            "client-config",
            "laptop",
            "--fleet",
            "fleet.json",
            "--generate",
            "-o",
            "missing/dir/laptop.conf",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&fleet).unwrap(),
        before,
        "the fleet changed"
    );

    // An existing -o needs --force.
    std::fs::write(d.join("laptop.conf"), "keep me").unwrap();
    let out = wgfleet(
        d,
        &[
            "client-config",
            "laptop",
            "--fleet",
            "fleet.json",
            "--generate",
            "-o",
            "laptop.conf",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(d.join("laptop.conf")).unwrap(),
        "keep me"
    );
    assert_eq!(std::fs::read_to_string(&fleet).unwrap(), before);

    // With --force: the config is written 0600, the fleet through the link, still 0600.
    let out = wgfleet(
        d,
        &[
            "client-config",
            "laptop",
            "--fleet",
            "fleet.json",
            "--generate",
            "-o",
            "laptop.conf",
            "--force",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        std::fs::symlink_metadata(d.join("fleet.json"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let after = std::fs::read_to_string(&fleet).unwrap();
    assert_ne!(after, before);
    assert!(!after.contains(KEY_B));
    assert_eq!(mode(&fleet), 0o600);
    assert_eq!(mode(&d.join("laptop.conf")), 0o600);
    let conf = std::fs::read_to_string(d.join("laptop.conf")).unwrap();
    assert!(conf.contains("PrivateKey = "), "{conf}");
}

// ---------------------------------------------------------------------------------------------
// Finding 2: Nix fleets are evaluated confined.

/// A fleet directory with `fleet.nix` holding `body` (an expression for one host's endpoint).
fn nix_fleet(body: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fleet = format!(
        r#"{{ version = 1;
  hosts.cp = {{ publicKey = "{KEY_A}"; endpoint = {body}; }};
  networks.wg0 = {{ subnet = "10.9.0.0/24"; topology = "mesh"; members.cp.id = 0; }};
}}"#
    );
    std::fs::write(dir.path().join("fleet.nix"), fleet).unwrap();
    dir
}

fn validate_nix(dir: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgfleet"))
        .current_dir(dir)
        .args(["render", "--fleet", "fleet.nix", "--host", "cp"])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run wgfleet")
}

#[test]
fn a_nix_fleet_reads_only_its_own_tree_and_no_environment() {
    // Its own directory is fine.
    let dir = nix_fleet("builtins.readFile ./endpoint");
    std::fs::write(dir.path().join("endpoint"), "192.0.2.7").unwrap();
    let out = validate_nix(dir.path(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A file outside it is refused, and its content never shows.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "TOP-SECRET-CONTENT").unwrap();
    let dir = nix_fleet(&format!(
        "builtins.readFile {}/secret",
        outside.path().display()
    ));
    let out = validate_nix(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("forbidden in restricted mode"), "{stderr}");
    assert!(!stderr.contains("TOP-SECRET-CONTENT"));
    // …also through a link inside the tree.
    let dir = nix_fleet("builtins.readFile ./link");
    std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
    let out = validate_nix(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains("TOP-SECRET") && !text(&out.stderr).contains("TOP-SECRET"));

    // The environment does not leak into the rendered config.
    let dir = nix_fleet(r#"(builtins.getEnv "LEAKME") + "192.0.2.1""#);
    let out = validate_nix(dir.path(), &[("LEAKME", "SECRET-FROM-ENV-")]);
    assert!(
        !text(&out.stdout).contains("SECRET-FROM-ENV"),
        "{}",
        text(&out.stdout)
    );

    // NIX_CONFIG cannot turn on builtins.exec, nor NIX_PATH add a search path.
    let dir = nix_fleet(r#"builtins.exec [ "/bin/sh" "-c" "echo '\"192.0.2.9\"'" ]"#);
    let out = validate_nix(
        dir.path(),
        &[(
            "NIX_CONFIG",
            "allow-unsafe-native-code-during-evaluation = true",
        )],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "exec ran: {}",
        text(&out.stdout)
    );
    let dir = nix_fleet("import <outside/x.nix>");
    std::fs::write(outside.path().join("x.nix"), "\"192.0.2.1\"").unwrap();
    let parent = outside.path().parent().unwrap().display().to_string();
    let nix_path = format!("outside={}", outside.path().display());
    let out = validate_nix(dir.path(), &[("NIX_PATH", &nix_path), ("HOME", &parent)]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "NIX_PATH used: {}",
        text(&out.stdout)
    );
}

/// A fold that runs for hours: nix-instantiate ignores SIGTERM while it evaluates.
const ENDLESS: &str = "let l = builtins.genList (x: x) 100000; in builtins.foldl' (a: i: builtins.foldl' (b: j: b + j) a l) 0 l";

/// The nix-instantiate processes evaluating something under `dir`.
fn nix_processes_in(dir: &Path) -> Vec<u32> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
        })
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "nix-instantiate")
        })
        .collect()
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

#[test]
fn a_nix_evaluation_that_does_not_end_is_killed_with_its_group() {
    let dir = nix_fleet(&format!("builtins.toString ({ENDLESS})"));
    let start = Instant::now();
    let out = validate_nix(dir.path(), &[("WGFLEET_NIX_TIMEOUT", "2")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("took more than 2 s"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    assert!(
        wait_until(Duration::from_secs(5), || nix_processes_in(dir.path())
            .is_empty()),
        "nix-instantiate outlived the timeout"
    );
}

#[test]
fn stopping_wgfleet_stops_the_nix_evaluation() {
    let dir = nix_fleet(&format!("builtins.toString ({ENDLESS})"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgfleet"))
        .current_dir(dir.path())
        .args(["validate", "--fleet", "fleet.nix"])
        .env("WGFLEET_NIX_TIMEOUT", "600")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || !nix_processes_in(dir.path())
            .is_empty()),
        "nix-instantiate never started"
    );
    // SIGTERM, as systemd or `kill` sends it, to wgfleet alone.
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(
        wait_until(Duration::from_secs(5), || nix_processes_in(dir.path())
            .is_empty()),
        "nix-instantiate survived the SIGTERM sent to wgfleet"
    );
}

// ---------------------------------------------------------------------------------------------
// Finding 8: a wedged system bus.

#[test]
fn a_bus_that_never_answers_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("bus");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    // Accepts every connection and never says a word.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgfleet"))
        .current_dir(root)
        .args([
            "apply",
            "--fleet",
            "examples/seed-000/fleet.json",
            "--host",
            "cp",
        ])
        .args(["-i", "secrets/test-identity.txt"])
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            format!("unix:path={}", socket.display()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let finished = wait_until(Duration::from_secs(90), || {
        child.try_wait().unwrap().is_some()
    });
    if !finished {
        let _ = child.kill();
        let _ = child.wait();
        panic!("apply still waits for the bus after {:?}", start.elapsed());
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no answer within"), "{stderr}");
}
