//! The command line: commands, flags and the help text that teaches them.

mod args;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use args::*;

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (reads fleet schema version 1)");

const EXIT_CODES: &str = "\
Exit codes:
  0  success (validate: the fleet is valid)
  1  error: invalid fleet, unreadable file, unknown host, bad arguments
  2  plan --detailed-exitcode: changes are pending
  6  probe: a peer unreachable, a test disagreeing live, or an MTU black hole";

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

    /// Who can reach what, through which hub, until when, checked hop by hop from the description
    #[command(
        after_help = "Without flows, every pair of peers with a tunnel between them is listed; with flows,
each declared (from, to, ports). Each row is checked end to end: the sender's AllowedIPs, each
hub's cryptokey check, forwarding and firewall, the receiver, and the reply.

With --from and --to it answers one question: exit 0 when the connection works, 1 when it does
not, naming the hop that drops it.

Examples:
  wgfleet access --fleet fleet.json
  wgfleet access --fleet fleet.json --owner alice@contractor.example    # is she revoked everywhere?
  wgfleet access --fleet fleet.json --from proxy --to worker-1 --port 8080/tcp
  wgfleet access --fleet fleet.json --json | jq '.[] | select(.works | not)'"
    )]
    Access(AccessArgs),

    /// The wg-quick file for an agentless client (a phone, a laptop), with a QR code for phones
    #[command(
        after_help = "The client's private key stays on the client: the file names it as a placeholder,
unless --generate makes a new key pair, prints the file with the private key once, and writes
the new public key into the fleet (JSON), or says what to add (Nix). Its preshared key is
decrypted with the operator's --identity. Hubs pick a new key up at their next apply.

Examples:
  wgfleet client-config alice-laptop --fleet fleet.json -i ~/.config/age/me.txt > alice.conf
  wgfleet client-config alice-phone --fleet fleet.json --generate --qr"
    )]
    ClientConfig(ClientConfigArgs),

    /// Per network on this host: the unit, and each peer's handshake, endpoint, transfer and verdict
    #[command(
        after_help = "Verdicts: ok (handshake within --stale seconds), stale handshake, never (no handshake
yet), unknown peer (live on the interface but not in the fleet: drift, or a revoked key).

Examples:
  wgfleet status --fleet /etc/wgfleet/fleet.json
  wgfleet status --fleet fleet.json --json | jq '.networks[].peers[] | select(.verdict != \"ok\")'
  wgfleet status --fleet fleet.json --prometheus /var/lib/node_exporter/textfile/wgfleet.prom"
    )]
    Status(StatusArgs),

    /// Check the live data plane from this host: peers reached, path MTU, the fleet's tests run live
    #[command(
        after_help = "Over the tunnel only, to the fleet's own tunnel addresses, each probe bound to its
interface: every member peer this host should reach (an ICMP echo, or a TCP connect on a port
the flows allow, a RST counting as reached; clients are not probed), its path MTU (the largest
don't-fragment echo that comes back, a binary search up to the interface's MTU), and every fleet
test whose `from` is this host (TCP: a SYN-ACK or RST is allow, silence deny; UDP is not
probed). A live verdict that differs from the description's is reported, with where it is
likely dropped: what this host sees of itself (foreign rules ahead of wgfleet's chains, a DROP
policy, forwarding off, rp_filter, a route out of another interface), or beyond this host.

Bounded: at most 8 probes in flight, 200 started a second, 1 s each, none started after 60 s,
1,024 probes a run. The report is kept in /var/lib/wgfleet/probe.json (status shows it); a run
whose outcome differs from the last one's is recorded in the audit log.

Exit codes: 0 every peer reached, every test agreeing, no path MTU below its interface's;
1 error; 6 a peer unreachable, a test disagreeing, or an MTU black hole.

Examples:
  wgfleet probe --fleet /etc/wgfleet/fleet.json
  wgfleet probe --json | jq '.tests[] | select(.agrees | not)'
  wgfleet probe --network wg0 --json | jq '.peers[] | {name, pathMtu, interfaceMtu}'"
    )]
    Probe(ProbeArgs),

    /// Move the traffic to peers' staged keys whose handshake has come, and change staged
    /// preshared keys at their switch time (rotation's watcher)
    #[command(
        after_help = "A peer's next key is staged with no AllowedIPs until a handshake from it, at or after
