//! The request path every front door shares (mTLS session, hub
//! subscriber). [`admit`] does the checks that cost nothing — action name,
//! arguments, builtins, the catalog — so a refusal needs no task; [`claim`]
//! takes a run slot and registers the request id before anything is
//! spawned, so request tasks, hook processes and action processes are all
//! bounded by `max_concurrent`; [`execute`] runs the agent hook (only once
//! a slot is held), then the action, and logs one line.

use super::session::Peer;
use super::{builtins, Agent, Slot};
use crate::exec::hook::{self, Verdict};
use crate::exec::{runner, Job, Limits};
use crate::protocol::{self, End, Finished, Message, Refusal, Run, Stream};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

const MAX_ARGS: usize = 256;
const MAX_ARG_BYTES: usize = 64 * 1024;
const MAX_ARGS_TOTAL: usize = 256 * 1024;
/// PATH for actions when the agent itself has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A request that passed the free checks.
pub enum Admitted {
    /// A builtin: exit code and stdout, answered at once.
    Builtin(i32, Vec<u8>),
    /// An action: its steps and the argument vector they get.
    Action { steps: Vec<PathBuf>, args: Vec<String> },
    /// `read-file PATH`: the file's bytes, streamed.
    ReadFile(String),
}

/// A held run slot and registration; dropping it frees both.
pub struct Claim {
    agent: Arc<Agent>,
    request_id: String,
    _slot: Slot,
    cancel: watch::Receiver<bool>,
    pgid: Arc<std::sync::atomic::AtomicU32>,
}

