//! Each command's arguments and flags, with the help text of each.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `wgfleet join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The name this host has in the fleet (its key under `hosts`)
    #[arg(long, value_name = "NAME")]
    pub host: String,

    #[command(flatten)]
    pub source: SourceArgs,

    /// Do not enable and start wgfleet.timer and wgfleet-endpoints.timer
    #[arg(long)]
    pub no_timers: bool,

    /// On a host that has joined: make its next key (a rotation) beside its current one, and
    /// print the public key to stage (`wgfleet rekey --rotate HOST --next-public-key KEY`)
    #[arg(long)]
    pub next_key: bool,

    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,

    /// Keep the state under DIR instead of /var/lib/wgfleet, starting no timer (tests)
    #[arg(long, value_name = "DIR", hide = true)]
    pub root: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// Save the source (checked, not fetched; the next `apply` pulls it)
    #[command(after_help = "Example:
  wgfleet source set --source https://git.example.com/ops/fleet.git \\
    --allowed-signers /etc/wgfleet/allowed_signers --path fleet.json")]
    Set {
        #[command(flatten)]
        source: SourceArgs,
        /// Save under DIR instead of /var/lib/wgfleet (tests)
        #[arg(long, value_name = "DIR", hide = true)]
        root: Option<PathBuf>,
    },
    /// The saved source, the accepted commit and its signer, when the remote last answered,
    /// and why the last pull gave no new fleet
    Show {
        /// Print it as JSON
        #[arg(long)]
        json: bool,
        /// Read under DIR instead of /var/lib/wgfleet (tests)
        #[arg(long, value_name = "DIR", hide = true)]
        root: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct FleetArgs {
    /// The fleet description: a .json file, or a .nix file evaluated with nix-instantiate
    #[arg(long, short = 'f', env = "WGFLEET_FLEET", value_name = "FILE")]
    pub fleet: PathBuf,

    /// Evaluate expiry as of this RFC 3339 time instead of now
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,

    /// Let a .nix fleet also read files under DIR (it reads only its own directory tree
    /// otherwise); repeatable
    #[arg(long, value_name = "DIR")]
    pub nix_allow: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,

    /// Warn about clients that expire within this many days
    #[arg(long, value_name = "DAYS", default_value_t = 14)]
    pub expiry_warning_days: u32,

    /// Print the result as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,

    /// The host to render for (default: this machine's hostname)
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// Only this network (interface name, e.g. wg0)
    #[arg(long, value_name = "IFACE")]
    pub network: Option<String>,

    /// Print the configs and the plans behind them as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct IdentityArgs {
    /// age identity file or OpenSSH private key (ed25519, RSA); repeatable
    /// [default: /etc/ssh/ssh_host_ed25519_key, then /etc/ssh/ssh_host_rsa_key]
    #[arg(long = "identity", short = 'i', value_name = "PATH")]
    pub identities: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the encrypted key
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: PathBuf,

    /// A recipient: age1…, "ssh-ed25519 …" or "ssh-rsa …"; repeatable
    #[arg(long = "recipient", short = 'r', value_name = "RECIPIENT")]
    pub recipients: Vec<String>,

    /// A recipients file: its operator lines, plus the lines of --host
    #[arg(long, short = 'R', value_name = "FILE")]
    pub recipients_file: Option<PathBuf>,

    /// With -R: also encrypt to this host's lines
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// Generate a preshared key instead of a key pair
    #[arg(long)]
    pub psk: bool,

    /// Replace an existing file
    #[arg(long)]
    pub force: bool,

    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RekeyArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,

    #[command(flatten)]
    pub identity: IdentityArgs,

    /// The recipients file: operator lines, and `HOST RECIPIENT` lines
    #[arg(
        long,
        short = 'R',
        value_name = "FILE",
        required_unless_present_any = ["finish", "abandon", "next_public_key"]
    )]
    pub recipients_file: Option<PathBuf>,

    /// Stage a new key for HOST (see below) instead of re-encrypting
    #[arg(long, value_name = "HOST", conflicts_with_all = ["finish", "rotate_psk"])]
    pub rotate: Option<String>,

    /// With --rotate HOST for a host that keeps its key (keyOnHost): stage this next public
    /// key, the one `wgfleet join --host HOST --next-key` printed on the host
    #[arg(long, value_name = "KEY", requires = "rotate")]
    pub next_public_key: Option<String>,

    /// Stage a new preshared key between members A and B (see below)
    #[arg(long, value_name = "A:B", conflicts_with = "finish")]
    pub rotate_psk: Option<String>,

    /// With --rotate-psk and --finish A:B: the network (interface) of the pair's key, when
    /// the pair shares a key in several
    #[arg(long, value_name = "IFACE")]
    pub network: Option<String>,

    /// With --rotate or --rotate-psk: how long until the switch, long enough for every host
    /// concerned to apply first (s, m, h or d)
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    pub switch_after: u64,

    /// End HOST's rotation (the next key becomes its key, the old one is deleted), or with A:B
    /// the pair's (the next preshared key takes the place of `file`)
    #[arg(long, value_name = "HOST|A:B")]
    pub finish: Option<String>,

    /// Drop HOST's staged rotation (or with A:B the pair's), keeping the current key: the
    /// next fields leave the fleet and the next key file is deleted. For a rotation not
    /// switched yet, or stuck; after a switch the hosts change back as for any new key
    #[arg(long, value_name = "HOST|A:B", conflicts_with_all = ["rotate", "rotate_psk", "finish"])]
    pub abandon: Option<String>,

    /// Decrypt and show who each file would be encrypted to; write nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckSecretsArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,

    /// The host whose secrets to check (default: this machine's hostname)
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    #[command(flatten)]
    pub identity: IdentityArgs,

    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

