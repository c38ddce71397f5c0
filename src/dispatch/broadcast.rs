//! Dispatch over a [`Broadcaster`]: one order is published to a scope and
//! the targets are whoever answers. The waits follow cbradio: `hello`
//! bounds the wait for a first answer; `reply` bounds each agent's silence
//! while it holds the request — agents send heartbeats
//! ([`Scope::heartbeat`](crate::transport::carrier::Scope::heartbeat)), so a long quiet action is not silence, and an agent
//! silent past it ends `lost` (+8) on its own while the others go on; once
//! nothing runs, the dispatch stays until `minimum` has passed since publishing,
//! unless every expected agent (required, seen before, or `--expect N`) has
//! ended. Each agent is also bounded by the request timeout + kill grace +
//! slack from its start. The error budget asks agents still waiting for a
//! run slot not to start (they end `skipped`); an interrupt broadcasts a
//! cancel. Required targets that never answered end `unreachable`. When
//! the carrier breaks mid-run (the hub's Redis went away), every agent
//! still running and every required target not yet heard from ends `lost`
//! with the carrier's reason: their answers may exist, unread.

use super::event::{Event, EventKind};
use super::guard;
use super::outcome::{Outcome, State, TargetResult};
use super::plan::Plan;
use crate::protocol::Message;
use crate::transport::carrier::{Answer, Broadcaster, OpenError, Reason};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Longest single wait for answers, so interrupts and deadlines are checked.
const POLL: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Track {
    state: Option<State>,
    started: Option<Instant>,
    /// When anything (a heartbeat included) last came from it.
    heard: Option<Instant>,
    truncated: bool,
    tags: Vec<String>,
}

/// `lost` for an agent silent for `d`.
fn went_silent(d: Duration) -> State {
    State::Lost(Reason::new(
        "went silent",
        format!(
            "went silent: nothing, not even a heartbeat, for {}s (see --reply-wait); it may still be running",
            d.as_secs()
        ),
    ))
}

