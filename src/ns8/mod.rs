//! The NethServer ns8 agent front door (in progress).

use clap::Args;
use std::path::PathBuf;

/// `muster ns8-agent [--agentid ID] [ID] ROOTS... [--actionsdir D] [--eventsdir D]`
#[derive(Args, Debug, Clone)]
pub struct Ns8Args {
    #[arg(long)]
    pub agentid: Option<String>,
    /// Agent id (when --agentid is not given), then action root directories
    pub positional: Vec<PathBuf>,
    #[arg(long)]
    pub actionsdir: Vec<PathBuf>,
    #[arg(long)]
    pub eventsdir: Vec<PathBuf>,
}

pub fn main(_args: Ns8Args) -> anyhow::Result<u8> {
    anyhow::bail!("ns8-agent is not available in this build yet")
}
