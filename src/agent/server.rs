//! The agent's mTLS listener. Every accepted connection gets a handshake
//! deadline that starts at accept; at most `max_handshakes` connections
//! may be in their handshake at once, and when a new one arrives beyond
//! that, the oldest unauthenticated one is dropped — so idle or slow peers
//! (slow-loris) can never hold the port against a dispatcher, whose
//! handshake takes milliseconds. An authenticated peer is then checked
//! against the trusted map and revocations and takes a session slot
//! (`max_sessions`); refusals (untrusted, busy) are answered with a
//! `Refused` message after the handshake, so the dispatcher can say why.
//! SIGHUP reloads; the first SIGTERM/SIGINT stops accepting, cancels
//! running actions, reports them `cancelled` and exits; a second one kills
//! every action's process group and exits at once.

use super::session::{self, Peer};
use super::Agent;
use crate::protocol::{Message, Refusal};
use crate::transport::tls::{self, Identity};
use crate::transport::{FrameReader, FrameWriter};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};
use tokio_util::task::TaskTracker;

/// Build the TLS config from the agent's state dir.
pub fn tls_config(agent: &Agent) -> Result<Arc<rustls::ServerConfig>, tls::TlsError> {
    let ca = crate::pki::load_certs(&agent.cfg.path("ca.crt"))?;
    let me = Identity::load(&agent.cfg.path("agent.crt"), &agent.cfg.path("agent.key"))?;
    tls::server_config(&ca, me)
}

/// Connections in their handshake, oldest first; dropping an entry's
/// sender tells its task it was evicted.
#[derive(Default)]
struct Handshakes {
    next: u64,
    open: BTreeMap<u64, oneshot::Sender<()>>,
}

impl Handshakes {
    /// Make room for one more (evicting the oldest beyond `max`) and
    /// register it; returns its id and eviction signal.
    fn admit(&mut self, max: usize) -> (u64, oneshot::Receiver<()>, usize) {
        let mut evicted = 0;
        while self.open.len() >= max {
            self.open.pop_first();
            evicted += 1;
        }
        let (tx, rx) = oneshot::channel();
        self.next += 1;
        self.open.insert(self.next, tx);
        (self.next, rx, evicted)
    }
}

/// Accept connections until `shutdown` resolves, then stop: cancel running
/// requests, wait for their end reports to be written (at most the kill
/// grace plus a few seconds), close every session.
pub async fn serve(agent: Arc<Agent>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let sessions = Arc::new(Semaphore::new(agent.cfg.max_sessions));
    let pending = Arc::new(Mutex::new(Handshakes::default()));
    let tasks = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, addr)) => {
                    let _ = tcp.set_nodelay(true);
                    let Ok(mut p) = pending.lock() else { continue };
                    let (id, evicted, dropped) = p.admit(agent.cfg.max_handshakes);
                    drop(p);
                    if dropped > 0 {
                        tracing::debug!(peer = %addr, "{} connections in their handshake: dropped the oldest", agent.cfg.max_handshakes);
                    }
                    let Some(config) = agent.tls() else { continue };
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    let conn = Conn { agent: agent.clone(), acceptor, addr: addr.to_string(), sessions: sessions.clone(), pending: pending.clone(), id };
                    tasks.spawn(conn.run(tcp, evicted));
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    drop(listener);
    stop(&agent).await;
    tasks.close();
    if tokio::time::timeout(Duration::from_secs(2), tasks.wait()).await.is_err() {
        tracing::warn!("some sessions did not close in time");
    }
}

/// Cancel running requests and wait for their end reports.
pub async fn stop(agent: &Agent) {
    let running = agent.active();
    tracing::info!("stopping: {} running", crate::words::plural(running as usize, "request"));
    agent.begin_stop();
    let limit = agent.cfg.grace().saturating_add(Duration::from_secs(5));
    if !agent.wait_requests(limit).await {
        tracing::warn!("some requests did not end within {limit:?}");
    }
}

/// One accepted connection.
struct Conn {
    agent: Arc<Agent>,
    acceptor: tokio_rustls::TlsAcceptor,
    addr: String,
    sessions: Arc<Semaphore>,
    pending: Arc<Mutex<Handshakes>>,
    id: u64,
}

