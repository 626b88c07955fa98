//! Schema v1 of the fleet description, exactly as operators write it.
//!
//! Values stay close to the text (addresses and prefixes as strings, numbers as wide integers) so
//! that `validate` can report every mistake at once with its path, instead of serde stopping at the
//! first one. The field names are a public contract: extend, never rename.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Reads a JSON object into a map built in bulk (one sort) instead of one ordered insert per
/// key: the maps of hosts, members and clients hold thousands of entries in large fleets. A key
/// given twice keeps its last value, as serde's own map does.
fn bulk_map<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Entries<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Entries<V> {
        type Value = Vec<(String, V)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            Ok(entries)
        }
    }
    Ok(d.deserialize_map(Entries(std::marker::PhantomData))?
        .into_iter()
        .collect())
}

/// The schema versions this build reads.
pub const SUPPORTED_VERSIONS: &[u64] = &[1];

/// A whole fleet: the machines, their groups and the WireGuard networks between them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "wgfleet fleet description (schema v1)")]
pub struct Fleet {
    /// Schema version; this build reads 1.
    #[schemars(extend("enum" = [1]))]
    pub version: u64,
    /// Machines that run wgfleet, by name (the name `--host` selects).
    #[serde(default, deserialize_with = "bulk_map")]
    #[schemars(extend("propertyNames" = {"pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"}))]
    pub hosts: BTreeMap<String, Host>,
    /// Named sets of hosts and clients, referenced as `group:NAME` in flows and tests.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = {"pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"}))]
    pub groups: BTreeMap<String, Vec<String>>,
    /// WireGuard networks, keyed by interface name (`wg0`, `wg1`, …).
    #[serde(default)]
    #[schemars(extend("propertyNames" = {"pattern": "^[A-Za-z0-9_.-]{1,15}$"}))]
    pub networks: BTreeMap<String, Network>,
}

/// A machine that runs wgfleet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Host {
    /// WireGuard public key (32 bytes, base64).
    #[schemars(extend("pattern" = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$"))]
    pub public_key: String,
    /// age-encrypted private key, relative to the fleet file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<String>,
    /// The private key lives on the host itself, generated there by `wgfleet join` and never
    /// copied: the fleet holds only its public key (instead of `privateKeyFile`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key_on_host: bool,
    /// The key this host rotates to (written by `wgfleet rekey --rotate`): its peers stage it
    /// beside `publicKey` with no AllowedIPs, and move the traffic to it when a handshake from it
    /// comes after `nextSwitchAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$"))]
    pub next_public_key: Option<String>,
    /// The age-encrypted private key of `nextPublicKey`, relative to the fleet file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_private_key_file: Option<String>,
    /// RFC 3339 time from which the host uses `nextPublicKey` (at its first apply after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_switch_at: Option<String>,
    /// Where peers dial this host: IP or DNS name, optionally with `:port`
    /// (default: the network's `listenPort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Where peers dial this host, in order of preference (instead of `endpoint`, which is a
    /// one-element list): a peer whose handshake goes stale moves on to the next one, and back
    /// to the first after the last. The rendered config carries the first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// The uplink interface, used for NAT (`nat: true` on a member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = "^[A-Za-z0-9_.-]{1,15}$"))]
    pub wan_interface: Option<String>,
    /// Free text, shown in comments and reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = "^[^\\u0000-\\u001f\\u007f]{0,200}$"))]
    pub description: Option<String>,
}

/// One WireGuard interface shared by its members and clients.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Network {
    /// IPv4 subnet of the tunnel, e.g. `10.50.0.0/24`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// IPv6 subnet of the tunnel, e.g. `fd50::/64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<String>,
    /// UDP port every member listens on (default 51820).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub listen_port: Option<u64>,
    /// Interface MTU, 1280–9000 (default: wg-quick's choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1280, max = 9000))]
    pub mtu: Option<u64>,
    /// Keepalive interval in seconds sent by the side that dials (0 disables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 65535))]
    pub persistent_keepalive: Option<u64>,
    /// DNS servers written into the clients' files (`client-config`), as road-warrior installers
    /// do; a client's `dns` replaces them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_dns: Vec<String>,
    /// Who peers with whom.
    pub topology: Topology,
    /// Hosts in this network, by host name.
    #[serde(default, deserialize_with = "bulk_map")]
    #[schemars(extend("propertyNames" = {"pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"}))]
    pub members: BTreeMap<String, Member>,
    /// Agentless peers (a phone, a contractor's laptop), by name.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "bulk_map"
    )]
    #[schemars(extend("propertyNames" = {"pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"}))]
    pub clients: BTreeMap<String, Client>,
    /// Preshared keys between pairs of members (clients name theirs in `presharedKeyFile`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preshared_keys: Vec<PresharedKeyPair>,
    /// Who may open connections to whom.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flows: Vec<Flow>,
    /// Expected allow/deny assertions, checked by `validate`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<PolicyTest>,
}

