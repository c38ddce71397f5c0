//! The agent's TOML configuration. Relative paths are taken relative to the
//! directory holding the config file, so a self-contained agent directory
//! (as `muster ca issue-agent --out DIR` writes) can be moved as a whole.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read agent config {path}: {why}")]
    Read { path: String, why: String },
    #[error("agent config {path} is not valid: {why}")]
    Parse { path: String, why: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The agent's name; its certificate must name it.
    pub name: String,
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Holds agent.key, agent.crt, ca.crt, dispatchers, revoked-serials, work/.
    pub state_dir: PathBuf,
    /// `name = /absolute/path` lines; default `<state_dir>/scripts.conf`.
    #[serde(default)]
    pub allowlist: Option<PathBuf>,
    #[serde(default)]
    pub run_dirs: Vec<PathBuf>,
    /// ns8-style action roots: `ROOT/<action>/<step>`, steps in name order
    /// across roots, a later root's step replacing an earlier one.
    #[serde(default)]
    pub action_roots: Vec<PathBuf>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: u32,
    /// Output bytes per request forwarded before truncation.
    #[serde(default = "default_output_cap")]
    pub output_cap: usize,
    /// Seconds; applies when the request names none.
    #[serde(default = "default_timeout")]
    pub default_timeout: u64,
    /// Upper bound on any requested timeout, in seconds.
    #[serde(default = "default_max_timeout")]
    pub max_timeout: u64,
    /// Seconds between TERM and KILL.
    #[serde(default = "default_grace")]
    pub kill_grace: f64,
    #[serde(default)]
    pub allow_shell: bool,
    /// Agent-side auth hook, run after the allowlist check.
    #[serde(default)]
    pub hook: Option<PathBuf>,
    #[serde(default = "default_hook_timeout")]
    pub hook_timeout: u64,
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout: u64,
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: u64,
    #[serde(default = "default_max_frame")]
    pub max_frame: usize,
    /// Authenticated sessions at once; a trusted dispatcher beyond this is
    /// answered `busy` after its handshake. (`max_connections` is the old name.)
    #[serde(default = "default_max_sessions", alias = "max_connections")]
    pub max_sessions: usize,
    /// Connections still in their TLS handshake at once; beyond this the
    /// oldest unauthenticated one is dropped to make room.
    #[serde(default = "default_max_handshakes")]
    pub max_handshakes: usize,
    /// Variables added to every action's environment (over PATH, HOME and
    /// LANG; under the request's own `MUSTER_*` names).
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Serve dispatchers over mutual TLS on `listen`.
    #[serde(default = "default_true")]
    pub tls: bool,
    /// Serve a Redis hub channel.
    #[serde(default)]
    pub hub: Option<crate::hub::config::AgentHub>,
}

fn default_true() -> bool {
    true
}

fn default_listen() -> String {
    "0.0.0.0:7443".into()
}
fn default_max_concurrent() -> u32 {
    32
}
fn default_output_cap() -> usize {
    4 << 20
}
fn default_timeout() -> u64 {
    300
}
fn default_max_timeout() -> u64 {
    86_400
}
fn default_grace() -> f64 {
    5.0
}
fn default_hook_timeout() -> u64 {
    10
}
fn default_handshake_timeout() -> u64 {
    10
}
fn default_idle_timeout() -> u64 {
    60
}
fn default_max_sessions() -> usize {
    256
}
fn default_max_handshakes() -> usize {
    64
}
fn default_max_frame() -> usize {
    crate::protocol::DEFAULT_MAX_FRAME
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read { path: path.display().to_string(), why: e.to_string() })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|why| ConfigError::Parse { path: path.display().to_string(), why })
    }

    /// Parse TOML text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<AgentConfig, String> {
        let mut c: AgentConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        crate::protocol::check_action_name(&c.name)
            .map_err(|e| format!("name: {}", e.to_string().replace("action name", "agent name")))?;
        let abs = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
        c.state_dir = abs(&c.state_dir);
        c.allowlist = Some(abs(c.allowlist.as_deref().unwrap_or(&c.state_dir.join("scripts.conf"))));
        c.run_dirs = c.run_dirs.iter().map(|p| abs(p)).collect();
        c.action_roots = c.action_roots.iter().map(|p| abs(p)).collect();
        c.hook = c.hook.as_deref().map(abs);
        if let Some(h) = c.hub.as_mut() {
            h.resolve(base);
        }
        if !(c.kill_grace.is_finite() && c.kill_grace >= 0.0) {
            return Err("kill_grace must be a non-negative number of seconds".into());
        }
        if c.max_concurrent == 0 {
            return Err("max_concurrent must be at least 1".into());
        }
        if c.max_sessions == 0 || c.max_handshakes == 0 {
            return Err("max_sessions and max_handshakes must be at least 1".into());
        }
        Ok(c)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.state_dir.join(file)
    }

    pub fn grace(&self) -> Duration {
        Duration::try_from_secs_f64(self.kill_grace).unwrap_or(Duration::MAX)
    }

    pub fn hook_timeout(&self) -> Duration {
        Duration::from_secs(self.hook_timeout)
    }

    pub fn default_timeout(&self) -> Duration {
        Duration::from_secs(self.default_timeout)
    }

    pub fn max_timeout(&self) -> Duration {
        Duration::from_secs(self.max_timeout)
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_relative_paths() {
        let c = AgentConfig::parse("name = \"web01\"\nstate_dir = \"st\"\n", Path::new("/etc/m")).unwrap();
        assert_eq!(c.listen, "0.0.0.0:7443");
        assert_eq!(c.state_dir, PathBuf::from("/etc/m/st"));
        assert_eq!(c.allowlist, Some(PathBuf::from("/etc/m/st/scripts.conf")));
        assert!(!c.allow_shell);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = AgentConfig::parse("name = \"a b\"\nstate_dir = \"/s\"\n", Path::new("/")).unwrap_err();
        assert!(e.contains("agent name"), "{e}");
        let e = AgentConfig::parse("name = \"a\"\nstate_dir = \"/s\"\nbogus = 1\n", Path::new("/")).unwrap_err();
        assert!(e.contains("bogus"), "{e}");
    }
}
