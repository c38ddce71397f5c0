//! The process runner. A [`Job`] is one or more executables run in order in
//! a fresh working directory, each in its own process group, with the
//! request context on stdin and exactly the job's environment (nothing of
//! the agent's own). It reports `Started` once, streams `Output` as
//! it is produced (up to a byte cap, then flags truncation), and ends with
//! `Finished`. A timeout or cancel sends TERM to the group, then KILL after
//! a grace period; when a step ends, whatever it left in its group is
//! killed, so no action outlives its request.

use super::step::{self, Spawned, StepCommand};
use crate::protocol::{End, Finished, Message, Stream};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    /// Time between TERM and KILL.
    pub grace: Duration,
    /// Output bytes (stdout + stderr) forwarded before truncation.
    pub output_cap: usize,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: u64,
    pub steps: Vec<PathBuf>,
    pub args: Vec<String>,
    pub stdin: Vec<u8>,
    /// The whole environment of every step.
    pub env: Vec<(String, String)>,
    /// Created before the first step and removed after the last.
    pub workdir: PathBuf,
    pub limits: Limits,
    /// Where to publish the process group of the step running now, so the
    /// request can be killed from outside (`kill`).
    pub pgid: Option<Arc<std::sync::atomic::AtomicU32>>,
}

/// How long to keep reading pipes after a step ended (a process that left
/// the group with `setsid` may still hold them).
const DRAIN: Duration = Duration::from_secs(2);

enum Stop {
    Exited(std::process::ExitStatus),
    TimedOut,
    Cancelled,
}

/// Run the job to its end. `cancel` set to `true` stops it; dropping the
/// sender does not.
pub async fn run(job: Job, events: mpsc::Sender<Message>, cancel: watch::Receiver<bool>) -> Finished {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + job.limits.timeout;
    let used = Arc::new(AtomicUsize::new(0));
    let truncated = Arc::new(AtomicBool::new(false));
    let mut fin = Finished { id: job.id, exit: None, signal: None, duration_ms: 0, truncated: false, end: End::Exited };
    let dir = job.workdir.clone();
    let made = tokio::task::spawn_blocking(move || make_workdir(&dir))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    if let Err(e) = made {
        fin.end = End::SpawnFailed(format!("cannot create {}: {e}", job.workdir.display()));
    } else {
        for (n, step) in job.steps.iter().enumerate() {
            let out = run_step(&job, step, n == 0, deadline, &events, cancel.clone(), &used, &truncated).await;
            fin.exit = out.exit;
            fin.signal = out.signal;
            fin.end = out.end;
            if !fin.succeeded() {
                break;
            }
        }
        let dir = job.workdir.clone();
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    }
    fin.truncated = truncated.load(Ordering::Relaxed);
    fin.duration_ms = started.elapsed().as_millis() as u64;
    fin
}

fn make_workdir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::DirBuilder::new().mode(0o700).create(dir)
}

struct StepEnd {
    exit: Option<i32>,
    signal: Option<i32>,
    end: End,
}

#[allow(clippy::too_many_arguments)]
async fn run_step(
    job: &Job,
    step: &std::path::Path,
    first: bool,
    deadline: tokio::time::Instant,
    events: &mpsc::Sender<Message>,
    mut cancel: watch::Receiver<bool>,
    used: &Arc<AtomicUsize>,
    truncated: &Arc<AtomicBool>,
) -> StepEnd {
    let spec = StepCommand {
        args: job.args.clone(),
        env: job.env.clone(),
        clear_env: true,
        cwd: Some(job.workdir.clone()),
        ..StepCommand::new(step)
    };
    let spawned = match step::spawn(&spec, job.stdin.clone()) {
        Ok(s) => s,
        Err(e) => {
            return StepEnd {
                exit: None,
                signal: None,
                end: End::SpawnFailed(format!("cannot run {}: {e}", step.display())),
            }
        }
    };
    let Spawned { mut child, pid, stdout, stderr, .. } = spawned;
    let _tracked = super::groups::track(pid);
    if let Some(p) = &job.pgid {
        p.store(pid, Ordering::Release);
    }
    if first {
        let _ = events.send(Message::Started { id: job.id, pid }).await;
    }
    let pumps: Vec<_> = [
        stdout.map(|o| pump(o, Stream::Stdout, job, events, used, truncated)),
        stderr.map(|e| pump(e, Stream::Stderr, job, events, used, truncated)),
    ]
    .into_iter()
    .flatten()
    .collect();

    let cancelled = async {
        if cancel.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let stop = tokio::select! {
        s = child.wait() => match s {
            Ok(s) => Stop::Exited(s),
            Err(_) => Stop::Cancelled,
        },
        _ = tokio::time::sleep_until(deadline) => Stop::TimedOut,
        _ = cancelled => Stop::Cancelled,
    };
    let status = match stop {
        Stop::Exited(s) => Ok(s),
        Stop::TimedOut | Stop::Cancelled => {
            signal_group(pid, libc::SIGTERM);
            let s = match tokio::time::timeout(job.limits.grace, child.wait()).await {
                Ok(s) => s,
                Err(_) => {
                    signal_group(pid, libc::SIGKILL);
                    child.wait().await
                }
            };
            Err((stop, s.ok()))
        }
    };
    // Nothing the step started may outlive it.
    signal_group(pid, libc::SIGKILL);
    let drain = futures_join(pumps);
    let _ = tokio::time::timeout(DRAIN, drain).await;

    match status {
        Ok(s) => StepEnd { exit: s.code(), signal: s.signal(), end: End::Exited },
        Err((why, s)) => StepEnd {
            exit: s.and_then(|s| s.code()),
            signal: s.and_then(|s| s.signal()),
            end: if matches!(why, Stop::TimedOut) { End::TimedOut } else { End::Cancelled },
        },
    }
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

fn pump<R: AsyncRead + Unpin + Send + 'static>(
    mut r: R,
    stream: Stream,
    job: &Job,
    events: &mpsc::Sender<Message>,
    used: &Arc<AtomicUsize>,
    truncated: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let (id, cap) = (job.id, job.limits.output_cap);
    let (events, used, truncated) = (events.clone(), used.clone(), truncated.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let before = used.fetch_add(n, Ordering::Relaxed);
            let room = cap.saturating_sub(before).min(n);
            if room < n {
                truncated.store(true, Ordering::Relaxed);
            }
            if room > 0 {
                let msg = Message::Output { id, stream, bytes: buf[..room].to_vec() };
                let _ = events.send(msg).await;
            }
        }
    })
}

