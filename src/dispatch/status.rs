//! `muster status` and `muster wait`: ask each agent an asynchronous run
//! started on for its stored result (the `result` builtin, owner-gated on
//! the agent) and turn each answer into the same events and states a
//! synchronous run prints, with `running` for a target not ended yet.

use super::event::{Event, EventKind};
use super::outcome::{Reason, State, TargetResult};
use crate::agent::results::Record;
use crate::lifecycle::push::CallError;
use crate::transport::carrier::{Dialer, OpenError, Target};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// What one agent said about the request.
#[derive(Debug, Clone)]
pub enum Fetched {
    Record(Box<Record>),
    /// The agent has no such request for this dispatcher.
    NotFound(String),
    /// The agent could not be asked.
    Failed(State),
}

async fn fetch_one(dialer: &dyn Dialer, t: &Target, request_id: &str, limit: Duration) -> Fetched {
    match crate::lifecycle::push::call(dialer, t, "result", &[request_id.to_string()], limit).await {
        Ok(a) if a.exit == 0 => match serde_json::from_slice::<Record>(&a.out) {
            Ok(r) => Fetched::Record(Box::new(r)),
            Err(e) => Fetched::Failed(State::Refused(Reason::new("bad answer", format!("unreadable result: {e}")))),
        },
        Ok(a) => Fetched::NotFound(a.text()),
        Err(CallError::Open(OpenError::Unreachable(w))) => Fetched::Failed(State::Unreachable(w)),
        Err(CallError::Open(OpenError::Refused(w))) => Fetched::Failed(State::Refused(w)),
        Err(CallError::Failed(w)) => Fetched::Failed(State::Unreachable(Reason::new("connection lost", w))),
    }
}

/// Ask every target, at most `fanout` at once; answers in target order.
pub async fn fetch_all(
    dialer: Arc<dyn Dialer>,
    targets: Vec<Target>,
    request_id: &str,
    fanout: usize,
    limit: Duration,
) -> Vec<(String, Fetched)> {
    let window = Arc::new(Semaphore::new(fanout.max(1)));
    let mut handles = Vec::new();
    for t in targets {
        let (dialer, window, id) = (dialer.clone(), window.clone(), request_id.to_string());
        handles.push((
            t.name.clone(),
            tokio::spawn(async move {
                let _p = window.acquire_owned().await;
                fetch_one(&*dialer, &t, &id, limit).await
            }),
        ));
    }
    let mut out = Vec::new();
    for (name, h) in handles {
        let f = h.await.unwrap_or_else(|e| {
            Fetched::Failed(State::Failed {
                exit: None,
                signal: None,
                why: Some(format!("dispatcher internal error: {e}")),
            })
        });
        out.push((name, f));
    }
    out
}

/// The state a stored record describes.
fn state_of(r: &Record) -> State {
    let why = || r.detail.clone().unwrap_or_default();
    match r.state.as_str() {
        "running" => State::Running { pid: r.pid },
        "succeeded" => State::Succeeded,
        "timed-out" => State::TimedOut,
        "cancelled" => State::Cancelled,
        "lost" => State::Lost(Reason::new("agent stopped", why())),
        "refused" => State::Refused(Reason::new("refused", why())),
        _ => State::Failed { exit: r.exit, signal: r.signal, why: r.detail.clone() },
    }
}

/// The events and the end of one target as `status` shows them.
pub fn events(name: &str, f: &Fetched) -> (Vec<Event>, TargetResult) {
    let ev = |kind| Event { target: name.to_string(), kind };
    match f {
        Fetched::Record(r) => {
            let mut out = Vec::new();
            if let Some(pid) = r.pid {
                out.push(ev(EventKind::Started { pid }));
            }
            for c in &r.output {
                let (stream, bytes) = c.bytes();
                out.push(ev(EventKind::Output { stream, bytes }));
            }
            let result = TargetResult { name: name.to_string(), state: state_of(r), truncated: r.truncated };
            out.push(Event::end(result.clone()));
            (out, result)
        }
        Fetched::NotFound(why) => {
            let r = TargetResult::new(name, State::Refused(Reason::new("not found", why.clone())));
            (vec![Event::end(r.clone())], r)
        }
        Fetched::Failed(state) => {
            let r = TargetResult::new(name, state.clone());
            (vec![Event::end(r.clone())], r)
        }
    }
}
