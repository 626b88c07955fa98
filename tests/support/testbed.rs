//! Testbed: real systemd hosts as `systemd-nspawn` containers on a private bridge
//! (recipe: DESIGN.md section 8). Std only. Include from a test with
//! `#[path = "support/testbed.rs"] mod testbed;`. Needs root.
//!
//! Deviations from the DESIGN.md command line, and why:
//! - `--overlay=/etc:UPPER:/etc` (same for /var) with UPPER under the run directory instead of an
//!   anonymous upper dir in /var/tmp: a killed run then leaves nothing outside our own directory,
//!   and /etc/hostname can be seeded per host before boot (the shared /etc says "vm" otherwise,
//!   which beats `--hostname`).
//! - `--bind` instead of `--bind-ro` for /x, so hosts can leave files there for the test to read.
//! - `systemd.mask=` for the machine's own daemons (postgres, nix-daemon): the shared /etc
//!   enables them in every host, where they are unrelated and cost ~2 s of boot each.
//! - `--console=read-only` with output to a per-host log, so boot failures can be reported.
//! - Each nspawn is started in its own cgroup (name=systemd and cgroup2 hierarchies). nspawn
//!   roots the container's cgroup tree at the cgroup it starts in; with no systemd on the machine
//!   that is `/` for every host, so all hosts' systemd shared `/payload/system.slice/UNIT`: boot
//!   units failed at random with 219/CGROUP, and one host stopping a unit could kill another
//!   host's processes of the same unit name.
//! - IPv6 is disabled on the bridge and its ports: otherwise the kernel gives them link-local
//!   addresses, and the machine's side of the bridge must carry no address at all.
//! - Opt-in, [`Testbed::writable_usr`]: `--overlay=/usr:UPPER:/usr` like /etc and /var, for a
//!   test that installs a package. By default /usr is the machine's, read-only, as DESIGN says.
#![allow(dead_code)]

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

const PREFIX: &str = "wgft"; // every bridge and machine name starts with this
const LOCK_PATH: &str = "/run/wgfleet-testbed.lock";
const RUN_DIR_PREFIX: &str = "wgfleet-testbed-"; // under /tmp (fixed, not $TMPDIR, so stale cleanup finds it)
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(15);
const PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const MASKED_UNITS: &[&str] = &[
    "postgresql.service",
    "postgresql@.service",
    "nix-daemon.service",
    "nix-daemon.socket",
];
/// Underlay must be a documentation range (network rule in DESIGN.md section 8).
const UNDERLAY_PREFIXES: &[&str] = &["192.0.2.", "198.51.100.", "203.0.113.", "2001:db8:"];

/// Shell fragment for `ping`: this machine has no iputils `ping`, but busybox has one.
/// Use as `format!("{PING} -c 3 -W 2 10.99.0.2")` inside `Host::sh`.
pub const PING: &str = "$(command -v ping || echo busybox ping)";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// One test run: a bridge, its hosts and a directory. Dropping it tears everything down.
pub struct Testbed {
    bridge: String,
    run: String,
    dir: PathBuf,
    machines: Mutex<Vec<Machine>>,
    writable_usr: bool,
    _lock: File, // dropped after `Drop::drop`, so the next run waits for our teardown
}

struct Machine {
    name: String,
    host: String,
    nspawn: Child,
    leader: Option<u32>,
    cgroups: Vec<PathBuf>,
}

/// A booted host. Cheap to clone; only valid while its `Testbed` lives.
#[derive(Clone, Debug)]
pub struct Host {
    name: String,
    leader: u32,
    dir: PathBuf,
    underlay: String,
}

