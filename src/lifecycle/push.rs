//! Calling one builtin on many agents over mutual TLS, at most `fanout` at
//! once, with a time limit each; used to push serials, revocations and
//! certificates, and to fetch stored results.

use crate::protocol::{Message, Run};
use crate::transport::carrier::{Dialer, OpenError, Target};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// A builtin's answer: its exit code and stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub exit: i32,
    pub out: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.out).trim().to_string()
    }
}

/// Why an agent could not be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    Open(OpenError),
    /// Connected, but the exchange failed or the agent refused the builtin.
    Failed(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Open(e) => write!(f, "{e}"),
            CallError::Failed(w) => f.write_str(w),
        }
    }
}

/// Call builtin `action` with `args` on `t`.
pub async fn call(
    dialer: &dyn Dialer,
    t: &Target,
    action: &str,
    args: &[String],
    limit: Duration,
) -> Result<Answer, CallError> {
    let mut s = dialer.open(t).await.map_err(CallError::Open)?;
    let run = Run {
        id: 1,
        request_id: crate::hexstr::random(8),
        action: action.to_string(),
        args: args.to_vec(),
        username: String::new(),
        token: None,
        timeout_ms: None,
        detach: false,
    };
    s.writer.write(&Message::Run(run)).await.map_err(|e| CallError::Failed(e.to_string()))?;
    let mut out = Vec::new();
    let answer = loop {
        match tokio::time::timeout(limit, s.reader.read()).await {
            Ok(Ok(Some(Message::Output { bytes, .. }))) => out.extend_from_slice(&bytes),
            Ok(Ok(Some(Message::Finished(f)))) => break Ok(Answer { exit: f.exit.unwrap_or(-1), out }),
            Ok(Ok(Some(Message::Refused { reason, .. }))) => break Err(CallError::Failed(reason.to_string())),
            Ok(Ok(Some(Message::Error { message }))) => break Err(CallError::Failed(message)),
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) => break Err(CallError::Failed("the agent closed the connection".into())),
            Ok(Err(e)) => break Err(CallError::Failed(e.to_string())),
            Err(_) => break Err(CallError::Failed(format!("no answer within {limit:?}"))),
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), s.close()).await;
    answer
}

/// [`call`] on every target; answers in target order.
pub async fn call_all(
    dialer: Arc<dyn Dialer>,
    targets: Vec<Target>,
    action: &str,
    args: Vec<String>,
    fanout: usize,
    limit: Duration,
) -> Vec<(Target, Result<Answer, CallError>)> {
    let window = Arc::new(Semaphore::new(fanout.max(1)));
    let mut handles = Vec::new();
    for t in targets {
        let (dialer, window, action, args) = (dialer.clone(), window.clone(), action.to_string(), args.clone());
        let target = t.clone();
        handles.push((
            t,
            tokio::spawn(async move {
                let _p = window.acquire_owned().await;
                call(&*dialer, &target, &action, &args, limit).await
            }),
        ));
    }
    let mut out = Vec::new();
    for (t, h) in handles {
        let r = h.await.unwrap_or_else(|e| Err(CallError::Failed(format!("dispatcher internal error: {e}"))));
        out.push((t, r));
    }
    out
}
