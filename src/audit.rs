//! The audit log: one JSON line per run, whoever started it (the CLI,
//! the HTTP API or a console), in `<state>/audit/audit.log`. Each line
//! says who (user, API token name or certificate), from where, what
//! (action and arguments, secrets masked), which targets, how many ended
//! in each state, and how long it took. Lines are appended with `fsync`;
//! past [`ROTATE_BYTES`] the file is renamed `audit.log.1` (the previous
//! `.1` is dropped), so the log's size is bounded at twice that.

use crate::dispatch::outcome::Outcome;
use crate::dispatch::plan::Plan;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Size in bytes past which the log is rotated (16 MiB).
pub const ROTATE_BYTES: u64 = 16 << 20;

/// What an argument becomes when it looks like a secret.
pub const MASK: &str = "***";

/// One audit line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// RFC 3339, when the run ended.
    pub time: String,
    /// Seconds since the epoch, when the run ended (for `--since`).
    pub time_s: u64,
    pub request_id: String,
    /// `cli`, `api` or `console`.
    pub origin: String,
    /// The user the run was made for (the login name on the CLI, the token
    /// or certificate name on the API).
    pub user: String,
    /// Where the request came from: `tty /dev/pts/3`, `pid 1234`, or the
    /// API client's `IP:PORT`.
    pub from: String,
    pub via: String,
    pub action: String,
    /// The arguments with secrets masked (see [`mask_args`]).
    pub args: Vec<String>,
    /// Every target of the plan, dialled or not.
    pub targets: Vec<String>,
    /// How many targets ended in each state (`succeeded`, `failed`, ...).
    pub states: BTreeMap<String, usize>,
    /// Why the whole run was refused, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    pub exit: u8,
    pub duration_s: f64,
}

/// Errors writing or reading the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot write the audit log {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read the audit log {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
}

/// `<state>/audit/audit.log`.
pub fn path(state: &Path) -> PathBuf {
    state.join("audit").join("audit.log")
}

/// Mask what looks like a secret: the value of `NAME=VALUE` when NAME
/// contains `pass`, `secret`, `token` or `key` (any case), and the word
/// after a `--password`-like option.
pub fn mask_args(args: &[String]) -> Vec<String> {
    let secretish = |name: &str| {
        let n = name.to_ascii_lowercase();
        ["pass", "secret", "token", "key"].iter().any(|w| n.contains(w))
    };
    let mut out = Vec::with_capacity(args.len());
    let mut next_is_secret = false;
    for a in args {
        if next_is_secret {
            out.push(MASK.to_string());
            next_is_secret = false;
            continue;
        }
        match a.split_once('=') {
            Some((name, _)) if secretish(name) => out.push(format!("{name}={MASK}")),
            _ => {
                if a.starts_with('-') && secretish(a) {
                    next_is_secret = true;
                }
                out.push(a.clone());
            }
        }
    }
    out
}

impl AuditEntry {
    /// The entry for `plan`, which ended as `outcome` after `duration_s`.
    pub fn of(plan: &Plan, outcome: &Outcome, origin: &str, from: &str, duration_s: f64) -> AuditEntry {
        let mut states = BTreeMap::new();
        for r in &outcome.results {
            *states.entry(r.state.label().to_string()).or_insert(0) += 1;
        }
        let mut targets: Vec<String> = plan.targets.iter().map(|t| t.name.clone()).collect();
        targets.extend(plan.missing.iter().map(|(n, _)| n.clone()));
        let now = crate::pairing::now();
        AuditEntry {
            time: crate::timefmt::now_rfc3339(),
            time_s: now,
            request_id: plan.request.request_id.clone(),
            origin: origin.to_string(),
            user: plan.request.username.clone(),
            from: from.to_string(),
            via: plan.via.clone(),
            action: plan.request.action.clone(),
            args: mask_args(&plan.request.args),
            targets,
            states,
            refused: outcome.refused_run.as_ref().map(|r| r.to_string()),
            exit: outcome.exit_status(),
            duration_s: (duration_s * 1000.0).round() / 1000.0,
        }
    }
}

