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