the rotation's nextSwitchAt, shows the peer has switched: then one `wg set` moves the AllowedIPs
to the next key and removes the current one, and the audit log records it. An earlier handshake
(someone holding the next key before its time) promotes nothing. apply starts this with --watch
as the transient unit wgfleet-promote.service while anything is staged; run it by hand to
promote at once. Reads what the last apply left in /var/lib/wgfleet/rotation.json.

A pair's staged preshared key: at this end's switch time it runs the apply that recorded the
rotation (same arguments), which changes the key; a handshake after that confirms it
(\"action\": \"psk-confirm\" in the audit log), and none within 60 s (180 s when neither end
leads) sends this end back to the current key (\"psk-roll-back\"), for good.

Examples:
  wgfleet promote
  wgfleet promote --watch 900 --json"
    )]
    Promote(PromoteArgs),

    /// Which hosts a client or an owner was on, from when to when, read from audit logs
    #[command(
        after_help = "Reads the audit logs apply writes (/var/lib/wgfleet/audit.jsonl on each host; pass
several --log files collected from the fleet) and answers from the recorded state.

Examples:
  wgfleet audit --owner bob@contractor.example --log cp.jsonl --log nl-1.jsonl
  wgfleet audit --client alice-laptop --json"
    )]
    Audit(AuditArgs),

    /// Show what apply would change on a host, change by change, and how (reload, restart, …)
    #[command(
        after_help = "Decrypts the host's keys (to compare the real file) but changes nothing.

Examples:
  wgfleet plan --fleet fleet.json                       # on the host itself
  wgfleet plan --fleet fleet.json --detailed-exitcode   # 0 nothing to do, 2 changes, 1 error
  wgfleet plan --fleet fleet.json --json | jq '.networks[].action'"
    )]
    Plan(PlanArgs),

    /// Make this host match the fleet: write wgN.conf, then start, reload or restart only as needed
    #[command(
        after_help = "Nothing is touched unless the fleet is valid and every key decrypts and matches
its declared public key. Peers-only changes reload (wg syncconf: no session drops); interface
changes restart; nothing changed means no write and no D-Bus job. A failed start or reload
restores the previous file and brings the old tunnel back. A change to this host's key or
addresses, or to a hub's key, endpoint, port or PSK, on a spoke whose link to a hub worked must
be followed by a handshake with a hub within --confirm-timeout (30 s), or it is rolled back too
(exit code 3); hubs, and hosts with no working link, are not held to it. Every change is appended to
/var/lib/wgfleet/audit.jsonl (peers added and removed, with their owners; a run that changes
nothing appends nothing), and every run writes when it ran and how it ended to
/var/lib/wgfleet/last-run.json. The log rolls over at 8 MiB, keeping 4 old files.

Peers dialled by a DNS name (or at several endpoints) whose handshake is older than 135 s are
re-resolved, and a new address is set live with `wg set` (no reload); with several endpoints a
stale peer moves to the next one, cyclically. The choices are kept in
/var/lib/wgfleet/endpoints.json; each change is audited.

Examples:
  wgfleet apply --fleet /etc/wgfleet/fleet.json
  wgfleet apply --fleet fleet.json --host cp --identity /etc/ssh/ssh_host_ed25519_key
  wgfleet apply --fleet fleet.json --audit-snapshot   # record every interface's peers in full
  wgfleet apply --fleet fleet.json --endpoints-only   # only follow endpoints (a 30 s timer)
  wgfleet apply --fleet fleet.json --no-confirm       # e.g. rotating a spoke's key before its hub
  wgfleet apply --fleet fleet.json --probe            # then check the data plane (docs/probe.md)"
    )]
    Apply(ApplyArgs),

    /// Create a key pair (or with --psk a preshared key), age-encrypted to the given recipients
    #[command(
        after_help = "Prints the public key; the private key is only ever written encrypted.

Examples:
  wgfleet keygen -o secrets/cp.age -r age1p5n7d9pff49z4nfuskszu7h9jp8yrk52q2g6qp6lr7eaw4u0kuyqf6wg2s
  wgfleet keygen -o secrets/cp.age -R secrets/recipients.txt --host cp      # operators + cp's host key
  wgfleet keygen --psk -o secrets/wg0-alice.psk.age -R secrets/recipients.txt --host cp"
    )]
    Keygen(KeygenArgs),

    /// Re-encrypt every secret file to the recipients that need it; or rotate a host's key
    #[command(
        after_help = "Each host's private key is encrypted to the operators and that host; a client's
