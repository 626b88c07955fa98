//! One pull: ask the remote for the branch's tip (one round trip when it did not move), fetch,
//! check it descends from the accepted commit, follow the allowed signers through trusted
//! commits, verify the tip's signature, and write its files out.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::git::Git;
use super::{Accepted, Limits, Refusal, SIGNERS_IN_REPO, Source, SourceError, check, dir, redact};
use crate::fsutil::{SMALL_FILE_LIMIT, ensure_private_dir, read_bounded, write_atomic};

/// What a pull found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pulled {
    /// The remote's tip is the accepted commit: nothing was fetched or verified again.
    Unchanged(Accepted),
    /// A new tip was verified and accepted.
    Moved {
        accepted: Accepted,
        previous: Option<String>,
    },
}

impl Pulled {
    pub fn accepted(&self) -> &Accepted {
        match self {
            Pulled::Unchanged(a) | Pulled::Moved { accepted: a, .. } => a,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    accepted: Option<Record>,
    fetched_at: Option<i64>,
    last_error: Option<LastError>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    commit: String,
    /// The source it came from (empty in a state written before they were recorded).
    #[serde(default)]
    url: String,
    #[serde(default, rename = "ref")]
    git_ref: String,
    path: String,
    signer: String,
    accepted_at: i64,
}

/// The last pull that gave no new fleet, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    pub time: i64,
    pub message: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.to_owned(),
        source,
    }
}

