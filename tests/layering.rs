//! The layers of src/ call only down: the pure core uses nothing above it, the readers of the
//! operator's inputs only the core, the shell (which touches the system) the two below it, and
//! the CLI edge anything. A module's layer is the longest prefix of its path in `LAYERS`; a
//! reference is any `crate::a::b` path or `super::` path in the file (imports and inline paths
//! alike), resolved to the module it names. The core is also held to touching nothing: no
//! process, file, socket, bus or clock outside its tests.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const CORE: u8 = 0;
const INPUTS: u8 = 1;
const SHELL: u8 = 2;
const EDGE: u8 = 3;

/// Module path prefixes and their layer; the longest prefix that matches wins.
const LAYERS: &[(&str, u8)] = &[
    ("access", CORE),
    ("confirm", CORE),
    ("diff", CORE),
    ("endpoints", CORE),
    ("firewall", CORE),
    ("fleet", CORE),
    ("flow_pairs", CORE),
    ("graph", CORE),
    ("history", CORE),
    ("operations", CORE),
    ("paths", CORE),
    ("plan", CORE),
    ("probe", CORE),
    ("render", CORE),
    ("report", CORE),
    ("rotation", CORE),
    ("secrets::keys", CORE),
    ("text", CORE),
    ("unit", CORE),
    ("wgconf", CORE),
    ("error", INPUTS),
    ("fleet::checked", INPUTS),
    ("fleet::load", INPUTS),
    ("fsutil", INPUTS),
    ("import", INPUTS),
    ("join", INPUTS),
    ("secrets", INPUTS),
    ("source", INPUTS),
    ("shell", SHELL),
    ("cli", EDGE),
    ("commands", EDGE),
    ("lib", EDGE),
    ("main", EDGE),
];

/// What a core module may not name outside its tests: it would touch the system.
const SYSTEM: &[&str] = &[
    "std::process",
    "Command::new",
    "std::fs",
    "fs::read",
    "fs::write",
    "File::open",
    "File::create",
    "OpenOptions",
    "read_dir",
    "UdpSocket",
    "TcpStream",
    "TcpListener",
    "ToSocketAddrs",
    "zbus",
    "nix::",
    "SystemTime::now",
    "Instant::now",
    "std::env",
    "fsutil",
];

fn layer(module: &str) -> u8 {
    LAYERS
        .iter()
        .filter(|(prefix, _)| module == *prefix || module.starts_with(&format!("{prefix}::")))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|&(_, layer)| layer)
        .unwrap_or_else(|| panic!("module {module} has no layer in tests/layering.rs: add it"))
}

fn name(layer: u8) -> &'static str {
    ["core", "inputs", "shell", "edge"][layer as usize]
}

/// Every .rs file under src/ with its module path (`shell::act`, `diff`, `lib`).
fn modules() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let rel = file.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") && parts.len() > 1 {
                parts.pop();
            }
            (file, parts.join("::"))
        })
        // A `tests.rs` beside a module is its test code.
        .filter(|(_, module)| module != "tests" && !module.ends_with("::tests"))
        .collect()
}

/// The file's text before its tests (`#[cfg(test)]` to the end of the file, or a test-only
/// `mod` line).
fn without_tests(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            // A test-only `mod x;` or `use` line is skipped; a test module body ends the file.
            match lines.next() {
                Some(next) if next.trim_end().ends_with(';') => continue,
                _ => break,
            }
        }
        if !line.trim_start().starts_with("//") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The modules a file's code names: `crate::a::b::c` is the longest prefix that is a module
/// of the crate; `super::x` is resolved against the file's own module.
fn references(code: &str, module: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let parent: Vec<&str> = {
        let mut p: Vec<&str> = module.split("::").collect();
        // A `mod.rs` or a top-level file's `super` is its parent; `lib` has none.
        p.pop();
        p
    };
    for (start, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        if code[..start].ends_with(is_ident) {
            continue;
        }
        let rest = &code[start..];
        let path: String = rest
            .chars()
            .take_while(|&c| is_ident(c) || c == ':')
            .collect();
        let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let base: Vec<&str> = match segments.first() {
            Some(&"crate") => Vec::new(),
            Some(&"super") => parent.clone(),
            _ => continue,
        };
        segments.remove(0);
        let mut full = base;
        full.extend(segments);
        // The longest prefix that names a module (a path may end in a type or function).
        while !full.is_empty() && !known.contains(&full.join("::")) {
            full.pop();
        }
        if !full.is_empty() {
            found.insert(full.join("::"));
        }
    }
    // `use super::{a, b}` names its parent's children: count the parent itself.
    if code.contains("super::{") && !parent.is_empty() {
        found.insert(parent.join("::"));
    }
    found
}

#[test]
fn every_module_calls_only_down_the_layers() {
    let modules = modules();
    let known: BTreeSet<String> = modules.iter().map(|(_, m)| m.clone()).collect();
    let mut wrong = Vec::new();
    for (file, module) in &modules {
        let code = without_tests(&std::fs::read_to_string(file).unwrap());
        let own = layer(module);
        for used in references(&code, module, &known) {
            // A module may use its own parent and children: they share its room.
            let related = used.starts_with(&format!("{module}::"))
                || module.starts_with(&format!("{used}::"));
            if !related && layer(&used) > own {
                wrong.push(format!(
                    "{} ({}, {}) uses {used} ({})",
                    file.display(),
                    module,
                    name(own),
                    name(layer(&used))
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "a module calls up the layers (core < inputs < shell < edge; see lib.rs):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_core_touches_nothing() {
    let mut wrong = Vec::new();
    for (file, module) in modules() {
        if layer(&module) != CORE {
            continue;
        }
        let code = without_tests(&std::fs::read_to_string(&file).unwrap());
        for line in code.lines() {
            for word in SYSTEM.iter().filter(|w| line.contains(*w)) {
                wrong.push(format!(
                    "{} ({module}): `{word}` in: {}",
                    file.display(),
                    line.trim()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the pure core names what touches the system (move it to the shell, pass a value in):\n{}",
        wrong.join("\n")
    );
}

/// The check itself finds what it is for: a core file naming the shell, and a `super::` path.
#[test]
fn the_check_sees_an_upward_call() {
    let known: BTreeSet<String> = ["shell", "shell::act", "diff", "diff::live"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let found = references("use crate::shell::act::Run;\n", "diff", &known);
    assert_eq!(found, BTreeSet::from(["shell::act".to_owned()]));
    let found = references("use super::live::Live;\n", "diff::host", &known);
    assert_eq!(found, BTreeSet::from(["diff::live".to_owned()]));
    assert!(layer("shell::act") > layer("diff"));
    assert_eq!(layer("fleet::load"), INPUTS);
    assert_eq!(layer("fleet::model"), CORE);
    assert_eq!(
        without_tests("a\n#[cfg(test)]\nmod tests {\nuse std::fs;\n}\n"),
        "a\n"
    );
}
