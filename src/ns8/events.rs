//! Events: one-to-many messages on channels `<source>/event/<name>`. The
//! agent subscribes with `psubscribe */event/*` (as the `default` user,
//! from the replica when `REDIS_REPLICA_ADDRESS` is set), pings the
//! connection every polling interval, and reconnects and resubscribes when
//! it drops. Each message runs the handler steps found under the
//! `--eventsdir` roots for `<name>` (same ordering and override rules as
//! actions, no schema files) concurrently with everything else: payload on
//! stdin, output and stderr straight onto the agent's stderr, `AGENT_COMFD=2`
//! so commands land in the log too, steps stopping at the first failure,
//! and the outcome only logged. An event with no handler is ignored. An
//! error reply on the subscription (e.g. an ACL `NOPERM` for the pattern)
//! is logged with its reason and the subscription is retried.

use super::log::{errno_text, log, DEBUG, ERR, INFO, WARNING};
use super::progress::{ABORTED, COMPLETED, PENDING, RUNNING};
use super::resp::{Conn, Reply, RespError};
use super::{action, envfile, Agent};
use crate::exec::roots;
use crate::exec::step::{self, Sink, StepCommand};
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

pub const PATTERN: &str = "*/event/*";

/// Listen until `stop`, then wait for running handlers.
pub async fn listen(agent: Arc<Agent>, mut stop: watch::Receiver<bool>) {
    let handlers = Arc::new(watch::channel(0usize).0);
    let mut last_error: Option<String> = None;
    while !*stop.borrow() {
        let error = match subscribe(&agent).await {
            Ok((writer, replies)) => {
                match receive(&agent, writer, replies, &handlers, &mut stop, &mut last_error).await {
                    Some(e) => e.to_string(),
                    None => break,
                }
            }
            Err(e) => e.to_string(),
        };
        if last_error.as_deref() != Some(error.as_str()) {
            log!(ERR, "redis: discarding bad PubSub connection: {error}");
            last_error = Some(error);
        }
        tokio::select! {
            _ = tokio::time::sleep(agent.polling()) => {}
            _ = super::until(&mut stop) => {}
        }
    }
    let mut rx = handlers.subscribe();
    let _ = rx.wait_for(|n| *n == 0).await;
}

type Replies = tokio::sync::mpsc::Receiver<Result<Reply, RespError>>;

async fn subscribe(agent: &Agent) -> Result<(super::resp::Writer, Replies), RespError> {
    let s = &agent.cfg.events;
    let mut conn = Conn::open(&s.address, Duration::from_secs(5)).await?;
    if let (Some(user), Some(password)) = (&s.username, &s.password) {
        conn.call(&["auth", user, password]).await?;
    }
    conn.call(&["client", "setname", &s.name]).await?;
    conn.send(&["psubscribe", PATTERN]).await?;
    Ok(conn.into_split())
}

/// Dispatch messages until the connection fails (`Some(error)`) or `stop`.
/// The first good reply (the `psubscribe` confirmation) clears
/// `last_error`, so a failure that repeats on every attempt is logged once.
async fn receive(
    agent: &Arc<Agent>,
    mut writer: super::resp::Writer,
    mut replies: Replies,
    handlers: &Arc<watch::Sender<usize>>,
    stop: &mut watch::Receiver<bool>,
    last_error: &mut Option<String>,
) -> Option<RespError> {
    let polling = agent.polling();
    let mut seen = Instant::now();
    loop {
        tokio::select! {
            reply = replies.recv() => match reply {
                // A refused `psubscribe` or `ping` (ACL): log its reason and
                // start over rather than believe we are subscribed.
                Some(Ok(Reply::Error(text))) => return Some(RespError::Server(text)),
                Some(Ok(reply)) => {
                    *last_error = None;
                    seen = Instant::now();
                    if let Some((channel, payload)) = message(&reply) {
                        start(agent, handlers, &channel, payload);
                    }
                }
                Some(Err(e)) => return Some(e),
                None => return Some(RespError::Closed),
            },
            _ = tokio::time::sleep(polling) => {
                if seen.elapsed() > polling * 2 + super::link::READ_TIMEOUT {
                    return Some(RespError::Silent);
                }
                if let Err(e) = writer.send(&["ping"]).await {
                    return Some(e);
                }
            }
            _ = super::until(stop) => return None,
        }
    }
}

