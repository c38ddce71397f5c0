//! `muster ping`: open a session to each target (at most `fanout` at once)
//! and time a `Ping`/`Pong` round trip on it.

use super::outcome::{Reason, State, TargetResult};
use crate::protocol::Message;
use crate::transport::carrier::{Dialer, OpenError, Target};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Round-trip time (on success) and end state per target, in target order.
pub async fn ping_all(
    dialer: Arc<dyn Dialer>,
    targets: Vec<Target>,
    fanout: usize,
    limit: Duration,
) -> Vec<(TargetResult, Option<Duration>)> {
    let window = Arc::new(Semaphore::new(fanout.max(1)));
    let mut handles = Vec::new();
    for t in targets {
        let (dialer, window) = (dialer.clone(), window.clone());
        let name = t.name.clone();
        let task = tokio::spawn(async move {
            let _permit = window.acquire_owned().await;
            let (state, rtt) = ping_one(&*dialer, &t, limit).await;
            (TargetResult::new(t.name, state), rtt)
        });
        handles.push((name, task));
    }
    let mut out = Vec::new();
    for (name, h) in handles {
        out.push(h.await.unwrap_or_else(|e| {
            let why = Some(format!("dispatcher internal error: {e}"));
            (TargetResult::new(name, State::Failed { exit: None, signal: None, why }), None)
        }));
    }
    out
}

async fn ping_one(dialer: &dyn Dialer, t: &Target, limit: Duration) -> (State, Option<Duration>) {
    let mut s = match dialer.open(t).await {
        Ok(s) => s,
        Err(OpenError::Unreachable(w)) => return (State::Unreachable(w), None),
        Err(OpenError::Refused(w)) => return (State::Refused(w), None),
    };
    let t0 = Instant::now();
    if let Err(e) = s.writer.write(&Message::Ping { id: 1 }).await {
        return (State::Unreachable(Reason::new("connection lost", e.to_string())), None);
    }
    let state = match tokio::time::timeout(limit, s.reader.read()).await {
        Ok(Ok(Some(Message::Pong { id: 1 }))) => (State::Succeeded, Some(t0.elapsed())),
        Ok(Ok(Some(Message::Error { message }))) => (State::Refused(Reason::new("agent error", message)), None),
        Ok(Ok(Some(Message::Refused { reason, .. }))) => (State::from_refusal(&reason), None),
        Ok(Ok(other)) => {
            (State::Refused(Reason::new("protocol error", format!("unexpected answer to ping: {other:?}"))), None)
        }
        Ok(Err(e)) => (
            State::Unreachable(Reason::new("connection lost", crate::transport::tls::explain_read(&e.to_string()))),
            None,
        ),
        Err(_) => (State::Unreachable(Reason::new("no answer", format!("no pong within {limit:?}"))), None),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), s.close()).await;
    state
}
