//! A spoke's plan for unit tests here and in the shell (`shell::endpoint_follow`).

use crate::plan::{InterfacePlan, PeerPlan};

/// The hub `hub` (public key `K`), dialled at `endpoints`.
pub fn hub_peer(endpoints: Vec<String>) -> PeerPlan {
    PeerPlan {
        name: "hub".into(),
        kind: crate::fleet::model::PeerKind::Host,
        public_key: "K".into(),
        allowed_ips: Vec::new(),
        endpoint: endpoints.first().cloned(),
        endpoints,
        persistent_keepalive: None,
        preshared_key_file: None,
        description: None,
        owner: None,
        expires: None,
        rotation: None,
        staged: false,
        psk_rotation: None,
    }
}

/// `wg0` on the host `spoke` with these peers.
pub fn spoke(peers: Vec<PeerPlan>) -> InterfacePlan {
    InterfacePlan {
        network: "wg0".into(),
        host: "spoke".into(),
        addresses: Vec::new(),
        listen_port: None,
        mtu: None,
        private_key_file: None,
        public_key: "P".into(),
        key_on_host: false,
        forwarding: false,
        dialable: false,
        nat: None,
        policy: None,
        rotation: None,
        peers,
    }
}
