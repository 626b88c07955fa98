//! Runs the commands of the documentation, so that it cannot rot. Include from a test with
//! `#[path = "support/docs.rs"] mod docs;`.
//!
//! A fenced block is checked according to its info string:
//! - ```` ```console ````: each `$ COMMAND` line (continued by a trailing `\`) is run by bash and
//!   its output (stdout and stderr, as a terminal shows them) must equal the lines that follow
//!   it. In expected output, a line `...` stands for any number of lines and `[..]` for any text
//!   within a line. Every command must exit 0, except the last one of a block with `exit=N`.
//! - ```` ```sh ````: the whole block is one script that must exit 0; its output is not shown.
//! - `host=NAME` (on `console` or `sh`): the block runs on that host of the document's testbed
//!   (tests/docs_testbed.rs); other blocks run on the operator's machine.
//! - `fetch=PATH` (with `host=`): after the block, PATH (relative to the directory the host
//!   block ran in) is copied back to the operator's directory, as the reader would bring a
//!   file the host printed or wrote to their checkout (scp).
//! - `skip=REASON` (on `console` or `sh`): not run, for one of the reasons in [`SKIP_REASONS`].
//! - `file=PATH` (any language): the block is the whole text of that file of the repository.
//!
//! The blocks of one document run in order, as a reader would type them, starting at the root of
//! a copy of the repository; a `cd` carries over to the next block, variables do not. A block
//! with `$ ` prompts that is not `console` is an error: it would look tested and not be.
//! `DOCS_BLESS=1` writes the actual output of mismatching commands into the document.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// Why a command block may be shown without being run here, and what tests it instead.
pub const SKIP_REASONS: &[(&str, &str)] = &[
    (
        "ci",
        "it is the test suite itself, run by .ci/run through tests/run-all.sh",
    ),
    (
        "nixos",
        "it needs NixOS and nixpkgs; tests/nixos_module.rs evaluates the module with nixpkgs' \
         module system, and the flake's VM test runs where KVM is",
    ),
    (
        "install",
        "it installs onto this machine; tests/units_testbed.rs runs systemd/install.sh on \
         testbed hosts",
    ),
    (
        "ssh",
        "it copies files between machines; tests/docs_testbed.rs copies them itself",
    ),
    (
        "probe",
        "it probes a hub and its spokes after a hand-made breakage; tests/probe_testbed.rs makes \
         each one on testbed hosts and checks that every finding line shown is what probe prints",
    ),
    (
        "deb",
        "it builds or installs the Debian package; tests/deb_testbed.rs runs packaging/deb.sh \
         and installs the package on a testbed host",
    ),
];

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// What runs a block and how it was written.
#[derive(Debug)]
pub enum Kind {
    Console(Vec<Step>),
    Script(Step),
    /// The repository file the block shows, and the block's text.
    File {
        path: String,
        body: String,
    },
}

#[derive(Debug)]
pub struct Step {
    pub command: String,
    pub expected: Vec<String>,
    /// Lines of the document (0-based, end exclusive) holding `expected`.
    pub lines: (usize, usize),
}

#[derive(Debug)]
pub struct Block {
    /// 1-based line of the opening fence.
    pub line: usize,
    pub kind: Kind,
    pub host: Option<String>,
    /// `fetch=PATH`: copied back from the host to the operator's directory after the block.
    pub fetch: Option<String>,
    pub exit: i32,
    pub skip: Option<String>,
}

pub struct Doc {
    pub path: PathBuf,
    pub text: String,
    pub blocks: Vec<Block>,
    /// `<!-- testbed: NAME=ADDRESS/PREFIX ... setup=NAME -->`, if the document has one.
    pub testbed: Option<BTreeMap<String, String>>,
}

impl Doc {
    pub fn read(rel: &str) -> Doc {
        let path = root().join(rel);
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let blocks = parse(rel, &text).unwrap_or_else(|e| panic!("{e}"));
        let testbed = text.lines().find_map(|l| {
            let rest = l
                .trim()
                .strip_prefix("<!-- testbed:")?
                .strip_suffix("-->")?;
            Some(
                rest.split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            )
        });
        Doc {
            path: PathBuf::from(rel),
            text,
            blocks,
            testbed,
        }
    }

