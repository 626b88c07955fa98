//! Confirmed apply, the shell: around the job of a step that `confirm::decide` held, make the
//! sessions that would survive the reload new, then send one datagram into the tunnel to each
//! peer (WireGuard handshakes at once when it has a packet and no session, wireguard-go as the
//! kernel) and poll `wg show IFACE latest-handshakes` until one of them answers or the time is
//! up. No answer is an error, which the caller rolls back like a failed job. Runs only for a
//! held step: a run without such a change spawns nothing and waits for nothing here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::confirm::{self, Held, Verdict};
use crate::error::{Error, Result};

/// The discard port: nothing listens there, the datagram is only what makes WireGuard handshake.
const PROBE_PORT: u16 = 9;
/// A lost initiation is retried by WireGuard after 5 s (REKEY_TIMEOUT); a new datagram then
/// covers a route that was not there yet when the first one was sent.
const PROBE_EVERY: Duration = Duration::from_secs(5);
const POLL_EVERY: Duration = Duration::from_millis(200);

/// Before the job: removes the peers whose session the reload would keep, so that the reload
/// adds them afresh (with the new endpoint or PSK) and only a new handshake can confirm.
pub fn before_job(iface: &str, held: &Held) -> Result<()> {
    for key in &held.renew {
        wg(iface, &["set", iface, "peer", key, "remove"])?;
    }
    Ok(())
}

/// After the job: waits until `timeout` after `start` (the change) for a handshake with one of
/// the held peers.
pub fn wait(iface: &str, held: &Held, start: Instant, timeout: Duration) -> Result<Verdict> {
    let mut probed: Option<Instant> = None;
    loop {
        if probed.is_none_or(|t| t.elapsed() >= PROBE_EVERY) {
            probe(held);
            probed = Some(Instant::now());
        }
        let seen =
            confirm::parse_latest_handshakes(&wg(iface, &["show", iface, "latest-handshakes"])?);
        if let Some(peer) = confirm::confirmed_by(held, &seen) {
            return Ok(Verdict::Confirmed {
                peer: peer.peer.clone(),
                after_ms: start.elapsed().as_millis() as u64,
            });
        }
        if start.elapsed() >= timeout {
            return Err(Error::NotConfirmed {
                network: iface.to_owned(),
                peers: held
                    .confirm_with
                    .iter()
                    .map(|p| p.peer.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                secs: timeout.as_secs(),
                because: held.because.join("; "),
            });
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// One datagram to each peer's probe address; a failure to send is no failure to confirm
/// (the peer's PersistentKeepalive may still make the handshake).
fn probe(held: &Held) {
    for address in held.confirm_with.iter().filter_map(|p| p.address) {
        send_datagram(address, b"wgfleet: confirming a change");
    }
}

/// One UDP datagram to the discard port of `address`: through the tunnel, it makes WireGuard
/// handshake with the peer that holds the address when there is no session yet. A failure to
/// send is not reported (a keepalive may still make the handshake).
pub fn send_datagram(address: IpAddr, text: &[u8]) {
    let local: IpAddr = match address {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    if let Ok(socket) = UdpSocket::bind((local, 0)) {
        let _ = socket.send_to(text, (address, PROBE_PORT));
    }
}

fn wg(iface: &str, args: &[&str]) -> Result<String> {
    let fail = |message: String| Error::System {
        what: format!("network {iface}"),
        message,
    };
    let out = Command::new("wg")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail(format!("cannot run wg: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "`wg {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
