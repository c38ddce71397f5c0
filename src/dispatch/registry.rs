//! The agent registry: one JSON file per agent under `<state>/agents/`,
//! written atomically, read whole on every command (the dispatcher keeps no
//! runtime state, so several instances can share the directory).

use crate::fsutil;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentEntry {
    pub name: String,
    /// `host:port` the dispatcher dials.
    pub addr: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Serial of the agent's certificate (lowercase hex).
    #[serde(default)]
    pub serial: String,
    /// Certificate expiry, RFC 3339.
    #[serde(default)]
    pub not_after: String,
    /// When the entry was added, RFC 3339.
    #[serde(default)]
    pub added: String,
}

pub fn dir(state: &Path) -> PathBuf {
    state.join("agents")
}

pub fn path(state: &Path, name: &str) -> PathBuf {
    dir(state).join(format!("{name}.json"))
}

/// Write (or replace) an entry atomically.
pub fn save(state: &Path, e: &AgentEntry) -> std::io::Result<()> {
    let mut body = serde_json::to_vec_pretty(e).map_err(std::io::Error::other)?;
    body.push(b'\n');
    fsutil::write_public(&path(state, &e.name), &body)
}

pub fn load(state: &Path, name: &str) -> Result<Option<AgentEntry>, String> {
    let p = path(state, name);
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| format!("registry entry {} is not valid: {e}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", p.display())),
    }
}

/// Every entry, sorted by name. Unreadable entries are reported, not fatal.
pub fn load_all(state: &Path) -> (Vec<AgentEntry>, Vec<String>) {
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    let Ok(rd) = std::fs::read_dir(dir(state)) else {
        return (ok, bad);
    };
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(".json") else { continue };
        if stem.starts_with('.') {
            continue;
        }
        match load(state, stem) {
            Ok(Some(e)) => ok.push(e),
            Ok(None) => {}
            Err(e) => bad.push(e),
        }
    }
    ok.sort_by(|a, b| a.name.cmp(&b.name));
    (ok, bad)
}

pub fn remove(state: &Path, name: &str) -> std::io::Result<bool> {
    match std::fs::remove_file(path(state, name)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