    pub fn name(&self) -> String {
        self.path.display().to_string()
    }
}

/// The documents: README.md and every docs/*.md.
pub fn all_docs() -> Vec<String> {
    let mut docs = vec!["README.md".to_owned()];
    let mut guides: Vec<String> = fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| format!("docs/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|p| p.ends_with(".md"))
        .collect();
    guides.sort();
    docs.extend(guides);
    docs
}

fn parse(rel: &str, text: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = lines[i].strip_prefix("```") else {
            i += 1;
            continue;
        };
        let open = i;
        let close = (open + 1..lines.len())
            .find(|&j| lines[j].trim_end() == "```")
            .ok_or_else(|| format!("{rel}:{}: unclosed code block", open + 1))?;
        i = close + 1;
        let body = &lines[open + 1..close];
        let mut words = info.split_whitespace();
        let lang = words.next().unwrap_or("");
        let attrs: BTreeMap<&str, &str> = words
            .map(|w| w.split_once('=').unwrap_or((w, "")))
            .collect();
        let at = |what: &str| format!("{rel}:{}: {what}", open + 1);
        let kind = if let Some(file) = attrs.get("file") {
            Kind::File {
                path: file.to_string(),
                body: body.join("\n"),
            }
        } else if lang == "console" {
            Kind::Console(console_steps(body, open + 1).map_err(|e| at(&e))?)
        } else if matches!(lang, "sh" | "bash") {
            Kind::Script(Step {
                command: body.join("\n"),
                expected: Vec::new(),
                lines: (open + 1, open + 1),
            })
        } else if body.iter().any(|l| l.starts_with("$ ")) {
            return Err(at(
                "a block with `$ ` prompts must be ```console, so that its commands are run",
            ));
        } else {
            continue;
        };
        let skip = attrs.get("skip").map(|s| s.to_string());
        if let Some(reason) = &skip
            && !SKIP_REASONS.iter().any(|(r, _)| r == reason)
        {
            return Err(at(&format!("skip={reason}: not one of {SKIP_REASONS:?}")));
        }
        let exit = match attrs.get("exit") {
            Some(n) => n.parse().map_err(|_| at("exit= wants a number"))?,
            None => 0,
        };
        blocks.push(Block {
            line: open + 1,
            kind,
            host: attrs.get("host").map(|s| s.to_string()),
            fetch: attrs.get("fetch").map(|s| s.to_string()),
            exit,
            skip,
        });
    }
    Ok(blocks)
}

fn console_steps(body: &[&str], first: usize) -> Result<Vec<Step>, String> {
    let mut steps: Vec<Step> = Vec::new();
    let mut continued = false;
    for (n, line) in body.iter().enumerate() {
        let at = first + n; // 0-based line in the document
        if continued {
            let step = steps.last_mut().expect("a continued command");
            step.command.push('\n');
            step.command.push_str(line);
            step.lines = (at + 1, at + 1);
            continued = line.ends_with('\\');
        } else if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                command: command.to_owned(),
                expected: Vec::new(),
                lines: (at + 1, at + 1),
            });
            continued = command.ends_with('\\');
        } else {
            let step = steps
                .last_mut()
                .ok_or("output before the first `$ ` command")?;
            step.expected.push(line.to_string());
            step.lines.1 = at + 1;
        }
    }
    if steps.is_empty() {
        return Err("a console block without a `$ ` command".into());
    }
    Ok(steps)
}

/// A bash script that runs `steps` from `cwd`, leaving each one's output and exit code in
/// `results` (`N.out`, `N.rc`) and the final directory in `results/cwd`.
pub fn script(steps: &[&Step], cwd: &str, results: &str, prelude: &str) -> String {
    let mut s = format!("{prelude}\nexec </dev/null\ncd '{cwd}' || exit 99\n");
    for (n, step) in steps.iter().enumerate() {
        let _ = write!(
            s,
            "{{\n{}\n}} > '{results}/{n}.out' 2>&1; echo $? > '{results}/{n}.rc'\n",
            step.command
        );
    }
    let _ = writeln!(s, "pwd > '{results}/cwd'");
    s
}

