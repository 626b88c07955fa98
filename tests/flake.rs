//! The parts of flake.nix that cannot run here (no nixpkgs, no KVM), checked as far as builtins
//! go: every Nix file parses, the package, checks.module and checks.vm (nix/vm-test.nix)
//! evaluate over builtins-only stubs (tests/nix/flake-refs.nix) with no attribute missing and no
//! path that does not exist, and checks.fmt/checks.clippy run the commands tests/run-all.sh runs.
//! The package's check phase itself runs in tests/nix-sandbox-check.sh. Needs `nix-instantiate`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn nix_instantiate(dir: &Path, args: &[&str]) -> Output {
    Command::new("nix-instantiate")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run nix-instantiate ({e}); install Nix (Debian: nix-bin), as tests/run-all.sh does")
        })
}

/// tests/nix/flake-refs.nix evaluated in the tree at `dir`: its JSON, or Nix's error.
fn flake_refs(dir: &Path) -> Result<Value, String> {
    // --readonly-mode: a path in a string gets its store path without being copied.
    let out = nix_instantiate(
        dir,
        &[
            "--eval",
            "--strict",
            "--json",
            "--readonly-mode",
            "tests/nix/flake-refs.nix",
        ],
    );
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("flake-refs.nix prints JSON"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The paths flake-refs.nix found, with whether each exists.
fn paths(refs: &Value) -> Vec<(String, bool)> {
    refs["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .map(|p| {
            (
                p["path"].as_str().expect("path").to_owned(),
                p["exists"].as_bool().expect("exists"),
            )
        })
        .collect()
}

#[test]
fn every_check_evaluates_and_names_only_files_that_exist() {
    let refs = flake_refs(root()).unwrap_or_else(|e| panic!("tests/nix/flake-refs.nix: {e}"));
    let checks = refs["checks"].as_array().expect("checks");
    for check in ["clippy", "fmt", "module", "package", "vm"] {
        assert!(
            checks.contains(&check.into()),
            "no checks.{check}: {checks:?}"
        );
    }
    let paths = paths(&refs);
    let missing: Vec<_> = paths.iter().filter(|(_, exists)| !exists).collect();
    assert!(missing.is_empty(), "named but missing: {missing:?}");
    // The walk reached the module, the VM test's identity and the package's source.
    for file in [
        "modules/wgfleet.nix",
        "secrets/test-identity.txt",
        "Cargo.lock",
    ] {
        let want = root().join(file).display().to_string();
        assert!(
            paths.iter().any(|(p, _)| *p == want),
            "{file} not among {paths:?}"
        );
    }
}

#[test]
fn every_nix_file_of_the_flake_parses() {
    let refs = flake_refs(root()).unwrap_or_else(|e| panic!("tests/nix/flake-refs.nix: {e}"));
    let mut files: Vec<PathBuf> = vec![root().join("flake.nix")];
    for dir in ["nix", "modules", "tests/nix"] {
        for entry in std::fs::read_dir(root().join(dir)).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "nix") {
                files.push(path);
            }
        }
    }
    files.extend(
        paths(&refs)
            .into_iter()
            .filter(|(p, _)| p.ends_with(".nix"))
            .map(|(p, _)| PathBuf::from(p)),
    );
    for file in &files {
        let out = nix_instantiate(root(), &["--parse", &file.display().to_string()]);
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(files.len() >= 8, "{files:?}");
}

#[test]
fn checks_fmt_and_clippy_run_what_run_all_runs() {
    let refs = flake_refs(root()).unwrap_or_else(|e| panic!("tests/nix/flake-refs.nix: {e}"));
    let run_all = std::fs::read_to_string(root().join("tests/run-all.sh")).expect("run-all.sh");
    for (check, prefix) in [("fmt", "cargo fmt"), ("clippy", "cargo clippy")] {
        let ours: Vec<&str> = run_all.lines().filter(|l| l.starts_with(prefix)).collect();
        // In the build sandbox, --frozen: --locked, with the vendored crates (offline).
        let flake = refs[check]
            .as_str()
            .expect("command")
            .replace("--frozen", "--locked");
        assert_eq!(ours, [flake.as_str()], "checks.{check} in flake.nix");
    }
}

/// Copies the files the flake evaluation reads into `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn a_misspelt_attribute_or_a_missing_file_is_caught() {
    let edits = [
        (
            "nix/vm-test.nix",
            "wg.mkMembers",
            "wg.mkMemberz",
            "mkMemberz",
        ),
        (
            "nix/vm-test.nix",
            "wg.hubAndSpoke",
            "wg.hubAndSpokes",
            "hubAndSpokes",
        ),
        (
            "flake.nix",
            "self.nixosModules.default",
            "self.nixosModules.defualt",
            "defualt",
        ),
        (
            "nix/vm-test.nix",
            "../secrets/test-identity.txt",
            "../secrets/test-identity.text",
            "secrets/test-identity.text",
        ),
    ];
    for (file, from, to, caught) in edits {
        let tree = tempfile::tempdir().expect("tempdir");
        for dir in ["nix", "modules", "tests/nix", "examples", "secrets"] {
            copy_tree(&root().join(dir), &tree.path().join(dir));
        }
        for file in ["flake.nix", "Cargo.toml", "Cargo.lock"] {
            std::fs::copy(root().join(file), tree.path().join(file)).expect("copy");
        }
        for dir in ["src", "tests", "schema"] {
            std::fs::create_dir_all(tree.path().join(dir)).expect("mkdir");
        }
        let text = std::fs::read_to_string(root().join(file)).expect("read");
        assert!(text.contains(from), "{file} no longer has {from}");
        std::fs::write(tree.path().join(file), text.replace(from, to)).expect("write");

        let report = match flake_refs(tree.path()) {
            Err(e) => e,
            Ok(refs) => format!(
                "{:?}",
                paths(&refs)
                    .into_iter()
                    .filter(|(_, exists)| !exists)
                    .collect::<Vec<_>>()
            ),
        };
        assert!(
            report.contains(caught),
            "{to} in {file} not caught: {report}"
        );
    }
}
