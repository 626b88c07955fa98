//! wg-quick configuration files from a plan. Pure and stable: equal plans give byte-equal files.
//!
//! Secrets never pass through the template: the key lines carry a placeholder naming the age
//! file, which `render` shows as is and `apply` replaces in a zeroizing buffer.

use std::sync::LazyLock;

use serde::Serialize;

use crate::fleet::time::format_rfc3339;
use crate::plan::{ClientPlan, InterfacePlan, PeerPlan};

const TEMPLATE: &str = include_str!("templates/wg-quick.conf.tera");
const CLIENT_TEMPLATE: &str = include_str!("templates/client.conf.tera");

/// A template that does not render; `crate::Error` takes it as it is, so that the pure core
/// does not depend on the crate's error type.
#[derive(Debug, thiserror::Error)]
#[error("rendering {what}: {message}")]
pub struct RenderError {
    pub what: String,
    pub message: String,
}

type Result<T> = std::result::Result<T, RenderError>;

/// How every file wgfleet writes begins: `apply` manages (and may remove) only such files.
pub const MANAGED_MARKER: &str = "# Managed by wgfleet";

static TERA: LazyLock<std::result::Result<tera::Tera, String>> = LazyLock::new(|| {
    let mut tera = tera::Tera::default();
    // HTML escaping would corrupt base64 ('/' and '+') and comments.
    tera.autoescape_on(Vec::<&str>::new());
    tera.add_raw_template("wg-quick.conf", TEMPLATE)
        .map_err(|e| e.to_string())?;
    tera.add_raw_template("client.conf", CLIENT_TEMPLATE)
        .map_err(|e| e.to_string())?;
    Ok(tera)
});

#[derive(Serialize)]
struct ConfigContext<'a> {
    host: &'a str,
    network: &'a str,
    address: String,
    listen_port: Option<u16>,
    private_key: String,
    mtu: Option<u16>,
    /// `Table = off`: wgfleet's drop-in adds the routes at start, in one batch.
    table_off: bool,
    peers: Vec<PeerContext<'a>>,
}

#[derive(Serialize)]
struct PeerContext<'a> {
    comment: String,
    public_key: &'a str,
    preshared_key: Option<String>,
    allowed_ips: String,
    endpoint: Option<&'a str>,
    keepalive: Option<u16>,
}

/// The wg-quick file for one interface, secrets as placeholders.
pub fn render_config(plan: &InterfacePlan) -> Result<String> {
    let context = ConfigContext {
        host: &plan.host,
        network: &plan.network,
        address: join(&plan.addresses),
        listen_port: plan.listen_port,
        private_key: private_key_placeholder(plan),
        mtu: plan.mtu,
        table_off: routes_by_wgfleet(plan),
        peers: plan.peers.iter().map(peer_context).collect(),
    };
    render_template("wg-quick.conf", "wg-quick", &context, || {
        format!("{} for host {}", plan.network, plan.host)
    })
}

/// Whether wgfleet adds the interface's routes itself (`Table = off`) rather than wg-quick, whose
/// `up` runs one `ip route` lookup process per AllowedIPs entry (about 24 s for a 10,000-peer
/// hub). Not with a default route (`0.0.0.0/0`, `::/0`): wg-quick's fwmark and policy routing
/// for it stay wg-quick's.
fn routes_by_wgfleet(plan: &InterfacePlan) -> bool {
    !plan
        .peers
        .iter()
        .flat_map(|p| &p.allowed_ips)
        .any(|net| net.prefix_len() == 0)
}

#[derive(Serialize)]
struct ClientContext<'a> {
    client: &'a str,
    network: &'a str,
    address: String,
    private_key: String,
    mtu: Option<u16>,
    dns: String,
    peers: Vec<PeerContext<'a>>,
}

/// The placeholder for a client's private key, which wgfleet never holds unless it generates it.
pub fn client_key_placeholder(client: &str) -> String {
    format!("<private key of {client}: kept on the client>")
}

/// A client's own wg-quick file, secrets as placeholders.
pub fn render_client_config(plan: &ClientPlan) -> Result<String> {
    let context = ClientContext {
        client: &plan.client,
        network: &plan.network,
        address: join(&plan.addresses),
        private_key: client_key_placeholder(&plan.client),
        mtu: plan.mtu,
        dns: plan
            .dns
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        peers: plan.peers.iter().map(peer_context).collect(),
    };
    render_template("client.conf", "client", &context, || {
        format!("client {} of {}", plan.client, plan.network)
    })
}

/// Renders built-in template `name` (`kind` in errors about the template itself); `what` names
/// the file in errors about this rendering.
fn render_template(
    name: &str,
    kind: &str,
    context: &impl Serialize,
    what: impl Fn() -> String,
) -> Result<String> {
    let tera = TERA.as_ref().map_err(|message| RenderError {
        what: format!("the built-in {kind} template"),
        message: message.clone(),
    })?;
    let failed = |e: tera::Error| RenderError {
        what: what(),
        message: e.to_string(),
    };
    let context = tera::Context::from_serialize(context).map_err(failed)?;
    tera.render(name, &context).map_err(failed)
}

