//! The command line: commands, flags and the help text that teaches them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (reads fleet schema version 1)");

const EXIT_CODES: &str = "\
Exit codes:
  0  success (validate: the fleet is valid)
  1  error: invalid fleet, unreadable file, unknown host, bad arguments
  2  plan --detailed-exitcode: changes are pending";

#[derive(Debug, Parser)]
#[command(
    name = "wgfleet",
    version = VERSION,
    about = "Declarative WireGuard fleets: one description in git, a reconciler on every host",
    long_about = "Declarative WireGuard fleets: one description in git, a reconciler on every host.\n\n\
        A fleet file (JSON, or Nix evaluated to JSON) declares hosts, networks, topology, \
        clients and their expiry. wgfleet validates it, derives each host's wg-quick \
        configuration, and reconciles the host to it.",
    after_help = EXIT_CODES,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a fleet: every error at once, each with file, line, field and value
    #[command(after_help = "Examples:
  wgfleet validate --fleet examples/seed-000/fleet.json
  wgfleet validate --fleet fleet.nix --json | jq '.diagnostics[]'
  wgfleet validate --fleet fleet.json --now 2027-01-01T00:00:00Z   # what expires by then?")]
    Validate(ValidateArgs),

    /// Print the wg-quick config(s) a host gets; secrets appear as placeholders naming their age file
    #[command(after_help = "Examples:
  wgfleet render --fleet examples/seed-000/fleet.json --host cp
  wgfleet render --fleet fleet.json --host worker-1 --network wg0 > /tmp/wg0.conf
  wgfleet render --fleet fleet.json --host cp --json | jq -r '.interfaces[0].config'")]
    Render(RenderArgs),

    /// Print the JSON Schema of the fleet description (schema v1)
    #[command(after_help = "Example:
  wgfleet schema > fleet.schema.json   # for editor completion and CI checks")]
    Schema,
}

#[derive(Debug, Args)]
pub struct FleetArgs {
    /// The fleet description: a .json file, or a .nix file evaluated with nix-instantiate
    #[arg(long, short = 'f', env = "WGFLEET_FLEET", value_name = "FILE")]
    pub fleet: PathBuf,

    /// Evaluate expiry as of this RFC 3339 time instead of now
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
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