/// The local user's login name: `$USER`, else `$LOGNAME`, else the
/// password database's name for this uid, else `uid N`, so a run from a
/// shell without `USER` (cron, `env -i`) is still attributed.
pub fn login_name() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(v) = std::env::var(var) {
            if !v.is_empty() {
                return v;
            }
        }
    }
    // SAFETY: getuid has no preconditions; getpwuid_r writes only into the
    // buffers given, and the name is read before they go out of scope.
    unsafe {
        let uid = libc::getuid();
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        if libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) == 0
            && !out.is_null()
            && !pw.pw_name.is_null()
        {
            if let Ok(n) = std::ffi::CStr::from_ptr(pw.pw_name).to_str() {
                return n.to_string();
            }
        }
        format!("uid {uid}")
    }
}

/// Where a CLI or console user sits: the terminal on stdin, else the pid.
pub fn local_origin() -> String {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        if let Ok(p) = std::fs::read_link("/proc/self/fd/0") {
            return format!("tty {}", p.display());
        }
    }
    format!("pid {}", std::process::id())
}

/// Append `entry` as one line and fsync; rotate first when the log is
/// past [`ROTATE_BYTES`]. Appends from several processes interleave whole
/// lines (one `write` of the line with `O_APPEND`).
pub fn append(state: &Path, entry: &AuditEntry) -> Result<(), AuditError> {
    let p = path(state);
    let err = |source| AuditError::Write { path: p.clone(), source };
    let dir = p.parent().unwrap_or(state);
    std::fs::create_dir_all(dir).map_err(err)?;
    if std::fs::metadata(&p).map(|m| m.len() >= ROTATE_BYTES).unwrap_or(false) {
        std::fs::rename(&p, p.with_extension("log.1")).map_err(err)?;
    }
    let mut line = serde_json::to_vec(entry).map_err(|e| err(std::io::Error::other(e)))?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new().create(true).append(true).mode_0600().open(&p).map_err(err)?;
    f.write_all(&line).map_err(err)?;
    f.sync_data().map_err(err)
}

/// Every entry with `time_s >= since` (0: all), oldest first, from the
/// rotated file and the current one. Lines that do not parse are
/// returned as errors with their place, after the good ones are kept.
pub fn read(state: &Path, since: u64) -> Result<(Vec<AuditEntry>, Vec<String>), AuditError> {
    let p = path(state);
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    for file in [p.with_extension("log.1"), p.clone()] {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(AuditError::Read { path: file, source }),
        };
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<AuditEntry>(line) {
                Ok(e) if e.time_s >= since => entries.push(e),
                Ok(_) => {}
                Err(e) => bad.push(format!("{}:{}: not an audit entry: {e}", file.display(), i + 1)),
            }
        }
    }
    Ok((entries, bad))
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn secrets_are_masked_and_the_rest_kept() {
        assert_eq!(
            mask_args(&v(&["PASSWORD=x", "db_key=y", "name=web", "--token", "abc", "--verbose", "plain"])),
            v(&["PASSWORD=***", "db_key=***", "name=web", "--token", "***", "--verbose", "plain"])
        );
        assert_eq!(mask_args(&v(&["--api-key=zz"])), v(&["--api-key=***"]));
        assert_eq!(mask_args(&v(&["--password"])), v(&["--password"]));
    }

    #[test]
    fn the_log_rotates_past_its_size_and_reads_both_files() {
        let d = tempfile::tempdir().unwrap();
        let e = AuditEntry {
            time: "t".into(),
            time_s: 5,
            request_id: "r".into(),
            origin: "cli".into(),
            user: "u".into(),
            from: "pid 1".into(),
            via: "tls".into(),
            action: "a".into(),
            args: vec![],
            targets: vec!["w1".into()],
            states: BTreeMap::new(),
            refused: None,
            exit: 0,
            duration_s: 0.1,
        };
        append(d.path(), &e).unwrap();
        // Make the current file look full: the next append rotates it.
        let f = std::fs::OpenOptions::new().append(true).open(path(d.path())).unwrap();
        f.set_len(ROTATE_BYTES).unwrap();
        append(d.path(), &AuditEntry { time_s: 9, ..e.clone() }).unwrap();
        assert!(path(d.path()).with_extension("log.1").exists());
        let (got, bad) = read(d.path(), 9).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(bad.len(), 1, "the padded file's zero bytes are one bad line: {bad:?}");
    }
}
