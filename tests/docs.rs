//! Every command in README.md and docs/*.md is run, and its output compared with what the
//! document shows (see tests/support/docs.rs for the rules). Documents with a testbed (a
//! `<!-- testbed: … -->` line) run in tests/docs_testbed.rs instead.

#[path = "support/docs.rs"]
mod docs;

use docs::{Doc, Operator};

#[test]
fn every_command_of_the_documentation_prints_what_it_shows() {
    let mut failures = Vec::new();
    for rel in docs::all_docs() {
        let doc = Doc::read(&rel);
        if doc.testbed.is_some() {
            continue;
        }
        let mut operator = Operator::new();
        failures.extend(docs::check_doc(&doc, |block, steps| {
            assert!(
                block.host.is_none(),
                "{rel}:{}: host= needs a `<!-- testbed: … -->` line in the document",
                block.line
            );
            operator.run(steps)
        }));
    }
    assert!(
        failures.is_empty(),
        "{} command(s) of the documentation do not do what it says:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn wildcards() {
    let e = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(docs::matches(&e(&["a", "...", "d"]), &["a", "b", "c", "d"]));
    assert!(docs::matches(&e(&["a", "...", "d"]), &["a", "d"]));
    assert!(!docs::matches(&e(&["a", "...", "d"]), &["a", "b"]));
    assert!(docs::matches(&e(&["key [..]= ok"]), &["key abc= ok"]));
    assert!(!docs::matches(&e(&["key [..]= ok"]), &["key abc ok"]));
    assert!(docs::matches(&e(&["[..]"]), &[""]));
}
