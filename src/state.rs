//! Where state lives: `--state-dir`, else `$MUSTER_STATE`, else
//! `/var/lib/muster` for root, else `$XDG_STATE_HOME/muster` (or
//! `~/.local/state/muster`).

use std::path::PathBuf;

pub fn dispatcher_dir(flag: Option<PathBuf>) -> PathBuf {
    if let Some(p) = flag {
        return p;
    }
    if let Some(p) = std::env::var_os("MUSTER_STATE").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/muster");
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("muster");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/state/muster")
}
