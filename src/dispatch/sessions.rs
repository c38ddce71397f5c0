//! Dispatch over a [`Dialer`]: a sliding window of at most `fanout` targets
//! in flight, an error budget (once `max_errors` targets have not
//! succeeded, no new target starts and the rest end `skipped`), host:action
//! locks, and one task per target that opens a session, sends the request
//! and follows it to its end. Every target ends, whatever its agent does:
//! the request carries a timeout, the dispatcher declares `timed-out` at
//! timeout + kill grace + slack, and a session silent for
//! `liveness.lost_after` (pings go out every `ping_every`) ends `lost`. A
//! task that panics still yields its target's result.

use super::event::{Event, EventKind};
use super::guard;
use super::locks::{self, LockResult};
use super::outcome::{State, TargetResult};
use super::plan::Plan;
use crate::protocol::Message;
use crate::transport::carrier::{Dialer, OpenError, Reason, Session, Target};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;

/// Writes to a peer that stopped reading give up after this long.
const WRITE_LIMIT: Duration = Duration::from_secs(2);

/// Run the plan's targets over `dialer`; results come back in plan order.
pub async fn run(
    dialer: Arc<dyn Dialer>,
    plan: Arc<Plan>,
    events: mpsc::Sender<Event>,
    interrupt: watch::Receiver<bool>,
) -> Vec<TargetResult> {
    let window = Arc::new(Semaphore::new(plan.fanout.max(1)));
    let failures = Arc::new(AtomicUsize::new(0));
    let budget = plan.max_errors.unwrap_or(usize::MAX);
    let mut handles = Vec::with_capacity(plan.targets.len());
    for (i, target) in plan.targets.iter().enumerate() {
        let permit = tokio::select! {
            p = window.clone().acquire_owned() => p.ok(),
            _ = guard::wait_set(interrupt.clone()) => None,
        };
        let stop = *interrupt.borrow() || failures.load(Ordering::Acquire) >= budget;
        let Some(permit) = permit.filter(|_| !stop) else {
            for t in &plan.targets[i..] {
                let r = TargetResult::new(&t.name, State::Skipped);
                let _ = events.send(Event::end(r.clone())).await;
                handles.push(Pending::Done(r));
            }
            break;
        };
        let (dialer, plan, ev, failures, interrupt, target) =
            (dialer.clone(), plan.clone(), events.clone(), failures.clone(), interrupt.clone(), target.clone());
        let name = target.name.clone();
        let task =
            guard::catch(name.clone(), async move { one_target(&*dialer, &plan, &target, &ev, interrupt).await });
        let events = events.clone();
        let handle = tokio::spawn(async move {
            let r = task.await;
            if !r.state.is_success() {
                failures.fetch_add(1, Ordering::AcqRel);
            }
            drop(permit);
            let _ = events.send(Event::end(r.clone())).await;
            r
        });
        handles.push(Pending::Running(name, handle));
    }
    let mut results = Vec::with_capacity(handles.len());
    for p in handles {
        results.push(match p {
            Pending::Done(r) => r,
            Pending::Running(name, h) => guard::joined(name, h, &events).await,
        });
    }
    results
}

/// A target's end, known now or once its task is joined.
enum Pending {
    Done(TargetResult),
    Running(String, tokio::task::JoinHandle<TargetResult>),
}

async fn one_target(
    dialer: &dyn Dialer,
    plan: &Plan,
    target: &Target,
    events: &mpsc::Sender<Event>,
    mut interrupt: watch::Receiver<bool>,
) -> TargetResult {
    let result = |state| TargetResult::new(&target.name, state);
    if let Err(e) = crate::protocol::check_action_name(&plan.request.action) {
        return result(State::Refused(Reason::new("bad action name", format!("bad action name: {e}"))));
    }
    let _lock = match &plan.lock_dir {
        None => None,
        Some(dir) => match locks::try_lock(dir, &target.name, &plan.request.action) {
            LockResult::Held(l) => Some(l),
            LockResult::Busy => {
                return result(State::Refused(Reason::new(
                    "locked",
                    format!(
                        "locked: {} is already running on {} from this dispatcher",
                        plan.request.action, target.name
                    ),
                )))
            }
            LockResult::Error(e) => return result(State::Refused(Reason::new("lock error", e))),
        },
    };
    let opened = tokio::select! {
        s = dialer.open(target) => s,
        _ = guard::wait_set(interrupt.clone()) => return result(State::Skipped),
    };
    let session = match opened {
        Ok(s) => s,
        Err(OpenError::Unreachable(why)) => return result(State::Unreachable(why)),
        Err(OpenError::Refused(why)) => return result(State::Refused(why)),
    };
    interrupt.mark_unchanged();
    converse(session, plan, target, events, interrupt).await
}

