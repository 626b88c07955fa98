#![no_main]
//! What the kernel (or wireguard-go) reports through `wg show IFACE dump`, and a wg-quick file
//! read back from /etc/wireguard: both parsed on every apply and status. Neither may panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let live = wgfleet::diff::parse_dump(text);
    let _ = live.peers.len();
    let conf = wgfleet::wgconf::parse(text);
    let _ = format!("{conf:?}");
});
