//! Sends `probe::targets`' probes, each bound to its tunnel interface (SO_BINDTODEVICE, `ping
//! -I`), so that none leaves the host any other way; reads what the host shows of itself. Bounded:
//! at most `IN_FLIGHT` probes at once, `PER_SECOND` started a second, `TIMEOUT` each, and
//! nothing new started after `DEADLINE`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::fleet::ValidFleet;
use crate::fleet::time::format_rfc3339;
use crate::plan::InterfacePlan;
use crate::probe::{
    Answer, HostFacts, InterfaceFacts, Method, MtuSearch, Observed, PeerObservation, ProbeReport,
    Probes, echo_payload, outcome_changes, report, route_checks, targets,
};

pub const IN_FLIGHT: usize = 8;
pub const PER_SECOND: u32 = 200;
pub const TIMEOUT: Duration = Duration::from_secs(1);
pub const DEADLINE: Duration = Duration::from_secs(60);
const DEADLINE_PASSED: &str = "the run's deadline had passed";

/// Starts at most `PER_SECOND` probes a second, none after the deadline; counts what it lets go.
struct Pacer {
    next: Mutex<Instant>,
    deadline: Instant,
    sent: AtomicU64,
}

impl Pacer {
    /// Waits for the next slot; `false` once the deadline has passed.
    fn slot(&self) -> bool {
        let wait = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if now >= self.deadline {
                return false;
            }
            let at = (*next).max(now);
            *next = at + Duration::from_secs(1) / PER_SECOND;
            at - now
        };
        std::thread::sleep(wait);
        self.sent.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// Where the last run's report is kept: `status` shows it, the next run compares with it.
pub const REPORT_NAME: &str = "probe.json";

/// Probes `plans` (one host's interfaces).
pub fn probe(fleet: &ValidFleet, plans: &[InterfacePlan], host: &str, now: i64) -> ProbeReport {
    let probes = targets(fleet, plans, now);
    let seen = run(&probes, plans);
    report(host, format_rfc3339(now), plans, &probes, &seen)
}

/// Keeps `report` in `state` and, when an outcome changed since the last run, appends what
/// changed to the audit log, a line per network.
pub fn record(
    fleet: &ValidFleet,
    plans: &[InterfacePlan],
    report: &ProbeReport,
    state: &std::path::Path,
) -> crate::error::Result<()> {
    let before = last_report(state);
    let changes = outcome_changes(before.as_ref(), report);
    let write = |what: &str, e: std::io::Error| crate::error::Error::Write {
        path: state.join(what),
        source: e,
    };
    crate::fsutil::ensure_private_dir(state).map_err(|e| write("", e))?;
    for plan in plans {
        let network = crate::plan::network_of(fleet, plan).map_or(&plan.network, |n| &n.name);
        let prefix = format!("{network}/");
        let mine: Vec<&String> = changes.iter().filter(|c| c.starts_with(&prefix)).collect();
        if mine.is_empty() {
            continue;
        }
        let entry = serde_json::json!({
            "time": report.at, "host": report.host, "network": network, "action": "probe", "changes": mine,
        });
        super::audit::append_line(state, &entry).map_err(|e| write(super::audit::LOG_NAME, e))?;
    }
    let text = serde_json::to_vec_pretty(report).unwrap_or_default();
    crate::fsutil::write_atomic(&state.join(REPORT_NAME), &text, 0o600)
        .map_err(|e| write(REPORT_NAME, e))
}

/// The last run's report, if there is one this version reads.
pub fn last_report(state: &std::path::Path) -> Option<ProbeReport> {
    let text = std::fs::read(state.join(REPORT_NAME)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Runs every probe of `probes` and reads the host's facts for `plans`.
pub fn run(probes: &Probes, plans: &[InterfacePlan]) -> Observed {
    let started = Instant::now();
    let pacer = Pacer {
        next: Mutex::new(started),
        deadline: started + DEADLINE,
        sent: AtomicU64::new(0),
    };
    let mtus: BTreeMap<&str, Option<u16>> = plans
        .iter()
        .map(|p| (p.network.as_str(), interface_mtu(&p.network)))
        .collect();
    let jobs = probes.targets.len() + probes.tests.len();
    let next_job = AtomicUsize::new(0);
    let peers = Mutex::new(vec![None; probes.targets.len()]);
    let tests = Mutex::new(vec![None; probes.tests.len()]);
    std::thread::scope(|s| {
        for _ in 0..IN_FLIGHT.min(jobs) {
            s.spawn(|| {
                loop {
                    let i = next_job.fetch_add(1, Ordering::Relaxed);
                    if i >= jobs {
                        break;
                    }
                    if let Some(t) = probes.targets.get(i) {
                        let mtu = mtus.get(t.interface.as_str()).copied().flatten();
                        let seen = peer(&pacer, &t.interface, t.address, t.method, mtu);
                        lock(&peers)[i] = Some(seen);
                    } else {
                        let j = i - probes.targets.len();
                        let t = &probes.tests[j];
                        let method = match t.port {
                            crate::fleet::syntax::PortSpec::Tcp(lo, _) => Method::Tcp(lo),
                            _ => Method::Icmp,
                        };
                        let up = mtus.get(t.interface.as_str()).copied().flatten().is_some();
                        let answer = if !up {
                            Answer::NotSent(format!("{} is not up", t.interface))
                        } else if pacer.slot() {
                            ask(&t.interface, t.address, method, None, TIMEOUT)
                        } else {
                            Answer::NotSent(DEADLINE_PASSED.into())
                        };
                        lock(&tests)[j] = Some(answer);
                    }
                }
            });
        }
    });
    // Handshakes read after the probes, which make one where there was none.
    let ages = handshake_ages(plans);
    let peers = peers
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .zip(&probes.targets)
        .map(|(seen, t)| {
            let (answer, path_mtu) =
                seen.unwrap_or_else(|| (Answer::NotSent(DEADLINE_PASSED.into()), None));
            PeerObservation {
                answer,
                handshake_age: ages
                    .get(&(t.interface.clone(), t.public_key.clone()))
                    .copied()
                    .flatten(),
                interface_mtu: mtus.get(t.interface.as_str()).copied().flatten(),
                path_mtu,
            }
        })
        .collect();
    let tests = tests
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Answer::NotSent(DEADLINE_PASSED.into())))
        .collect();
    let checks = route_checks(plans);
    let addresses: Vec<(&str, IpAddr)> = probes
        .targets
        .iter()
        .map(|t| (t.interface.as_str(), t.address))
        .chain(
            probes
                .tests
                .iter()
                .map(|t| (t.interface.as_str(), t.address)),
        )
        .chain(checks.iter().map(|(i, a)| (i.as_str(), *a)))
        .collect();
    Observed {
        peers,
        tests,
        facts: host_facts(plans, &mtus, &addresses),
        packets: pacer.sent.load(Ordering::Relaxed),
        elapsed_ms: started.elapsed().as_millis() as u64,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A peer's reachability, then (by ICMP, when it answered) its path MTU.
fn peer(
    pacer: &Pacer,
    iface: &str,
    addr: IpAddr,
    method: Method,
    mtu: Option<u16>,
) -> (Answer, Option<u16>) {
    let Some(mtu) = mtu else {
        return (Answer::NotSent(format!("{iface} is not up")), None);
    };
    if !pacer.slot() {
        return (Answer::NotSent(DEADLINE_PASSED.into()), None);
    }
    let answer = ask(iface, addr, method, None, TIMEOUT);
    let (Answer::Reply(rtt_ms), Method::Icmp) = (&answer, method) else {
        return (answer, None);
    };
    // A size that does not come back within a few round trips is lost or too big: sent again
    // once, it counts as too big.
    let wait = Duration::from_secs_f64((rtt_ms * 4.0 / 1000.0).clamp(0.2, TIMEOUT.as_secs_f64()));
    let mut search = MtuSearch::new(mtu, addr.is_ipv6());
    while let Some(size) = search.next() {
        let mut came_back = false;
        for _ in 0..2 {
            if !pacer.slot() {
                return (answer, None);
            }
            came_back = ask(iface, addr, Method::Icmp, Some(size), wait).came_back();
            if came_back {
                break;
            }
        }
        search.record(size, came_back);
    }
    (answer, Some(search.path_mtu()))
}

/// One probe: an echo (of `size` bytes in all, don't-fragment) or a TCP connect.
fn ask(iface: &str, addr: IpAddr, method: Method, size: Option<u16>, wait: Duration) -> Answer {
    match method {
        Method::Icmp => ping(iface, addr, size, wait),
        Method::Tcp(port) => tcp(iface, SocketAddr::new(addr, port), wait),
    }
}

fn ping(iface: &str, addr: IpAddr, size: Option<u16>, wait: Duration) -> Answer {
    let mut cmd = Command::new("ping");
    cmd.args(["-n", "-c", "1", "-M", "do", "-I", iface])
        .arg("-W")
        .arg(format!("{:.3}", wait.as_secs_f64()));
    if let Some(size) = size {
        cmd.arg("-s")
            .arg(echo_payload(size, addr.is_ipv6()).to_string());
    }
    let out = match cmd.arg(addr.to_string()).stdin(Stdio::null()).output() {
        Ok(out) => out,
        Err(e) => return Answer::Unreachable(format!("cannot run ping: {e}")),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() {
        let rtt = stdout
            .lines()
            .find_map(|l| l.split("time=").nth(1))
            .and_then(|t| t.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        return Answer::Reply(rtt);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("Operation not permitted") {
        return Answer::Refused("this host's rules: operation not permitted".into());
    }
    // `From 10.50.0.1 icmp_seq=1 Destination Port Unreachable`
    let icmp_error = stdout.lines().find_map(|l| {
        let rest = l.strip_prefix("From ")?;
        let (from, what) = rest.split_once(' ')?;
        let what = what.split_once(' ').map_or(what, |(_, w)| w);
        Some(format!("{what} (from {from})"))
    });
    match (icmp_error, stderr.trim()) {
        (Some(e), _) => Answer::Unreachable(e),
        (None, "") => Answer::Silent,
        (None, e) => Answer::Unreachable(e.trim_start_matches("ping: ").to_owned()),
    }
}

fn tcp(iface: &str, to: SocketAddr, wait: Duration) -> Answer {
    use nix::errno::Errno;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrStorage, connect, getsockopt, setsockopt,
        socket, sockopt,
    };
    let errno = |e: Errno| match e {
        Errno::ECONNREFUSED => Answer::Reset,
        Errno::EPERM | Errno::EACCES => {
            Answer::Refused("this host's rules: operation not permitted".into())
        }
        Errno::ETIMEDOUT => Answer::Silent,
        e => Answer::Unreachable(e.desc().to_lowercase()),
    };
    let family = if to.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = match socket(family, SockType::Stream, flags, None) {
        Ok(fd) => fd,
        Err(e) => return errno(e),
    };
    if let Err(e) = setsockopt(&fd, sockopt::BindToDevice, &std::ffi::OsString::from(iface)) {
        return errno(e);
    }
    match connect(fd.as_raw_fd(), &SockaddrStorage::from(to)) {
        Ok(()) => return Answer::Connected,
        Err(Errno::EINPROGRESS) => {}
        Err(e) => return errno(e),
    }
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
    let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
    match poll(&mut fds, timeout) {
        Ok(0) => Answer::Silent,
        Ok(_) => match getsockopt(&fd, sockopt::SocketError) {
            Ok(0) => Answer::Connected,
            Ok(e) => errno(Errno::from_raw(e)),
            Err(e) => errno(e),
        },
        Err(e) => errno(e),
    }
}

fn interface_mtu(iface: &str) -> Option<u16> {
    super::observe::mtu(iface)?.parse().ok()
}

/// Per (interface, public key): seconds since the latest handshake (`None`: never).
fn handshake_ages(plans: &[InterfacePlan]) -> BTreeMap<(String, String), Option<u64>> {
    let now = super::now() as u64;
    let mut ages = BTreeMap::new();
    for plan in plans {
        let Some(live) = super::observe::wg_dump(&plan.network) else {
            continue;
        };
        for (key, p) in live.peers {
            let age = (p.latest_handshake > 0).then(|| now.saturating_sub(p.latest_handshake));
            ages.insert((plan.network.clone(), key), age);
        }
    }
    ages
}

fn host_facts(
    plans: &[InterfacePlan],
    mtus: &BTreeMap<&str, Option<u16>>,
    addresses: &[(&str, IpAddr)],
) -> HostFacts {
    let v6 = plans
        .iter()
        .any(|p| p.addresses.iter().any(|a| a.addr().is_ipv6()));
    let save = |cmd: &str| super::host::run(cmd, &["-t", "filter"], None).ok();
    let routes = routes(addresses.iter().map(|(_, a)| *a));
    let sysctl =
        |path: String| -> Option<u8> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    let interfaces = plans
        .iter()
        .map(|p| {
            let iface = &p.network;
            let rp = [
                sysctl("/proc/sys/net/ipv4/conf/all/rp_filter".into()),
                sysctl(format!("/proc/sys/net/ipv4/conf/{iface}/rp_filter")),
            ];
            InterfaceFacts {
                interface: iface.clone(),
                up: mtus.get(iface.as_str()).copied().flatten().is_some(),
                forwarding: sysctl(format!("/proc/sys/net/ipv4/conf/{iface}/forwarding"))
                    .map(|v| v == 1),
                rp_filter: rp.iter().flatten().max().copied(),
                routes: addresses
                    .iter()
                    .filter(|(i, _)| i == iface)
                    .map(|(_, a)| (*a, routes.get(a).cloned()))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            }
        })
        .collect();
    HostFacts {
        iptables: save("iptables-save"),
        ip6tables: if v6 { save("ip6tables-save") } else { None },
        nft_chains: super::host::run("nft", &["list", "chains"], None).ok(),
        interfaces,
    }
}

/// The interface each address is routed out of, in one `ip -batch`.
fn routes(addresses: impl Iterator<Item = IpAddr>) -> BTreeMap<IpAddr, String> {
    use std::io::Write;
    let input: String = addresses
        .collect::<std::collections::BTreeSet<_>>()
        .iter()
        .map(|a| format!("route get {a}\n"))
        .collect();
    if input.is_empty() {
        return BTreeMap::new();
    }
    let child = Command::new("ip")
        .args(["-o", "-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return BTreeMap::new();
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let Ok(out) = child.wait_with_output() else {
        return BTreeMap::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let addr: IpAddr = words.next()?.parse().ok()?;
            let dev = words.skip_while(|w| *w != "dev").nth(1)?;
            Some((addr, dev.to_owned()))
        })
        .collect()
}