/// The fleet of `plan`, `apply` and `status`: a file, or (plan and apply) a signed git source.
#[derive(Debug, Args)]
pub struct HostFleetArgs {
    /// The fleet description: a .json file, or a .nix file evaluated with nix-instantiate.
    /// Without it: the --source given, else this host's saved source (`wgfleet source set`),
    /// else $WGFLEET_FLEET
    #[arg(long, short = 'f', value_name = "FILE")]
    pub fleet: Option<PathBuf>,

    /// Evaluate expiry as of this RFC 3339 time instead of now
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,

    /// Let a .nix fleet also read files under DIR (it reads only its own directory tree
    /// otherwise); repeatable
    #[arg(long, value_name = "DIR")]
    pub nix_allow: Vec<PathBuf>,
}

/// A git repository the fleet is pulled from (docs/gitops.md).
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Pull the fleet from this git repository (https://, ssh://, user@host:path, git://,
    /// file://): only a tip signed by a key of --allowed-signers is applied, never one older
    /// than the last applied commit
    #[arg(long, value_name = "URL", requires = "allowed_signers")]
    pub source: Option<String>,

    /// The keys the source's commits must be signed by, in ssh-keygen's allowed-signers format
    /// (what git's gpg.ssh.allowedSignersFile takes); trusted until a commit they signed
    /// rotates the repository's .wgfleet/allowed_signers
    #[arg(long, value_name = "FILE", requires = "source")]
    pub allowed_signers: Option<PathBuf>,

    /// The source's branch
    #[arg(long = "ref", value_name = "BRANCH", requires = "source", default_value = crate::source::DEFAULT_REF)]
    pub git_ref: String,

    /// The fleet file inside the source
    #[arg(long, value_name = "PATH", requires = "source", default_value = crate::source::DEFAULT_PATH)]
    pub path: String,

    /// An SSH key for a private source over ssh (used with IdentitiesOnly, never prompted for)
    #[arg(long, value_name = "FILE", requires = "source")]
    pub source_ssh_key: Option<PathBuf>,

    /// A file holding `user:token` for a private source over https; git gets it from the
    /// environment, and it never appears in output, logs or the audit
    #[arg(long, value_name = "FILE", requires = "source")]
    pub source_credentials: Option<PathBuf>,
}

impl SourceArgs {
    /// The source these flags name, if `--source` was given.
    pub fn source(&self) -> Option<crate::source::Source> {
        Some(crate::source::Source {
            url: self.source.clone()?,
            git_ref: self.git_ref.clone(),
            path: self.path.clone(),
            allowed_signers: self.allowed_signers.clone()?,
            ssh_key: self.source_ssh_key.clone(),
            http_credentials: self.source_credentials.clone(),
        })
    }
}

