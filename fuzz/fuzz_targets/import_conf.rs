#![no_main]
//! wg-quick files as `wgfleet import` reads them from other hosts: the fuzz text is split into up
//! to four files (at NUL bytes), of hosts h0…h3 on wg0 or wg1. Nothing from parsing the files to
//! deriving, validating and rendering back the fleet, nor the report, may panic.

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use wgfleet::import::{self, Input, Options, Source};
use zeroize::Zeroizing;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let inputs: Vec<Input> = text
        .split('\0')
        .take(4)
        .enumerate()
        .map(|(i, file)| {
            // A file's first line may name its interface (`#wg1`), so networks vary too.
            let network = if file.starts_with("#wg1") { "wg1" } else { "wg0" };
            Input {
                source: Source {
                    host: format!("h{i}"),
                    network: network.to_owned(),
                    path: PathBuf::from(format!("h{i}/{network}.conf")),
                    display: format!("h{i}/{network}.conf"),
                },
                text: Zeroizing::new(file.to_owned()),
            }
        })
        .collect();
    let opts = Options {
        recipients: &[],
        recipients_file: None,
        secrets_dir: Path::new("secrets"),
        fleet_dir: Path::new("."),
        fleet_name: "fleet.json",
        now: 1_780_272_000,
    };
    if let Ok(imported) = import::import(&inputs, &opts) {
        let _ = import::report_text(&imported);
        let _ = import::summary_text(&imported);
        let _ = imported.fleet_json();
    }
});
