//! The committed JSON Schema (schema/fleet.schema.json) is what `wgfleet schema` prints, accepts
//! every example, and rejects the invalid fixtures whose mistake a schema can express.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn committed() -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(root().join("schema/fleet.schema.json")).expect("schema file"),
    )
    .expect("json")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json")
}

#[test]
fn committed_schema_is_current() {
    let out = Command::new(env!("CARGO_BIN_EXE_wgfleet"))
        .arg("schema")
        .output()
        .expect("run");
    assert!(out.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        printed,
        committed(),
        "run `wgfleet schema > schema/fleet.schema.json`"
    );
}

#[test]
fn schema_accepts_every_example() {
    let validator = jsonschema::validator_for(&committed()).expect("valid schema");
    for entry in std::fs::read_dir(root().join("examples")).expect("examples") {
        let fleet = entry.expect("entry").path().join("fleet.json");
        if fleet.exists() {
            let errors: Vec<String> = validator
                .iter_errors(&json(&fleet))
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{}: {errors:#?}", fleet.display());
        }
    }
}

#[test]
fn schema_rejects_structural_mistakes() {
    let validator = jsonschema::validator_for(&committed()).expect("valid schema");
    for name in [
        "unknown-field",
        "bad-version",
        "bad-key",
        "listen-port-out-of-range",
        "mtu-out-of-range",
        "unsafe-host-name",
        "unsafe-interface-name",
        "unsafe-wan-interface",
        "newline-in-description",
    ] {
        let fixture = root().join(format!("tests/fixtures/invalid/{name}.json"));
        assert!(
            !validator.is_valid(&json(&fixture)),
            "{name} passed the schema"
        );
    }
}
