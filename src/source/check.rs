//! What the operator gives a source, checked before git ever runs: the URL's transport, the
//! branch name and the fleet's path; and URLs with their credentials taken out for messages.

use std::path::{Component, Path};

use super::{Source, SourceError};

/// Refuses what git would take as an option, a transport helper (`ext::`, `fd::`), a
/// transport other than https, ssh (and scp-like `host:path`), git and file, a branch name
/// git would not take, and a fleet path that is absolute or climbs out of the repository.
pub fn check(source: &Source) -> Result<(), SourceError> {
    check_url(&source.url)?;
    check_ref(&source.git_ref)?;
    check_path(&source.path)
}

fn invalid(what: &'static str, value: &str, why: &str) -> SourceError {
    SourceError::Invalid {
        what,
        value: redact(value),
        why: why.to_owned(),
    }
}

fn check_url(url: &str) -> Result<(), SourceError> {
    let bad = |why: &str| Err(invalid("URL", url, why));
    if url.is_empty() {
        return bad("is empty");
    }
    if url.starts_with('-') {
        return bad("starts with '-', which git would take as an option");
    }
    if url.contains("::") {
        return bad(
            "names a transport helper (`ext::`, `fd::`, …), which runs programs; use https://, ssh://, git:// or file://",
        );
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("holds a space or a control character");
    }
    const SCHEMES: [&str; 4] = ["https://", "ssh://", "git://", "file://"];
    if SCHEMES.iter().any(|s| url.starts_with(s)) {
        return Ok(());
    }
    if url.contains("://") {
        return bad("this transport is not taken; use https://, ssh://, git:// or file://");
    }
    if url.starts_with('/') {
        return Ok(());
    }
    // scp-like `[user@]host:path`: the host has no '/' before the ':'.
    if let Some((host, path)) = url.split_once(':') {
        let host = host.rsplit_once('@').map_or(
            host,
            |(user, host)| {
                if user.is_empty() { "" } else { host }
            },
        );
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            && !host.starts_with('-');
        if host_ok && !path.is_empty() {
            return Ok(());
        }
    }
    bad(
        "is not a URL git fetches from; use https://, ssh://, user@host:path, git://, file:// or an absolute path",
    )
}

/// A branch name as `git check-ref-format --branch` takes it, and never an option.
fn check_ref(name: &str) -> Result<(), SourceError> {
    let bad = |why: &str| Err(invalid("ref", name, why));
    if name.is_empty() {
        return bad("is empty");
    }
    if name.starts_with('-') {
        return bad("starts with '-', which git would take as an option");
    }
    if name
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
    {
        return bad("holds a character a branch name cannot (space, control, ~ ^ : ? * [ \\)");
    }
    if name.contains("..") || name.contains("@{") || name.contains("//") || name == "@" {
        return bad("holds '..', '@{' or '//', which a branch name cannot");
    }
    if name.ends_with('/') || name.ends_with('.') || name.ends_with(".lock") {
        return bad("ends with '/', '.' or '.lock', which a branch name cannot");
    }
    if name.split('/').any(|c| c.starts_with('.')) {
        return bad("has a part starting with '.', which a branch name cannot");
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), SourceError> {
    let bad = |why: &str| Err(invalid("path", path, why));
    if path.is_empty() || path.contains('\0') {
        return bad("is empty");
    }
    let p = Path::new(path);
    if !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return bad("must be relative to the repository's top, without '.' or '..'");
    }
    if !(path.ends_with(".json") || path.ends_with(".nix")) {
        return bad("is not a .json or .nix file");
    }
    Ok(())
}

/// `url` with any user and password replaced by `***` (`https://u:t@host/x` → `https://***@host/x`).
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(url: &str, git_ref: &str, path: &str) -> Source {
        Source {
            url: url.into(),
            git_ref: git_ref.into(),
            path: path.into(),
            allowed_signers: "/x".into(),
            ssh_key: None,
            http_credentials: None,
        }
    }

    #[test]
    fn transports() {
        for ok in [
            "https://git.example.com/fleet.git",
            "ssh://git@git.example.com/fleet.git",
            "git@git.example.com:ops/fleet.git",
            "git.example.com:fleet",
            "git://192.0.2.1/fleet",
            "file:///srv/fleet.git",
            "/srv/fleet.git",
        ] {
            assert!(check(&source(ok, "main", "fleet.json")).is_ok(), "{ok}");
        }
        for bad in [
            "ext::sh -c touch% /tmp/pwned",
            "fd::3",
            "-uhttps://x",
            "--upload-pack=touch /tmp/x",
            "http://git.example.com/fleet.git",
            "ftp://x/y",
            "relative/path",
            "",
            "https://x/a b",
            "-host:path",
            "transport::https://x",
        ] {
            let e = check(&source(bad, "main", "fleet.json")).unwrap_err();
            assert!(
                matches!(e, SourceError::Invalid { what: "URL", .. }),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn refs_and_paths() {
        for ok in ["main", "fleet/prod", "release-1.2"] {
            assert!(check(&source("/r", ok, "fleet.json")).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "--output=/x",
            "a..b",
            "a b",
            "a~1",
            "x.lock",
            ".hidden",
            "a/",
            "a@{1}",
            "a:b",
        ] {
            let e = check(&source("/r", bad, "fleet.json")).unwrap_err();
            assert!(
                matches!(e, SourceError::Invalid { what: "ref", .. }),
                "{bad}"
            );
        }
        for ok in ["fleet.json", "prod/fleet.nix"] {
            assert!(check(&source("/r", "main", ok)).is_ok(), "{ok}");
        }
        for bad in [
            "/etc/fleet.json",
            "../fleet.json",
            "a/../../b.json",
            "./f.json",
            "f.txt",
            "",
        ] {
            let e = check(&source("/r", "main", bad)).unwrap_err();
            assert!(
                matches!(e, SourceError::Invalid { what: "path", .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn credentials_never_show() {
        assert_eq!(
            redact("https://bot:s3cret@git.example.com/fleet.git"),
            "https://***@git.example.com/fleet.git"
        );
        assert_eq!(redact("ssh://git@h/x"), "ssh://***@h/x");
        assert_eq!(redact("https://h/x@y"), "https://h/x@y");
        let e = check(&source("https://u:tok@h/x y", "main", "fleet.json")).unwrap_err();
        assert!(!e.to_string().contains("tok"), "{e}");
    }
}
