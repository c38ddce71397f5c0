//! `muster nodeset SPEC [-e|-f|-c]`: show what a TARGETS spec names before
//! a run, as ClusterShell's `nodeset` does: the names one per line (`-e`),
//! the folded form (`-f`, the default) or the count (`-c`). Groups are
//! those of the carrier given by `--via` (registry tags for tls, ssh.toml
//! tags for ssh, only groups.toml for hub).

use super::Via;
use crate::dispatch::{self, nodeset, registry};
use anyhow::{anyhow, Result};
use clap::Args;
use std::path::Path;

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("mode").args(["expand", "fold", "count"])))]
pub struct NodesetArgs {
    /// The node set, e.g. "web[01-20/2],@db!db3" (quote it for the shell)
    #[arg(allow_hyphen_values = true)]
    pub spec: String,
    /// Print every name, one per line
    #[arg(short, long)]
    pub expand: bool,
    /// Print the folded form, e.g. web[01-20] (the default)
    #[arg(short, long)]
    pub fold: bool,
    /// Print how many names the set holds
    #[arg(short, long)]
    pub count: bool,
    /// Whose groups @NAME names: tls (registry tags, @all = registered agents), ssh (ssh.toml), hub (groups.toml only)
    #[arg(long, value_enum, default_value_t = Via::Tls)]
    pub via: Via,
}

/// Expand `a.spec` with the groups of `a.via` and print it; exit 0.
pub fn run(state: &Path, a: NodesetArgs) -> Result<u8> {
    let config_dir = crate::state::config_dir();
    let groups = match a.via {
        Via::Tls => {
            let (entries, bad) = registry::load_all(state);
            for b in &bad {
                tracing::warn!("{b}");
            }
            dispatch::registry_groups(&entries, &config_dir)
        }
        Via::Ssh => {
            let config = crate::transport::ssh::config::SshConfig::load(&config_dir).map_err(|e| anyhow!(e))?;
            super::ssh::groups(&config)
        }
        Via::Hub => dispatch::groups::Inventory::new(None, [], &config_dir),
    };
    if a.via == Via::Hub && a.spec.trim() == "all" {
        return Err(anyhow!(
            "over the hub `all` is every agent that answers on the channel: they are found when a run starts, so \
             there is no list to show before it (`muster run all --via hub` reports who answered)"
        ));
    }
    let names = nodeset::expand_with(&a.spec, &groups, nodeset::Bounds::DEFAULT).map_err(|e| match a.via {
        Via::Hub if a.spec.contains('@') => {
            anyhow!("{e}; over the hub agents have no registry tags: select them with --tags on the run")
        }
        _ => anyhow!(e),
    })?;
    if a.count {
        println!("{}", names.len());
    } else if a.expand {
        for name in &names {
            println!("{name}");
        }
    } else {
        println!("{}", nodeset::fold(&names));
    }
    Ok(0)
}
