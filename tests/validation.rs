//! One minimal invalid fleet per validation rule (tests/fixtures/invalid/), run through the real
//! binary: the exit code is 1 and the message, snapshotted, names file, line, field and value.

use std::process::Command;

fn validate(fixture: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_wgfleet"))
        .current_dir(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/invalid"
        ))
        .args([
            "validate",
            "--now",
            "2026-11-23T00:00:00Z",
            "--fleet",
            &format!("{fixture}.json"),
        ])
        .output()
        .expect("run wgfleet");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{fixture} must be rejected with exit code 1"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout for an invalid fleet"
    );
    String::from_utf8(out.stderr).expect("utf-8")
}

macro_rules! invalid {
    ($($test:ident => $fixture:literal,)*) => {$(
        #[test]
        fn $test() {
            insta::assert_snapshot!($fixture, validate($fixture));
        }
    )*};
}

invalid! {
    unknown_field => "unknown-field",
    syntax_error => "syntax-error",
    bad_version => "bad-version",
    duplicate_address => "duplicate-address",
    address_outside_subnet => "address-outside-subnet",
    duplicate_public_key => "duplicate-public-key",
    bad_key => "bad-key",
    prefix_on_two_peers => "prefix-on-two-peers",
    overlapping_routes => "overlapping-routes",
    hub_not_member => "hub-not-member",
    member_not_host => "member-not-host",
    unknown_group => "unknown-group",
    listen_port_out_of_range => "listen-port-out-of-range",
    mtu_out_of_range => "mtu-out-of-range",
    unsafe_host_name => "unsafe-host-name",
    unsafe_interface_name => "unsafe-interface-name",
    unsafe_wan_interface => "unsafe-wan-interface",
    key_on_host_and_key_file => "key-on-host-and-key-file",
    newline_in_description => "newline-in-description",
    bad_expires => "bad-expires",
    id_out_of_range => "id-out-of-range",
    hub_without_endpoint => "hub-without-endpoint",
    nat_without_wan_interface => "nat-without-wan-interface",
    bad_flow_port => "bad-flow-port",
    route_host_bits => "route-host-bits",
    bad_endpoint => "bad-endpoint",
    reach_in_mesh => "reach-in-mesh",
    many_errors_at_once => "many-errors-at-once",
    endpoint_port_not_listen_port => "endpoint-port-not-listen-port",
    dialled_without_fixed_port => "dialled-without-fixed-port",
    shared_private_key_file => "shared-private-key-file",
    point_to_point_too_small => "point-to-point-too-small",
    // Security review (issue 14): a host's private key file named as a preshared key.
    key_file_as_psk => "key-file-as-psk",
    network_named_interfaces => "network-named-interfaces",
    // Found by the fuzzer: an id whose address overflowed IPv6 arithmetic.
    v6_id_overflow => "v6-id-overflow",
}

#[test]
fn every_fixture_has_a_test() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/invalid");
    let source = include_str!("validation.rs");
    for entry in std::fs::read_dir(dir).expect("fixtures") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8");
        let stem = name.trim_end_matches(".json");
        assert!(
            source.contains(&format!("=> \"{stem}\"")),
            "fixture {name} has no test"
        );
    }
}

#[test]
fn json_output_lists_every_error_with_its_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_wgfleet"))
        .current_dir(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/invalid"
        ))
        .args(["validate", "--json", "--fleet", "many-errors-at-once.json"])
        .output()
        .expect("run wgfleet");
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    assert_eq!(doc["valid"], false);
    let diags = doc["diagnostics"].as_array().expect("diagnostics");
    assert!(diags.len() >= 4, "all errors at once: {diags:#?}");
    assert!(
        diags
            .iter()
            .all(|d| d["line"].as_u64().is_some() && d["path"].is_string())
    );
}

#[test]
fn nix_errors_are_nix_own_and_missing_nix_is_explained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("fleet.nix");
    std::fs::write(&bad, "{ version = 1; hosts = { ").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_wgfleet"))
        .args(["validate", "--fleet"])
        .arg(&bad)
        .output()
        .expect("run wgfleet");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Nix evaluation failed") && stderr.contains("syntax error"),
        "{stderr}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_wgfleet"))
        .env("PATH", dir.path())
        .args(["validate", "--fleet"])
        .arg(&bad)
        .output()
        .expect("run wgfleet");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nix-instantiate, which is not installed"),
        "{stderr}"
    );
}