preshared key to the operators and the hosts it connects to. Everything is decrypted first with
an identity that can read it today; only then is each file replaced, atomically.

--rotate HOST stages a new key for HOST without an outage: a new private key, encrypted to the
operators and HOST into a file beside its privateKeyFile, and nextPublicKey, nextPrivateKeyFile
and nextSwitchAt written into the fleet (JSON; for Nix it says what to add). Every peer that
applies stages the next key with no AllowedIPs: it may handshake, and carries no traffic. HOST
switches to it at its first apply after nextSwitchAt (now + --switch-after), and each peer moves
the traffic to it at the next key's first handshake after that time. --finish HOST, once
`wgfleet status` shows it promoted, makes it the fleet's key and deletes the old one.

--rotate-psk A:B does the same for the preshared key between members A and B: a new one,
encrypted to the operators, A and B, and nextFile and switchAt written into its presharedKeys
entry. Both ends change to it at switchAt keeping their session, the end that dials a moment
later with a fresh handshake that confirms both; an end that sees no handshake goes back to the
current key, and so does the other. --finish A:B, once both show it confirmed, makes it the key
in `file`. See docs/rotation.md.

Examples:
  wgfleet rekey --fleet fleet.json -R secrets/recipients.txt -i ~/.config/age/operator.txt
  wgfleet rekey --fleet fleet.json -R secrets/recipients.txt --rotate worker-1 --switch-after 15m
  wgfleet rekey --fleet fleet.json --finish worker-1
  wgfleet rekey --fleet fleet.json -R secrets/recipients.txt --rotate-psk cp:worker-2
  wgfleet rekey --fleet fleet.json --finish cp:worker-2
  wgfleet rekey --fleet fleet.json --abandon cp:worker-2"
    )]
    Rekey(RekeyArgs),

    /// Decrypt the secrets a host needs and check its private keys against the declared public keys
    #[command(
        after_help = "Prints no secret. Run it on the host (default identity: its SSH host key) or as
an operator with --identity.

Example:
  wgfleet check-secrets --fleet fleet.json --host cp -i secrets/test-identity.txt"
    )]
    CheckSecrets(CheckSecretsArgs),

    /// Adopt an existing setup: read hosts' wg-quick files, write the fleet that renders them back
    #[command(
        after_help = "Reads each host's wg-quick file (HOST=PATH, the interface being the file name, or
--dir DIR holding HOST/wgN.conf) and writes a fleet (schema v1 JSON) that renders the same
configs: same sections, keys and values; comments and order may differ. Hub-and-spoke and mesh
shapes are recognised; host public keys come from each host's own PrivateKey. Private and
preshared keys are encrypted on the spot to -r/-R recipients into --secrets-dir, never written in
plain text; without recipients they are left out, with what to add. Everything not imported
(PostUp, DNS, …) and every inconsistency between the files (unknown peers, mismatched AllowedIPs
or ports, duplicate addresses, keys nobody knows) is reported with its file and line, on stderr
(or in --json). Exit 0 when imported (with notes), 1 on error.

Examples:
  wgfleet import cp=/srv/cp/wg0.conf worker-1=/srv/worker-1/wg0.conf -R secrets/recipients.txt -o fleet.json
  wgfleet import --dir collected/ -r age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p > fleet.json
  wgfleet import --dir collected/ --json | jq '.findings[] | select(.severity == \"warning\")'
  wgfleet import vps:wg0=vps.conf homelab:wg0=homelab.conf     # files not named after the interface"
    )]
    Import(ImportArgs),

    /// Draw the fleet: hosts, hubs, clients, their tunnels, routed prefixes and flows (DOT or SVG)
    #[command(
        after_help = "Tunnels are the [Peer] entries each host really gets (hub-and-spoke: a star; mesh: a
clique); prefixes routed behind members hang below them; declared flows are dashed arrows
labelled with their ports. DOT is for Graphviz; SVG is laid out by wgfleet itself (hubs on
top, spokes and clients below, a small mesh on a circle), no external program needed.

