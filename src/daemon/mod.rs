//! `muster daemon` (seed 003): a resident process that keeps one session
//! per agent open (`links`) and serves clients — `muster run`, `muster
//! console`, other daemons — on a local Unix socket (mode 0600, owner
//! only) and, with `--listen`, on mutual TLS (port 9007, the fleet CA; a
//! client certificate must be this dispatcher's own or listed in
//! `<state>/daemon-clients`). Each client opens channels to agents and
//! speaks the agent protocol on them (`protocol::daemon`); everything is
//! logged as JSON lines (`log`).

pub mod links;
pub mod log;

use crate::protocol::daemon::{DaemonFrame, Via, DAEMON_VERSION};
use crate::transport::carrier::Target;
use crate::transport::{FrameReader, FrameWriter};
use links::Links;
use log::Log;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// Largest daemon frame (an agent message plus the channel header).
pub const MAX_FRAME: usize = crate::protocol::DEFAULT_MAX_FRAME + 4096;

/// The default socket of the daemon serving `state`.
pub fn socket_path(state: &Path) -> PathBuf {
    state.join("daemon").join("daemon.sock")
}

/// Why the daemon cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("a daemon already answers on {}", .0.display())]
    Running(PathBuf),
    #[error("cannot listen on {what}: {source}")]
    Listen { what: String, source: std::io::Error },
    #[error("{0}")]
    Setup(String),
}

/// A running daemon's shared parts.
pub struct Daemon {
    pub links: Arc<Links>,
    pub log: Arc<Log>,
    pub name: String,
    clients: AtomicU64,
}

impl Daemon {
    pub fn new(links: Arc<Links>, log: Arc<Log>, name: String) -> Arc<Daemon> {
        Arc::new(Daemon { links, log, name, clients: AtomicU64::new(0) })
    }
}

/// Bind the Unix socket at `path` (0600), replacing a stale one; refused
/// when a daemon already answers there.
pub async fn bind_socket(path: &Path) -> Result<tokio::net::UnixListener, DaemonError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| DaemonError::Listen { what: dir.display().to_string(), source: e })?;
        let _ = std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
    }
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        return Err(DaemonError::Running(path.to_path_buf()));
    }
    let _ = std::fs::remove_file(path);
    // Created 0600 from the start: the umask covers the window before chmod.
    // SAFETY: umask has no memory-safety preconditions; it is restored at once.
    let old = unsafe { libc::umask(0o177) };
    let l = tokio::net::UnixListener::bind(path);
    unsafe { libc::umask(old) };
    l.map_err(|e| DaemonError::Listen { what: path.display().to_string(), source: e })
}

