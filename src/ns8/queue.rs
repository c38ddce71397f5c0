//! The task loop: `brpop <agent-id>/tasks 1` on a dedicated connection,
//! then for each task: decode it and start it in the background, the
//! task's first act being to store its masked context
//! (`task/<agent-id>/<task-id>/context`, 8 h), so the loop is back on the
//! queue at once (at the concurrency limit the loop stores the context
//! itself before the grace period, as the original does). A pop error is
//! logged once per distinct error (an initial WRONGPASS is expected while a
//! new agent's credentials propagate) and retried every polling interval on
//! a new connection, which is how the agent rides out a Redis restart.
//!
//! Drain (SIGUSR1) needs no admin command: ns8's module ACL excludes
//! `@admin`, so `client unblock` would be refused. Each pop blocks at most
//! [`POP_TIMEOUT_SECS`] and is always awaited to its end (so a task Redis
//! has already handed over is never dropped on the floor); the drain flag
//! is checked between pops. A drain therefore stops taking tasks within
//! about a second, whatever the polling interval, and the loop returns
//! when every running task has finished.

use super::link::{self, error_text, READ_TIMEOUT};
use super::log::{log, ERR};
use super::task::{self, DecodeError, Task};
use super::{action, builtin, gojson, Agent, TASK_TTL_SECS};
use redis::aio::MultiplexedConnection;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The error the original treats as already seen at startup.
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Seconds one `brpop` blocks: the longest a drain waits for the pop in
/// flight. Whole seconds, as every Redis version accepts (fractions need
/// Redis 6); the original blocked for the polling interval (5 s).
pub const POP_TIMEOUT_SECS: u64 = 1;

/// Pop tasks until `drain` is set, then wait for the running ones.
pub async fn serve(agent: Arc<Agent>, mut drain: watch::Receiver<bool>) {
    let mut popper: Option<MultiplexedConnection> = None;
    let mut last_error: Option<String> = Some(WRONGPASS.to_string());
    let queue = format!("{}/tasks", agent.cfg.id);
    while !*drain.borrow() {
        let result = match popper.as_mut() {
            Some(conn) => pop(conn, &queue).await,
            None => match open_popper(&agent).await {
                Ok(conn) => {
                    popper = Some(conn);
                    continue;
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(None) => last_error = None,
            Ok(Some(raw)) => {
                last_error = None;
                accept(&agent, &raw).await;
            }
            Err(e) => {
                popper = None;
                let text = error_text(&e, &agent.cfg.tasks.address);
                if last_error.as_deref() != Some(text.as_str()) {
                    log!(ERR, "Task queue pop error: {text}");
                    last_error = Some(text);
                }
                tokio::select! {
                    _ = tokio::time::sleep(agent.polling()) => {}
                    _ = super::until(&mut drain) => {}
                }
            }
        }
    }
    // Closing the pop connection shows the queue is no longer read (it
    // leaves Redis' client list), then the running tasks are waited for.
    drop(popper);
    agent.idle().await;
}

async fn open_popper(agent: &Agent) -> redis::RedisResult<MultiplexedConnection> {
    let timeout = Duration::from_secs(POP_TIMEOUT_SECS) + READ_TIMEOUT;
    link::connect(&agent.cfg.tasks, Some(timeout)).await
}

/// One blocking pop of at most [`POP_TIMEOUT_SECS`], awaited to its end.
async fn pop(conn: &mut MultiplexedConnection, queue: &str) -> redis::RedisResult<Option<String>> {
    let cmd = redis::cmd("brpop").arg(queue).arg(POP_TIMEOUT_SECS).clone();
    let popped = cmd.query_async::<Option<(String, Vec<u8>)>>(conn).await?;
    Ok(popped.map(|(_, raw)| String::from_utf8_lossy(&raw).into_owned()))
}

/// Decode, store the context and start one popped task.
async fn accept(agent: &Arc<Agent>, raw: &str) {
    let task = match task::decode(raw) {
        Ok(t) => t,
        Err(e) => {
            log!(ERR, "Task ignored for decoding error: {e}");
            if let DecodeError::Type { id: Some(id), message } = &e {
                builtin::reject_malformed(agent, id, message).await;
            }
            return;
        }
    };
    let builtin = builtin::is_builtin(&task.action);
    // Below the limit the context is stored by the task itself, before it
    // publishes anything, so the loop goes back to the queue without a
    // round trip; at the limit it is stored first, as the original does,
    // and the grace period runs.
    if !builtin && agent.busy_workers() >= agent.cfg.max_concurrency {
        store_context(agent, &task).await;
        if overloaded(agent).await {
            let agent = agent.clone();
            tokio::spawn(async move { builtin::reject_overloaded(&agent, &task).await });
            return;
        }
        start(agent, task, false);
    } else {
        start(agent, task, true);
    }
}

/// Register and start a task (storing its context first when `context`).
fn start(agent: &Arc<Agent>, task: Task, context: bool) {
    let (generation, cancel) = agent.register(&task.id);
    let agent = agent.clone();
    tokio::spawn(async move {
        if context {
            store_context(&agent, &task).await;
        }
        work(&agent, &task, cancel).await;
        agent.unregister(&task.id, generation);
    });
}

/// `task/<agent-id>/<task-id>/context`: the task as popped, masked, 8 h.
async fn store_context(agent: &Agent, task: &Task) {
    let set = redis::cmd("set")
        .arg(agent.key(&task.id, "context"))
        .arg(gojson::encode_masked(&task.raw))
        .arg("ex")
        .arg(TASK_TTL_SECS)
        .clone();
    if let Err(e) = agent.redis.query::<redis::Value>(&set).await {
        log!(ERR, "Context set error: {}", error_text(&e, &agent.cfg.tasks.address));
    }
}

async fn work(agent: &Agent, task: &Task, cancel: watch::Receiver<bool>) {
    match task.action.as_str() {
        builtin::LIST_ACTIONS => builtin::list_actions(agent, task).await,
        builtin::CANCEL_TASK => builtin::cancel_task(agent, task).await,
        _ => action::run(agent, task, cancel).await,
    }
}

/// At the limit, wait the grace period once and check again.
async fn overloaded(agent: &Agent) -> bool {
    tokio::time::sleep(agent.cfg.overload_sleep).await;
    agent.busy_workers() >= agent.cfg.max_concurrency
}
