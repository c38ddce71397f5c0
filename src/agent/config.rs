//! The agent's TOML configuration. Relative paths are resolved once,
//! against the directory holding the config file (itself made absolute from
//! the current directory), so a self-contained agent directory (as `muster
//! ca issue-agent --out DIR` writes) can be moved as a whole and started
//! from anywhere. Every value is checked as it is parsed (durations in
//! range, names by the name rule, counts at least 1); errors name the file,
//! line and key.

use crate::settings::{self, TomlError};
use serde::Deserialize;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// Why an agent config cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read agent config {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("agent config {0}")]
    Parse(#[from] TomlError),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The agent's name (action-name rule); its certificate must name it.
    #[serde(deserialize_with = "settings::agent_name")]
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
    /// Requests running at once (at least 1); more are refused busy.
    #[serde(default = "default_max_concurrent", deserialize_with = "settings::at_least_one")]
    pub max_concurrent: u32,
    /// Output bytes per request forwarded before truncation.
    #[serde(default = "default_output_cap")]
    pub output_cap: usize,
    /// Whole seconds (1 to [`settings::MAX_SECONDS`]); applies when the
    /// request names none.
    #[serde(default = "default_timeout", deserialize_with = "settings::whole_seconds")]
    pub default_timeout: u64,
    /// Upper bound on any requested timeout, whole seconds (1 to 365 days).
    #[serde(default = "default_max_timeout", deserialize_with = "settings::whole_seconds")]
    pub max_timeout: u64,
    /// Between TERM and KILL; written in seconds, fractions allowed (0 to
    /// 365 days).
    #[serde(default = "default_grace", deserialize_with = "settings::seconds")]
    pub kill_grace: Duration,
    #[serde(default)]
    pub allow_shell: bool,
    /// Agent-side auth hook, run after the allowlist check.
    #[serde(default)]
    pub hook: Option<PathBuf>,
    /// Whole seconds the hook may run before it is killed and denies.
    #[serde(default = "default_hook_timeout", deserialize_with = "settings::whole_seconds")]
    pub hook_timeout: u64,
    /// Whole seconds for the TLS handshake and Hello.
    #[serde(default = "default_handshake_timeout", deserialize_with = "settings::whole_seconds")]
    pub handshake_timeout: u64,
    /// Whole seconds a session with nothing running and nothing said is kept.
    #[serde(default = "default_idle_timeout", deserialize_with = "settings::whole_seconds")]
    pub idle_timeout: u64,
    #[serde(default = "default_max_frame")]
    pub max_frame: usize,
    /// Authenticated sessions at once; a trusted dispatcher beyond this is
    /// answered `busy` after its handshake. (`max_connections` is the old name.)
    #[serde(default = "default_max_sessions", alias = "max_connections", deserialize_with = "settings::at_least_one")]
    pub max_sessions: usize,
    /// Connections still in their TLS handshake at once; beyond this the
    /// oldest unauthenticated one is dropped to make room.
    #[serde(default = "default_max_handshakes", deserialize_with = "settings::at_least_one")]
    pub max_handshakes: usize,
    /// Variables added to every action's environment (over PATH, HOME and
    /// LANG; under the request's own `MUSTER_*` names).
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Whole seconds an asynchronous request's result is kept after its
    /// last change (default one day).
    #[serde(default = "default_result_retention", deserialize_with = "settings::whole_seconds")]
    pub result_retention: u64,
    /// Directories under which `read-file`, `write-file`, `muster put` and
    /// `muster get` may read and write (absolute, or relative to this
    /// file's directory); none by default.
    #[serde(default)]
    pub file_roots: Vec<PathBuf>,
    /// Largest file read or written, bytes (default 1 GiB).
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
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
fn default_grace() -> Duration {
    Duration::from_secs(5)
}
fn default_hook_timeout() -> u64 {
    10
}
fn default_handshake_timeout() -> u64 {
    10
}
fn default_max_file_bytes() -> u64 {
    1 << 30
}
fn default_result_retention() -> u64 {
    86_400
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
    /// Read and parse `path`; relative paths inside are resolved against
    /// the absolute form of its directory.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let cwd = std::env::current_dir().map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::load_in(&cwd, path)
    }

    /// [`AgentConfig::load`] as if the current directory were `cwd`.
    pub fn load_in(cwd: &Path, path: &Path) -> Result<AgentConfig, ConfigError> {
        let abs = resolve(cwd, path);
        let text =
            std::fs::read_to_string(&abs).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let base = abs.parent().unwrap_or(Path::new("/"));
        Self::parse_file(&text, base, &path.display().to_string())
    }

    /// Parse TOML text; relative paths are resolved against `base`. Errors
    /// name the file as `agent.toml`.
    pub fn parse(text: &str, base: &Path) -> Result<AgentConfig, ConfigError> {
        Self::parse_file(text, base, "agent.toml")
    }

    /// Parse TOML text read from `file` (named in errors); relative paths
    /// are resolved against `base`.
    pub fn parse_file(text: &str, base: &Path, file: &str) -> Result<AgentConfig, ConfigError> {
        let mut c: AgentConfig = settings::from_toml(text, file)?;
        c.state_dir = resolve(base, &c.state_dir);
        c.allowlist = Some(match c.allowlist.take() {
            Some(p) => resolve(base, &p),
            None => c.state_dir.join("scripts.conf"),
        });
        c.run_dirs = c.run_dirs.iter().map(|p| resolve(base, p)).collect();
        c.action_roots = c.action_roots.iter().map(|p| resolve(base, p)).collect();
        c.hook = c.hook.as_deref().map(|p| resolve(base, p));
        c.file_roots = c.file_roots.iter().map(|p| resolve(base, p)).collect();
        if let Some(h) = c.hub.as_mut() {
            h.resolve(base);
        }
        Ok(c)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.state_dir.join(file)
    }

    /// Time between TERM and KILL.
    pub fn grace(&self) -> Duration {
        self.kill_grace
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

/// `p` if absolute, else `base/p`; `.` components are dropped (`..` is
/// kept: it may cross a symlink).
pub fn resolve(base: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
    joined.components().filter(|c| !matches!(c, Component::CurDir)).collect()
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
        let err = |t: &str| AgentConfig::parse(t, Path::new("/")).unwrap_err().to_string();
        let e = err("name = \"a b\"\nstate_dir = \"/s\"\n");
        assert!(e.starts_with("agent config agent.toml:1:8: agent name \"a b\""), "{e}");
        let e = err("name = \"a\"\nstate_dir = \"/s\"\nbogus = 1\n");
        assert!(e.contains("agent.toml:3:1") && e.contains("bogus"), "{e}");
    }

    #[test]
    fn relative_config_paths_resolve_once_from_any_directory() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let a = root.join("a");
        std::fs::create_dir_all(root.join("x")).unwrap();
        std::fs::create_dir_all(&a).unwrap();
        std::fs::write(
            a.join("agent.toml"),
            "name = \"a1\"\nstate_dir = \".\"\nrun_dirs = [\"./bin\"]\nhook = \"h\"\n",
        )
        .unwrap();
        let shapes: [(&Path, &str); 5] = [
            (root, "./a/agent.toml"),
            (root, "a/agent.toml"),
            (&a, "agent.toml"),
            (&a, "./agent.toml"),
            (&root.join("x"), "../a/agent.toml"),
        ];
        for (cwd, path) in shapes {
            let c = AgentConfig::load_in(cwd, Path::new(path)).unwrap();
            let want = |p: &str| if path.starts_with("..") { root.join("x/../a").join(p) } else { a.join(p) };
            assert_eq!(c.state_dir, want(""), "{path}");
            assert_eq!(c.allowlist, Some(want("scripts.conf")), "{path}");
            assert_eq!(c.run_dirs, vec![want("bin")], "{path}");
            assert_eq!(c.hook, Some(want("h")), "{path}");
        }
        // A state dir of its own: the default allowlist lives there, joined once.
        std::fs::write(a.join("agent.toml"), "name = \"a1\"\nstate_dir = \"./st\"\nallowlist = \"./s.conf\"\n")
            .unwrap();
        let c = AgentConfig::load_in(root, Path::new("./a/agent.toml")).unwrap();
        assert_eq!((c.state_dir, c.allowlist), (a.join("st"), Some(a.join("s.conf"))));
        let e = AgentConfig::load_in(root, Path::new("nope/agent.toml")).unwrap_err().to_string();
        assert!(e.starts_with("cannot read agent config nope/agent.toml: "), "{e}");
    }

    #[test]
    fn every_duration_is_checked_with_file_and_line() {
        let base = "name = \"a\"\nstate_dir = \"/s\"\n";
        let parse = |extra: &str| AgentConfig::parse_file(&format!("{base}{extra}\n"), Path::new("/"), "/etc/a.toml");
        let e = parse("kill_grace = 1e20").unwrap_err().to_string();
        assert!(e.starts_with("agent config /etc/a.toml:3:14: kill_grace: 100000000000000000000 seconds"), "{e}");
        for key in ["default_timeout", "max_timeout", "hook_timeout", "handshake_timeout", "idle_timeout"] {
            for (value, why) in
                [("1e20", "more than the largest"), ("0", "at least 1"), ("-5", "too short"), ("2.5", "whole")]
            {
                let e = parse(&format!("{key} = {value}")).unwrap_err().to_string();
                assert!(e.contains("/etc/a.toml:3:") && e.contains(key) && e.contains(why), "{key}={value}: {e}");
            }
            assert!(parse(&format!("{key} = 31536000")).is_ok(), "{key} at the maximum");
        }
        for v in ["-0.1", "nan", "inf", "31536000.5"] {
            assert!(parse(&format!("kill_grace = {v}")).is_err(), "kill_grace = {v}");
        }
        let c = parse("kill_grace = 0.25\nmax_timeout = 7.0").unwrap();
        assert_eq!((c.grace(), c.max_timeout), (Duration::from_millis(250), 7));
        let e = parse("max_concurrent = 0").unwrap_err().to_string();
        assert!(e.contains(":3:18: max_concurrent: 0 is too small"), "{e}");
    }
}