/// Serve one client connection until it closes.
pub async fn serve_client<S>(daemon: Arc<Daemon>, stream: S, peer: String)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (r, w) = tokio::io::split(stream);
    let mut reader = FrameReader::new(r, MAX_FRAME);
    let mut writer = FrameWriter::new(w, MAX_FRAME);
    let (client, user) = match reader.read_value::<DaemonFrame>().await {
        Ok(Some(DaemonFrame::Hello { version, client, user })) if version == DAEMON_VERSION => (client, user),
        Ok(Some(DaemonFrame::Hello { version, .. })) => {
            let message = format!("daemon protocol {version} is not {DAEMON_VERSION}: use the same muster version");
            let _ = writer.write_value(&DaemonFrame::Error { message }).await;
            return;
        }
        _ => return,
    };
    let id = daemon.clients.fetch_add(1, Ordering::AcqRel);
    daemon.log.event("client", serde_json::json!({"client": client, "user": user, "peer": peer, "id": id}));
    let welcome =
        DaemonFrame::Welcome { version: DAEMON_VERSION, daemon: daemon.name.clone(), pid: std::process::id() };
    if writer.write_value(&welcome).await.is_err() {
        return;
    }
    let (tx, mut rx) = mpsc::channel::<DaemonFrame>(1024);
    let write_task = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if writer.write_value(&f).await.is_err() {
                break;
            }
        }
        writer.shutdown().await;
    });
    let chans: Arc<Mutex<HashMap<u32, Arc<links::Link>>>> = Arc::default();
    loop {
        let frame = match reader.read_value::<DaemonFrame>().await {
            Ok(Some(f)) => f,
            _ => break,
        };
        match frame {
            DaemonFrame::Open { chan, name, addr, via, install } => {
                let (daemon, tx, chans) = (daemon.clone(), tx.clone(), chans.clone());
                tokio::spawn(async move {
                    let target = Target { name, addr };
                    let answer = match daemon.links.get(&target, via, install).await {
                        Ok(link) => {
                            let hello = link.hello.clone();
                            if let Ok(mut c) = chans.lock() {
                                c.insert(chan, link);
                            }
                            DaemonFrame::Opened { chan, hello }
                        }
                        Err(e) => {
                            let (unreachable, r) = match e {
                                crate::transport::carrier::OpenError::Unreachable(r) => (true, r),
                                crate::transport::carrier::OpenError::Refused(r) => (false, r),
                            };
                            DaemonFrame::OpenFailed { chan, unreachable, kind: r.kind, detail: r.detail }
                        }
                    };
                    let _ = tx.send(answer).await;
                });
            }
            DaemonFrame::Data { chan, msg } => {
                let link = chans.lock().ok().and_then(|c| c.get(&chan).cloned());
                match link {
                    Some(l) => {
                        if let crate::protocol::Message::Run(r) = &msg {
                            daemon.log.event(
                                "request",
                                serde_json::json!({"client": id, "host": l.name, "request_id": r.request_id,
                                    "action": r.action, "args": r.args, "user": r.username}),
                            );
                        }
                        l.forward(id, &tx, chan, msg).await;
                    }
                    None => {
                        let _ = tx.send(DaemonFrame::Closed { chan, why: "no such channel".into() }).await;
                    }
                }
            }
            DaemonFrame::Close { chan } => {
                let link = chans.lock().ok().and_then(|mut c| c.remove(&chan));
                if let Some(l) = link {
                    l.close_chan(id, chan).await;
                }
            }
            DaemonFrame::Status => {
                let links = daemon.links.all().iter().map(|l| l.info()).collect();
                let _ = tx.send(DaemonFrame::StatusReply { links }).await;
            }
            _ => {}
        }
    }
    let open: Vec<(u32, Arc<links::Link>)> = chans.lock().map(|mut c| c.drain().collect()).unwrap_or_default();
    for (chan, l) in open {
        l.close_chan(id, chan).await;
    }
    daemon.log.event("client-gone", serde_json::json!({"id": id}));
    drop(tx);
    let _ = write_task.await;
}

/// Accept clients on the Unix socket until `stop`.
pub async fn serve_socket(
    daemon: Arc<Daemon>,
    listener: tokio::net::UnixListener,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => {
                let Ok((stream, _)) = a else { continue };
                tokio::spawn(serve_client(daemon.clone(), stream, "local".into()));
            }
        }
    }
}

/// Stop the daemon (cancel `stop`) once `path` no longer names the socket
/// it bound: the state directory was removed or another daemon took the
/// path. Such a daemon can never be reached again and would hold its SSH
/// sessions and agents forever. Checked every 2 s.
pub async fn watch_socket(path: PathBuf, stop: tokio_util::sync::CancellationToken, log: Arc<Log>) {
    use std::os::unix::fs::MetadataExt;
    let Ok(bound) = std::fs::metadata(&path).map(|m| (m.dev(), m.ino())) else { return };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
        }
        let now = std::fs::metadata(&path).map(|m| (m.dev(), m.ino())).ok();
        if now != Some(bound) {
            log.event("socket-gone", serde_json::json!({"socket": path.display().to_string()}));
            tracing::warn!("{} is gone or replaced; stopping", path.display());
            stop.cancel();
            return;
        }
    }
}

/// Remove the socket at `path` on stop, unless another daemon's socket
/// replaced it meanwhile (then it answers and is left alone).
pub fn remove_own_socket(path: &Path) {
    if std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
}

/// `Via` in the daemon protocol for a CLI carrier name.
pub fn via_of(tls: bool) -> Via {
    if tls {
        Via::Tls
    } else {
        Via::Ssh
    }
}
