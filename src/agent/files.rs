//! Reading and writing files on the agent (seed 003's "read file, write
//! file"; `muster put` and `muster get`). Paths must be absolute and lie
//! under one of the agent's `file_roots` (over mTLS none by default; an
//! agent started over SSH, whose user already holds a shell there, allows
//! `/`), checked after resolving symlinks of the parent directory, so a
//! link cannot lead outside. Reads stream the file in chunks; writes
//! arrive in chunks into a temporary file beside the target, which the
//! last chunk fsyncs, gives its mode (the one asked for, else the existing
//! file's, else 0644) and renames over the target: a reader never sees a
//! half-written file. Both are capped at `max_file_bytes`.

use super::Agent;
use crate::protocol::{Finished, Message, Refusal, Stream, WriteFile};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Bytes per output chunk of a read.
const CHUNK: usize = 256 * 1024;

fn refuse(why: impl Into<String>) -> Refusal {
    Refusal::FileError(why.into())
}

/// `path` made absolute and checked against the agent's roots.
pub fn check_path(agent: &Agent, path: &str) -> Result<PathBuf, Refusal> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(refuse(format!("{path:?} is not an absolute path")));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(refuse(format!("{path:?} contains '..'")));
    }
    let name = p.file_name().ok_or_else(|| refuse(format!("{path:?} names no file")))?;
    let parent = p.parent().unwrap_or(Path::new("/"));
    let parent = std::fs::canonicalize(parent).map_err(|e| refuse(format!("{}: {e}", parent.display())))?;
    let full = parent.join(name);
    let allowed =
        agent.cfg.file_roots.iter().any(|root| std::fs::canonicalize(root).is_ok_and(|r| full.starts_with(&r)));
    if !allowed {
        return Err(refuse(format!(
            "{} is outside this agent's file_roots (agent.toml); nothing is read or written there",
            full.display()
        )));
    }
    Ok(full)
}

/// Stream file `path` to `tx` as request `id`: `Started`, its bytes as
/// stdout, `Finished`; or a refusal.
pub async fn read(agent: &Agent, id: u64, path: &str, tx: &mpsc::Sender<Message>) -> Result<(), Refusal> {
    let full = check_path(agent, path)?;
    let mut f = tokio::fs::File::open(&full).await.map_err(|e| refuse(format!("{}: {e}", full.display())))?;
    let meta = f.metadata().await.map_err(|e| refuse(format!("{}: {e}", full.display())))?;
    if !meta.is_file() {
        return Err(refuse(format!("{} is not a regular file", full.display())));
    }
    if meta.len() > agent.cfg.max_file_bytes {
        return Err(refuse(format!(
            "{} is {} bytes; at most {} are read",
            full.display(),
            meta.len(),
            agent.cfg.max_file_bytes
        )));
    }
    let t0 = std::time::Instant::now();
    let _ = tx.send(Message::Started { id, pid: std::process::id() }).await;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = f.read(&mut buf).await.map_err(|e| refuse(format!("{}: {e}", full.display())))?;
        if n == 0 {
            break;
        }
        let _ = tx.send(Message::Output { id, stream: Stream::Stdout, bytes: buf[..n].to_vec() }).await;
    }
    let fin = Finished {
        id,
        exit: Some(0),
        signal: None,
        duration_ms: u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
        truncated: false,
        end: crate::protocol::End::Exited,
    };
    let _ = tx.send(Message::Finished(fin)).await;
    Ok(())
}

/// A write in progress.
struct Open {
    target: PathBuf,
    temp: PathBuf,
    file: tokio::fs::File,
    mode: Option<u32>,
    written: u64,
}

/// The writes in progress on one session, by request id.
#[derive(Default)]
pub struct Writes {
    open: HashMap<u64, Open>,
}

impl Writes {
    /// Take one chunk; returns the answer when the write ended (after the
    /// last chunk, or on the first error).
    pub async fn chunk(&mut self, agent: &Agent, w: WriteFile) -> Option<Message> {
        let id = w.id;
        match self.step(agent, w).await {
            Ok(None) => None,
            Ok(Some(fin)) => Some(Message::Finished(fin)),
            Err(reason) => {
                self.abandon(id).await;
                Some(Message::Refused { id, reason })
            }
        }
    }

    async fn step(&mut self, agent: &Agent, w: WriteFile) -> Result<Option<Finished>, Refusal> {
        let o = match self.open.entry(w.id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let target = check_path(agent, &w.path)?;
                let dir = target.parent().unwrap_or(Path::new("/")).to_path_buf();
                let base = target.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                let temp = dir.join(format!(".{base}.muster-{}", crate::hexstr::random(6)));
                let file = tokio::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&temp)
                    .await
                    .map_err(|e| refuse(format!("cannot write in {}: {e}", dir.display())))?;
                v.insert(Open { target, temp, file, mode: w.mode, written: 0 })
            }
        };
        o.written += w.data.len() as u64;
        if o.written > agent.cfg.max_file_bytes {
            return Err(refuse(format!("the file exceeds {} bytes (max_file_bytes)", agent.cfg.max_file_bytes)));
        }
        o.file.write_all(&w.data).await.map_err(|e| refuse(format!("{}: {e}", o.temp.display())))?;
        if !w.last {
            return Ok(None);
        }
        let Some(mut o) = self.open.remove(&w.id) else { return Err(refuse("write lost")) };
        let done = async {
            o.file.flush().await?;
            o.file.sync_all().await?;
            let mode = match o.mode {
                Some(m) => m & 0o7777,
                None => tokio::fs::metadata(&o.target).await.map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644),
            };
            tokio::fs::set_permissions(&o.temp, std::fs::Permissions::from_mode(mode)).await?;
            tokio::fs::rename(&o.temp, &o.target).await
        };
        if let Err(e) = done.await {
            let _ = tokio::fs::remove_file(&o.temp).await;
            return Err(refuse(format!("{}: {e}", o.target.display())));
        }
        tracing::info!(path = %o.target.display(), bytes = o.written, "wrote a file");
        Ok(Some(Finished {
            id: w.id,
            exit: Some(0),
            signal: None,
            duration_ms: 0,
            truncated: false,
            end: crate::protocol::End::Exited,
        }))
    }

    async fn abandon(&mut self, id: u64) {
        if let Some(o) = self.open.remove(&id) {
            drop(o.file);
            let _ = tokio::fs::remove_file(&o.temp).await;
        }
    }

    /// Remove the temporary files of writes the session left unfinished.
    pub async fn abandon_all(&mut self) {
        let ids: Vec<u64> = self.open.keys().copied().collect();
        for id in ids {
            self.abandon(id).await;
        }
    }
}