fn peer_context(peer: &PeerPlan) -> PeerContext<'_> {
    let mut comment = peer.name.clone();
    if peer.staged {
        comment.push_str(" (next key, staged)");
    }
    if let Some(d) = &peer.description {
        comment.push_str(": ");
        comment.push_str(d);
    }
    let mut facts = Vec::new();
    if let Some(owner) = &peer.owner {
        facts.push(format!("owner {owner}"));
    }
    if let Some(t) = peer.expires {
        facts.push(format!("expires {}", format_rfc3339(t)));
    }
    if !facts.is_empty() {
        comment.push_str(&format!(" ({})", facts.join(", ")));
    }
    PeerContext {
        comment,
        public_key: &peer.public_key,
        preshared_key: peer
            .preshared_key_file
            .as_deref()
            .map(|f| secret_placeholder(Some(f), "preshared key")),
        allowed_ips: join(&peer.allowed_ips),
        endpoint: peer.endpoint.as_deref(),
        keepalive: peer.persistent_keepalive,
    }
}

fn join(list: &[ipnet::IpNet]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(list.len() * 20);
    for (i, net) in list.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match net {
            // By hand: the formatter's IPv4 path costs a tenth of rendering a 10,000-peer hub.
            ipnet::IpNet::V4(n) => {
                for (j, octet) in n.addr().octets().into_iter().enumerate() {
                    if j > 0 {
                        out.push('.');
                    }
                    push_decimal(&mut out, octet);
                }
                out.push('/');
                push_decimal(&mut out, n.prefix_len());
            }
            ipnet::IpNet::V6(n) => {
                let _ = write!(out, "{n}");
            }
        }
    }
    out
}

fn push_decimal(out: &mut String, v: u8) {
    if v >= 100 {
        out.push(char::from(b'0' + v / 100));
    }
    if v >= 10 {
        out.push(char::from(b'0' + v / 10 % 10));
    }
    out.push(char::from(b'0' + v % 10));
}

/// The placeholder of a plan's private key: from its age file, or the key the host keeps.
pub fn private_key_placeholder(plan: &InterfacePlan) -> String {
    match (&plan.private_key_file, plan.key_on_host) {
        (None, true) => format!("<private key kept on this host for {}>", plan.public_key),
        (file, _) => secret_placeholder(file.as_deref(), "private key"),
    }
}

/// The placeholder standing for a secret read from an age file: this module writes it on the key
/// lines, and `HostSecrets` finds the key by it.
pub fn secret_placeholder(age_file: Option<&str>, what: &str) -> String {
    match age_file {
        Some(file) => format!("<{what} from {file}>"),
        None => format!("<{what}: no age file declared>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_off_unless_a_peer_carries_a_default_route() {
        let net = |s: &str| -> ipnet::IpNet { s.parse().unwrap() };
        let peer = |allowed: &[&str]| PeerPlan {
            name: "p".into(),
            kind: crate::fleet::model::PeerKind::Host,
            public_key: "A".into(),
            allowed_ips: allowed.iter().map(|a| net(a)).collect(),
            endpoint: None,
            endpoints: Vec::new(),
            persistent_keepalive: None,
            preshared_key_file: None,
            description: None,
            owner: None,
            expires: None,
            rotation: None,
            staged: false,
            psk_rotation: None,
        };
        let mut plan = InterfacePlan {
            network: "wg0".into(),
            host: "h".into(),
            addresses: vec![net("10.0.0.1/24")],
            listen_port: None,
            mtu: None,
            private_key_file: None,
            public_key: "B".into(),
            key_on_host: false,
            forwarding: false,
            dialable: false,
            nat: None,
            peers: vec![peer(&["10.0.0.2/32", "192.168.1.0/24"])],
            policy: None,
            rotation: None,
        };
        assert!(render_config(&plan).unwrap().contains("\nTable = off\n"));
        for default in ["0.0.0.0/0", "::/0"] {
            plan.peers.push(peer(&["10.0.0.3/32", default]));
            assert!(
                !render_config(&plan).unwrap().contains("Table"),
                "{default}"
            );
            plan.peers.pop();
        }
    }

    #[test]
    fn join_writes_prefixes_as_their_display_does() {
        let nets: Vec<ipnet::IpNet> = [
            "0.0.0.0/0",
            "10.0.0.2/32",
            "192.168.100.0/24",
            "255.255.255.255/32",
            "9.99.199.0/8",
            "fd10::15/128",
            "::/0",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let display: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(join(&nets), display.join(", "));
        assert_eq!(join(&[]), "");
    }
}