/// Publish the plan's request and follow every answer to its end. An error
/// means nothing was published (the carrier could not be reached).
pub async fn run(
    carrier: &dyn Broadcaster,
    plan: &Plan,
    events: &mpsc::Sender<Event>,
    mut interrupt: watch::Receiver<bool>,
) -> Result<Outcome, OpenError> {
    let waits = plan.broadcast.waits;
    let run = plan.request.to_run(1);
    let mut replies = carrier.publish(&run, &plan.broadcast.scope).await?;
    let t0 = Instant::now();
    let budget = plan.max_errors.unwrap_or(usize::MAX);
    let per_agent = plan.request.timeout.saturating_add(plan.liveness.kill_grace).saturating_add(plan.liveness.slack);
    let mut expected: Vec<&str> = plan.targets.iter().map(|t| t.name.as_str()).collect();
    expected.extend(plan.broadcast.also_expected.iter().map(String::as_str));
    let mut agents: BTreeMap<String, Track> = BTreeMap::new();
    let (mut failures, mut stopped) = (0usize, false);
    let mut cancel_by: Option<Instant> = None;
    // Why the carrier broke mid-run, if it did: who had not answered by
    // then may have answered unread.
    let mut carrier_lost: Option<Reason> = None;
    loop {
        let now = Instant::now();
        // Per-agent bounds: timeout + grace + slack from its start, and
        // the reply wait since it was last heard from.
        for (name, t) in agents.iter_mut().filter(|(_, t)| t.state.is_none()) {
            let silent =
                waits.reply.filter(|r| cancel_by.is_none() && t.heard.is_some_and(|h| now >= guard::after(h, *r)));
            if t.started.is_some_and(|s| now >= guard::after(s, per_agent)) {
                t.state = Some(State::TimedOut);
            } else if let Some(r) = silent {
                t.state = Some(went_silent(r));
            } else {
                continue;
            }
            end(events, name, t).await;
            failures += 1;
        }
        if failures >= budget && !stopped {
            stopped = true;
            if let Err(e) = replies.stop_starting().await {
                tracing::warn!("cannot stop agents from starting: {e}");
            }
        }
        let active = agents.values().filter(|a| a.state.is_none()).count();
        let finished = agents.len() - active;
        let deadline = if let Some(c) = cancel_by {
            if active == 0 {
                break;
            }
            Some(c)
        } else if agents.is_empty() {
            waits.hello.map(|h| guard::after(t0, h))
        } else if active > 0 {
            // Only to size the wait: the silent are ended above.
            let quiet = agents.values().filter(|a| a.state.is_none()).filter_map(|a| a.heard).min();
            waits.reply.zip(quiet).map(|(r, q)| guard::after(q, r)).filter(|d| *d > now)
        } else {
            let all_expected =
                !expected.is_empty() && expected.iter().all(|n| agents.get(*n).is_some_and(|a| a.state.is_some()));
            if all_expected || plan.broadcast.expect.is_some_and(|n| finished >= n) {
                break;
            }
            Some(guard::after(t0, waits.minimum))
        };
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        let chunk = deadline.map(|d| d - now).unwrap_or(POLL).min(POLL);
        let got = tokio::select! {
            r = replies.next(chunk) => r,
            _ = guard::wait_set(interrupt.clone()), if cancel_by.is_none() => {
                interrupt.mark_unchanged();
                cancel_by = Some(guard::after(Instant::now(), plan.liveness.cancel_wait));
                if let Err(e) = replies.cancel().await {
                    tracing::warn!("cannot broadcast the cancel: {e}");
                }
                continue;
            }
        };
        let answers = match got {
            Ok(a) => a,
            Err(why) => {
                for (name, t) in agents.iter_mut().filter(|(_, t)| t.state.is_none()) {
                    t.state = Some(State::Lost(why.clone()));
                    end(events, name, t).await;
                }
                carrier_lost = Some(why);
                break;
            }
        };
        for a in answers {
            if take(&mut agents, a, events).await {
                failures += 1;
            }
        }
    }
    let mut out = Outcome { notes: replies.close().await, ..Default::default() };
    let cancelled = cancel_by.is_some();
    for (name, mut t) in agents {
        if t.state.is_none() {
            t.state = Some(if cancelled {
                State::Cancelled
            } else {
                State::Lost(Reason::new("went silent", "stopped answering"))
            });
            end(events, &name, &t).await;
        }
        out.answered.insert(name.clone(), t.tags.clone());
        let state = t.state.take().unwrap_or(State::Skipped);
        out.results.push(TargetResult { name, state, truncated: t.truncated });
    }
    for target in &plan.targets {
        if !out.answered.contains_key(&target.name) {
            let waited = t0.elapsed().as_secs_f64();
            let state = match &carrier_lost {
                Some(why) => State::Lost(Reason::new(
                    why.kind.clone(),
                    format!("no answer read before the carrier broke after {waited:.1}s: {}", why.detail),
                )),
                None => State::Unreachable(Reason::new(
                    "did not answer",
                    format!("expected to answer, no answer within {waited:.1}s"),
                )),
            };
            let r = TargetResult::new(&target.name, state);
            let _ = events.send(Event::end(r.clone())).await;
            out.results.push(r);
        }
    }
    Ok(out)
}

/// Fold one answer into its agent's track; true when it ended the agent
/// in a state that counts against the error budget.
async fn take(agents: &mut BTreeMap<String, Track>, a: Answer, events: &mpsc::Sender<Event>) -> bool {
    let t = agents.entry(a.agent.clone()).or_default();
    if t.state.is_some() {
        return false;
    }
    t.tags = a.tags;
    t.heard = Some(Instant::now());
    let kind = match a.message {
        Message::Queued { .. } => None,
        Message::Started { pid, .. } => {
            t.started = Some(Instant::now());
            Some(EventKind::Started { pid })
        }
        Message::Output { stream, bytes, .. } => Some(EventKind::Output { stream, bytes }),
        Message::Finished(f) => {
            t.truncated = f.truncated;
            t.state = Some(State::from_finished(&f));
            None
        }
        Message::Refused { reason, .. } => {
            t.state = Some(State::from_refusal(&reason));
            None
        }
        Message::Error { message } => {
            t.state = Some(State::Refused(Reason::new("agent error", message)));
            None
        }
        _ => None,
    };
    if let Some(kind) = kind {
        let _ = events.send(Event { target: a.agent.clone(), kind }).await;
    }
    match &t.state {
        Some(s) => {
            end(events, &a.agent, t).await;
            !s.is_success() && *s != State::Skipped
        }
        None => false,
    }
}

async fn end(events: &mpsc::Sender<Event>, name: &str, t: &Track) {
    if let Some(state) = &t.state {
        let r = TargetResult { name: name.to_string(), state: state.clone(), truncated: t.truncated };
        let _ = events.send(Event::end(r)).await;
    }
}