/// The agent's kill grace, when its Hello announces one (`kill-grace-ms=N`).
fn announced_grace(s: &Session) -> Option<Duration> {
    s.peer
        .capabilities
        .iter()
        .find_map(|c| c.strip_prefix("kill-grace-ms="))
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
}

/// Send the request on an open session and follow it to its end.
async fn converse(
    mut s: Session,
    plan: &Plan,
    target: &Target,
    events: &mpsc::Sender<Event>,
    mut interrupt: watch::Receiver<bool>,
) -> TargetResult {
    let live = plan.liveness;
    let mut result = TargetResult::new(&target.name, State::Skipped);
    let sent = Instant::now();
    if let Err(e) = write(&mut s, &Message::Run(plan.request.to_run(1))).await {
        result.state =
            State::Unreachable(Reason::new("connection lost", format!("connection lost while sending: {e}")));
        return result;
    }
    let grace = announced_grace(&s).unwrap_or(live.kill_grace).min(Duration::from_secs(3600));
    let mut end_by = guard::after(sent, plan.request.timeout.saturating_add(grace).saturating_add(live.slack));
    let (mut heard, mut pinged, mut ping_id) = (sent, sent, 1u64);
    let (mut cancelled, mut started) = (false, false);
    loop {
        let lost_at = heard + live.lost_after;
        let ping_at = heard.max(pinged) + live.ping_every;
        let wake = end_by.min(lost_at).min(ping_at);
        let msg = tokio::select! {
            m = s.reader.read() => m,
            _ = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                if now >= end_by {
                    let _ = write(&mut s, &Message::Cancel { id: 1 }).await;
                    result.state = if cancelled { State::Cancelled } else { State::TimedOut };
                    break;
                }
                if now >= lost_at {
                    result.state = State::Lost(Reason::new(
                        "no answer",
                        format!(
                            "no answer for {}s: the agent stopped responding (it may still be running the action)",
                            live.lost_after.as_secs()
                        ),
                    ));
                    break;
                }
                ping_id += 1;
                pinged = now;
                let _ = write(&mut s, &Message::Ping { id: ping_id }).await;
                continue;
            }
            _ = guard::wait_set(interrupt.clone()), if !cancelled => {
                cancelled = true;
                interrupt.mark_unchanged();
                let _ = write(&mut s, &Message::Cancel { id: 1 }).await;
                end_by = end_by.min(guard::after(Instant::now(), live.cancel_wait));
                continue;
            }
        };
        heard = Instant::now();
        let send = |kind| events.send(Event { target: target.name.clone(), kind });
        match msg {
            Ok(Some(Message::Started { pid, .. })) => {
                started = true;
                let _ = send(EventKind::Started { pid }).await;
                if plan.request.detach {
                    result.state = State::Dispatched;
                    break;
                }
            }
            Ok(Some(Message::Output { stream, bytes, .. })) => {
                let _ = send(EventKind::Output { stream, bytes }).await;
            }
            Ok(Some(Message::Finished(f))) => {
                result.state = State::from_finished(&f);
                result.truncated = f.truncated;
                break;
            }
            Ok(Some(Message::Refused { reason, .. })) => {
                result.state = State::from_refusal(&reason);
                break;
            }
            Ok(Some(Message::Error { message })) => {
                result.state = State::Refused(Reason::new("agent error", message));
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                let why = match &msg {
                    Err(e) => crate::transport::tls::explain_read(&e.to_string()),
                    _ => "the agent closed the connection".to_string(),
                };
                // Once the action started, its fate is unknown: lost, not
                // unreachable (the agent may have died with it, or not).
                result.state = if started {
                    State::Lost(Reason::new(
                        "connection lost",
                        format!("connection lost after the action started ({why}); it may still be running or have been killed with the agent"),
                    ))
                } else {
                    State::Unreachable(Reason::new("connection closed", format!("{why} before the action started")))
                };
                break;
            }
        }
    }
    let _ = tokio::time::timeout(WRITE_LIMIT, s.close()).await;
    result
}

async fn write(s: &mut Session, m: &Message) -> Result<(), String> {
    match tokio::time::timeout(WRITE_LIMIT, s.writer.write(m)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("the peer took no data for {}s", WRITE_LIMIT.as_secs())),
    }
}
