//! One dispatcher session on an agent: the Hello exchange, then a loop that
//! reads requests and runs each in its own task, so replies to several
//! requests interleave on one connection. A malformed or oversized frame
//! ends this session with an error message; other sessions are unaffected.

use super::{builtins, Agent};
use crate::exec::hook::{self, Verdict};
use crate::exec::{runner, Job, Limits};
use crate::protocol::{self, End, Finished, Message, Refusal, Role, Run};
use crate::transport::{FrameReader, FrameWriter};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};

/// Who is on the other end, as established by TLS and the trusted map.
#[derive(Debug, Clone)]
pub struct Peer {
    pub dispatcher: String,
    pub serial: String,
    pub addr: String,
}

const MAX_ARGS: usize = 256;
const MAX_ARG_BYTES: usize = 64 * 1024;
const MAX_ARGS_TOTAL: usize = 256 * 1024;

/// Serve one session until the peer closes, errs or idles out.
pub async fn serve<R, W>(agent: Arc<Agent>, mut reader: FrameReader<R>, mut writer: FrameWriter<W>, peer: Peer)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let limit = Duration::from_secs(agent.cfg.handshake_timeout);
    let ours = crate::transport::hello(Role::Agent, &agent.cfg.name);
    if let Err(e) = crate::transport::handshake(&mut reader, &mut writer, &ours, limit).await {
        tracing::warn!(peer = %peer.addr, dispatcher = %peer.dispatcher, "session handshake failed: {e}");
        let _ = writer.write(&Message::Error { message: e.to_string() }).await;
        return;
    }
    let (tx, mut rx) = mpsc::channel::<Message>(256);
    let write_task = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let last = matches!(m, Message::Error { .. });
            if writer.write(&m).await.is_err() || last {
                break;
            }
        }
        writer.shutdown().await;
    });
    // session id -> fleet request id, for Cancel{id}
    let mut ids: HashMap<u64, String> = HashMap::new();
    let idle = Duration::from_secs(agent.cfg.idle_timeout);
    loop {
        let msg = match tokio::time::timeout(idle, reader.read()).await {
            Err(_) if ids.keys().any(|id| agent_running(&agent, &ids, *id)) => continue,
            Err(_) => {
                let _ = tx.send(Message::Error { message: format!("idle for {idle:?}; closing") }).await;
                break;
            }
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                tracing::warn!(peer = %peer.addr, dispatcher = %peer.dispatcher, "closing session: {e}");
                let _ = tx.send(Message::Error { message: format!("closing session: {e}") }).await;
                break;
            }
        };
        match msg {
            Message::Run(run) => {
                if ids.len() >= 1024 {
                    // Forget ids of requests that have ended.
                    ids.retain(|_, rid| is_running(&agent, rid));
                }
                ids.insert(run.id, run.request_id.clone());
                tokio::spawn(handle_run(agent.clone(), peer.clone(), run, tx.clone()));
            }
            Message::Cancel { id } => {
                if let Some(rid) = ids.get(&id) {
                    agent.cancel(rid, &peer.dispatcher);
                }
            }
            Message::Ping { id } => {
                let _ = tx.send(Message::Pong { id }).await;
            }
            other => {
                let message = format!("unexpected message from a dispatcher: {other:?}");
                let _ = tx.send(Message::Error { message }).await;
                break;
            }
        }
    }
    drop(tx);
    let _ = write_task.await;
}

fn agent_running(agent: &Agent, ids: &HashMap<u64, String>, id: u64) -> bool {
    ids.get(&id).is_some_and(|rid| is_running(agent, rid))
}

fn is_running(agent: &Agent, request_id: &str) -> bool {
    agent.running.lock().map(|m| m.contains_key(request_id)).unwrap_or(false)
}

/// The JSON context a hook and a script read on stdin.
fn context(agent: &Agent, peer: &Peer, run: &Run) -> serde_json::Value {
    json!({
        "request_id": run.request_id,
        "action": run.action,
        "args": run.args,
        "username": run.username,
        "token": run.token.as_ref().map(|_| "XXX"),
        "dispatcher": peer.dispatcher,
        "agent": agent.cfg.name,
        "tags": agent.cfg.tags,
    })
}

fn check_args(args: &[String]) -> Result<(), String> {
    if args.len() > MAX_ARGS {
        return Err(format!("{} arguments; at most {MAX_ARGS} are allowed", args.len()));
    }
    if let Some(a) = args.iter().find(|a| a.len() > MAX_ARG_BYTES) {
        return Err(format!("an argument of {} bytes; at most {MAX_ARG_BYTES} are allowed", a.len()));
    }
    if args.iter().map(String::len).sum::<usize>() > MAX_ARGS_TOTAL {
        return Err(format!("arguments exceed {MAX_ARGS_TOTAL} bytes in total"));
    }
    if args.iter().any(|a| a.contains('\0')) {
        return Err("an argument contains a NUL byte".into());
    }
    Ok(())
}

