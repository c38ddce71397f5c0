//! The fan-out: a sliding window of at most `fanout` targets in flight, an
//! error budget (`max_errors`: once that many targets have failed, no new
//! target starts and the rest end `skipped`), per host:action locks, and one
//! task per target that opens a session, sends the request and turns the
//! replies into [`Event`]s. An interrupt cancels what runs and skips the rest.

use super::carrier::{Carrier, Session, Target};
use super::locks::{self, LockResult};
use super::outcome::{State, TargetResult};
use crate::protocol::{Message, Run, Stream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};

/// What to run where, and how.
#[derive(Debug, Clone)]
pub struct Plan {
    pub targets: Vec<Target>,
    /// Names that cannot be dialled at all, with the reason.
    pub missing: Vec<(String, String)>,
    pub request_id: String,
    pub action: String,
    pub args: Vec<String>,
    pub username: String,
    pub token: Option<String>,
    pub timeout: Option<Duration>,
    pub fanout: usize,
    pub max_errors: Option<usize>,
    /// Where host:action locks live; `None` disables locking.
    pub lock_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Started { pid: u32 },
    Output { stream: Stream, bytes: Vec<u8> },
    End(TargetResult),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub target: String,
    pub kind: EventKind,
}

/// Extra time the dispatcher waits beyond the requested timeout for the
/// agent's own `Finished` (the agent needs its kill grace).
const TIMEOUT_SLACK: Duration = Duration::from_secs(30);
/// How long a cancelled target may take to report its end.
const CANCEL_WAIT: Duration = Duration::from_secs(15);

/// Run the plan; every target gets exactly one `End` event, and the
/// results come back in plan order (missing names first).
pub async fn dispatch<C: Carrier>(
    carrier: Arc<C>,
    plan: Plan,
    events: mpsc::Sender<Event>,
    interrupt: watch::Receiver<bool>,
) -> Vec<TargetResult> {
    let mut results = Vec::new();
    for (name, why) in &plan.missing {
        let r = TargetResult { name: name.clone(), state: State::Unreachable(why.clone()), truncated: false };
        let _ = events.send(Event { target: name.clone(), kind: EventKind::End(r.clone()) }).await;
        results.push(r);
    }
    let plan = Arc::new(plan);
    let window = Arc::new(Semaphore::new(plan.fanout.max(1)));
    let failures = Arc::new(AtomicUsize::new(0));
    let budget = plan.max_errors.unwrap_or(usize::MAX);
    let mut handles = Vec::with_capacity(plan.targets.len());
    for (i, target) in plan.targets.iter().enumerate() {
        let permit = tokio::select! {
            p = window.clone().acquire_owned() => p.ok(),
            _ = wait_set(interrupt.clone()) => None,
        };
        let stop = *interrupt.borrow() || failures.load(Ordering::Acquire) >= budget;
        let Some(permit) = permit.filter(|_| !stop) else {
            for t in &plan.targets[i..] {
                handles.push(tokio::spawn(end_now(t.name.clone(), State::Skipped, events.clone())));
            }
            break;
        };
        let (carrier, plan, events, failures, interrupt, target) =
            (carrier.clone(), plan.clone(), events.clone(), failures.clone(), interrupt.clone(), target.clone());
        handles.push(tokio::spawn(async move {
            let r = one_target(&*carrier, &plan, &target, &events, interrupt).await;
            if !r.state.is_success() {
                failures.fetch_add(1, Ordering::AcqRel);
            }
            drop(permit);
            let _ = events.send(Event { target: target.name.clone(), kind: EventKind::End(r.clone()) }).await;
            r
        }));
    }
    for h in handles {
        if let Ok(r) = h.await {
            results.push(r);
        }
    }
    results
}