fn load(dir: &Path) -> State {
    std::fs::read(dir.join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn store(dir: &Path, state: &State) -> Result<(), SourceError> {
    let path = dir.join("state.json");
    let text = serde_json::to_vec_pretty(state).unwrap_or_default();
    write_atomic(&path, &text, 0o600).map_err(io(&path))
}

fn accepted_of(dir: &Path, state: &State) -> Option<Accepted> {
    let r = state.accepted.as_ref()?;
    let tree = dir.join("trees").join(&r.commit);
    Some(Accepted {
        fleet: tree.join(&r.path),
        tree,
        commit: r.commit.clone(),
        signer: r.signer.clone(),
        accepted_at: r.accepted_at,
        fetched_at: state.fetched_at.unwrap_or(r.accepted_at),
    })
}

/// The repository and branch the accepted commit came from, when recorded.
pub(super) fn follows(dir: &Path) -> Option<(String, String)> {
    load(dir)
        .accepted
        .filter(|r| !r.url.is_empty())
        .map(|r| (r.url, r.git_ref))
}

/// Drops what a host accepted from its source (another source was saved): the next pull
/// starts as a first one, from the operator's signers.
pub(super) fn forget(dir: &Path) {
    for name in ["state.json", "allowed_signers"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    for name in ["trees", "repo.git"] {
        let _ = std::fs::remove_dir_all(dir.join(name));
    }
}

/// The last accepted commit and its files, without asking the remote.
pub fn accepted(state_dir: &Path) -> Option<Accepted> {
    let dir = dir(state_dir);
    accepted_of(&dir, &load(&dir)).filter(|a| a.fleet.is_file())
}

/// Why the last pull gave no new fleet, if it did not.
pub fn last_error(state_dir: &Path) -> Option<LastError> {
    load(&dir(state_dir)).last_error
}

/// The caller's last word on a verified tip, before it is accepted: whether this host can
/// apply its fleet (valid, naming the host, keys inside the tree).
pub type Vet<'a> = &'a dyn Fn(&Accepted) -> Result<(), Refusal>;

/// Pulls `source`; on any failure the accepted tree and commit, and the pinned signers, stay
/// as they were, and the failure is remembered (`last_error`).
pub fn pull(
    state_dir: &Path,
    source: &Source,
    limits: &Limits,
    now: i64,
    vet: Vet<'_>,
) -> Result<Pulled, SourceError> {
    check(source)?;
    let dir = dir(state_dir);
    ensure_private_dir(&dir).map_err(io(&dir))?;
    // One pull at a time (the timer's and an operator's): they share the repository and trees.
    let lock_path = dir.join("lock");
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    lock.lock().map_err(io(&lock_path))?;
    let mut state = load(&dir);
    // Rotations are followed in a working copy of the pin, which replaces the pin only once the
    // state naming the new commit is stored: a refused tip, an error or a kill on the way
    // leaves pin and state in step.
    let (pin, working) = (
        dir.join("allowed_signers"),
        dir.join("allowed_signers.pull"),
    );
    let _ = std::fs::remove_file(&working);
    if let Ok(bytes) = std::fs::read(&pin) {
        write_atomic(&working, &bytes, 0o600).map_err(io(&working))?;
    }
    let result = pull_in(&dir, &mut state, source, limits, now, vet, &working);
    match &result {
        Ok(_) => state.last_error = None,
        Err(e) => {
            let _ = std::fs::remove_file(&working);
            state.last_error = Some(LastError {
                time: now,
                message: e.to_string(),
            })
        }
    }
    store(&dir, &state)?;
    if result.is_ok() && working.exists() {
        std::fs::rename(&working, &pin).map_err(io(&pin))?;
    }
    result
}

fn pull_in(
    dir: &Path,
    state: &mut State,
    source: &Source,
    limits: &Limits,
    now: i64,
    vet: Vet<'_>,
    pin: &Path,
) -> Result<Pulled, SourceError> {
    let url = redact(&source.url);
    if let Some(r) = &state.accepted
        && !r.url.is_empty()
        && (r.url != source.url || r.git_ref != source.git_ref)
    {
        return Err(refused(
            &url,
            Refusal::OtherSource {
                accepted: format!("{} ({})", redact(&r.url), r.git_ref),
            },
        ));
    }
    let home = dir.join("home");
    ensure_private_dir(&home).map_err(io(&home))?;
    let pin = pin.to_owned();
    let git = Git {
        source,
        repo: dir.join("repo.git"),
        home,
        limits,
        pin: pin.clone(),
        url: url.clone(),
    };
    if !git.repo.join("HEAD").exists() {
        let init = git.run("init", &["init", "--quiet", "--bare"])?;
        if !init.ok {
            return Err(git_failed(&url, "init", init.stderr));
        }
    }
    let branch = format!("refs/heads/{}", source.git_ref);
    // Over git://, protocol v2 asks in a second exchange that waits out a delayed ACK (48 ms
    // against 6 ms on the testbed, bench/source.sh); v0 answers in one. Its advertisement lists
    // every ref, which is little for a fleet's repository. https and ssh keep v2 (refs filtered
    // by the server).
    let mut ls_remote = vec!["ls-remote", "--end-of-options", &source.url, &branch];
    if source.url.starts_with("git://") {
        ls_remote.splice(0..0, ["-c", "protocol.version=0"]);
    }
    let listed = git.run("ls-remote", &ls_remote)?;
    if !listed.ok {
        return Err(SourceError::Unreachable {
            url,
            detail: listed.stderr,
        });
    }
    state.fetched_at = Some(now);
    let listed = String::from_utf8_lossy(&listed.stdout);
    let Some(tip) = listed.lines().find_map(|l| {
        l.split_once('\t')
            .filter(|(_, r)| *r == branch)
            .map(|(h, _)| h)
    }) else {
        return Err(refused(
            &url,
            Refusal::NoSuchRef {
                git_ref: source.git_ref.clone(),
            },
        ));
    };
    let previous = accepted_of(dir, state).filter(|a| a.fleet.is_file());
    if let Some(a) = &previous
        && a.commit == tip
        && state
            .accepted
            .as_ref()
            .is_some_and(|r| r.path == source.path)
    {
        return Ok(Pulled::Unchanged(Accepted {
            fetched_at: now,
            ..a.clone()
        }));
    }
    let fetched = git
        .run_with(
            "fetch",
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--no-recurse-submodules",
                "--end-of-options",
                &source.url,
                &format!("+{branch}:refs/wgfleet/fetched"),
            ],
            None,
            true,
        )
        .and_then(
            |ran| match super::git::dir_size(&git.repo) > limits.max_repo_bytes {
                // Checked while git runs and once more after: a fast fetch ends between two looks.
                true => Err(refused(
                    &url,
                    Refusal::TooLarge {
                        what: "the repository".into(),
                        limit: format!("{} MiB", limits.max_repo_bytes >> 20),
                    },
                )),
                false => Ok(ran),
            },
        )
        .inspect_err(|e| {
            // What an oversized fetch left is not kept; the next pull fetches anew.
            if matches!(e, SourceError::Refused { .. }) {
                let _ = std::fs::remove_dir_all(&git.repo);
            }
        })?;
    if !fetched.ok {
        return Err(SourceError::Unreachable {
            url,
            detail: fetched.stderr,
        });
    }
    let commit = rev_parse(&git, "refs/wgfleet/fetched^{commit}")?;
    let accepted_commit = state.accepted.as_ref().map(|r| r.commit.clone());
    if let Some(old) = &accepted_commit {
        descends(&git, old, &commit)?;
    }
    // The pin: the operator's file until a trusted commit rotates it.
    if !pin.exists() || accepted_commit.is_none() {
        let first = read_bounded(&source.allowed_signers, SMALL_FILE_LIMIT)
            .map_err(io(&source.allowed_signers))?;
        write_atomic(&pin, &first, 0o600).map_err(io(&pin))?;
        // What the pin started from, for `save` to tell a new file from the same one.
        let origin = dir.join("signers.first");
        if source.allowed_signers != origin {
            write_atomic(&origin, &first, 0o600).map_err(io(&origin))?;
        }
    }
    if let Some(old) = &accepted_commit {
        let range = format!("{old}..{commit}");
        // --full-history: a merge that takes one side's file is a change too.
        let changed = git.run(
            "rev-list",
            &[
                "rev-list",
                "--reverse",
                "--full-history",
                &range,
                "--",
                SIGNERS_IN_REPO,
            ],
        )?;
        if !changed.ok {
            return Err(git_failed(&url, "rev-list", changed.stderr));
        }
        for c in String::from_utf8_lossy(&changed.stdout).split_whitespace() {
            verify(&git, c).map_err(|_| {
                refused(
                    &url,
                    Refusal::SignersChangedUntrusted {
                        commit: c.to_owned(),
                    },
                )
            })?;
            follow_signers(&git, c, &pin)?;
        }
    }
    let signer = verify(&git, &commit)?;
    // The tip verified under the pin, so the signers it carries are trusted: the pin ends as
    // the tip's file whatever path the history took to it.
    follow_signers(&git, &commit, &pin)?;
    let tree = write_tree(&git, dir, &commit, &source.path)?;
    let accepted = Accepted {
        fleet: tree.join(&source.path),
        tree,
        commit,
        signer,
        accepted_at: now,
        fetched_at: now,
    };
    let kept = previous.as_ref().map(|a| &a.tree);
    if let Err(reason) = vet(&accepted) {
        if kept != Some(&accepted.tree) {
            let _ = std::fs::remove_dir_all(&accepted.tree);
        }
        return Err(refused(&url, reason));
    }
    // The tree before stays one accept longer: a run still reading it (a concurrent plan
    // accepted this one) is not pulled from under.
    if let Ok(trees) = std::fs::read_dir(dir.join("trees")) {
        for t in trees.filter_map(|e| e.ok()).map(|e| e.path()) {
            if t != accepted.tree && Some(&t) != kept {
                let _ = std::fs::remove_dir_all(t);
            }
        }
    }
    state.accepted = Some(Record {
        commit: accepted.commit.clone(),
        url: source.url.clone(),
        git_ref: source.git_ref.clone(),
        path: source.path.clone(),
        signer: accepted.signer.clone(),
        accepted_at: now,
    });
    Ok(Pulled::Moved {
        accepted,
        previous: accepted_commit,
    })
}

fn refused(url: &str, reason: Refusal) -> SourceError {
    SourceError::Refused {
        url: url.to_owned(),
        reason,
    }
}

fn git_failed(url: &str, what: &'static str, detail: String) -> SourceError {
    SourceError::Git {
        url: url.to_owned(),
        what,
        detail,
    }
}

fn rev_parse(git: &Git<'_>, what: &str) -> Result<String, SourceError> {
    let ran = git.run(
        "rev-parse",
        &["rev-parse", "--verify", "--quiet", "--end-of-options", what],
    )?;
    let id = String::from_utf8_lossy(&ran.stdout).trim().to_owned();
    if !ran.ok || id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(git_failed(&git.url, "rev-parse", ran.stderr));
    }
    Ok(id)
}

/// `commit` is `old` or one of its descendants; else a rollback (an ancestor of `old`) or
/// another history.
fn descends(git: &Git<'_>, old: &str, commit: &str) -> Result<(), SourceError> {
    let is_ancestor = |a: &str, b: &str| {
        git.run("merge-base", &["merge-base", "--is-ancestor", a, b])
            .map(|r| r.ok)
    };
    if is_ancestor(old, commit)? {
        return Ok(());
    }
    let (commit, accepted) = (commit.to_owned(), old.to_owned());
    Err(refused(
        &git.url,
        if is_ancestor(&commit, &accepted)? {
            Refusal::Rollback { commit, accepted }
        } else {
            Refusal::Unrelated { commit, accepted }
        },
    ))
}

/// The signer of `commit` under the pin, or why it is refused (`%G?`: G good, N unsigned,
/// B bad, anything else a key the pin does not trust).
fn verify(git: &Git<'_>, commit: &str) -> Result<String, SourceError> {
    let ran = git.run(
        "log",
        &["log", "-1", "--format=%G?%n%GS%n%GK", commit, "--"],
    )?;
    let text = String::from_utf8_lossy(&ran.stdout).into_owned();
    let mut lines = text.lines();
    let status = lines.next().unwrap_or("").trim();
    let signer = lines.next().unwrap_or("").trim().to_owned();
    let key = lines.next().unwrap_or("").trim().to_owned();
    let commit = commit.to_owned();
    let detail = if key.is_empty() {
        ran.stderr.lines().last().unwrap_or("").to_owned()
    } else {
        format!("key {key}")
    };
    match status {
        "G" if !signer.is_empty() => Ok(signer),
        "N" => Err(refused(&git.url, Refusal::Unsigned { commit })),
        "B" => Err(refused(&git.url, Refusal::BadSignature { commit, detail })),
        _ => Err(refused(
            &git.url,
            Refusal::SignerNotAllowed { commit, detail },
        )),
    }
}

/// The pin becomes `commit`'s allowed-signers file, where it has one.
fn follow_signers(git: &Git<'_>, commit: &str, pin: &Path) -> Result<(), SourceError> {
    let spec = format!("{commit}:{SIGNERS_IN_REPO}");
    let ran = git.run("cat-file", &["cat-file", "blob", &spec])?;
    if ran.ok && ran.stdout.len() as u64 <= SMALL_FILE_LIMIT {
        write_atomic(pin, &ran.stdout, 0o600).map_err(io(pin))?;
    }
    Ok(())
}

/// Writes `commit`'s files to `trees/COMMIT` (a temporary name first), refusing links,
/// submodules, odd paths and what is over the limits; the fleet file must be among them.
fn write_tree(
    git: &Git<'_>,
    dir: &Path,
    commit: &str,
    fleet: &str,
) -> Result<PathBuf, SourceError> {
    let url = &git.url;
    let listed = git.run(
        "ls-tree",
        &["ls-tree", "-r", "-l", "-z", "--full-tree", commit],
    )?;
    if !listed.ok {
        return Err(git_failed(url, "ls-tree", listed.stderr));
    }
    let mut files = Vec::new();
    let mut total = 0u64;
    for entry in listed.stdout.split(|&b| b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(entry);
        let (meta, path) = entry.split_once('\t').unwrap_or((&entry, ""));
        let fields: Vec<&str> = meta.split_whitespace().collect();
        let (mode, id, size) = match fields.as_slice() {
            [mode, _, id, size] => (*mode, *id, size.parse::<u64>().unwrap_or(u64::MAX)),
            _ => {
                return Err(git_failed(
                    url,
                    "ls-tree",
                    format!("unexpected line {entry:?}"),
                ));
            }
        };
        let (commit, path) = (commit.to_owned(), path.to_owned());
        match mode {
            "160000" => return Err(refused(url, Refusal::Submodule { commit, path })),
            "120000" => return Err(refused(url, Refusal::Symlink { commit, path })),
            "100644" | "100755" => {}
            _ => return Err(refused(url, Refusal::BadPath { commit, path })),
        }
        let plain = Path::new(&path)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(n) if n != ".git"));
        if !plain || path.contains('\\') {
            return Err(refused(url, Refusal::BadPath { commit, path }));
        }
        total = total.saturating_add(size);
        files.push((id.to_owned(), path, size));
    }
    let limits = git.limits;
    if files.len() > limits.max_files || total > limits.max_tree_bytes {
        return Err(refused(
            url,
            Refusal::TooLarge {
                what: format!("commit {commit}: {} files, {} bytes", files.len(), total),
                limit: format!(
                    "{} files, {} MiB",
                    limits.max_files,
                    limits.max_tree_bytes >> 20
                ),
            },
        ));
    }
    if !files.iter().any(|(_, p, _)| p == fleet) {
        return Err(refused(
            url,
            Refusal::FleetMissing {
                commit: commit.to_owned(),
                path: fleet.to_owned(),
            },
        ));
    }
    let batch: String = files.iter().map(|(id, _, _)| format!("{id}\n")).collect();
    let blobs = git.run_with(
        "cat-file",
        &["cat-file", "--batch"],
        Some(batch.as_bytes()),
        false,
    )?;
    if !blobs.ok {
        return Err(git_failed(url, "cat-file", blobs.stderr));
    }
    let trees = dir.join("trees");
    ensure_private_dir(&trees).map_err(io(&trees))?;
    let tmp = trees.join(format!(".new-{commit}"));
    let _ = std::fs::remove_dir_all(&tmp);
    let mut rest: &[u8] = &blobs.stdout;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true).mode(0o700);
    for (_, path, size) in &files {
        // `<id> blob <size>\n<content>\n`
        let header_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let start = header_end + 1;
        let end = start.saturating_add(*size as usize);
        let Some(content) = rest.get(start..end) else {
            return Err(git_failed(url, "cat-file", "short output".into()));
        };
        let target = tmp.join(path);
        if let Some(parent) = target.parent() {
            builder.create(parent).map_err(io(parent))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&target)
            .map_err(io(&target))?;
        std::io::Write::write_all(&mut file, content).map_err(io(&target))?;
        rest = rest.get(end + 1..).unwrap_or_default();
    }
    let final_dir = trees.join(commit);
    let _ = std::fs::remove_dir_all(&final_dir);
    std::fs::rename(&tmp, &final_dir).map_err(io(&final_dir))?;
    Ok(final_dir)
}