/// Check, authorize and run one request, then log one line about it.
pub(crate) async fn handle_run(agent: Arc<Agent>, peer: Peer, run: Run, tx: mpsc::Sender<Message>) {
    let t0 = Instant::now();
    let outcome = match run_checked(&agent, &peer, &run, &tx).await {
        Ok(fin) => {
            let text = outcome_text(&fin);
            let _ = tx.send(Message::Finished(fin)).await;
            text
        }
        Err(reason) => {
            let text = format!("refused ({reason})");
            let _ = tx.send(Message::Refused { id: run.id, reason }).await;
            text
        }
    };
    tracing::info!(
        request = %run.request_id,
        dispatcher = %peer.dispatcher,
        action = %run.action,
        user = %run.username,
        outcome = %outcome,
        duration_ms = t0.elapsed().as_millis() as u64,
        "request"
    );
}

fn outcome_text(f: &Finished) -> String {
    match &f.end {
        End::Exited => match (f.exit, f.signal) {
            (Some(c), _) => format!("exit {c}"),
            (_, Some(s)) => format!("signal {s}"),
            _ => "ended".into(),
        },
        End::TimedOut => "timed out".into(),
        End::Cancelled => "cancelled".into(),
        End::SpawnFailed(e) => format!("spawn failed: {e}"),
    }
}

async fn run_checked(
    agent: &Arc<Agent>,
    peer: &Peer,
    run: &Run,
    tx: &mpsc::Sender<Message>,
) -> Result<Finished, Refusal> {
    protocol::check_action_name(&run.action).map_err(|e| Refusal::BadName(e.to_string()))?;
    check_args(&run.args).map_err(Refusal::BadArgs)?;
    if let Some((exit, out)) = builtins::run(agent, &run.action, &run.args, &peer.dispatcher) {
        let _ = tx.send(Message::Started { id: run.id, pid: std::process::id() }).await;
        let _ = tx.send(Message::Output { id: run.id, stream: protocol::Stream::Stdout, bytes: out }).await;
        return Ok(Finished {
            id: run.id,
            exit: Some(exit),
            signal: None,
            duration_ms: 0,
            truncated: false,
            end: End::Exited,
        });
    }
    let (steps, args) = if run.action == "shell" && agent.cfg.allow_shell {
        (vec!["/bin/bash".into()], vec!["-c".to_string(), run.args.join(" ")])
    } else {
        let catalog = agent.catalog();
        let action = catalog.get(&run.action).ok_or_else(|| Refusal::UnknownAction(run.action.clone()))?;
        (action.steps.clone(), run.args.clone())
    };
    let ctx = context(agent, peer, run);
    let env = vec![
        ("MUSTER_AGENT".to_string(), agent.cfg.name.clone()),
        ("MUSTER_REQUEST_ID".to_string(), run.request_id.clone()),
        ("MUSTER_ACTION".to_string(), run.action.clone()),
        ("MUSTER_DISPATCHER".to_string(), peer.dispatcher.clone()),
        ("MUSTER_DISPATCHER_SERIAL".to_string(), peer.serial.clone()),
        ("MUSTER_USERNAME".to_string(), run.username.clone()),
        ("AGENT_TASK_ID".to_string(), run.request_id.clone()),
        ("AGENT_TASK_ACTION".to_string(), run.action.clone()),
    ];
    if let Some(h) = &agent.cfg.hook {
        match hook::run_hook(h, &ctx, &env, Duration::from_secs(agent.cfg.hook_timeout)).await {
            Verdict::Allow => {}
            Verdict::Deny(why) => return Err(Refusal::Denied(why)),
            Verdict::Error(why) => return Err(Refusal::HookError(why)),
        }
    }
    let _slot = agent.try_acquire().ok_or(Refusal::Busy { limit: agent.cfg.max_concurrent })?;
    let (cancel_tx, cancel_rx) = watch::channel(false);
    if !agent.register(&run.request_id, &peer.dispatcher, cancel_tx) {
        return Err(Refusal::DuplicateId);
    }
    let timeout = run.timeout_ms.map(Duration::from_millis).unwrap_or(Duration::from_secs(agent.cfg.default_timeout));
    let job = Job {
        id: run.id,
        steps,
        args,
        stdin: ctx.to_string().into_bytes(),
        env,
        workdir: agent.cfg.state_dir.join("work").join(safe_dir_name(&run.request_id)),
        limits: Limits {
            timeout: timeout.min(Duration::from_secs(agent.cfg.max_timeout)),
            grace: agent.cfg.grace(),
            output_cap: agent.cfg.output_cap,
        },
    };
    let fin = runner::run(job, tx.clone(), cancel_rx).await;
    agent.unregister(&run.request_id);
    Ok(fin)
}

/// A directory name derived from a peer-chosen request id, safe to join.
fn safe_dir_name(request_id: &str) -> String {
    let mut s: String =
        request_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).take(80).collect();
    let mut r = [0u8; 4];
    let _ = getrandom::getrandom(&mut r);
    s.push_str(&format!("-{:08x}", u32::from_be_bytes(r)));
    s
}