async fn wait_set(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn end_now(name: String, state: State, events: mpsc::Sender<Event>) -> TargetResult {
    let r = TargetResult { name: name.clone(), state, truncated: false };
    let _ = events.send(Event { target: name, kind: EventKind::End(r.clone()) }).await;
    r
}

async fn one_target<C: Carrier>(
    carrier: &C,
    plan: &Plan,
    target: &Target,
    events: &mpsc::Sender<Event>,
    interrupt: watch::Receiver<bool>,
) -> TargetResult {
    let result = |state| TargetResult { name: target.name.clone(), state, truncated: false };
    if let Err(e) = crate::protocol::check_action_name(&plan.action) {
        return result(State::Refused(format!("bad action name: {e}")));
    }
    let _lock = match &plan.lock_dir {
        None => None,
        Some(dir) => match locks::try_lock(dir, &target.name, &plan.action) {
            LockResult::Held(l) => Some(l),
            LockResult::Busy => {
                return result(State::Refused(format!(
                    "locked: {} is already running on {} from this dispatcher",
                    plan.action, target.name
                )))
            }
            LockResult::Error(e) => return result(State::Refused(e)),
        },
    };
    let session = match carrier.open(target).await {
        Ok(s) => s,
        Err(super::carrier::OpenError::Unreachable(why)) => return result(State::Unreachable(why)),
        Err(super::carrier::OpenError::Refused(why)) => return result(State::Refused(why)),
    };
    converse(session, plan, target, events, interrupt).await
}

/// Send the request on an open session and follow it to its end.
async fn converse(
    mut s: Session,
    plan: &Plan,
    target: &Target,
    events: &mpsc::Sender<Event>,
    mut interrupt: watch::Receiver<bool>,
) -> TargetResult {
    let mut result =
        TargetResult { name: target.name.clone(), state: State::Unreachable(String::new()), truncated: false };
    let run = Run {
        id: 1,
        request_id: plan.request_id.clone(),
        action: plan.action.clone(),
        args: plan.args.clone(),
        username: plan.username.clone(),
        token: plan.token.clone(),
        timeout_ms: plan.timeout.map(|t| t.as_millis() as u64),
    };
    if let Err(e) = s.writer.write(&Message::Run(run)).await {
        result.state = State::Unreachable(format!("connection lost while sending: {e}"));
        return result;
    }
    let mut deadline = plan.timeout.map(|t| tokio::time::Instant::now() + t + TIMEOUT_SLACK);
    let mut cancelled = false;
    loop {
        let read = s.reader.read();
        let msg = tokio::select! {
            m = read => m,
            _ = sleep_opt(deadline) => {
                result.state = if cancelled { State::Cancelled } else { State::TimedOut };
                return result;
            }
            _ = wait_set(interrupt.clone()), if !cancelled => {
                cancelled = true;
                let _ = s.writer.write(&Message::Cancel { id: 1 }).await;
                deadline = Some(tokio::time::Instant::now() + CANCEL_WAIT);
                interrupt.mark_unchanged();
                continue;
            }
        };
        let send = |kind| events.send(Event { target: target.name.clone(), kind });
        match msg {
            Ok(Some(Message::Started { pid, .. })) => {
                let _ = send(EventKind::Started { pid }).await;
            }
            Ok(Some(Message::Output { stream, bytes, .. })) => {
                let _ = send(EventKind::Output { stream, bytes }).await;
            }
            Ok(Some(Message::Finished(f))) => {
                result.state = State::from_finished(&f);
                result.truncated = f.truncated;
                return result;
            }
            Ok(Some(Message::Refused { reason, .. })) => {
                result.state = State::Refused(reason.to_string());
                return result;
            }
            Ok(Some(Message::Error { message })) => {
                result.state = State::Refused(message);
                return result;
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                result.state = State::Unreachable("agent closed the connection before the request ended".into());
                return result;
            }
            Err(e) => {
                result.state =
                    State::Unreachable(format!("connection lost: {}", super::carrier::explain_read(&e.to_string())));
                return result;
            }
        }
    }
}

async fn sleep_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
