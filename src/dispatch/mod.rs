//! Dispatch: turn `TARGETS` into agents (`nodeset`, `registry`), make a
//! [`plan::Plan`], run it over any carrier on the one path of [`runner`]
//! (hook, then `sessions` for dialled carriers or `broadcast` for broadcast
//! ones), print what comes back (`output`) and reduce it to target states
//! and an exit bitmask (`outcome`). This file resolves targets and reads
//! the dispatcher's optional config.

pub mod broadcast;
pub mod event;
pub mod guard;
pub mod hook;
pub mod locks;
pub mod nodeset;
pub mod outcome;
pub mod output;
pub mod ping;
pub mod plan;
pub mod registry;
pub mod runner;
pub mod sessions;

pub use runner::run;

use crate::transport::carrier::{Reason, Target};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `<state>/dispatcher.toml`, all optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatcherConfig {
    /// Dispatcher-side auth hook, run before any connection.
    pub hook: Option<PathBuf>,
    #[serde(default = "default_hook_timeout")]
    pub hook_timeout: u64,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: u64,
    #[serde(default = "default_fanout")]
    pub fanout: usize,
    /// Seconds each target may run when `--timeout` is not given.
    #[serde(default = "default_timeout")]
    pub default_timeout: u64,
    /// Station settings for `--via hub`.
    #[serde(default)]
    pub hub: crate::hub::config::StationHub,
}

fn default_hook_timeout() -> u64 {
    10
}
fn default_connect_timeout() -> u64 {
    5
}
fn default_fanout() -> usize {
    64
}
fn default_timeout() -> u64 {
    300
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            hook: None,
            hook_timeout: default_hook_timeout(),
            connect_timeout: default_connect_timeout(),
            fanout: default_fanout(),
            default_timeout: default_timeout(),
            hub: Default::default(),
        }
    }
}

impl DispatcherConfig {
    pub fn load(state: &Path) -> Result<Self, String> {
        let path = state.join("dispatcher.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut c: DispatcherConfig =
                    toml::from_str(&text).map_err(|e| format!("{} is not valid: {e}", path.display()))?;
                c.hook = c.hook.map(|h| if h.is_absolute() { h } else { state.join(h) });
                Ok(c)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }
}

/// Resolved targets: agents to dial, and names that cannot be dialled.
#[derive(Debug, Default)]
pub struct Resolved {
    pub targets: Vec<Target>,
    pub missing: Vec<(String, Reason)>,
    /// How many agents the registry holds at all (0: there is no registry).
    pub registered: usize,
}

/// Resolve a TARGETS spec (`all` or a node set) against the registry,
/// keeping agents that carry every tag in `tags`.
pub fn resolve(state: &Path, spec: &str, tags: &[String]) -> Result<Resolved, String> {
    let (entries, bad) = registry::load_all(state);
    for b in &bad {
        tracing::warn!("{b}");
    }
    let has_tags = |e: &registry::AgentEntry| tags.iter().all(|t| e.tags.contains(t));
    let mut out = Resolved { registered: entries.len(), ..Default::default() };
    let names: Vec<String> = if spec.trim() == "all" {
        entries.iter().map(|e| e.name.clone()).collect()
    } else {
        nodeset::expand(spec).map_err(|e| format!("bad TARGETS: {e}"))?
    };
    for name in names {
        match entries.iter().find(|e| e.name == name) {
            Some(e) if has_tags(e) => out.targets.push(Target { name: e.name.clone(), addr: e.addr.clone() }),
            Some(_) => {}
            None => out.missing.push((
                name.clone(),
                Reason::new("no registry entry", format!("no registry entry for {name} (see `muster agents list`)")),
            )),
        }
    }
    Ok(out)
}
