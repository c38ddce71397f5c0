//! `muster run --via ssh`: targets are SSH destinations (names from
//! `ssh.toml`, or `[user@]host[:port]` as written), the words after `--`
//! one shell command line (or `--action NAME` with arguments), the carrier
//! the system ssh client with the agent installed on demand.

use super::RunArgs;
use crate::dispatch::nodeset;
use crate::dispatch::DispatcherConfig;
use crate::transport::carrier::{Carrier, Target};
use crate::transport::ssh::config::SshConfig;
use crate::transport::ssh::SshCarrier;
use anyhow::{anyhow, bail, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The SSH targets a TARGETS spec and tags name.
pub fn targets(config: &SshConfig, spec: &str, tags: &[String]) -> Result<Vec<Target>> {
    let names: Vec<String> = if spec.trim() == "all" {
        let all = config.tagged(&[]);
        if all.is_empty() {
            bail!("`all` over SSH means every host in ssh.toml, and it lists none; name the hosts instead");
        }
        all
    } else {
        let groups = groups(config);
        nodeset::expand_with(spec, &groups, nodeset::Bounds::DEFAULT).map_err(|e| anyhow!("bad TARGETS: {e}"))?
    };
    let tagged = config.tagged(tags);
    let names: Vec<String> = names.into_iter().filter(|n| tags.is_empty() || tagged.contains(n)).collect();
    if names.is_empty() {
        bail!("no SSH host matches {spec:?} with tags {} (tags come from ssh.toml)", tags.join(","));
    }
    Ok(names.into_iter().map(|n| Target { addr: config.address(&n), name: n }).collect())
}

/// The groups TARGETS may name over SSH: `@all` every host in ssh.toml,
/// `@TAG` its hosts carrying TAG, and the groups of `groups.toml` (which
/// win over a tag of the same name). With no host in ssh.toml there is no
/// `@all` (an unknown group, never an empty set).
pub fn groups(config: &SshConfig) -> crate::dispatch::groups::Inventory {
    let all = (!config.hosts.is_empty()).then(|| config.hosts.keys().cloned().collect());
    let tagged = config.hosts.iter().map(|(name, host)| (name.as_str(), host.tags.as_slice()));
    crate::dispatch::groups::Inventory::new(all, tagged, &crate::state::config_dir())
}

/// The SSH carrier for this dispatcher, configured from `ssh.toml`.
pub fn carrier(state: &Path, cfg: &DispatcherConfig, install: bool) -> Result<(SshCarrier, SshConfig)> {
    let config = SshConfig::load(&crate::state::config_dir()).map_err(|e| anyhow!(e))?;
    let carrier = SshCarrier::new(state, config.clone(), Duration::from_secs(cfg.connect_timeout.max(5)), install)
        .map_err(|e| anyhow!("cannot prepare the SSH carrier in {}: {e}", state.join("ssh").display()))?;
    Ok((carrier, config))
}

pub fn run(state: &Path, cfg: &DispatcherConfig, a: RunArgs) -> Result<u8> {
    let (carrier, config) = carrier(state, cfg, !a.no_install)?;
    let mut plan = super::run::base_plan(&a, cfg, format!("ssh:{}", crate::state::hostname()), "ssh")?;
    plan.targets = targets(&config, &a.targets, &a.tags)?;
    // A shell command line is no named action to lock on.
    if plan.request.action != "shell" {
        plan.lock_dir = Some(state.join("locks"));
    }
    let mode = super::run::mode(&a);
    let dialer = super::run::dialer(state, cfg, &a, crate::protocol::daemon::Via::Ssh, Arc::new(carrier))?;
    let progress = super::run::progress(&a);
    let outcome = super::run::dispatch_recorded(state, cfg, Carrier::Dial(dialer), plan, mode, progress)?;
    Ok(outcome.exit_status())
}

/// `muster ping --via ssh`: the builtin `ping` on each host over SSH; the
/// time shown includes opening the SSH session (and installing the agent
/// where it is missing, unless --no-install).
pub fn ping(state: &Path, cfg: &DispatcherConfig, a: RunArgs) -> Result<u8> {
    let (carrier, config) = carrier(state, cfg, !a.no_install)?;
    let mut plan = super::run::base_plan(&a, cfg, format!("ssh:{}", crate::state::hostname()), "ssh")?;
    plan.targets = targets(&config, &a.targets, &a.tags)?;
    let dialer = super::run::dialer(state, cfg, &a, crate::protocol::daemon::Via::Ssh, Arc::new(carrier))?;
    Ok(super::run::timed_ping(Carrier::Dial(dialer), plan)?.1)
}
