//! A [`Plan`]: everything a front end (CLI, daemon, console, API) decides
//! before a dispatch starts — what to run ([`Request`]), where (targets, or
//! a broadcast scope), how wide (fan-out, error budget) and within which
//! time bounds ([`Liveness`], broadcast [`Waits`]). `dispatch::run` takes a
//! plan and a carrier and does the rest, the same way for every carrier.

use crate::protocol::Run;
use crate::transport::carrier::{Reason, Scope, Target};
use std::path::PathBuf;
use std::time::Duration;

/// The action one dispatch runs on every target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Fleet-wide request id (16 hex digits), in every log and context.
    pub request_id: String,
    pub action: String,
    pub args: Vec<String>,
    pub username: String,
    /// Passed to hooks and scripts; masked in logs.
    pub token: Option<String>,
    /// How long each target may run; always set (the dispatcher default
    /// applies when the operator gives none).
    pub timeout: Duration,
    /// Asynchronous: the agent keeps running it (and its result) when the
    /// session ends; collected later with `muster status` / `muster wait`.
    pub detach: bool,
}

impl Request {
    /// The `Run` message for this request with session-scoped id `id`.
    pub fn to_run(&self, id: u64) -> Run {
        Run {
            id,
            request_id: self.request_id.clone(),
            action: self.action.clone(),
            args: self.args.clone(),
            username: self.username.clone(),
            token: self.token.clone(),
            timeout_ms: Some(u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX)),
            detach: self.detach,
        }
    }
}

/// The dispatcher-side auth hook (ctrl-exec's): run once per dispatch,
/// before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSpec {
    pub path: PathBuf,
    pub timeout: Duration,
}

/// Time bounds that make every target end even when its agent freezes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// Send a ping on a session after this much silence from the agent.
    pub ping_every: Duration,
    /// Declare the target `lost` after this much silence.
    pub lost_after: Duration,
    /// The agent's kill grace when it does not announce its own.
    pub kill_grace: Duration,
    /// Beyond timeout + kill grace, wait this long for the agent's own end
    /// report before declaring the target timed out.
    pub slack: Duration,
    /// After a cancel (Ctrl-C), wait at most this long for each end report.
    pub cancel_wait: Duration,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            ping_every: Duration::from_secs(5),
            lost_after: Duration::from_secs(15),
            kill_grace: Duration::from_secs(5),
            slack: Duration::from_secs(3),
            cancel_wait: Duration::from_secs(10),
        }
    }
}

/// How long a broadcast waits for answers (cbradio's three waits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waits {
    /// For the first answer; `None` waits forever.
    pub hello: Option<Duration>,
    /// Silence tolerated while some agent runs; `None` waits forever.
    pub reply: Option<Duration>,
    /// Stay at least this long after sending, once nothing runs, unless
    /// every expected agent has ended.
    pub minimum: Duration,
}

impl Default for Waits {
    fn default() -> Self {
        Waits {
            hello: Some(Duration::from_secs(2)),
            reply: Some(Duration::from_secs(120)),
            minimum: Duration::from_secs(4),
        }
    }
}

/// What a broadcast carrier needs beyond the targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BroadcastPlan {
    pub scope: Scope,
    pub waits: Waits,
    /// Agents expected to answer that are not required to (seen before,
    /// without `--fail-missing`): once all expected agents have ended the
    /// wait ends early, and their silence adds no bit.
    pub also_expected: Vec<String>,
    /// End the wait once this many agents have ended.
    pub expect: Option<usize>,
}

/// Everything one dispatch needs.
#[derive(Debug, Clone)]
pub struct Plan {
    pub request: Request,
    /// This dispatcher's (or station's) id, for the hook and the logs.
    pub dispatcher: String,
    /// The carrier's name for the hook context: `tls`, `hub`, `ssh`, ...
    pub via: String,
    /// Targets that must end well: dialled one by one, or, for a broadcast,
    /// the agents that must answer (named, or expected with `--fail-missing`).
    pub targets: Vec<Target>,
    /// Names that cannot be reached at all, with the reason.
    pub missing: Vec<(String, Reason)>,
    /// The tags the operator selected targets by (`--tags`), on every
    /// carrier: the hook sees them as `tags`.
    pub tags: Vec<String>,
    /// Targets running at once (sliding window) on a dialled carrier; the
    /// broadcast scope carries its own.
    pub fanout: usize,
    /// Stop starting targets once this many have not succeeded.
    pub max_errors: Option<usize>,
    /// Where host:action locks live; `None` disables locking.
    pub lock_dir: Option<PathBuf>,
    pub hook: Option<HookSpec>,
    pub liveness: Liveness,
    pub broadcast: BroadcastPlan,
}