/// `"mesh"` (everyone peers with everyone) or `{"hubAndSpoke": {"hubs": [...]}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Topology {
    /// Every member peers with every other member.
    #[default]
    Mesh,
    /// Spokes and clients peer with the hubs; hubs peer with everyone.
    HubAndSpoke(HubAndSpoke),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HubAndSpoke {
    /// Member names of the hubs; the first is a spoke's primary hub (it carries `reach`).
    pub hubs: Vec<String>,
}

/// A host's place in one network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Member {
    /// Address index: the tunnel address is the (id+1)-th address of `subnet` / `subnet6`
    /// (`id` 1 in 10.50.0.0/24 is 10.50.0.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Explicit IPv4 tunnel address (instead of `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Explicit IPv6 tunnel address (instead of `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<String>,
    /// Overrides the host's public key in this network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$"))]
    pub public_key: Option<String>,
    /// The private key matching an overridden `publicKey` (age file, relative to the fleet file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<String>,
    /// Overrides the host's endpoint in this network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Overrides the host's endpoint(s) in this network with an ordered list (instead of
    /// `endpoint`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// Prefixes behind this member (a homelab LAN) that the others route to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
    /// Extra prefixes this member sends into the tunnel (through its primary hub).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reach: Vec<String>,
    /// Forward packets between peers (hubs, routers).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarding: bool,
    /// Masquerade tunnel traffic out of the host's `wanInterface`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nat: bool,
    /// Keepalive this member sends to the peers it dials (overrides the network's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 65535))]
    pub persistent_keepalive: Option<u64>,
    /// UDP port this member listens on (overrides the network's `listenPort`); 0: no fixed port
    /// (WireGuard picks one at random), for a roaming spoke that nobody dials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 65535))]
    pub listen_port: Option<u64>,
    /// This member's interface MTU, 1280–9000 (overrides the network's: a spoke behind PPPoE
    /// or LTE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1280, max = 9000))]
    pub mtu: Option<u64>,
    /// This host's name for the network's interface when it is not the network's name (`wgB`
    /// on one end of a link whose other end calls it `wgA`): its file and `wg-quick@` unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = "^[A-Za-z0-9_.-]{1,15}$"))]
    pub interface: Option<String>,
    /// Free text, shown in comments and reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = "^[^\\u0000-\\u001f\\u007f]{0,200}$"))]
    pub description: Option<String>,
    /// Replaces the derived AllowedIPs every peer has for this member (hand-made setups).
    #[serde(
        default,
        rename = "allowedIPs",
        skip_serializing_if = "Option::is_none"
    )]
    pub allowed_ips: Option<Vec<String>>,
}

/// An agentless peer: public key only, no wgfleet on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Client {
    /// WireGuard public key (32 bytes, base64).
    #[schemars(extend("pattern" = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$"))]
    pub public_key: String,
    /// Address index, as for members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Explicit IPv4 tunnel address (instead of `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Explicit IPv6 tunnel address (instead of `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<String>,
    /// Who answers for this client (an e-mail address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// RFC 3339 time after which the client is on no host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// age-encrypted preshared key, relative to the fleet file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preshared_key_file: Option<String>,
    /// Members this client connects to (default: all hubs, or all members in a mesh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubs: Option<Vec<String>>,
    /// DNS servers for this client's own file (replaces the network's `clientDns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Vec<String>>,
    /// Free text, shown in comments and reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = "^[^\\u0000-\\u001f\\u007f]{0,200}$"))]
    pub description: Option<String>,
}

/// A preshared key both members of a pair put on their entry for each other.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PresharedKeyPair {
    /// The two member names.
    pub peers: Vec<String>,
    /// age-encrypted preshared key (`wgfleet keygen --psk`), relative to the fleet file.
    pub file: String,
    /// The preshared key this pair moves to (written by `wgfleet rekey --rotate-psk`): both
    /// ends change to it at `switchAt`, keeping their session, and go back to `file` when no
    /// handshake follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_file: Option<String>,
    /// RFC 3339 time at which both members use `nextFile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch_at: Option<String>,
}

/// Who may open connections to whom: names, `group:NAME`, `owner:EMAIL` or CIDRs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Flow {
    pub from: Selector,
    pub to: Selector,
    /// `N/tcp`, `N-M/udp`, `icmp`; empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
}

/// One name or a list of names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Selector {
    One(String),
    Many(Vec<String>),
}

impl Default for Selector {
    fn default() -> Self {
        Selector::Many(Vec::new())
    }
}

impl Selector {
    pub fn items(&self) -> &[String] {
        match self {
            Selector::One(s) => std::slice::from_ref(s),
            Selector::Many(v) => v,
        }
    }
}

/// An expected outcome, like a test in a policy file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyTest {
    pub from: String,
    pub to: String,
    /// `N/tcp`, `N/udp` or `icmp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    pub expect: Expect,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Expect {
    #[default]
    Allow,
    Deny,
}
