//! The actions the agent answers itself, which no root can override, and
//! the answers it gives to tasks it will not run:
//! - `list-actions`: the action directories across the roots plus the
//!   builtins, as a JSON array in the output key;
//! - `cancel-task` `{"task": ID}`: TERM to that task's running step; exit 2
//!   (`validation-failed`) when no running task has the id, exit 10 when
//!   the input is not `{"task": string, "timeout": integer}`;
//! - a task refused because `MAX_CONCURRENCY` tasks are running: exit 11
//!   (never a builtin: see [`is_builtin`]);
//! - a task that is JSON with an id but has fields of the wrong type: exit
//!   10 with the decoding error, instead of the original's silent drop.

use super::log::{log, ERR, INFO, WARNING};
use super::progress::{Processor, ABORTED, COMPLETED, RUNNING, VALIDATION_FAILED};
use super::task::Task;
use super::{gojson, Agent, Outcome};
use crate::exec::roots;
use serde_json::Value;

pub const LIST_ACTIONS: &str = "list-actions";
pub const CANCEL_TASK: &str = "cancel-task";
/// Exit code of a task refused by an overloaded agent (reserved range 11-31).
pub const EXIT_OVERLOADED: i32 = 11;

/// True for the actions the agent answers itself. They skip the
/// `MAX_CONCURRENCY` check (a deliberate difference from ns8-core, whose
/// limit applies to every task): they run no step, end at once, and
/// `cancel-task` is exactly what an operator needs when the agent is full.
pub fn is_builtin(action: &str) -> bool {
    action == LIST_ACTIONS || action == CANCEL_TASK
}

pub async fn list_actions(agent: &Agent, task: &Task) {
    let mut proc = Processor::one_step(&task.action);
    agent.publish(&task.id, &proc).await;
    proc.status = RUNNING;
    agent.publish(&task.id, &proc).await;
    let roots = agent.cfg.action_roots.clone();
    let found = super::off_worker(move || roots::list(&roots)).await.unwrap_or_else(|e| {
        log!(ERR, "Action list failed: {e}");
        Vec::new()
    });
    let mut names: Vec<Value> = found.into_iter().map(Value::String).collect();
    names.extend([Value::from(LIST_ACTIONS), Value::from(CANCEL_TASK)]);
    let out = Outcome { output: gojson::encode(&Value::Array(names)).into_bytes(), ..Outcome::default() };
    let _ = proc.set_progress_at_step(0, 100);
    proc.status = COMPLETED;
    agent.finish(&task.id, &proc, &out, None).await;
}

pub async fn cancel_task(agent: &Agent, task: &Task) {
    let mut proc = Processor::one_step(&task.action);
    agent.publish(&task.id, &proc).await;
    let mut out = Outcome::default();
    let mut last_step = "builtin-validation.json";
    match cancel_request(&task.data) {
        Some(target) => {
            proc.status = RUNNING;
            agent.publish(&task.id, &proc).await;
            last_step = "task-lookup";
            if agent.cancel(&target) {
                log!(INFO, "task/{}/{}: {}/{last_step} is starting", agent.cfg.id, task.id, task.action);
                last_step = "cancellation";
                let _ = proc.set_progress_at_step(0, 100);
                proc.status = COMPLETED;
            } else {
                let msg = "Action cancel-task validation-failed at step task-lookup: task ID not found";
                out.exit_code = 2;
                proc.status = VALIDATION_FAILED;
                out.error = msg.as_bytes().to_vec();
                log!(ERR, "{msg}");
            }
        }
        None => {
            let msg = "Action cancel-task validation-failed at step builtin-validation.json: invalid task ID or timeout value";
            out.exit_code = 10;
            proc.status = VALIDATION_FAILED;
            out.error = msg.as_bytes().to_vec();
            log!(ERR, "{msg}");
        }
    }
    agent.finish(&task.id, &proc, &out, None).await;
    agent.log_end(task, &proc, &out, last_step);
}

/// The id to cancel, when `data` decodes as the original's request struct
/// (`{Task string; Timeout int}`, names matched ignoring case) with a
/// non-empty task. The data went through float64, so `2.0` is an integer.
fn cancel_request(data: &Value) -> Option<String> {
    let map = match data {
        Value::Null => return None,
        Value::Object(m) => m,
        _ => return None,
    };
    let pick = |name: &str| super::task::field(map, name);
    let target = match pick("task") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return None,
    };
    match pick("timeout") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() != 0.0 || f.abs() >= 9.2e18 {
                return None;
            }
        }
        Some(_) => return None,
    }
    (!target.is_empty()).then_some(target)
}

/// Refuse a task because too many are running.
pub async fn reject_overloaded(agent: &Agent, task: &Task) {
    let mut proc = Processor::one_step(&task.action);
    proc.status = ABORTED;
    let msg = format!("Agent overloaded: {} tasks are running. Task {} rejected", agent.busy_workers(), task.id);
    log!(WARNING, "task/{}/{}: {msg}", agent.cfg.id, task.id);
    let out = Outcome { error: format!("{msg}\n").into_bytes(), exit_code: EXIT_OVERLOADED, ..Outcome::default() };
    agent.finish(&task.id, &proc, &out, None).await;
}

/// Answer a task that names itself but cannot be decoded.
pub async fn reject_malformed(agent: &Agent, task_id: &str, why: &str) {
    let proc = Processor { status: VALIDATION_FAILED, ..Processor::one_step("") };
    let out = Outcome {
        error: format!("Task ignored for decoding error: {why}\n").into_bytes(),
        exit_code: 10,
        ..Outcome::default()
    };
    agent.finish(task_id, &proc, &out, None).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cancel_input_like_go() {
        assert_eq!(cancel_request(&json!({"task": "t1", "timeout": 2})), Some("t1".into()));
        assert_eq!(cancel_request(&json!({"TASK": "t1", "timeout": 2.0})), Some("t1".into()));
        for bad in [
            json!({"Mask": "x", "timeout": 2}),
            json!({"task": "t", "timeout": 2.5}),
            json!({"task": 3}),
            json!("t"),
            Value::Null,
        ] {
            assert_eq!(cancel_request(&bad), None, "{bad}");
        }
    }
}
