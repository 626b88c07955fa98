//! Every command in README.md and docs/*.md is run, and its output compared with what the
//! document shows (see tests/support/docs.rs for the rules). Documents with a testbed (a
//! `<!-- testbed: … -->` line) run in tests/docs_testbed.rs instead.

#[path = "support/docs.rs"]
mod docs;

use docs::{Doc, Kind, Operator};

#[test]
fn every_command_of_the_documentation_prints_what_it_shows() {
    let mut failures = Vec::new();
    let mut blessed = Vec::new();
    for rel in docs::all_docs() {
        let doc = Doc::read(&rel);
        let mut operator = Operator::new();
        let mut edits = Vec::new();
        for block in &doc.blocks {
            if let Kind::File(file) = &block.kind {
                docs::check_file(&doc, block, file, &mut failures);
                continue;
            }
            if doc.testbed.is_some() || block.skip.is_some() {
                continue;
            }
            assert!(
                block.host.is_none(),
                "{rel}:{}: host= needs a `<!-- testbed: … -->` line in the document",
                block.line
            );
            let steps = block.steps();
            let ran = operator.run(&steps);
            docs::check_block(&doc, block, &steps, &ran, &mut failures, &mut edits);
        }
        if docs::bless(&doc, edits) {
            blessed.push(rel);
        }
    }
    assert!(
        failures.is_empty(),
        "{} command(s) of the documentation do not do what it says{}:\n\n{}",
        failures.len(),
        if blessed.is_empty() {
            String::new()
        } else {
            format!(" (blessed: {blessed:?})")
        },
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
