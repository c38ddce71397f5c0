//! One dispatcher session on an agent: the Hello exchange (announcing the
//! agent's kill grace, so the dispatcher can bound a timed-out request),
//! then a loop that reads requests and admits each through
//! `agent::request`: refusals and builtins are answered inline, actions run
//! in their own task once a run slot is held, so replies to several
//! requests interleave on one connection and a peer cannot make the agent
//! spawn beyond `max_concurrent`. Pings are answered while actions run.
//! When the session ends while its requests still run (the dispatcher
//! died or the network dropped), they are cancelled: an action never
//! outlives the session that asked for it — unless it was asked for
//! asynchronously (`detach`), in which case it runs on and its result is
//! kept for its dispatcher (`agent::results`). A malformed or oversized frame
//! ends this session with an error message; other sessions are unaffected.

use super::request::{self, Admitted};
use super::Agent;
use crate::protocol::{Message, Role};
use crate::transport::{FrameReader, FrameWriter, TransportError};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// Who is on the other end, as established by TLS and the trusted map.
#[derive(Debug, Clone)]
pub struct Peer {
    pub dispatcher: String,
    pub serial: String,
    pub addr: String,
}

/// Once the agent is stopping, how often a session checks whether its
/// requests have all ended.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// True for a peer that closed without a TLS close_notify or mid-frame:
/// worth a debug line, not a warning.
fn unclean_close(e: &TransportError) -> bool {
    matches!(e, TransportError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof)
}

/// Serve one session until the peer closes, errs or idles out.
pub async fn serve<R, W>(agent: Arc<Agent>, mut reader: FrameReader<R>, mut writer: FrameWriter<W>, peer: Peer)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut ours = crate::transport::hello(Role::Agent, &agent.cfg.name);
    ours.capabilities.push(format!("kill-grace-ms={}", agent.cfg.grace().as_millis()));
    ours.capabilities.push(format!("pid={}", std::process::id()));
    if let Err(e) = crate::transport::handshake(&mut reader, &mut writer, &ours, agent.cfg.handshake_timeout()).await {
        tracing::warn!(peer = %peer.addr, dispatcher = %peer.dispatcher, "session handshake failed: {e}");
        let _ = writer.write(&Message::Error { message: e.to_string() }).await;
        writer.shutdown().await;
        return;
    }
    let (tx, mut rx) = mpsc::channel::<Message>(256);
    // Once the session ends, the writer sends what is queued and stops
    // (an asynchronous request still running then stops forwarding to it).
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let write_task = tokio::spawn(async move {
        let mut closing = false;
        loop {
            let m = if closing {
                rx.recv().await
            } else {
                tokio::select! {
                    m = rx.recv() => m,
                    _ = &mut done_rx => {
                        closing = true;
                        rx.close();
                        continue;
                    }
                }
            };
            let Some(m) = m else { break };
            let last = matches!(m, Message::Error { .. });
            if writer.write(&m).await.is_err() || last {
                break;
            }
        }
        writer.shutdown().await;
    });
    // session id -> fleet request id, for Cancel{id} and cancel-on-loss
    let mut ids: HashMap<u64, String> = HashMap::new();
    // asynchronous requests: kept running when the session ends
    let mut detached: HashSet<String> = HashSet::new();
    let mut writes = super::files::Writes::default();
    let idle = agent.cfg.idle_timeout();
    let stopping = agent.stopping();
    let mut lost = false;
    loop {
        let ours_running = |ids: &HashMap<u64, String>| ids.values().any(|rid| agent.is_running(rid));
        let read = tokio::select! {
            r = tokio::time::timeout(idle, reader.read()) => r,
            _ = tokio::time::sleep(STOP_CHECK), if stopping.is_cancelled() => {
                if ours_running(&ids) { continue } else { break }
            }
        };
        let msg = match read {
            Err(_) if ours_running(&ids) => continue,
            Err(_) => {
                let _ = tx.send(Message::Error { message: format!("idle for {idle:?}; closing") }).await;
                break;
            }
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => {
                lost = true;
                break;
            }
            Ok(Err(e)) => {
                lost = true;
                if unclean_close(&e) {
                    tracing::debug!(peer = %peer.addr, dispatcher = %peer.dispatcher, "peer closed uncleanly: {e}");
                } else {
                    tracing::warn!(peer = %peer.addr, dispatcher = %peer.dispatcher, "closing session: {e}");
                    let _ = tx.send(Message::Error { message: format!("closing session: {e}") }).await;
                }
                break;
            }
        };
        match msg {
            Message::Run(run) => {
                if ids.len() >= 1024 {
                    // Forget ids of requests that have ended.
                    ids.retain(|_, rid| agent.is_running(rid));
                }
                match request::admit(&agent, &peer, &run) {
                    Err(reason) => request::refuse(&peer, &run, reason, &tx).await,
                    Ok(Admitted::Builtin(exit, out)) => request::answer_builtin(&run, exit, out, &tx).await,
                    Ok(Admitted::ReadFile(path)) => match request::claim(&agent, &peer, &run) {
                        Err(reason) => request::refuse(&peer, &run, reason, &tx).await,
                        Ok(claim) => {
                            let task = request::read_file(agent.clone(), peer.clone(), run, path, claim, tx.clone());
                            agent.spawn_request(task);
                        }
                    },
                    Ok(Admitted::Action { steps, args }) => match request::claim(&agent, &peer, &run) {
                        Err(reason) => request::refuse(&peer, &run, reason, &tx).await,
                        Ok(claim) => {
                            ids.insert(run.id, run.request_id.clone());
                            let out = if run.detach {
                                detached.insert(run.request_id.clone());
                                request::record(&agent, &peer, &run, tx.clone())
                            } else {
                                tx.clone()
                            };
                            let task = request::execute(agent.clone(), peer.clone(), run, steps, args, claim, out);
                            agent.spawn_request(task);
                        }
                    },
                }
            }
            Message::Cancel { id } => {
                if let Some(rid) = ids.get(&id) {
                    agent.cancel(rid, &peer.dispatcher);
                }
            }
            Message::Ping { id } => {
                let _ = tx.send(Message::Pong { id }).await;
            }
            Message::WriteFile(w) => {
                if let Some(answer) = writes.chunk(&agent, w).await {
                    let _ = tx.send(answer).await;
                }
            }
            other => {
                let message = format!("unexpected message from a dispatcher: {other:?}");
                let _ = tx.send(Message::Error { message }).await;
                break;
            }
        }
    }
    if lost {
        for rid in ids.values().filter(|rid| agent.is_running(rid) && !detached.contains(*rid)) {
            tracing::warn!(
                request = %rid, dispatcher = %peer.dispatcher, peer = %peer.addr,
                "the dispatcher's session ended while the request ran; cancelling it"
            );
            agent.cancel(rid, &peer.dispatcher);
        }
    }
    writes.abandon_all().await;
    drop(tx);
    let _ = done_tx.send(());
    let _ = write_task.await;
}