impl Testbed {
    /// Waits for the global testbed lock, removes leftovers of crashed runs, creates the bridge.
    pub fn new(name_hint: &str) -> Result<Testbed, String> {
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK_PATH)
            .map_err(|e| format!("open {LOCK_PATH}: {e} (the testbed needs root)"))?;
        // flock() conflicts between separate open()s even in one process, so this serialises
        // both test threads and test binaries.
        if lock.try_lock().is_err() {
            eprintln!("testbed[{name_hint}]: waiting for {LOCK_PATH}");
            lock.lock().map_err(|e| format!("lock {LOCK_PATH}: {e}"))?;
        }
        // Anything in here shows up in every host's /etc (it is their lower layer).
        if fs::read_dir("/etc/wireguard").is_ok_and(|mut d| d.next().is_some()) {
            return Err(
                "the machine's /etc/wireguard is not empty; it would leak into every \
                        testbed host. Keep it empty."
                    .into(),
            );
        }
        cleanup_stale()?;

        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let run = format!("{:04}{:02}", std::process::id() % 10000, seq % 100);
        let hint: String = name_hint
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        let tb = Testbed {
            bridge: format!("{PREFIX}-br{run}"), // 13 chars, IFNAMSIZ allows 15
            dir: Path::new("/tmp").join(format!("{RUN_DIR_PREFIX}{run}-{hint}")),
            run,
            machines: Mutex::new(Vec::new()),
            writable_usr: false,
            _lock: lock,
        };
        // From here on, errors return through Drop, which undoes whatever was made.
        fs::create_dir_all(&tb.dir).map_err(|e| format!("create {}: {e}", tb.dir.display()))?;
        run_ok(Command::new("ip").args(["link", "add", "name", &tb.bridge, "type", "bridge"]))?;
        disable_ipv6(&tb.bridge);
        run_ok(Command::new("ip").args(["link", "set", &tb.bridge, "up"]))?;
        Ok(tb)
    }

    /// Hosts booted from now on get a writable /usr: an overlay on the machine's, its upper
    /// directory under the run directory, so that what they install (a .deb) stays in the host
    /// and goes with the teardown. Other tests keep the read-only /usr of `--volatile=yes`.
    pub fn writable_usr(mut self) -> Testbed {
        self.writable_usr = true;
        self
    }

    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// Boots one host; see `add_hosts`.
    pub fn add_host(&self, name: &str, underlay_ip: &str) -> Result<Host, String> {
        Ok(self.add_hosts(&[(name, underlay_ip)])?.remove(0))
    }

    /// Boots hosts concurrently, each `(name, "192.0.2.11/24")`. `name` becomes the hostname.
    pub fn add_hosts(&self, specs: &[(&str, &str)]) -> Result<Vec<Host>, String> {
        let start = Instant::now();
        let mut hosts = Vec::new();
        for &(name, ip) in specs {
            hosts.push(self.start_host(name, ip)?);
        }
        // All containers boot in parallel; waiting for them one after another costs nothing.
        for host in &mut hosts {
            host.leader = self.wait_booted(&host.name, start)?;
        }
        // The bridge ports appear with the containers; strip IPv6 before host0 gets carrier.
        for port in bridge_ports(&self.bridge)? {
            disable_ipv6(&port);
        }
        for host in &hosts {
            host.sh_ok(&format!(
                "ip link set lo up && ip addr add {} dev host0 && ip link set host0 up",
                host.underlay
            ))?;
        }
        self.check_no_machine_address()?;
        let names: Vec<&str> = specs.iter().map(|s| s.0).collect();
        eprintln!(
            "testbed: booted {names:?} in {:.1}s",
            start.elapsed().as_secs_f64()
        );
        Ok(hosts)
    }

    fn start_host(&self, name: &str, underlay_ip: &str) -> Result<Host, String> {
        let ok_name = !name.is_empty()
            && name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok_name {
            return Err(format!("host name {name:?}: use 1-32 of [a-z0-9-]"));
        }
        if !underlay_ip.contains('/')
            || !UNDERLAY_PREFIXES.iter().any(|p| underlay_ip.starts_with(p))
        {
            return Err(format!(
                "underlay {underlay_ip:?}: must be ADDR/PREFIX in a documentation range {UNDERLAY_PREFIXES:?}"
            ));
        }
        let machine = format!("{PREFIX}{}-{name}", self.run);
        let mut machines = self.machines.lock().unwrap();
        if machines.iter().any(|m| m.name == machine) {
            return Err(format!("host {name:?} already exists in this testbed"));
        }
        let dir = self.dir.join(name); // bound at /x
        let state = self.dir.join(".nspawn").join(name); // overlay uppers and console log
        let mut uppers = vec![state.join("etc"), state.join("var")];
        if self.writable_usr {
            uppers.push(state.join("usr"));
        }
        for d in uppers.into_iter().chain([dir.clone()]) {
            fs::create_dir_all(&d).map_err(|e| format!("create {}: {e}", d.display()))?;
        }
        fs::write(state.join("etc/hostname"), format!("{name}\n")).map_err(|e| e.to_string())?;
        let log = File::create(state.join("console.log")).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;

        // Own cgroup per host (see the top of this file); `exec` keeps the Child's PID nspawn's.
        let cgroups: Vec<PathBuf> = cgroup_roots().iter().map(|r| r.join(&machine)).collect();
        let mut enter = String::new();
        for cg in &cgroups {
            fs::create_dir_all(cg).map_err(|e| format!("create cgroup {}: {e}", cg.display()))?;
            enter += &format!("echo $$ > {}/cgroup.procs && ", cg.display());
        }
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", &format!("{enter}exec systemd-nspawn \"$@\""), "sh"]);
        cmd.args([
            "--quiet",
            "--directory=/",
            "--volatile=yes",
            "--boot",
            "--register=no",
            "--keep-unit",
            "--console=read-only",
        ])
        .arg(format!(
            "--overlay=/etc:{}:/etc",
            state.join("etc").display()
        ))
        .arg(format!(
            "--overlay=/var:{}:/var",
            state.join("var").display()
        ))
        .args(
            self.writable_usr
                .then(|| format!("--overlay=/usr:{}:/usr", state.join("usr").display())),
        )
        .arg(format!("--machine={machine}"))
        .arg(format!("--hostname={name}"))
        .arg(format!("--network-bridge={}", self.bridge))
        .arg(format!("--bind={}:/x", dir.display()))
        .arg("systemd.firstboot=off")
        .args(MASKED_UNITS.iter().map(|u| format!("systemd.mask={u}")))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
        let nspawn = cmd
            .spawn()
            .map_err(|e| format!("spawn systemd-nspawn: {e}"))?;
        machines.push(Machine {
            name: machine,
            host: name.into(),
            nspawn,
            leader: None,
            cgroups,
        });
        Ok(Host {
            name: name.into(),
            leader: 0,
            dir,
            underlay: underlay_ip.into(),
        })
    }

    /// Polls until the host's systemd says running/degraded; returns the leader PID.
    fn wait_booted(&self, name: &str, start: Instant) -> Result<u32, String> {
        let machine = format!("{PREFIX}{}-{name}", self.run);
        let log = self.dir.join(".nspawn").join(name).join("console.log");
        let mut state = String::from("(no leader yet)");
        loop {
            let leader = {
                let mut machines = self.machines.lock().unwrap();
                let m = machines.iter_mut().find(|m| m.name == machine).unwrap();
                if let Ok(Some(status)) = m.nspawn.try_wait() {
                    return Err(format!(
                        "host {name}: systemd-nspawn exited during boot ({status}); console log:\n{}",
                        tail(&log)
                    ));
                }
                if m.leader.is_none() {
                    m.leader = child_named(m.nspawn.id(), "systemd");
                }
                m.leader
            };
            if let Some(leader) = leader {
                let out = nsenter(leader, "systemctl is-system-running").output();
                state = out
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                    .unwrap_or_default();
                if state == "running" || state == "degraded" {
                    if state == "degraded" {
                        let failed = nsenter(leader, "systemctl --failed --no-legend").output();
                        let failed =
                            failed.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
                        eprintln!(
                            "testbed: host {name} is degraded: {}",
                            failed.unwrap_or_default()
                        );
                    }
                    return Ok(leader);
                }
            }
            if start.elapsed() > BOOT_TIMEOUT {
                return Err(format!(
                    "host {name}: not booted after {BOOT_TIMEOUT:?} (is-system-running: {state:?}); \
                     console log:\n{}",
                    tail(&log)
                ));
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// Enforces the network rule: no address on our bridge or its ports.
    fn check_no_machine_address(&self) -> Result<(), String> {
        let mut links = bridge_ports(&self.bridge)?;
        links.push(self.bridge.clone());
        for link in links {
            let addrs = run_ok(Command::new("ip").args(["-o", "addr", "show", "dev", &link]))?;
            if !addrs.trim().is_empty() {
                return Err(format!("machine-side link {link} has an address: {addrs}"));
            }
        }
        Ok(())
    }

    fn teardown(&mut self) {
        let mut machines =
            std::mem::take(self.machines.get_mut().unwrap_or_else(|e| e.into_inner()));
        let start = Instant::now();
        // Power every host off first, so they shut down in parallel. SIGTERM makes nspawn send
        // SIGRTMIN+3 (poweroff) to the host's systemd: unlike `systemctl poweroff` over D-Bus it
        // cannot block on a wedged host.
        for m in &mut machines {
            if m.leader.is_none() {
                m.leader = child_named(m.nspawn.id(), "systemd");
            }
            if let Some(leader) = m.leader {
                kill_entered(leader);
            }
            if matches!(m.nspawn.try_wait(), Ok(None)) {
                signal(m.nspawn.id(), "TERM"); // not once reaped: the PID may be reused
            }
        }
        for m in &mut machines {
            let deadline = Instant::now() + POWEROFF_TIMEOUT;
            while matches!(m.nspawn.try_wait(), Ok(None)) && Instant::now() < deadline {
                sleep(Duration::from_millis(50));
            }
            if matches!(m.nspawn.try_wait(), Ok(None)) {
                let log = self.dir.join(".nspawn").join(&m.host).join("console.log");
                eprintln!(
                    "testbed: {} did not power off, killing it; console log:\n{}",
                    m.name,
                    tail(&log)
                );
                // SIGKILL to the PID-namespace init kills every process in the host;
                // killing only nspawn would orphan them.
                if let Some(leader) = m.leader.or_else(|| child_named(m.nspawn.id(), "systemd")) {
                    signal(leader, "KILL");
                }
                let _ = m.nspawn.kill();
            }
            let _ = m.nspawn.wait();
            for cg in &m.cgroups {
                if let Err(e) = rmdir_cgroup(cg) {
                    eprintln!("testbed: remove cgroup {}: {e}", cg.display());
                }
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        if let Err(e) = fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("testbed: remove {}: {e}", self.dir.display());
        }
        eprintln!(
            "testbed: torn down in {:.1}s",
            start.elapsed().as_secs_f64()
        );
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.teardown();
    }
}

impl Host {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Underlay address without the prefix length, e.g. "192.0.2.11".
    pub fn ip(&self) -> &str {
        self.underlay.split('/').next().unwrap()
    }

    /// PID (on the machine) of the host's systemd.
    pub fn leader(&self) -> u32 {
        self.leader
    }

    /// Machine-side path of the directory the host sees as /x.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `/bin/sh -c cmd` inside the host (all its namespaces), whatever the exit code.
    pub fn sh(&self, cmd: &str) -> Result<Output, String> {
        nsenter(self.leader, cmd)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("host {}: nsenter: {e}", self.name))
    }

    /// Like `sh`, but a non-zero exit is an error carrying stdout and stderr. Returns stdout.
    pub fn sh_ok(&self, cmd: &str) -> Result<String, String> {
        let out = self.sh(cmd)?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            return Ok(stdout);
        }
        Err(format!(
            "host {}: `{cmd}` failed ({})\n--- stdout\n{stdout}--- stderr\n{}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    /// Starts `/bin/sh -c cmd` inside the host without waiting (stdout/stderr piped).
    /// Teardown kills it (SIGKILL) before powering the host off, if it is still running.
    pub fn spawn(&self, cmd: &str) -> Result<Child, String> {
        nsenter(self.leader, cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("host {}: nsenter: {e}", self.name))
    }
}

/// `nsenter` forks into the host's PID namespace, so the command dies with the host.
fn nsenter(leader: u32, cmd: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.arg("-t")
        .arg(leader.to_string())
        .args(["-a", "/bin/sh", "-c", cmd])
        .env_clear() // the test's environment (cargo vars etc.) must not leak into the host
        .env("PATH", PATH_ENV)
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8");
    c
}

fn run_ok(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn disable_ipv6(link: &str) {
    // Missing when the machine has no IPv6 at all: then there is nothing to disable.
    let _ = fs::write(format!("/proc/sys/net/ipv6/conf/{link}/disable_ipv6"), "1");
}

fn bridge_ports(bridge: &str) -> Result<Vec<String>, String> {
    let out = run_ok(Command::new("ip").args(["-o", "link", "show", "master", bridge]))?;
    // Lines look like "8: vb-wgft1234a@if2: <...> ...".
    Ok(out
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_string())
        .collect())
}

/// (pid, ppid, comm, state) for every process, from /proc/PID/stat.
fn processes() -> Vec<(u32, u32, String, char)> {
    let mut procs = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may contain spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = rest.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        procs.push((pid, ppid, comm, state));
    }
    procs
}

fn child_named(ppid: u32, comm: &str) -> Option<u32> {
    processes()
        .into_iter()
        .find(|p| p.1 == ppid && p.2 == comm)
        .map(|p| p.0)
}

fn alive(pid: u32) -> bool {
    processes().iter().any(|p| p.0 == pid && p.3 != 'Z')
}

/// Kills what `nsenter` started in the host (in its PID namespace, parent outside) and wakes the
/// parent. Needed before poweroff: systemd-shutdown SIGSTOPs every process in the host, the
/// outside `nsenter` then stops itself too (it mirrors its child's job control), never reaps
/// the child, and shutdown waits for that zombie (and the `nsenter` stays stopped forever).
fn kill_entered(leader: u32) {
    let ns = |pid: u32| fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let Some(host_ns) = ns(leader) else { return };
    for (pid, ppid, ..) in processes() {
        if pid != leader && ns(pid) == Some(host_ns.clone()) && ns(ppid) != Some(host_ns.clone()) {
            signal(pid, "KILL");
            signal(ppid, "CONT");
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Removes what a crashed or interrupted run left behind. Only called with the lock held, so
/// every `wgft` container, bridge and run directory found here is stale.
fn cleanup_stale() -> Result<(), String> {
    let mut killed = Vec::new();
    for (pid, ..) in processes() {
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_ours = args.first().is_some_and(|a| a.ends_with("systemd-nspawn"))
            && args
                .iter()
                .any(|a| a.starts_with(&format!("--machine={PREFIX}")));
        if is_ours {
            eprintln!("testbed: killing stale container {}", args.join(" "));
            // Host init first: that takes down everything in the host's PID namespace.
            for (child, ..) in processes().into_iter().filter(|p| p.1 == pid) {
                kill_entered(child);
                signal(child, "KILL");
            }
            signal(pid, "KILL");
            killed.push(pid);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while killed.iter().any(|&p| alive(p)) {
        if Instant::now() > deadline {
            return Err(format!("stale testbed containers {killed:?} did not die"));
        }
        sleep(Duration::from_millis(50));
    }
    for root in cgroup_roots() {
        for entry in fs::read_dir(&root).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(PREFIX) {
                eprintln!("testbed: removing stale cgroup {}", entry.path().display());
                rmdir_cgroup(&entry.path())
                    .map_err(|e| format!("remove cgroup {}: {e}", entry.path().display()))?;
            }
        }
    }
    let bridges = run_ok(Command::new("ip").args(["-o", "link", "show", "type", "bridge"]))?;
    for name in bridges.lines().filter_map(|l| l.split(": ").nth(1)) {
        if name.starts_with(PREFIX) {
            eprintln!("testbed: deleting stale bridge {name}");
            run_ok(Command::new("ip").args(["link", "del", name]))?;
        }
    }
    for entry in fs::read_dir("/tmp").into_iter().flatten().flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(RUN_DIR_PREFIX)
        {
            eprintln!("testbed: removing stale {}", entry.path().display());
            fs::remove_dir_all(entry.path())
                .map_err(|e| format!("remove {:?}: {e}", entry.path()))?;
        }
    }
    Ok(())
}

/// Mount points of the hierarchies systemd uses for process tracking: the v1 `name=systemd`
/// one and cgroup2 (either may be absent).
fn cgroup_roots() -> Vec<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mountinfo
        .lines()
        .filter_map(|line| {
            // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE SUPEROPTS"
            let (left, right) = line.split_once(" - ")?;
            let mountpoint = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let (fstype, superopts) = (r.next()?, r.nth(1)?);
            let systemd_v1 =
                fstype == "cgroup" && superopts.split(',').any(|o| o == "name=systemd");
            (fstype == "cgroup2" || systemd_v1).then(|| PathBuf::from(mountpoint))
        })
        .collect()
}

/// Removes a cgroup and its children, deepest first (cgroup dirs only go away by rmdir).
fn rmdir_cgroup(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)?.flatten() {
        if entry.file_type()?.is_dir() {
            rmdir_cgroup(&entry.path())?;
        }
    }
    // Processes still in it (a stale run) must die first, or rmdir fails with EBUSY.
    let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter_map(|l| l.trim().parse().ok()) {
        signal(pid, "KILL");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(16) && Instant::now() < deadline => {
                sleep(Duration::from_millis(50)) // EBUSY: killed processes not reaped yet
            }
            other => return other,
        }
    }
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
