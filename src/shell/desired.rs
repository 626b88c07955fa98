//! The desired state of each interface: its plan, its config with the secrets filled in, and
//! the names and owners the diff and the audit log need.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use crate::error::Result;
use crate::fleet::ValidFleet;
use crate::plan::InterfacePlan;
use crate::render;
use crate::secrets::HostSecrets;

/// One interface as it should be, secrets filled in.
pub struct Desired {
    pub plan: InterfacePlan,
    pub config: Zeroizing<String>,
    /// Every key the network knows, expired clients included, so that a removal is named.
    pub(crate) names: BTreeMap<String, String>,
    /// Every peer's owner, expired clients included, for the audit log.
    pub(crate) owners: BTreeMap<String, Option<String>>,
    /// This host is a hub of the network (not held to confirmation: spokes dial it).
    pub hub: bool,
}

impl Desired {
    pub fn build(
        plans: Vec<InterfacePlan>,
        secrets: &HostSecrets,
        fleet: &ValidFleet,
    ) -> Result<Vec<Desired>> {
        plans
            .into_iter()
            .map(|plan| {
                let config = secrets.fill(&render::render_config(&plan)?);
                let net = crate::plan::network_of(fleet, &plan);
                let hub = net.is_some_and(|n| n.is_hub(&plan.host));
                let peers = net.map(|net| &net.peers);
                let next_keys = peers.into_iter().flatten().filter_map(|(_, p)| {
                    let next = p.next_key.as_ref()?;
                    Some((next.public_key.clone(), format!("{} (next key)", p.name)))
                });
                let names = peers
                    .into_iter()
                    .flatten()
                    .map(|(_, p)| (p.public_key.clone(), p.name.clone()))
                    .chain(next_keys)
                    .collect();
                let owners = peers
                    .into_iter()
                    .flatten()
                    .map(|(_, p)| (p.name.clone(), p.owner.clone()))
                    .collect();
                Ok(Desired {
                    plan,
                    config,
                    names,
                    owners,
                    hub,
                })
            })
            .collect()
    }
}