/// A command's output and exit code, read back from a script's results.
pub struct Ran {
    pub output: String,
    pub code: Option<i32>,
}

pub fn read_results(results: &Path, count: usize) -> (Vec<Ran>, Option<String>) {
    let ran = (0..count)
        .map(|n| Ran {
            output: fs::read_to_string(results.join(format!("{n}.out"))).unwrap_or_default(),
            code: fs::read_to_string(results.join(format!("{n}.rc")))
                .ok()
                .and_then(|s| s.trim().parse().ok()),
        })
        .collect();
    let cwd = fs::read_to_string(results.join("cwd"))
        .ok()
        .map(|s| s.trim().to_owned());
    (ran, cwd)
}

/// Whether `actual` matches `expected` with `...` lines and `[..]` wildcards.
pub fn matches(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((e, rest)) if e.trim() == "..." => {
            (0..=actual.len()).any(|skip| matches(rest, &actual[skip..]))
        }
        Some((e, rest)) => match actual.split_first() {
            Some((a, arest)) => line_matches(e.trim_end(), a) && matches(rest, arest),
            None => false,
        },
    }
}

fn line_matches(expected: &str, actual: &str) -> bool {
    let parts: Vec<&str> = expected.split("[..]").collect();
    if parts.len() == 1 {
        return expected == actual;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !actual.starts_with(first) || actual.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &actual[first.len()..];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Output as compared: lines without trailing spaces, no trailing empty lines.
pub fn output_lines(output: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = output.lines().map(str::trim_end).collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

/// Checks every block of `doc`, in order: `file=` blocks against the repository, the others not
/// skipped by running their steps with `run`. Returns the failures; with DOCS_BLESS=1, writes
/// the actual output of mismatching commands into the document first.
pub fn check_doc(doc: &Doc, mut run: impl FnMut(&Block, &[&Step]) -> Vec<Ran>) -> Vec<String> {
    let mut failures = Vec::new();
    let mut edits = Vec::new();
    for block in &doc.blocks {
        if let Kind::File { path, body } = &block.kind {
            check_file(doc, block, path, body, &mut failures);
            continue;
        }
        if block.skip.is_some() {
            continue;
        }
        let steps = block.steps();
        let ran = run(block, &steps);
        check_block(doc, block, &steps, &ran, &mut failures, &mut edits);
    }
    if bless(doc, edits) {
        failures.push(format!("{}: blessed with the actual output", doc.name()));
    }
    failures
}

/// Checks the results of one block's steps; returns the failures and, for blessing, the
/// replacement output of each mismatching step.
fn check_block(
    doc: &Doc,
    block: &Block,
    steps: &[&Step],
    ran: &[Ran],
    failures: &mut Vec<String>,
    bless: &mut Vec<((usize, usize), Vec<String>)>,
) {
    let where_ = block
        .host
        .as_deref()
        .map(|h| format!(" (on {h})"))
        .unwrap_or_default();
    for (n, (step, ran)) in steps.iter().zip(ran).enumerate() {
        let want_code = if n + 1 == steps.len() { block.exit } else { 0 };
        let actual = output_lines(&ran.output);
        let console = matches!(block.kind, Kind::Console(_));
        let output_ok = !console || matches(&step.expected, &actual);
        if ran.code == Some(want_code) && output_ok {
            continue;
        }
        let mut f = format!(
            "{}:{}{where_}: $ {}\n",
            doc.name(),
            step.lines.0,
            step.command
        );
        if ran.code != Some(want_code) {
            let _ = writeln!(
                f,
                "exit code {:?}, the document wants {want_code}",
                ran.code
            );
        }
        if !output_ok {
            let _ = writeln!(f, "--- the document says:\n{}", step.expected.join("\n"));
        }
        let _ = writeln!(f, "--- the command printed:\n{}", actual.join("\n"));
        failures.push(f);
        if console && !output_ok {
            bless.push((step.lines, actual.iter().map(|s| s.to_string()).collect()));
        }
    }
}

/// Checks a `file=` block against the repository's file.
fn check_file(doc: &Doc, block: &Block, rel: &str, body: &str, failures: &mut Vec<String>) {
    match fs::read_to_string(root().join(rel)) {
        Ok(file) if output_lines(&file) == output_lines(body) => {}
        Ok(_) => failures.push(format!(
            "{}:{}: the block differs from {rel}; copy the file into the document",
            doc.name(),
            block.line
        )),
        Err(e) => failures.push(format!("{}:{}: {rel}: {e}", doc.name(), block.line)),
    }
}

/// With DOCS_BLESS=1, replaces the expected output of mismatching steps by what they printed.
fn bless(doc: &Doc, mut edits: Vec<((usize, usize), Vec<String>)>) -> bool {
    if std::env::var_os("DOCS_BLESS").is_none() || edits.is_empty() {
        return false;
    }
    let mut lines: Vec<String> = doc.text.lines().map(str::to_owned).collect();
    edits.sort_by_key(|(range, _)| std::cmp::Reverse(range.0));
    for ((start, end), new) in edits {
        lines.splice(start..end, new);
    }
    fs::write(root().join(&doc.path), lines.join("\n") + "\n").expect("write the document");
    true
}

/// Copies the parts of the repository the documents use into `dir` (their working directory).
pub fn copy_repository(dir: &Path) {
    for entry in [
        "examples",
        "secrets",
        "nix",
        "modules",
        "schema",
        "systemd",
        "tests/fixtures",
        "docs",
        "flake.nix",
    ] {
        let to = dir.join(entry);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        let status = std::process::Command::new("cp")
            .args(["-a"])
            .arg(root().join(entry))
            .arg(&to)
            .status()
            .expect("cp");
        assert!(status.success(), "copy {entry}");
    }
}

/// The operator's machine: a copy of the repository with `wgfleet` (the binary under test) first
/// on PATH. `cargo run --release -- ARGS` runs that binary too: cargo itself cannot run inside
/// `cargo test`, and CI builds the crate anyway.
pub struct Operator {
    pub dir: tempfile::TempDir,
    cwd: String,
}

impl Operator {
    pub fn new() -> Operator {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_repository(dir.path());
        let bin = dir.path().join(".bin");
        fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_wgfleet"), bin.join("wgfleet")).unwrap();
        let cwd = dir.path().display().to_string();
        Operator { dir, cwd }
    }

    /// Runs the steps as one bash script from the current directory, and moves there after.
    pub fn run(&mut self, steps: &[&Step]) -> Vec<Ran> {
        let results = tempfile::tempdir().expect("tempdir");
        let prelude = format!(
            "export PATH='{bin}':\"$PATH\" TZ=UTC LC_ALL=C.UTF-8 NO_COLOR=1\n\
             cargo() {{ if [ \"$1 $2 $3\" = 'run --release --' ]; then shift 3; wgfleet \"$@\"; \
             else echo 'docs test: only cargo run --release -- is run here' >&2; return 99; fi; }}",
            bin = self.dir.path().join(".bin").display()
        );
        let text = script(
            steps,
            &self.cwd,
            &results.path().display().to_string(),
            &prelude,
        );
        let path = results.path().join("script.sh");
        fs::write(&path, text).unwrap();
        std::process::Command::new("bash")
            .arg(&path)
            .current_dir(self.dir.path())
            .status()
            .expect("bash");
        let (ran, cwd) = read_results(results.path(), steps.len());
        if let Some(cwd) = cwd {
            self.cwd = cwd;
        }
        ran
    }
}

impl Block {
    pub fn steps(&self) -> Vec<&Step> {
        match &self.kind {
            Kind::Console(steps) => steps.iter().collect(),
            Kind::Script(step) => vec![step],
            Kind::File { .. } => Vec::new(),
        }
    }
}
