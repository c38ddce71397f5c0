//! The agent's mTLS listener: accept, TLS handshake under a time limit,
//! check the client serial against the trusted map and revocations, then
//! hand the stream to a session. Refusals are logged with the peer address
//! and told to the peer in an `Error` message before closing. SIGHUP
//! reloads; SIGTERM and SIGINT stop the listener.

use super::session::{self, Peer};
use super::Agent;
use crate::protocol::Message;
use crate::transport::tls::{self, Identity};
use crate::transport::{FrameReader, FrameWriter};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// Build the TLS config from the agent's state dir.
pub fn tls_config(agent: &Agent) -> Result<Arc<rustls::ServerConfig>, tls::TlsError> {
    let ca = crate::pki::load_certs(&agent.cfg.path("ca.crt"))?;
    let me = Identity::load(&agent.cfg.path("agent.crt"), &agent.cfg.path("agent.key"))?;
    tls::server_config(&ca, me)
}

/// Accept connections until `shutdown` resolves.
pub async fn serve(
    agent: Arc<Agent>,
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let slots = Arc::new(tokio::sync::Semaphore::new(agent.cfg.max_connections));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, addr)) => {
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(peer = %addr, "refused connection: {} connections already open", agent.cfg.max_connections);
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let (agent, acceptor) = (agent.clone(), acceptor.clone());
                    tokio::spawn(async move {
                        connection(agent, acceptor, tcp, addr.to_string()).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn connection(agent: Arc<Agent>, acceptor: tokio_rustls::TlsAcceptor, tcp: TcpStream, addr: String) {
    let limit = Duration::from_secs(agent.cfg.handshake_timeout);
    let stream = match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(peer = %addr, "TLS handshake refused: {}", tls::explain(&e));
            return;
        }
        Err(_) => {
            tracing::warn!(peer = %addr, "TLS handshake not finished within {limit:?}; closing");
            return;
        }
    };
    let serial = tls::peer_serial(&stream).unwrap_or_default();
    let verdict = agent.trust().check(&serial).map(str::to_string);
    let max = agent.cfg.max_frame;
    let (r, w) = tokio::io::split(stream);
    let reader = FrameReader::new(r, max);
    let mut writer = FrameWriter::new(w, max);
    match verdict {
        Ok(dispatcher) => session::serve(agent, reader, writer, Peer { dispatcher, serial, addr }).await,
        Err(why) => {
            tracing::warn!(peer = %addr, serial = %serial, "refused dispatcher: {why}");
            let _ = writer
                .write(&Message::Error { message: format!("agent {} refused this dispatcher: {why}", agent.cfg.name) })
                .await;
            writer.shutdown().await;
        }
    }
}

/// Run an agent from its config until SIGTERM/SIGINT; SIGHUP reloads.
/// Serves mTLS when `tls` is on and the hub when a `[hub]` section exists.
pub async fn run(agent: Arc<Agent>) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    if !agent.cfg.tls && agent.cfg.hub.is_none() {
        return Err("nothing to serve: set tls = true or add a [hub] section".into());
    }
    if let Some(h) = agent.cfg.hub.clone() {
        let hub = Arc::new(crate::hub::agent::HubAgent::new(agent.clone(), h)?);
        tokio::spawn(hub.run());
    }
    let listener = if agent.cfg.tls {
        let config = tls_config(&agent).map_err(|e| e.to_string())?;
        let listener = TcpListener::bind(&agent.cfg.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", agent.cfg.listen))?;
        let bound = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(
            "agent {} listening on {bound} ({} actions, {} trusted dispatchers)",
            agent.cfg.name,
            agent.catalog().len(),
            agent.trust().dispatcher_count()
        );
        Some((listener, config))
    } else {
        None
    };
    let reloader = {
        let agent = agent.clone();
        async move {
            while hup.recv().await.is_some() {
                match agent.reload() {
                    Ok(()) => tracing::info!(
                        "reloaded: {} actions, {} trusted dispatchers",
                        agent.catalog().len(),
                        agent.trust().dispatcher_count()
                    ),
                    Err(e) => tracing::error!("reload failed: {e}"),
                }
            }
        }
    };
    tokio::spawn(reloader);
    let shutdown = async move {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::info!("stopping");
    };
    match listener {
        Some((listener, config)) => serve(agent, listener, config, shutdown).await,
        None => shutdown.await,
    }
    Ok(())
}