#[derive(Debug, Args)]
pub struct HostArgs {
    #[command(flatten)]
    pub fleet: HostFleetArgs,

    #[command(flatten)]
    pub source: SourceArgs,

    /// The host to reconcile (default: this machine's hostname)
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    #[command(flatten)]
    pub identity: IdentityArgs,

    /// plan only: read /etc/wireguard, /etc/systemd/system (or /run/systemd/system),
    /// /etc/sysctl.d, /var/lib/wgfleet and /run/wgfleet.lock under DIR. Units, interfaces,
    /// firewall and sysctls are still this machine's live ones; apply refuses --root
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,

    /// Compute the desired state from the fleet even when the last full run's record still
    /// holds (same fleet, age files, identities, binary; no client expiry since; under an hour
    /// old; the files on disk its own). It is kept in /var/lib/wgfleet/desired-state.json
    #[arg(long)]
    pub no_cache: bool,

    /// Say how long each stage took (load+validate, plan, decrypt, render or record, begin,
    /// observe-live, diff, observe-host, act; in milliseconds): one line on stderr, `timings` in --json
    #[arg(long)]
    pub timings: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub host: HostArgs,

    /// Also record the full list of each interface's peers in the audit log, changed or not
    /// (done by itself when wgfleet first manages an interface and when the log rolls over)
    #[arg(long)]
    pub audit_snapshot: bool,

    /// Only the endpoint check: for peers dialled by a DNS name or at several endpoints whose
    /// handshake is stale, resolve again and `wg set` a new address live (no render, no
    /// reconcile, no systemd; no identity needed). Cheap enough for a 30 s timer
    #[arg(long, conflicts_with = "audit_snapshot")]
    pub endpoints_only: bool,

    /// How long a change that touches this host's links to its hubs waits for a handshake
    /// before it is rolled back (confirmed apply)
    #[arg(long, value_name = "SECS", default_value_t = crate::confirm::DEFAULT_TIMEOUT_SECS)]
    pub confirm_timeout: u64,

    /// Apply changes to the links to the hubs without waiting for a handshake to confirm them
    #[arg(long)]
    pub no_confirm: bool,

    /// After the run, probe the live data plane as `wgfleet probe` does (a spoke's peers are its
    /// hubs) and keep the report for `status`; exit 6 when a probe fails (docs/probe.md). For
    /// the timer: WGFLEET_ARGS=--probe, or the NixOS module's extraArgs; --endpoints-only
    /// ignores it, so one WGFLEET_ARGS serves both units
    #[arg(long)]
    pub probe: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub host: HostArgs,

