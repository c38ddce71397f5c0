//! Auth hooks, the same protocol on the dispatcher and the agent: the hook
//! gets the request context as JSON on stdin (and selected fields in
//! `MUSTER_*` variables). Exit 0 allows; 1 denies; 2 denies with the reason
//! on stdout; 3 (or anything else) is a hook error and denies; a hook still
//! running after its time limit is killed and denies.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny(String),
    Error(String),
}

/// Run the hook at `path` with `context` on stdin.
pub async fn run_hook(path: &Path, context: &serde_json::Value, env: &[(String, String)], limit: Duration) -> Verdict {
    let mut cmd = tokio::process::Command::new(path);
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Verdict::Error(format!("cannot run hook {}: {e}", path.display())),
    };
    let pid = child.id().unwrap_or(0);
    if let Some(mut stdin) = child.stdin.take() {
        let body = context.to_string().into_bytes();
        tokio::spawn(async move {
            let _ = stdin.write_all(&body).await;
        });
    }
    let mut stdout = child.stdout.take();
    let work = async {
        let mut out = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.take(4096).read_to_end(&mut out).await;
        }
        (child.wait().await, out)
    };
    let (status, out) = match tokio::time::timeout(limit, work).await {
        Ok(r) => r,
        Err(_) => {
            super::runner::signal_group(pid, libc::SIGKILL);
            return Verdict::Error(format!("hook timed out after {}s and was killed", limit.as_secs_f32()));
        }
    };
    super::runner::signal_group(pid, libc::SIGKILL);
    let reason = String::from_utf8_lossy(&out).trim().to_string();
    match status.ok().and_then(|s| s.code()) {
        Some(0) => Verdict::Allow,
        Some(1) => Verdict::Deny("denied by auth hook".into()),
        Some(2) if !reason.is_empty() => Verdict::Deny(reason),
        Some(2) => Verdict::Deny("denied by auth hook (no reason given)".into()),
        Some(3) => Verdict::Error("auth hook reported an error (exit 3)".into()),
        Some(n) => Verdict::Error(format!("auth hook exited {n}")),
        None => Verdict::Error("auth hook was killed by a signal".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn verdict(body: &str, limit: Duration) -> Verdict {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("hook");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        run_hook(&p, &serde_json::json!({"action":"x"}), &[], limit).await
    }

    #[tokio::test]
    async fn each_exit_code() {
        let t = Duration::from_secs(5);
        assert_eq!(verdict("grep -q '\"action\":\"x\"' && exit 0; exit 9", t).await, Verdict::Allow);
        assert!(matches!(verdict("exit 1", t).await, Verdict::Deny(_)));
        assert_eq!(verdict("echo not on fridays; exit 2", t).await, Verdict::Deny("not on fridays".into()));
        assert!(matches!(verdict("exit 3", t).await, Verdict::Error(_)));
        let v = verdict("sleep 5", Duration::from_millis(200)).await;
        assert!(matches!(&v, Verdict::Error(m) if m.contains("timed out")), "{v:?}");
    }
}
