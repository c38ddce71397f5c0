//! Dispatch: turn `TARGETS` into agents (`nodeset`, `registry`), make a
//! [`plan::Plan`], run it over any carrier on the one path of [`runner`]
//! (hook, then `sessions` for dialled carriers or `broadcast` for broadcast
//! ones), print what comes back (`output`) and reduce it to target states
//! and an exit bitmask (`outcome`). This file resolves targets and reads
//! the dispatcher's optional config.

pub mod broadcast;
pub mod event;
pub mod files;
pub mod groups;
pub mod guard;
pub mod hook;
pub mod locks;
pub mod nodeset;
pub mod outcome;
pub mod output;
pub mod ping;
pub mod plan;
pub mod progress;
pub mod registry;
pub mod runner;
pub mod runs;
pub mod sessions;
pub mod status;

pub use runner::run;

use crate::settings::{self, TomlError};
use crate::transport::carrier::{Reason, Target};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `<state>/dispatcher.toml`, all optional. Durations are whole seconds
/// from 1 to [`crate::settings::MAX_SECONDS`], checked as they are parsed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatcherConfig {
    /// Dispatcher-side auth hook, run before any connection; relative to
    /// the state dir.
    pub hook: Option<PathBuf>,
    /// Whole seconds the hook may run before it is killed and denies.
    #[serde(default = "default_hook_timeout", deserialize_with = "settings::whole_seconds")]
    pub hook_timeout: u64,
    /// Whole seconds for TCP connect, TLS handshake and Hello.
    #[serde(default = "default_connect_timeout", deserialize_with = "settings::whole_seconds")]
    pub connect_timeout: u64,
    /// Targets in flight at once (at least 1).
    #[serde(default = "default_fanout", deserialize_with = "settings::at_least_one")]
    pub fanout: usize,
    /// Whole seconds run records (`runs/`) are kept (default one day).
    #[serde(default = "default_retention", deserialize_with = "settings::whole_seconds")]
    pub result_retention: u64,
    /// Whole seconds each target may run when `--timeout` is not given.
    #[serde(default = "default_timeout", deserialize_with = "settings::whole_seconds")]
    pub default_timeout: u64,
    /// Station settings for `--via hub`.
    #[serde(default)]
    pub hub: crate::hub::config::StationHub,
}

/// Why dispatcher.toml cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DispatcherConfigError {
    #[error("cannot read {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("dispatcher config {0}")]
    Parse(#[from] TomlError),
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
fn default_retention() -> u64 {
    86_400
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
            result_retention: default_retention(),
            hub: Default::default(),
        }
    }
}

impl DispatcherConfig {
    /// `<state>/dispatcher.toml`, or the defaults when there is none.
    pub fn load(state: &Path) -> Result<Self, DispatcherConfigError> {
        let path = state.join("dispatcher.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(DispatcherConfigError::Read { path, source }),
        }
    }

    /// Parse the text of `path` (named in errors); a relative hook is taken
    /// from `path`'s directory (the state dir).
    pub fn parse(text: &str, path: &Path) -> Result<Self, DispatcherConfigError> {
        let mut c: DispatcherConfig = settings::from_toml(text, &path.display().to_string())?;
        let dir = path.parent().unwrap_or(Path::new("."));
        c.hook = c.hook.map(|h| crate::agent::config::resolve(dir, &h));
        Ok(c)
    }

    /// [`Self::connect_timeout`] as a duration.
    pub fn connect_limit(&self) -> Duration {
        Duration::from_secs(self.connect_timeout)
    }

    /// [`Self::hook_timeout`] as a duration.
    pub fn hook_limit(&self) -> Duration {
        Duration::from_secs(self.hook_timeout)
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

/// The reason kind of a target whose registry entry is revoked.
pub const REVOKED: &str = "revoked";

/// Resolve a TARGETS spec (`all` or a node set) against the registry,
/// keeping agents that carry every tag in `tags`. An agent whose entry is
/// revoked is never dialled: it is left out with reason [`REVOKED`].
/// Groups in the spec are [`registry_groups`]: `@all`, registry tags and
/// `groups.toml` in the config dir.
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
        let groups = registry_groups(&entries, &crate::state::config_dir());
        nodeset::expand_with(spec, &groups, nodeset::Bounds::DEFAULT).map_err(|e| format!("bad TARGETS: {e}"))?
    };
    for name in names {
        match entries.iter().find(|e| e.name == name) {
            Some(e) if has_tags(e) && e.revoked.is_some() => out.missing.push((
                name.clone(),
                Reason::new(
                    REVOKED,
                    format!(
                        "revoked: its certificate (serial {}) was revoked on {}; pair it again to use it",
                        e.serial,
                        e.revoked.as_deref().unwrap_or("?")
                    ),
                ),
            )),
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

/// The groups TARGETS may name for registered agents: `@all` every entry,
/// `@TAG` the entries carrying TAG, and the groups of `groups.toml` in
/// `config_dir` (which win over a tag of the same name). With no entries
/// there is no `@all` (an unknown group, never an empty set).
pub fn registry_groups(entries: &[registry::AgentEntry], config_dir: &Path) -> groups::Inventory {
    let all = (!entries.is_empty()).then(|| entries.iter().map(|e| e.name.clone()).collect());
    groups::Inventory::new(all, entries.iter().map(|e| (e.name.as_str(), e.tags.as_slice())), config_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatcher_config_checks_durations_and_counts() {
        let p = Path::new("/st/dispatcher.toml");
        let c = DispatcherConfig::parse("hook = \"./h\"\nconnect_timeout = 2\n", p).unwrap();
        assert_eq!(
            (c.hook.clone(), c.connect_limit(), c.hook_limit(), c.fanout),
            (Some("/st/h".into()), Duration::from_secs(2), Duration::from_secs(10), 64)
        );
        for (text, want) in [
            (
                "connect_timeout = 1e20",
                "/st/dispatcher.toml:1:19: connect_timeout: 100000000000000000000 seconds is more",
            ),
            ("\nhook_timeout = 0", "/st/dispatcher.toml:2:16: hook_timeout: 0 seconds is too short"),
            ("hook_timeout = 0.5", "/st/dispatcher.toml:1:16: hook_timeout: 0.5 seconds is too short"),
            ("connect_timeout = -1", "connect_timeout: -1 seconds is too short"),
            ("fanout = 0", "/st/dispatcher.toml:1:10: fanout: 0 is too small"),
            ("[hub]\nchannel = \"a b\"", "/st/dispatcher.toml:"),
            ("bogus = 1", "/st/dispatcher.toml:1:1: unknown field `bogus`"),
        ] {
            let e = DispatcherConfig::parse(text, p).unwrap_err().to_string();
            assert!(e.starts_with("dispatcher config /st/dispatcher.toml:") && e.contains(want), "{text}: {e}");
        }
        let d = tempfile::tempdir().unwrap();
        assert_eq!(DispatcherConfig::load(d.path()).unwrap().fanout, 64);
        std::fs::write(d.path().join("dispatcher.toml"), "fanout = 3\n").unwrap();
        assert_eq!(DispatcherConfig::load(d.path()).unwrap().fanout, 3);
    }
}
