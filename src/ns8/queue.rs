//! The task loop: `brpop <agent-id>/tasks <polling>` on a dedicated
//! connection, then for each task: decode it, store its masked context
//! (`task/<agent-id>/<task-id>/context`, 8 h), and start it in the
//! background, so the loop is back on the queue at once. A pop error is
//! logged once per distinct error (an initial WRONGPASS is expected while a
//! new agent's credentials propagate) and retried every polling interval on
//! a new connection, which is how the agent rides out a Redis restart.
//! On drain (SIGUSR1) a blocked pop is woken with `client unblock` (what it
//! may already have popped still runs), no more tasks are taken, and the
//! loop returns when every running task has finished.

use super::link::{self, error_text, READ_TIMEOUT};
use super::log::{log, ERR};
use super::task::{self, DecodeError, Task};
use super::{action, builtin, gojson, Agent, TASK_TTL_SECS};
use redis::aio::MultiplexedConnection;
use std::sync::Arc;
use tokio::sync::watch;

/// The error the original treats as already seen at startup.
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// A connection that blocks in `brpop`, with its `client id`.
struct Popper {
    conn: MultiplexedConnection,
    client_id: i64,
}

pub async fn serve(agent: Arc<Agent>, mut drain: watch::Receiver<bool>) {
    let mut popper: Option<Popper> = None;
    let mut last_error: Option<String> = Some(WRONGPASS.to_string());
    let queue = format!("{}/tasks", agent.cfg.id);
    let block_secs = agent.polling().as_secs().max(1);
    while !*drain.borrow() {
        let result = match popper.as_mut() {
            Some(p) => pop(&agent, p, &queue, block_secs, &mut drain).await,
            None => match open_popper(&agent, block_secs).await {
                Ok(p) => {
                    popper = Some(p);
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
    agent.idle().await;
}

async fn open_popper(agent: &Agent, block_secs: u64) -> redis::RedisResult<Popper> {
    let timeout = std::time::Duration::from_secs(block_secs) + READ_TIMEOUT;
    let mut conn = link::connect(&agent.cfg.tasks, Some(timeout)).await?;
    let client_id: i64 = redis::cmd("client").arg("id").query_async(&mut conn).await?;
    Ok(Popper { conn, client_id })
}

/// One blocking pop; on drain, wake it and still take what it returns.
async fn pop(
    agent: &Agent,
    p: &mut Popper,
    queue: &str,
    block_secs: u64,
    drain: &mut watch::Receiver<bool>,
) -> redis::RedisResult<Option<String>> {
    let mut conn = p.conn.clone();
    let cmd = redis::cmd("brpop").arg(queue).arg(block_secs).clone();
    let popping = cmd.query_async::<Option<(String, Vec<u8>)>>(&mut conn);
    tokio::pin!(popping);
    let popped = tokio::select! {
        r = &mut popping => r,
        _ = super::until(drain) => {
            let unblock = redis::cmd("client").arg("unblock").arg(p.client_id).clone();
            let _ = agent.redis.query::<redis::Value>(&unblock).await;
            popping.await
        }
    };
    Ok(popped?.map(|(_, raw)| String::from_utf8_lossy(&raw).into_owned()))
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
    let set = redis::cmd("set")
        .arg(agent.key(&task.id, "context"))
        .arg(gojson::encode_masked(&task.raw))
        .arg("ex")
        .arg(TASK_TTL_SECS)
        .clone();
    if let Err(e) = agent.redis.query::<redis::Value>(&set).await {
        log!(ERR, "Context set error: {}", error_text(&e, &agent.cfg.tasks.address));
    }
    if !builtin::is_builtin(&task.action) && overloaded(agent).await {
        let agent = agent.clone();
        tokio::spawn(async move { builtin::reject_overloaded(&agent, &task).await });
        return;
    }
    let (generation, cancel) = agent.register(&task.id);
    let agent = agent.clone();
    tokio::spawn(async move {
        work(&agent, &task, cancel).await;
        agent.unregister(&task.id, generation);
    });
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
    if agent.busy_workers() < agent.cfg.max_concurrency {
        return false;
    }
    tokio::time::sleep(agent.cfg.overload_sleep).await;
    agent.busy_workers() >= agent.cfg.max_concurrency
}
