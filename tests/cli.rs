//! The CLI as a shell and `man` see it: completions, man pages, `--version`.

use std::process::Command;

fn wgfleet(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_wgfleet"))
        .args(args)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

const COMMANDS: &[&str] = &[
    "validate",
    "render",
    "plan",
    "apply",
    "access",
    "status",
    "client-config",
    "keygen",
    "rekey",
    "import",
    "graph",
    "report",
    "schema",
];

#[test]
fn completions_know_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let script = wgfleet(&["completions", shell]);
        for command in COMMANDS {
            assert!(
                script.contains(command),
                "{shell} completion lacks {command}"
            );
        }
    }
}

#[test]
fn man_pages_for_wgfleet_and_each_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf-8");
    wgfleet(&["man", "--dir", path]);
    for page in
        std::iter::once("wgfleet".to_owned()).chain(COMMANDS.iter().map(|c| format!("wgfleet-{c}")))
    {
        let text = std::fs::read_to_string(dir.path().join(format!("{page}.1")))
            .unwrap_or_else(|e| panic!("{page}.1: {e}"));
        assert!(text.contains(".TH") && text.contains(".SH NAME"), "{page}");
    }
}

#[test]
fn version_names_the_schema_versions_it_reads() {
    assert!(wgfleet(&["--version"]).contains("reads fleet schema version 1"));
}

/// `wgfleet render` for seed 000's control plane with `tail` after it (bash); what the whole
/// line printed, stdout and stderr.
fn render_then(tail: &str) -> (String, String) {
    let script = format!(
        "{} render --fleet {}/examples/seed-000/fleet.json --host cp {tail}",
        env!("CARGO_BIN_EXE_wgfleet"),
        env!("CARGO_MANIFEST_DIR")
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("run bash");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_stdout_ends_quietly_with_0() {
    let (code, stderr) = render_then("| (exec 0<&-; true); echo ${PIPESTATUS[0]}");
    assert_eq!((code.as_str(), stderr.as_str()), ("0\n", ""));
}

#[test]
fn a_failed_write_names_standard_output_not_the_fleet() {
    let (code, stderr) = render_then("> /dev/full; echo $?");
    assert_eq!(code, "1\n");
    assert!(
        stderr.starts_with("wgfleet: cannot write to standard output: No space left on device"),
        "{stderr}"
    );
}
