//! `muster hub swarm`: many simulated agent identities in one process, to
//! load a hub with realistic traffic (one verified command in, sealed
//! replies from every identity out). Identities answer builtins only
//! (`ping`, `info`, `list-actions`); they never run processes.

use super::agent::HubAgent;
use super::config::AgentHub;
use crate::agent::Agent;
use std::sync::Arc;

pub async fn run(agent: Arc<Agent>, hub: AgentHub, count: usize) -> Result<(), String> {
    if count == 0 {
        return Err("--count must be at least 1".into());
    }
    let swarm = Arc::new(HubAgent::swarm(agent, hub, count)?);
    tracing::info!("swarm of {count} identities {}-00000..", swarm.identity);
    swarm.run().await;
    Ok(())
}
