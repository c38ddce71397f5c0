//! `muster ping`: open a session to each target (at most `fanout` at once)
//! and time a `Ping`/`Pong` round trip on it.

use super::carrier::{Carrier, OpenError, Target};
use super::outcome::{State, TargetResult};
use crate::protocol::Message;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Round-trip time (on success) and end state per target, in target order.
pub async fn ping_all<C: Carrier>(
    carrier: Arc<C>,
    targets: Vec<Target>,
    fanout: usize,
    limit: Duration,
) -> Vec<(TargetResult, Option<Duration>)> {
    let window = Arc::new(Semaphore::new(fanout.max(1)));
    let mut handles = Vec::new();
    for t in targets {
        let (carrier, window) = (carrier.clone(), window.clone());
        handles.push(tokio::spawn(async move {
            let _permit = window.acquire_owned().await;
            let (state, rtt) = ping_one(&*carrier, &t, limit).await;
            (TargetResult { name: t.name, state, truncated: false }, rtt)
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        if let Ok(r) = h.await {
            out.push(r);
        }
    }
    out
}

async fn ping_one<C: Carrier>(carrier: &C, t: &Target, limit: Duration) -> (State, Option<Duration>) {
    let mut s = match carrier.open(t).await {
        Ok(s) => s,
        Err(OpenError::Unreachable(w)) => return (State::Unreachable(w), None),
        Err(OpenError::Refused(w)) => return (State::Refused(w), None),
    };
    let t0 = Instant::now();
    if let Err(e) = s.writer.write(&Message::Ping { id: 1 }).await {
        return (State::Unreachable(e.to_string()), None);
    }
    match tokio::time::timeout(limit, s.reader.read()).await {
        Ok(Ok(Some(Message::Pong { id: 1 }))) => (State::Succeeded, Some(t0.elapsed())),
        Ok(Ok(Some(Message::Error { message }))) => (State::Refused(message), None),
        Ok(Ok(other)) => (State::Refused(format!("unexpected answer to ping: {other:?}")), None),
        Ok(Err(e)) => (State::Unreachable(super::carrier::explain_read(&e.to_string())), None),
        Err(_) => (State::Unreachable(format!("no pong within {limit:?}")), None),
    }
}