impl Claim {
    /// Set when the request is cancelled (by its dispatcher or a stop).
    pub fn cancelled(&self) -> watch::Receiver<bool> {
        self.cancel.clone()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.agent.unregister(&self.request_id);
    }
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

/// Check a request without taking anything: name, arguments, builtins,
/// then the catalog (or the `shell` action where the config allows it).
pub fn admit(agent: &Agent, peer: &Peer, run: &Run) -> Result<Admitted, Refusal> {
    protocol::check_action_name(&run.action).map_err(|e| Refusal::BadName(e.to_string()))?;
    check_args(&run.args).map_err(Refusal::BadArgs)?;
    if run.action == "read-file" {
        return match run.args.as_slice() {
            [path] => Ok(Admitted::ReadFile(path.clone())),
            _ => Err(Refusal::BadArgs("usage: read-file ABSOLUTE-PATH".into())),
        };
    }
    if let Some((exit, out)) = builtins::run(agent, &run.action, &run.args, peer) {
        return Ok(Admitted::Builtin(exit, out));
    }
    if run.action == "shell" && agent.cfg.allow_shell {
        return Ok(Admitted::Action {
            steps: vec!["/bin/bash".into()],
            args: vec!["-c".to_string(), run.args.join(" ")],
        });
    }
    let catalog = agent.catalog();
    let action = catalog.get(&run.action).ok_or_else(|| Refusal::UnknownAction(run.action.clone()))?;
    Ok(Admitted::Action { steps: action.steps.clone(), args: run.args.clone() })
}

/// Take a run slot and register the request id.
pub fn claim(agent: &Arc<Agent>, peer: &Peer, run: &Run) -> Result<Claim, Refusal> {
    if agent.stopping.is_cancelled() {
        return Err(Refusal::ShuttingDown);
    }
    let slot = agent.try_acquire().ok_or(Refusal::Busy { limit: agent.cfg.max_concurrent })?;
    let (tx, rx) = watch::channel(false);
    let pgid = Arc::new(std::sync::atomic::AtomicU32::new(0));
    if !agent.register(&run.request_id, &peer.dispatcher, tx, pgid.clone()) {
        return Err(Refusal::DuplicateId);
    }
    Ok(Claim { agent: agent.clone(), request_id: run.request_id.clone(), _slot: slot, cancel: rx, pgid })
}

/// Answer a builtin: `Started`, its output, `Finished`.
pub async fn answer_builtin(run: &Run, exit: i32, out: Vec<u8>, tx: &mpsc::Sender<Message>) {
    let id = run.id;
    let _ = tx.send(Message::Started { id, pid: std::process::id() }).await;
    let _ = tx.send(Message::Output { id, stream: Stream::Stdout, bytes: out }).await;
    let fin = Finished { id, exit: Some(exit), signal: None, duration_ms: 0, truncated: false, end: End::Exited };
    let _ = tx.send(Message::Finished(fin)).await;
}

/// For an asynchronous request: start its stored record and return the
/// sender its execution should report to; every message is recorded, then
/// passed on to the session for as long as the session is there.
pub fn record(agent: &Arc<Agent>, peer: &Peer, run: &Run, session: mpsc::Sender<Message>) -> mpsc::Sender<Message> {
    agent.results.begin(&peer.dispatcher, run);
    let (tx, mut rx) = mpsc::channel::<Message>(256);
    let (agent2, dispatcher, request_id) = (agent.clone(), peer.dispatcher.clone(), run.request_id.clone());
    agent.spawn_request(async move {
        let mut forward = true;
        while let Some(m) = rx.recv().await {
            agent2.results.note(&dispatcher, &request_id, &m);
            if forward && session.send(m).await.is_err() {
                forward = false;
            }
        }
    });
    tx
}

/// Stream a file for a claimed `read-file` request.
pub async fn read_file(agent: Arc<Agent>, peer: Peer, run: Run, path: String, claim: Claim, tx: mpsc::Sender<Message>) {
    match super::files::read(&agent, run.id, &path, &tx).await {
        Ok(()) => log(&peer, &run, &format!("read {path}"), Duration::ZERO),
        Err(reason) => refuse(&peer, &run, reason, &tx).await,
    }
    drop(claim);
}

/// Send a refusal and log it.
pub async fn refuse(peer: &Peer, run: &Run, reason: Refusal, tx: &mpsc::Sender<Message>) {
    log(peer, run, &format!("refused ({reason})"), Duration::ZERO);
    let _ = tx.send(Message::Refused { id: run.id, reason }).await;
}

fn log(peer: &Peer, run: &Run, outcome: &str, took: Duration) {
    tracing::info!(
        request = %run.request_id,
        dispatcher = %peer.dispatcher,
        peer = %peer.addr,
        action = %run.action,
        user = %run.username,
        outcome = %outcome,
        duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        "request"
    );
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

/// The whole environment of an action: PATH, HOME and LANG (the agent's,
/// or defaults), what the config's `[env]` table adds, then the request's
/// `MUSTER_*` names and ns8's `AGENT_TASK_*`. Nothing else of the agent's
/// own environment leaks into actions.
fn environment(agent: &Agent, peer: &Peer, run: &Run) -> Vec<(String, String)> {
    let inherited = |k: &str, default: &str| std::env::var(k).unwrap_or_else(|_| default.to_string());
    let mut env = vec![
        ("PATH".to_string(), inherited("PATH", DEFAULT_PATH)),
        ("HOME".to_string(), inherited("HOME", "/")),
        ("LANG".to_string(), inherited("LANG", "C.UTF-8")),
    ];
    env.extend(agent.cfg.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.extend([
        ("MUSTER_AGENT".to_string(), agent.cfg.name.clone()),
        ("MUSTER_REQUEST_ID".to_string(), run.request_id.clone()),
        ("MUSTER_ACTION".to_string(), run.action.clone()),
        ("MUSTER_DISPATCHER".to_string(), peer.dispatcher.clone()),
        ("MUSTER_DISPATCHER_SERIAL".to_string(), peer.serial.clone()),
        ("MUSTER_USERNAME".to_string(), run.username.clone()),
        ("AGENT_TASK_ID".to_string(), run.request_id.clone()),
        ("AGENT_TASK_ACTION".to_string(), run.action.clone()),
    ]);
    env
}

/// Run a claimed request to its end: the agent hook, then the action.
/// Sends `Refused` (hook denial) or `Finished` on `tx`, logs one line.
pub async fn execute(
    agent: Arc<Agent>,
    peer: Peer,
    run: Run,
    steps: Vec<PathBuf>,
    args: Vec<String>,
    claim: Claim,
    tx: mpsc::Sender<Message>,
) {
    let t0 = Instant::now();
    let ctx = context(&agent, &peer, &run);
    let env = environment(&agent, &peer, &run);
    if let Some(h) = &agent.cfg.hook {
        let refusal = match hook::run_hook(h, &ctx, &env, agent.cfg.hook_timeout()).await {
            Verdict::Allow => None,
            Verdict::Deny(why) => Some(Refusal::Denied(why)),
            Verdict::Error(why) => Some(Refusal::HookError(why)),
        };
        if let Some(r) = refusal {
            return refuse(&peer, &run, r, &tx).await;
        }
    }
    let timeout = run.timeout_ms.map(Duration::from_millis).unwrap_or(agent.cfg.default_timeout());
    let job = Job {
        id: run.id,
        steps,
        args,
        stdin: ctx.to_string().into_bytes(),
        env,
        workdir: agent.cfg.state_dir.join("work").join(safe_dir_name(&run.request_id)),
        pgid: Some(claim.pgid.clone()),
        limits: Limits {
            timeout: timeout.min(agent.cfg.max_timeout()),
            grace: agent.cfg.grace(),
            output_cap: agent.cfg.output_cap,
        },
    };
    let fin = runner::run(job, tx.clone(), claim.cancelled()).await;
    log(&peer, &run, &outcome_text(&fin), t0.elapsed());
    let _ = tx.send(Message::Finished(fin)).await;
    // Only now is the request no longer running: its end report is queued.
    drop(claim);
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

/// A directory name derived from a peer-chosen request id, safe to join.
fn safe_dir_name(request_id: &str) -> String {
    let mut s: String =
        request_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).take(80).collect();
    let mut r = [0u8; 4];
    let _ = getrandom::getrandom(&mut r);
    s.push_str(&format!("-{:08x}", u32::from_be_bytes(r)));
    s
}