Examples:
  wgfleet graph --fleet fleet.json | dot -Tpng > fleet.png
  wgfleet graph --fleet fleet.json --format svg > fleet.svg
  wgfleet graph --fleet fleet.json --network wg1 --format svg > wg1.svg
  wgfleet graph --fleet fleet.json --json | jq '.networks[].links[] | [.a, .b]'"
    )]
    Graph(GraphArgs),

    /// Write a self-contained HTML report for an auditor: diagram, access, expiry, tests, audit
    #[command(
        after_help = "One HTML page with inline CSS and SVG, no script and no external resource (it can
be mailed, archived or printed): the topology, the access matrix (who reaches what, ports, via
which hub, until when, whether it works), clients expiring within 30 days or expired, the
fleet's policy tests re-evaluated, the fleet digest and the generation time (SOURCE_DATE_EPOCH
when set). With --log, each owner's access intervals from the hosts' audit logs. --json prints
the same data.

Examples:
  wgfleet report --fleet fleet.json --html report.html
  wgfleet report --fleet fleet.json --html report.html --log cp.jsonl --log nl-1.jsonl
  wgfleet report --fleet fleet.json --now 2027-01-01T00:00:00Z --html january.html
  wgfleet report --fleet fleet.json --json | jq '.expiring'"
    )]
    Report(ReportArgs),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(after_help = "Examples:
  wgfleet completions bash > /etc/bash_completion.d/wgfleet
  wgfleet completions zsh > \"${fpath[1]}/_wgfleet\"")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Write man pages, wgfleet(1) and one per command, into a directory
    #[command(after_help = "Example:
  wgfleet man --dir /usr/local/share/man/man1 && man wgfleet-apply")]
    Man {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },

    /// Restore wgfleet's saved firewall chains (run by the wg-quick@ drop-in at interface start)
    #[command(hide = true)]
    FirewallRestore {
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },

    /// Reload a wg-quick interface from its file: stripped in process, fed to `wg syncconf`,
    /// routes added (run by the wg-quick@ drop-in as ExecReload)
    #[command(hide = true)]
    ReloadInterface {
        /// The interface (the unit's instance name, e.g. wg0)
        interface: String,
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },

    /// Add the routes of a wgfleet-managed interface whose file says `Table = off`, in one batch
    /// (run by the wg-quick@ drop-in as ExecStartPost; any other file is left alone, exit 0)
    #[command(hide = true)]
    RoutesInterface {
        /// The interface (the unit's instance name, e.g. wg0)
        interface: String,
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },

    /// Print the JSON Schema of the fleet description (schema v1)
    #[command(after_help = "Example:
  wgfleet schema > fleet.schema.json   # for editor completion and CI checks")]
    Schema,

    /// The git repository this host pulls its fleet from: save it once, so that `plan`,
    /// `apply` and the timer need no flags, and see where it stands
    #[command(subcommand)]
    Source(SourceCommand),

    /// Make this machine a host of the fleet: generate its WireGuard key here (kept, never
    /// printed), save the fleet's git source, start the timers, and print the entry to commit
    #[command(
        after_help = "The key is generated on this host (/var/lib/wgfleet/keys/, 0600) and never leaves it:
the fleet carries only its public key and `\"keyOnHost\": true`. Running join again keeps the
key and updates the source. The printed entry goes into the fleet's `hosts` (and the host into
the networks it belongs to), the printed recipient line into secrets/recipients.txt for the
preshared keys others encrypt to it; commit that signed and push. The timers then apply the
fleet on this host and on its peers within their next runs (5 minutes).

Examples:
  wgfleet join --host worker-3 --source https://git.example.com/ops/fleet.git \\
    --allowed-signers /etc/wgfleet/allowed_signers
  wgfleet join --host worker-3 --source git@git.example.com:ops/fleet.git \\
    --allowed-signers ./allowed_signers --source-ssh-key /etc/wgfleet/deploy_key --json
  wgfleet join --host worker-3 --next-key     # a rotation: its next key, made here too
(The units run with ProtectHome=yes: keep a --source-ssh-key or --source-credentials file outside
/root and /home, e.g. in /etc/wgfleet.)"
    )]
    Join(JoinArgs),
}
