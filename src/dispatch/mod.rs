//! Dispatch: turn `TARGETS` into agents (`nodeset`, `registry`), fan a
//! request out over a [`carrier::Carrier`] (`runner`), print what comes back
//! (`output`) and reduce it to target states and an exit bitmask
//! (`outcome`). This file resolves targets and reads the dispatcher's
//! optional config.

pub mod carrier;
pub mod locks;
pub mod nodeset;
pub mod outcome;
pub mod output;
pub mod ping;
pub mod registry;
pub mod runner;

use carrier::Target;
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

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            hook: None,
            hook_timeout: default_hook_timeout(),
            connect_timeout: default_connect_timeout(),
            fanout: default_fanout(),
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
    pub missing: Vec<(String, String)>,
}

/// Resolve a TARGETS spec (`all` or a node set) against the registry,
/// keeping agents that carry every tag in `tags`.
pub fn resolve(state: &Path, spec: &str, tags: &[String]) -> Result<Resolved, String> {
    let (entries, bad) = registry::load_all(state);
    for b in &bad {
        tracing::warn!("{b}");
    }
    let has_tags = |e: &registry::AgentEntry| tags.iter().all(|t| e.tags.contains(t));
    let mut out = Resolved::default();
    let names: Vec<String> = if spec.trim() == "all" {
        entries.iter().map(|e| e.name.clone()).collect()
    } else {
        nodeset::expand(spec).map_err(|e| format!("bad TARGETS: {e}"))?
    };
    for name in names {
        match entries.iter().find(|e| e.name == name) {
            Some(e) if has_tags(e) => out.targets.push(Target { name: e.name.clone(), addr: e.addr.clone() }),
            Some(_) => {}
            None => {
                out.missing.push((name.clone(), format!("no registry entry for {name} (see `muster agents list`)")))
            }
        }
    }
    Ok(out)
}
