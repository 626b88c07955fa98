//! The HTML report in a real browser: headless Chromium, with the network disabled, renders it
//! (a screenshot that is a real picture) and its DOM holds the diagram (one node per host and
//! client) and the access matrix. The page itself must be self-contained: no script, no URL that
//! leaves the file.
//!
//! Needs Debian's `chromium` (tests/run-all.sh installs it). When it is missing and we are root,
//! the test installs it with apt-get.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const NOW: &str = "2026-11-23T00:00:00Z";
const FLEET: &str = "examples/seed-000-policy/fleet.json";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn wgfleet(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_wgfleet"))
        .current_dir(root())
        .args(args)
        .args(["--now", NOW])
        .output()
        .expect("run wgfleet");
    assert!(
        out.status.success(),
        "wgfleet {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Writes the report of the example to `dir/report.html`; returns its path.
fn write_report(dir: &Path) -> PathBuf {
    let html = dir.join("report.html");
    wgfleet(&[
        "report",
        "--fleet",
        FLEET,
        "--html",
        html.to_str().expect("utf-8 path"),
        "--probe",
        "tests/fixtures/probe/worker-1.json",
    ]);
    html
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `chromium`, installed from Debian when missing (as root).
fn chromium() -> &'static str {
    if !have("chromium") && is_root() {
        eprintln!("chromium is missing: apt-get install -y chromium");
        let status = Command::new("sh")
            .args([
                "-c",
                "apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("run apt-get");
        assert!(status.success(), "apt-get install chromium failed");
    }
    assert!(
        have("chromium"),
        "this test needs Debian's chromium (apt-get install chromium; tests/run-all.sh does)"
    );
    "chromium"
}

/// Headless Chromium on `file://html` with every way to the network shut: no DNS (every name
/// resolves to nothing), a proxy on the discard port, no background services, and, when we
/// may, a network namespace of its own with no interface up at all.
fn run_chromium(profile: &Path, html: &Path, mode: &[String]) -> Output {
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=127.0.0.1:9",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.extend(mode.iter().cloned());
    args.push(format!("file://{}", html.display()));

    let isolated = is_root()
        && Command::new("unshare")
            .args(["--net", "true"])
            .status()
            .is_ok_and(|s| s.success());
    let mut cmd = if isolated {
        let mut c = Command::new("unshare");
        c.args(["--net", chromium()]);
        c
    } else {
        Command::new(chromium())
    };
    let mut child = cmd
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    // Read stdout on a thread so a big DOM never blocks the browser on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut buf);
        buf
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

/// Values of `name="…"` attributes in an HTML or SVG text.
fn attribute_values<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let pattern = format!(" {name}=\"");
    text.match_indices(&pattern)
        .filter_map(|(i, _)| {
            let start = i + pattern.len();
            text[start..].find('"').map(|end| &text[start..start + end])
        })
        .collect()
}

/// Nothing in the page may load from or point outside the file.
fn assert_self_contained(html: &str) {
    for name in [
        "src",
        "href",
        "xlink:href",
        "action",
        "poster",
        "srcset",
        "data",
    ] {
        for v in attribute_values(html, name) {
            let v = v.trim().to_ascii_lowercase();
            assert!(
                !(v.starts_with("http:") || v.starts_with("https:") || v.starts_with("//")),
                "{name}=\"{v}\" leaves the page"
            );
            assert!(v.starts_with('#'), "{name}=\"{v}\": only in-page links");
        }
    }
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "no JavaScript");
    assert!(!lower.contains("<link"), "no external stylesheet");
    assert!(!lower.contains("<img"), "no external image");
    assert!(!lower.contains("@import"), "no CSS import");
    for (i, _) in lower.match_indices("url(") {
        assert!(
            lower[i + 4..]
                .trim_start_matches(['"', '\''])
                .starts_with('#'),
            "CSS/SVG url() must be in-page: {}",
            &html[i..(i + 40).min(html.len())]
        );
    }
}

#[test]
fn report_is_self_contained_and_accessible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let html = std::fs::read_to_string(write_report(dir.path())).expect("read report");
    assert_self_contained(&html);
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    // A skip link to the main content, headings, and tables with captions and header scopes.
    assert!(html.contains("<a class=\"skip\" href=\"#main\">"));
    assert!(html.contains("<main id=\"main\""));
    assert_eq!(html.matches("<h1>").count(), 1);
    assert!(html.matches("<h2 ").count() >= 6);
    assert_eq!(
        html.matches("<table").count(),
        html.matches("<caption>").count()
    );
    assert!(html.contains("<th scope=\"col\">From</th>"));
    assert!(html.contains("<th scope=\"row\" class=\"mono\">alice-laptop</th>"));
    assert!(html.contains("@media print"));
    // The digest and the evaluation time, as validate would print them.
    let validated: Value =
        serde_json::from_slice(&wgfleet(&["validate", "--fleet", FLEET, "--json"]).stdout)
            .expect("validate JSON");
    assert!(html.contains(validated["digest"].as_str().expect("digest")));
    assert!(html.contains(NOW));
    // A host's probe report: its peer and test, and its findings escaped (the file is not
    // trusted: the fixture carries a script and markup).
    assert!(html.contains("<h2 id=\"probes-h\">Live probes</h2>"));
    assert!(html.contains("1328 of 1420") && html.contains("✗ DISAGREES"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &lt;b&gt;markup&lt;/b&gt;"));
    // Every policy test passes, and says why.
    assert_eq!(html.matches("✓ pass").count(), 3);
    assert!(html.contains("alice-laptop → worker-1: request dropped at cp: firewall"));
}

#[test]
fn report_renders_in_headless_chromium_without_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    let html_path = write_report(dir.path());
    let html = std::fs::read_to_string(&html_path).expect("read report");
    assert_self_contained(&html);

    // 1. A screenshot: a real PNG of the window's size, and not a blank page.
    let png = dir.path().join("report.png");
    let out = run_chromium(
        &dir.path().join("profile-1"),
        &html_path,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,2000".into(),
        ],
    );
    let bytes = std::fs::read(&png).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}); chromium said: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().expect("4 bytes"));
    let height = u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes"));
    assert_eq!((width, height), (1280, 2000));
    // A blank 1280×2000 page compresses to about 10 KiB; the report's text and diagram to
    // well over 100 KiB.
    assert!(
        bytes.len() > 60_000,
        "screenshot is only {} bytes",
        bytes.len()
    );
    if let Ok(keep) = std::env::var("WGFLEET_KEEP_SCREENSHOT") {
        std::fs::copy(&png, keep).expect("keep screenshot");
    }

    // 2. The DOM as the browser built it.
    let out = run_chromium(
        &dir.path().join("profile-2"),
        &html_path,
        &["--dump-dom".into()],
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("</html>"),
        "no DOM; chromium said: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_self_contained(&dom);
    assert_eq!(dom.matches("<svg").count(), 1, "one inline diagram");
    // One node per host and client of the fleet.
    let fleet: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join(FLEET)).expect("read fleet"))
            .expect("fleet JSON");
    let mut expected: Vec<String> = fleet["hosts"]
        .as_object()
        .expect("hosts")
        .keys()
        .cloned()
        .chain(
            fleet["networks"]["wg0"]["clients"]
                .as_object()
                .expect("clients")
                .keys()
                .cloned(),
        )
        .collect();
    expected.sort();
    let mut nodes: Vec<String> = dom
        .match_indices("<g class=\"node ")
        .map(|(i, _)| {
            let tag = &dom[i..i + dom[i..].find('>').expect("tag end")];
            attribute_values(tag, "data-name")
                .first()
                .expect("data-name")
                .to_string()
        })
        .collect();
    nodes.sort();
    assert_eq!(nodes, expected);
    // The access matrix: one row per row of `wgfleet access`.
    let access: Value =
        serde_json::from_slice(&wgfleet(&["access", "--fleet", FLEET, "--json"]).stdout)
            .expect("access JSON");
    let start = dom
        .find("<table id=\"access-matrix\"")
        .expect("access matrix");
    let table = &dom[start..start + dom[start..].find("</table>").expect("</table>")];
    assert!(table.contains("<caption>Access matrix"));
    let body = &table[table.find("<tbody>").expect("tbody")..];
    assert_eq!(
        body.matches("<tr>").count(),
        access.as_array().expect("rows").len()
    );
    assert!(body.contains("alice-laptop") && body.contains("8081/tcp"));
}