impl Conn {
    async fn run(self, tcp: TcpStream, evicted: oneshot::Receiver<()>) {
        let (agent, addr) = (&self.agent, &self.addr);
        let limit = agent.cfg.handshake_timeout();
        let accepted = tokio::select! {
            r = tokio::time::timeout(limit, self.acceptor.accept(tcp)) => r,
            _ = evicted => {
                tracing::debug!(peer = %addr, "dropped an unauthenticated connection to make room for newer ones");
                return;
            }
        };
        if let Ok(mut p) = self.pending.lock() {
            p.open.remove(&self.id);
        }
        let stream = match accepted {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                match tls::rustls_error(&e) {
                    Some(r) => tracing::warn!(peer = %addr, "TLS handshake refused: {}", tls::server_reason(r)),
                    None => tracing::debug!(peer = %addr, "connection closed during the TLS handshake: {e}"),
                }
                return;
            }
            Err(_) => {
                tracing::debug!(peer = %addr, "TLS handshake not finished within {limit:?}; closing");
                return;
            }
        };
        let serial = tls::peer_serial(&stream).unwrap_or_default();
        if tls::resumed(&stream) {
            tracing::info!(peer = %addr, serial = %serial, "resumed a TLS session; its serial is checked as on a full handshake");
        }
        let verdict = agent.trust().check(&serial).map(str::to_string);
        let max = agent.cfg.max_frame;
        let (r, w) = tokio::io::split(stream);
        let reader = FrameReader::new(r, max);
        let mut writer = FrameWriter::new(w, max);
        let refusal = match verdict {
            Err(why) => {
                tracing::warn!(peer = %addr, serial = %serial, "refused dispatcher: {why}");
                Refusal::Untrusted(format!("agent {} refused this dispatcher: {why}", agent.cfg.name))
            }
            Ok(dispatcher) => match self.sessions.clone().try_acquire_owned() {
                Ok(permit) => {
                    let peer = Peer { dispatcher, serial, addr: addr.clone() };
                    session::serve(agent.clone(), reader, writer, peer).await;
                    drop(permit);
                    return;
                }
                Err(_) => {
                    tracing::warn!(peer = %addr, "refused a session: {} sessions already open", agent.cfg.max_sessions);
                    Refusal::SessionsFull { limit: u32::try_from(agent.cfg.max_sessions).unwrap_or(u32::MAX) }
                }
            },
        };
        let _ = tokio::time::timeout(limit, writer.write(&Message::Refused { id: 0, reason: refusal })).await;
        writer.shutdown().await;
    }
}

/// Keep the journal of running process groups in `<state_dir>/running`,
/// killing what an agent killed outright left there (`exec::groups`).
pub fn start_journal(agent: &Agent) {
    let dir = agent.cfg.state_dir.join("running");
    match crate::exec::groups::keep_journal(&dir) {
        Ok(0) => {}
        Ok(n) => tracing::warn!("killed {n} process group(s) left running by an agent that was killed"),
        Err(e) => tracing::warn!("cannot keep a journal of running actions in {}: {e}", dir.display()),
    }
}

/// Run an agent from its config until SIGTERM/SIGINT; SIGHUP reloads.
/// Serves mTLS when `tls` is on and the hub when a `[hub]` section exists.
pub async fn run(agent: Arc<Agent>) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    if !agent.cfg.tls && agent.cfg.hub.is_none() {
        return Err("nothing to serve: set tls = true or add a [hub] section".into());
    }
    if let Some(h) = agent.cfg.hub.clone() {
        let hub = Arc::new(super::hub::HubAgent::new(agent.clone(), h)?);
        tokio::spawn(hub.run());
    }
    start_journal(&agent);
    agent.results.sweep(true);
    tokio::spawn(sweep_results(agent.clone()));
    let listener = if agent.cfg.tls {
        agent.reload_tls().map_err(|e| e.to_string())?;
        let listener = TcpListener::bind(&agent.cfg.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", agent.cfg.listen))?;
        let bound = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(
            "agent {} listening on {bound} ({}, {})",
            agent.cfg.name,
            crate::words::plural(agent.catalog().len(), "action"),
            crate::words::plural(agent.trust().dispatcher_count(), "trusted dispatcher")
        );
        Some(listener)
    } else {
        None
    };
    let reloader = {
        let agent = agent.clone();
        async move {
            while hup.recv().await.is_some() {
                if agent.cfg.tls {
                    if let Err(e) = agent.reload_tls() {
                        tracing::error!("kept the previous TLS certificate: {e}");
                    }
                }
                match agent.reload() {
                    Ok(()) => tracing::info!(
                        "reloaded: {}, {}",
                        crate::words::plural(agent.catalog().len(), "action"),
                        crate::words::plural(agent.trust().dispatcher_count(), "trusted dispatcher")
                    ),
                    Err(e) => tracing::error!("reload failed: {e}"),
                }
            }
        }
    };
    tokio::spawn(reloader);
    let stop_requested = tokio_util::sync::CancellationToken::new();
    tokio::spawn(signals(term, int, stop_requested.clone()));
    let shutdown = stop_requested.cancelled_owned();
    match listener {
        Some(listener) => serve(agent.clone(), listener, shutdown).await,
        None => {
            shutdown.await;
            stop(&agent).await;
        }
    }
    Ok(())
}

/// Prune stored results past their retention, now and then.
async fn sweep_results(agent: Arc<Agent>) {
    let every = Duration::from_secs((agent.cfg.result_retention / 2).clamp(1, 3600));
    loop {
        tokio::time::sleep(every).await;
        let n = agent.results.sweep(false);
        if n > 0 {
            tracing::info!("pruned {n} stored results older than {}s", agent.cfg.result_retention);
        }
    }
}

/// The first SIGTERM/SIGINT asks for an orderly stop; a second one kills
/// every running action's process group and exits at once.
async fn signals(
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut seen = 0;
    loop {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        seen += 1;
        if seen == 1 {
            tracing::info!("stopping (a second signal stops at once)");
            stop.cancel();
        } else {
            tracing::warn!("second signal: killing every running action and exiting now");
            crate::exec::groups::kill_all();
            std::process::exit(1);
        }
    }
}