/// `(channel, payload)` of a `pmessage` push.
fn message(reply: &Reply) -> Option<(String, Vec<u8>)> {
    let Reply::Array(Some(items)) = reply else { return None };
    match items.as_slice() {
        [kind, _pattern, channel, payload] if kind.bytes() == Some(b"pmessage") => {
            Some((String::from_utf8_lossy(channel.bytes()?).into_owned(), payload.bytes()?.to_vec()))
        }
        _ => None,
    }
}

fn start(agent: &Arc<Agent>, handlers: &Arc<watch::Sender<usize>>, channel: &str, payload: Vec<u8>) {
    let Some((source, name)) = channel.split_once("/event/") else { return };
    let (agent, handlers) = (agent.clone(), handlers.clone());
    let (source, name) = (source.to_string(), name.to_string());
    handlers.send_modify(|n| *n += 1);
    tokio::spawn(async move {
        handle(&agent, &source, &name, payload).await;
        handlers.send_modify(|n| *n = n.saturating_sub(1));
    });
}

async fn handle(agent: &Agent, source: &str, name: &str, payload: Vec<u8>) {
    let (roots, wanted) = (agent.cfg.event_roots.clone(), name.to_string());
    let steps = super::off_worker(move || roots::scan_handler(&roots, &wanted)).await.unwrap_or_else(|e| {
        log!(ERR, "Handler of {source}/event/{name} scan failed: {e}");
        Vec::new()
    });
    if steps.is_empty() {
        return;
    }
    let mut vars: Vec<(String, String)> = envfile::for_child(&envfile::read_async().await).collect();
    vars.extend([
        ("AGENT_COMFD".to_string(), "2".to_string()),
        ("AGENT_EVENT_NAME".to_string(), name.to_string()),
        ("AGENT_EVENT_SOURCE".to_string(), source.to_string()),
    ]);
    let (mut status, mut exit_code, mut last_step) = (PENDING, 0, String::new());
    for step in &steps {
        last_step = step.name.clone();
        status = RUNNING;
        let spec = StepCommand {
            env: vars.clone(),
            own_group: false,
            stdout: Sink::AgentStderr,
            stderr: Sink::AgentStderr,
            kill_on_drop: false,
            ..StepCommand::new(&step.path)
        };
        let mut spawned = match step::spawn(&spec, payload.clone()) {
            Ok(s) => s,
            Err(e) => {
                let why = format!("fork/exec {}: {}", step.path.display(), errno_text(&e));
                if action::skippable(&step.path, &e).await {
                    log!(WARNING, "Handler of {source}/event/{name} skipped step {}: {why}", step.name);
                    continue;
                }
                log!(ERR, "Handler of {source}/event/{name} failed at step {}: {why}", step.name);
                exit_code = 9;
                status = ABORTED;
                break;
            }
        };
        log!(DEBUG, "Handler of {source}/event/{name} is starting step {}", step.name);
        match spawned.child.wait().await {
            Ok(s) if s.success() => {}
            Ok(s) => {
                log!(ERR, "{}", exit_text(&s));
                exit_code = s.code().unwrap_or(-1);
                status = ABORTED;
                break;
            }
            Err(e) => {
                log!(ERR, "{e}");
                exit_code = -1;
                status = ABORTED;
                break;
            }
        }
    }
    if exit_code == 0 {
        status = COMPLETED;
    }
    log!(INFO, "Handler of {source}/event/{name} exited with status \"{status}\" ({exit_code}) at step {last_step}");
}

/// Go's `*exec.ExitError` text: "exit status 2", "signal: terminated".
fn exit_text(s: &std::process::ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("signal: {}", signal_name(sig)),
        _ => "exit status -1".into(),
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGHUP => "hangup".into(),
        libc::SIGINT => "interrupt".into(),
        libc::SIGQUIT => "quit".into(),
        libc::SIGABRT => "aborted".into(),
        libc::SIGKILL => "killed".into(),
        libc::SIGSEGV => "segmentation fault".into(),
        libc::SIGPIPE => "broken pipe".into(),
        libc::SIGTERM => "terminated".into(),
        libc::SIGUSR1 => "user defined signal 1".into(),
        libc::SIGUSR2 => "user defined signal 2".into(),
        n => format!("signal {n}"),
    }
}