/// True when `pid` exists and is not a zombie.
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])).unwrap_or(false),
        Err(_) => false,
    }
}

/// Send `sig` to the process group `pgid` (ignored if it is gone).
pub fn signal_group(pgid: u32, sig: i32) {
    if pgid > 1 {
        // SAFETY: killpg has no memory-safety preconditions.
        unsafe {
            libc::killpg(pgid as libc::pid_t, sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(script: &str, limits: Limits) -> (Job, tempfile::TempDir) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s");
        std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let j = Job {
            id: 1,
            steps: vec![p],
            args: vec!["a1".into()],
            stdin: b"{\"x\":1}".to_vec(),
            env: vec![("MUSTER_ACTION".into(), "s".into())],
            workdir: d.path().join("work"),
            limits,
            pgid: None,
        };
        (j, d)
    }

    const L: Limits =
        Limits { timeout: Duration::from_secs(10), grace: Duration::from_millis(300), output_cap: 1 << 20 };

    async fn collect(j: Job) -> (Vec<Message>, Finished) {
        let (tx, mut rx) = mpsc::channel(64);
        let (_c, crx) = watch::channel(false);
        let f = tokio::spawn(run(j, tx, crx));
        let mut got = Vec::new();
        while let Some(m) = rx.recv().await {
            got.push(m);
        }
        (got, f.await.unwrap())
    }

    fn stdout(msgs: &[Message]) -> Vec<u8> {
        msgs.iter()
            .filter_map(|m| match m {
                Message::Output { stream: Stream::Stdout, bytes, .. } => Some(bytes.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[tokio::test]
    async fn streams_stdin_args_env_and_exit() {
        let (j, _d) = job("cat; echo \" $1 $MUSTER_ACTION\"; pwd; exit 3", L);
        let wd = j.workdir.clone();
        let (msgs, fin) = collect(j).await;
        assert!(matches!(msgs[0], Message::Started { .. }));
        let out = String::from_utf8(stdout(&msgs)).unwrap();
        assert!(out.starts_with("{\"x\":1} a1 s\n"), "{out}");
        assert!(out.contains(&wd.display().to_string()));
        assert_eq!((fin.exit, fin.end), (Some(3), End::Exited));
        assert!(!wd.exists(), "workdir left behind");
    }

    #[tokio::test]
    async fn caps_output() {
        let (j, _d) = job("head -c 5000 /dev/zero", Limits { output_cap: 1000, ..L });
        let (msgs, fin) = collect(j).await;
        assert_eq!(stdout(&msgs).len(), 1000);
        assert!(fin.truncated);
    }

    #[tokio::test]
    async fn timeout_kills_the_group() {
        let (j, d) = job(
            "sleep 30 & echo $! > ../bg.pid; trap '' TERM; sleep 30",
            Limits { timeout: Duration::from_millis(300), ..L },
        );
        let (_, fin) = collect(j).await;
        assert_eq!(fin.end, End::TimedOut);
        let pid: i32 = std::fs::read_to_string(d.path().join("bg.pid")).unwrap().trim().parse().unwrap();
        assert!(!process_alive(pid), "background child {pid} survived");
    }

    #[tokio::test]
    async fn spawn_failure_is_reported() {
        let (mut j, _d) = job("true", L);
        j.steps = vec!["/nonexistent/x".into()];
        let (_, fin) = collect(j).await;
        assert!(matches!(fin.end, End::SpawnFailed(_)));
    }
}
