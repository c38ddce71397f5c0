//! Where state and configuration live. State: `--state-dir`, else
//! `$MUSTER_STATE`, else `/var/lib/muster` for root, else
//! `$XDG_STATE_HOME/muster` (or `~/.local/state/muster`). Configuration
//! (`ssh.toml`, `console.toml`): `$MUSTER_CONFIG`, else `/etc/muster` for
//! root, else `$XDG_CONFIG_HOME/muster` (or `~/.config/muster`).

use std::path::PathBuf;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn env_dir(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn home() -> PathBuf {
    env_dir("HOME").unwrap_or_else(|| PathBuf::from("."))
}

pub fn dispatcher_dir(flag: Option<PathBuf>) -> PathBuf {
    if let Some(p) = flag {
        return p;
    }
    if let Some(p) = env_dir("MUSTER_STATE") {
        return p;
    }
    if is_root() {
        return PathBuf::from("/var/lib/muster");
    }
    env_dir("XDG_STATE_HOME").map(|x| x.join("muster")).unwrap_or_else(|| home().join(".local/state/muster"))
}

/// The configuration directory.
pub fn config_dir() -> PathBuf {
    if let Some(p) = env_dir("MUSTER_CONFIG") {
        return p;
    }
    if is_root() {
        return PathBuf::from("/etc/muster");
    }
    env_dir("XDG_CONFIG_HOME").map(|x| x.join("muster")).unwrap_or_else(|| home().join(".config/muster"))
}

/// Where an agent started over SSH (`muster agent stdio`) keeps its work
/// directories and results: `$XDG_STATE_HOME/muster-agent`, or
/// `~/.local/state/muster-agent`.
pub fn stdio_agent_dir() -> PathBuf {
    env_dir("XDG_STATE_HOME")
        .map(|x| x.join("muster-agent"))
        .unwrap_or_else(|| home().join(".local/state/muster-agent"))
}

/// This host's name (for ids and the stdio agent's name).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
