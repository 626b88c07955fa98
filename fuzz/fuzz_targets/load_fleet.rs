#![no_main]
//! Arbitrary bytes as a fleet file: nothing from loading to rendering may panic.

use libfuzzer_sys::fuzz_target;

mod common;

/// 2026-06-01T00:00:00Z, with the CLI's default 14-day expiry warning.
const NOW: i64 = 1_780_272_000;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        common::run(text, NOW, 14 * 86_400);
    }
});
