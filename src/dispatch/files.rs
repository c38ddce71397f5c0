//! `muster put` and `muster get` over a dialled carrier: copy one local
//! file to every target (`WriteFile` chunks, written atomically by each
//! agent) or one remote file from every target into
//! `LOCALDIR/<target>/<basename>` (the `read-file` builtin, streamed).
//! At most `fanout` targets at once; each target ends in a state like any
//! run, and the exit status is the same bitmask.

use super::outcome::{Reason, State, TargetResult};
use crate::protocol::{Message, Run, WriteFile};
use crate::transport::carrier::{Dialer, OpenError, Session, Target};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

/// Bytes per `WriteFile` chunk.
const CHUNK: usize = 256 * 1024;

fn opened(r: Result<Session, OpenError>) -> Result<Session, State> {
    r.map_err(|e| match e {
        OpenError::Unreachable(w) => State::Unreachable(w),
        OpenError::Refused(w) => State::Refused(w),
    })
}

fn lost(e: impl std::fmt::Display) -> State {
    State::Unreachable(Reason::new("connection lost", e.to_string()))
}

/// The answer that ends a file request.
async fn end(s: &mut Session, limit: Duration, mut sink: impl FnMut(Vec<u8>) -> Result<(), String>) -> State {
    loop {
        match tokio::time::timeout(limit, s.reader.read()).await {
            Ok(Ok(Some(Message::Output { bytes, .. }))) => {
                if let Err(e) = sink(bytes) {
                    return State::Failed { exit: None, signal: None, why: Some(e) };
                }
            }
            Ok(Ok(Some(Message::Finished(f)))) => return State::from_finished(&f),
            Ok(Ok(Some(Message::Refused { reason, .. }))) => return State::from_refusal(&reason),
            Ok(Ok(Some(Message::Error { message }))) => return State::Refused(Reason::new("agent error", message)),
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) => return lost("the agent closed the connection"),
            Ok(Err(e)) => return lost(e),
            Err(_) => return State::Unreachable(Reason::new("no answer", format!("no answer within {limit:?}"))),
        }
    }
}

async fn put_one(
    dialer: &dyn Dialer,
    t: &Target,
    local: &Path,
    remote: &str,
    mode: Option<u32>,
    limit: Duration,
) -> State {
    let mut s = match opened(dialer.open(t).await) {
        Ok(s) => s,
        Err(state) => return state,
    };
    let mut f = match tokio::fs::File::open(local).await {
        Ok(f) => f,
        Err(e) => return State::Failed { exit: None, signal: None, why: Some(format!("{}: {e}", local.display())) },
    };
    let mut buf = vec![0u8; CHUNK];
    let mut next = match f.read(&mut buf).await {
        Ok(n) => buf[..n].to_vec(),
        Err(e) => return State::Failed { exit: None, signal: None, why: Some(e.to_string()) },
    };
    loop {
        let n = match f.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => return State::Failed { exit: None, signal: None, why: Some(e.to_string()) },
        };
        let w = WriteFile {
            id: 1,
            path: remote.to_string(),
            mode,
            data: std::mem::replace(&mut next, buf[..n].to_vec()),
            last: n == 0,
        };
        if let Err(e) = s.writer.write(&Message::WriteFile(w)).await {
            return lost(e);
        }
        if n == 0 {
            break;
        }
    }
    let state = end(&mut s, limit, |_| Ok(())).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), s.close()).await;
    state
}

async fn get_one(dialer: &dyn Dialer, t: &Target, remote: &str, into: &Path, limit: Duration) -> State {
    let mut s = match opened(dialer.open(t).await) {
        Ok(s) => s,
        Err(state) => return state,
    };
    let run = Run {
        id: 1,
        request_id: crate::hexstr::random(8),
        action: "read-file".into(),
        args: vec![remote.to_string()],
        username: String::new(),
        token: None,
        timeout_ms: None,
        detach: false,
    };
    if let Err(e) = s.writer.write(&Message::Run(run)).await {
        return lost(e);
    }
    let mut data = Vec::new();
    let state = end(&mut s, limit, |b| {
        data.extend_from_slice(&b);
        Ok(())
    })
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(1), s.close()).await;
    if state != State::Succeeded {
        return state;
    }
    let written = into
        .parent()
        .map(std::fs::create_dir_all)
        .transpose()
        .and_then(|_| crate::fsutil::write_atomic(into, &data, 0o644));
    match written {
        Ok(()) => State::Succeeded,
        Err(e) => State::Failed { exit: None, signal: None, why: Some(format!("{}: {e}", into.display())) },
    }
}

/// What to copy, and which way.
#[derive(Debug, Clone)]
pub enum Copy {
    /// Local file to this absolute path on every target, with this mode (or kept).
    Put { local: PathBuf, remote: String, mode: Option<u32> },
    /// This absolute path on every target into `dir/<target>/<basename>`.
    Get { remote: String, dir: PathBuf },
}

/// Copy on every target, at most `fanout` at once; results in target order.
pub async fn copy_all(
    dialer: Arc<dyn Dialer>,
    targets: Vec<Target>,
    what: Copy,
    fanout: usize,
    limit: Duration,
) -> Vec<TargetResult> {
    let window = Arc::new(Semaphore::new(fanout.max(1)));
    let mut handles = Vec::new();
    for t in targets {
        let (dialer, window, what) = (dialer.clone(), window.clone(), what.clone());
        let name = t.name.clone();
        handles.push((
            name,
            tokio::spawn(async move {
                let _p = window.acquire_owned().await;
                match what {
                    Copy::Put { local, remote, mode } => put_one(&*dialer, &t, &local, &remote, mode, limit).await,
                    Copy::Get { remote, dir } => {
                        let base =
                            Path::new(&remote).file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "file".into());
                        get_one(&*dialer, &t, &remote, &dir.join(&t.name).join(base), limit).await
                    }
                }
            }),
        ));
    }
    let mut out = Vec::new();
    for (name, h) in handles {
        let state = h.await.unwrap_or_else(|e| State::Failed {
            exit: None,
            signal: None,
            why: Some(format!("dispatcher internal error: {e}")),
        });
        out.push(TargetResult::new(name, state));
    }
    out
}