    /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on error
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Debug, Args)]
pub struct AccessArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,

    /// Only this network
    #[arg(long, value_name = "IFACE")]
    pub network: Option<String>,

    /// Only connections from this member or client
    #[arg(long, value_name = "NAME")]
    pub from: Option<String>,

    /// Only connections to this member, client or prefix
    #[arg(long, value_name = "NAME")]
    pub to: Option<String>,

    /// Only clients of this owner
    #[arg(long, value_name = "EMAIL")]
    pub owner: Option<String>,

    /// The port to ask about: N/tcp, N/udp or icmp
    #[arg(long, value_name = "PORT")]
    pub port: Option<String>,

    /// Print the rows as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ClientConfigArgs {
    /// The client's name in the fleet
    pub name: String,

    #[command(flatten)]
    pub fleet: FleetArgs,

    /// The network, when the client is in several
    #[arg(long, value_name = "IFACE")]
    pub network: Option<String>,

    /// Decrypts the client's preshared key (age identity or SSH key); repeatable
    #[arg(long = "identity", short = 'i', value_name = "PATH")]
    pub identities: Vec<PathBuf>,

    /// Generate a new key pair for the client and write its public key into the fleet
    #[arg(long)]
    pub generate: bool,

    /// Print the configuration as a QR code for the WireGuard phone apps
    #[arg(long)]
    pub qr: bool,

    /// Write the configuration to this file (0600) instead of stdout
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Replace the file given with -o if it exists
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub fleet: HostFleetArgs,

    /// The host (default: this machine's hostname)
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// A handshake older than this many seconds is stale
    #[arg(long, value_name = "SECONDS", default_value_t = 180)]
    pub stale: u64,

    /// Print the status as JSON
    #[arg(long)]
    pub json: bool,

    /// Also write Prometheus metrics to this file, atomically (node-exporter textfile collector)
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub fleet: HostFleetArgs,

    /// The host (default: the name it joined as, else this machine's hostname)
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// Only this network's interface
    #[arg(long, value_name = "IFACE")]
    pub network: Option<String>,

    /// Print the report as JSON (peers, tests, findings: a contract)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The host, as the audit log names it (default: the name it joined as, else the hostname)
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// Go on looking (every 250 ms) for up to SECS, until nothing is staged
    #[arg(long, value_name = "SECS")]
    pub watch: Option<u64>,

    /// Print what was promoted as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Audit logs to read; repeatable [default: /var/lib/wgfleet/audit.jsonl]
    #[arg(long = "log", value_name = "FILE")]
    pub logs: Vec<PathBuf>,

    /// Only peers of this owner
    #[arg(long, value_name = "EMAIL")]
    pub owner: Option<String>,

    /// Only this client (or host) name
    #[arg(long, value_name = "NAME")]
    pub client: Option<String>,

    /// List the changes held to a handshake with a hub instead: confirmed, rolled back (why),
    /// or not held (why)
    #[arg(long, conflicts_with_all = ["owner", "client"])]
    pub confirmations: bool,

    /// Print the intervals as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A host's wg-quick file: HOST=PATH (interface = file name, wg0.conf → wg0) or
    /// HOST:IFACE=PATH; repeatable
    #[arg(value_name = "HOST=PATH")]
    pub configs: Vec<String>,

    /// A directory holding HOST/IFACE.conf for every host (e.g. cp/wg0.conf)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Write the fleet here instead of stdout (age file paths in it are relative to this file)
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Replace an existing --out file and age files
    #[arg(long)]
    pub force: bool,

    /// Encrypt the keys found to this recipient: age1…, "ssh-ed25519 …" or "ssh-rsa …"; repeatable
    #[arg(long = "recipient", short = 'r', value_name = "RECIPIENT")]
    pub recipients: Vec<String>,

    /// A recipients file: operator lines, and `HOST RECIPIENT` lines for each host's own key
    #[arg(long, short = 'R', value_name = "FILE")]
    pub recipients_file: Option<PathBuf>,

    /// Where the encrypted keys go (HOST.age, IFACE-A-B.psk.age, …) [default: secrets/ beside
    /// the --out file]
    #[arg(long, value_name = "DIR")]
    pub secrets_dir: Option<PathBuf>,

    /// Print the whole result (fleet, findings, files written) as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,

    /// Only this network (default: the whole fleet, one cluster per network)
    #[arg(long, value_name = "IFACE")]
    pub network: Option<String>,

    /// Output format
    #[arg(long, value_enum, default_value_t = crate::graph::GraphFormat::Dot)]
    pub format: crate::graph::GraphFormat,

    /// Print the graph's data (nodes, tunnels with AllowedIPs, prefixes, flows) as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,

    /// Write the HTML report to this file
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Audit logs to read access intervals from (one per host); repeatable
    #[arg(long = "log", value_name = "AUDIT.jsonl")]
    pub logs: Vec<PathBuf>,

    /// Hosts' last probe reports (/var/lib/wgfleet/probe.json, or `probe --json` output) to show
    /// as the live data plane; repeatable
    #[arg(long = "probe", value_name = "PROBE.json")]
    pub probes: Vec<PathBuf>,

    /// Print the report's data as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// `90s`, `15m`, `2h`, `1d` (or plain seconds) as seconds.
fn parse_duration(text: &str) -> Result<u64, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: use a number with s, m, h or d (15m)")),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        // A year at most: a switch time is something hosts wait for.
        .filter(|&secs| secs <= 366 * 86_400)
        .ok_or_else(|| format!("{text:?}: use a number with s, m, h or d (15m), at most 366d"))
}
