//! The agent binary a host runs over SSH, and getting it there. The local
//! `muster` binary is the agent: before first use on a host the carrier
//! checks for `<install_dir>/muster-<version>-<sha256 first 12 hex>`; when
//! it is absent (first use, or another version) it copies the running
//! binary over the same SSH connection to a temporary name, verifies its
//! SHA-256 on the host, and renames it into place. A host of another
//! architecture is refused with both named. What was installed where is
//! recorded per host in `<state>/ssh/hosts.json`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The running binary, as the agent to install.
#[derive(Debug, Clone)]
pub struct AgentBinary {
    pub path: PathBuf,
    pub version: String,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
    /// `uname -m` of this machine's architecture.
    pub arch: String,
}

impl AgentBinary {
    /// Hash the running executable.
    pub fn current() -> std::io::Result<AgentBinary> {
        let path = std::env::current_exe()?;
        let mut f = std::fs::File::open(&path)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(AgentBinary {
            path,
            version: env!("CARGO_PKG_VERSION").to_string(),
            sha256: crate::hexstr::encode(&h.finalize()),
            arch: std::env::consts::ARCH.to_string(),
        })
    }

    /// `muster-<version>-<first 12 hex of the hash>`.
    pub fn file_name(&self) -> String {
        format!("muster-{}-{}", self.version, &self.sha256[..12])
    }
}

/// Quote `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A shell expression for directory `dir`, with a leading `~/` as the
/// remote `$HOME`.
pub fn dir_expr(dir: &str) -> String {
    match dir.strip_prefix("~/") {
        Some(rest) => format!("\"$HOME\"/{}", sh_quote(rest)),
        None if dir == "~" => "\"$HOME\"".to_string(),
        None => sh_quote(dir),
    }
}

/// The remote check: prints the architecture, then `present` or `absent`.
pub fn probe_script(dir: &str, bin: &AgentBinary) -> String {
    format!(
        "uname -m; if [ -x {d}/{n} ]; then echo present; else echo absent; fi",
        d = dir_expr(dir),
        n = sh_quote(&bin.file_name())
    )
}

/// The remote install: the binary arrives on stdin, is checked, renamed.
pub fn install_script(dir: &str, bin: &AgentBinary) -> String {
    format!(
        "set -e; d={d}; mkdir -p \"$d\"; t=\"$d/.muster-upload.$$\"; trap 'rm -f \"$t\"' EXIT; cat > \"$t\"; \
         got=$(sha256sum \"$t\" | cut -d' ' -f1); if [ \"$got\" != {sum} ]; then echo \"checksum mismatch: got $got\" >&2; exit 3; fi; \
         chmod 755 \"$t\"; mv -f \"$t\" \"$d\"/{n}; trap - EXIT",
        d = dir_expr(dir),
        sum = sh_quote(&bin.sha256),
        n = sh_quote(&bin.file_name())
    )
}

/// What the start script prints to stderr (the host's agent log) when
/// this binary is not installed: the carrier then checks and installs.
pub const ABSENT: &str = "muster: this agent is not installed at";

/// The remote start of the agent, optimistic: when the binary is there
/// it is started at once (one SSH session per run once installed); when
/// it is not, the script says [`ABSENT`] on stderr and exits 97.
pub fn start_script(dir: &str, bin: &AgentBinary, max_concurrent: Option<u32>) -> String {
    let limit = max_concurrent.map(|n| format!(" --max-concurrent {n}")).unwrap_or_default();
    format!(
        "b={d}/{n}; if [ -x \"$b\" ]; then MUSTER_LOG=info exec \"$b\" agent stdio{limit}; fi; \
         echo {absent}\" $b\" >&2; exit 97",
        d = dir_expr(dir),
        n = sh_quote(&bin.file_name()),
        absent = sh_quote(ABSENT),
    )
}

/// Do `uname -m` names and Rust's `ARCH` name the same architecture?
pub fn same_arch(remote: &str, local: &str) -> bool {
    let norm = |a: &str| match a {
        "arm64" => "aarch64".to_string(),
        "amd64" => "x86_64".to_string(),
        "i686" | "i586" | "i486" => "x86".to_string(),
        other => other.to_string(),
    };
    norm(remote.trim()) == norm(local)
}

/// What is installed on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub address: String,
    pub dir: String,
    pub file: String,
    pub version: String,
    pub sha256: String,
    pub arch: String,
    /// RFC 3339 of the copy.
    pub installed: String,
}

/// `<state>/ssh/hosts.json`, updated atomically under a lock.
pub struct InstallState {
    path: PathBuf,
    lock: Mutex<()>,
    /// Copies in flight at once: each one costs the dispatcher a read of
    /// the binary and an encrypted stream of it, so a first run over a
    /// hundred hosts copies [`COPIES_AT_ONCE`] at a time instead of
    /// starving every connection of CPU and bandwidth.
    pub copies: tokio::sync::Semaphore,
}

/// How many hosts receive the agent binary at once, whatever the fan-out
/// (checks and runs are not limited by this).
pub const COPIES_AT_ONCE: usize = 8;

/// How long one copy of `size` bytes may take once it has its turn:
/// `base` (the connection's own budget) plus 1 s per MiB, so a 17 MiB
/// binary over a slow link or a busy machine still arrives.
pub fn copy_limit(base: std::time::Duration, size: u64) -> std::time::Duration {
    base + std::time::Duration::from_secs(size.div_ceil(1 << 20))
}

impl InstallState {
    pub fn new(state: &Path) -> InstallState {
        InstallState {
            path: state.join("ssh").join("hosts.json"),
            lock: Mutex::new(()),
            copies: tokio::sync::Semaphore::new(COPIES_AT_ONCE),
        }
    }

    pub fn load(&self) -> BTreeMap<String, Installed> {
        std::fs::read(&self.path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    /// Record that `host` now has `what`.
    pub fn record(&self, host: &str, what: Installed) {
        let Ok(_g) = self.lock.lock() else { return };
        let mut all = self.load();
        all.insert(host.to_string(), what);
        let mut body = serde_json::to_vec_pretty(&all).unwrap_or_default();
        body.push(b'\n');
        if let Err(e) = crate::fsutil::write_public(&self.path, &body) {
            tracing::warn!("cannot record the install in {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_quote_what_they_name() {
        assert_eq!(dir_expr("~/.local/lib/muster"), "\"$HOME\"/'.local/lib/muster'");
        assert_eq!(dir_expr("/opt/it's"), "'/opt/it'\\''s'");
        let b =
            AgentBinary { path: "/x".into(), version: "1.2.3".into(), sha256: "ab".repeat(32), arch: "x86_64".into() };
        assert_eq!(b.file_name(), "muster-1.2.3-abababababab");
        assert!(probe_script("~/.l", &b).starts_with("uname -m; if [ -x \"$HOME\"/'.l'/'muster-1.2.3-abababababab' ]"));
        assert!(install_script("/d", &b).contains("sha256sum"));
        assert!(same_arch("x86_64\n", "x86_64") && same_arch("arm64", "aarch64") && !same_arch("aarch64", "x86_64"));
    }
}
