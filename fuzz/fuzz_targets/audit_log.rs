#![no_main]
//! Audit logs collected from other hosts (`wgfleet audit --log`): parsing the JSON lines, folding
//! them into intervals and printing them may not panic, and the printed text holds no control
//! character but line ends (no terminal sequence from a log reaches the screen).

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wgfleet::history::intervals;
use wgfleet::commands::{intervals_text, parse_log};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_log(Path::new("audit.jsonl"), text) {
        Ok(records) => {
            let printed = intervals_text(&intervals(records));
            assert!(
                !printed.chars().any(|c| c.is_control() && c != '\n'),
                "a control character reached the output: {printed:?}"
            );
        }
        Err(e) => {
            let message = e.to_string();
            assert!(
                !message.chars().any(char::is_control),
                "a control character reached the error: {message:?}"
            );
        }
    }
});
