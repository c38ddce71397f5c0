//! Small guarantees every dispatch relies on: a target's task that panics
//! still yields that target's result (`failed`, with the panic's text), a
//! task that vanishes at join still gets its `End` event, deadlines never
//! overflow whatever duration they are given, and an interrupt flag can be
//! awaited.

use super::event::Event;
use super::outcome::{State, TargetResult};
use futures_util::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The longest any deadline reaches: about 30 years, far beyond any run and
/// far below where `Instant` arithmetic overflows.
const HORIZON: Duration = Duration::from_secs(30 * 365 * 86_400);

/// `start + d`, saturating at a far horizon instead of panicking.
pub fn after(start: Instant, d: Duration) -> Instant {
    start + d.min(HORIZON)
}

/// Resolves once the flag is set; never, if its sender is gone unset.
pub async fn wait_set(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn internal_error(name: String, why: String) -> TargetResult {
    TargetResult::new(
        name,
        State::Failed { exit: None, signal: None, why: Some(format!("dispatcher internal error: {why}")) },
    )
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a task panicked".into())
}

/// Run a target's future; a panic inside becomes that target's `failed`
/// result instead of a lost target.
pub async fn catch<F>(name: String, fut: F) -> TargetResult
where
    F: Future<Output = TargetResult> + Send,
{
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(p) => {
            let why = panic_text(&*p);
            tracing::error!(target_name = %name, "dispatch task panicked: {why}");
            internal_error(name, format!("task panicked: {why}"))
        }
    }
}

/// Join a target's task. A task that ended abnormally (it sent no `End`)
/// yields a `failed` result, and its `End` event is sent here.
pub async fn joined(name: String, h: JoinHandle<TargetResult>, events: &mpsc::Sender<Event>) -> TargetResult {
    match h.await {
        Ok(r) => r,
        Err(e) => {
            let r = internal_error(name, format!("task ended abnormally: {e}"));
            let _ = events.send(Event::end(r.clone())).await;
            r
        }
    }
}
