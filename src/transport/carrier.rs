//! What dispatch needs from a way of reaching agents, in two shapes. A
//! [`Dialer`] opens one [`Session`] per target (mutual TLS, SSH, a resident
//! daemon, an in-memory pair); a [`Broadcaster`] sends one order to every
//! agent in a [`Scope`] and hands back the [`Answer`]s of whoever replies
//! (the Redis hub). A carrier says *how* an attempt failed (nothing
//! answered: [`OpenError::Unreachable`]; something answered and refused or
//! failed to prove its identity: [`OpenError::Refused`]) with a [`Reason`];
//! it never decides states, exit bits, windows or budgets: `dispatch` does,
//! the same way for every carrier.

use super::{FrameReader, FrameWriter};
use crate::protocol::{Hello, Message, Refusal, Run};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// A boxed future, so carriers can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A target as dispatch sees it: the agent's name and, for dialled
/// carriers, the address to dial (`host:port`; empty for a broadcast).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub addr: String,
}

/// Why a target did not run: a short `kind` that is the same for every host
/// failing the same way (what grouped output and the summary fold on, e.g.
/// `no registry entry`, `connection refused`, `busy`) and the full `detail`
/// for this host (what live and JSON output show).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub kind: String,
    pub detail: String,
}

impl Reason {
    pub fn new(kind: impl Into<String>, detail: impl Into<String>) -> Reason {
        Reason { kind: kind.into(), detail: detail.into() }
    }

    /// The reason an agent gave in a `Refused` message.
    pub fn from_refusal(r: &Refusal) -> Reason {
        Reason::new(r.kind(), r.to_string())
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// An open session to one agent, Hellos already exchanged.
pub struct Session {
    pub reader: FrameReader<BoxRead>,
    pub writer: FrameWriter<BoxWrite>,
    pub peer: Hello,
}

impl Session {
    /// Close the session cleanly (for TLS: send close_notify), so the agent
    /// sees an orderly end rather than a dropped connection.
    pub async fn close(mut self) {
        self.writer.shutdown().await;
    }
}

/// How opening a session (or publishing a broadcast) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Nothing answered, or the connection dropped: the target ends
    /// `unreachable`.
    Unreachable(Reason),
    /// Something answered but refused us or failed to prove its identity:
    /// the target ends `refused`.
    Refused(Reason),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Unreachable(r) => write!(f, "unreachable: {r}"),
            OpenError::Refused(r) => write!(f, "refused: {r}"),
        }
    }
}

/// A point-to-point carrier: one session per target.
pub trait Dialer: Send + Sync {
    /// Open a session to `target`, bounded in time by the carrier's own
    /// connect limit.
    fn open<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Session, OpenError>>;
}

/// Which agents a broadcast asks, and how many may run at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Agents must carry every tag; empty selects all.
    pub tags: Vec<String>,
    /// When non-empty, only these agent names act (a direct message).
    pub agents: Vec<String>,
    /// At most this many agents run at once across the carrier; 0 = no limit.
    pub fanout: u32,
    /// How long an agent waits for a run slot before refusing busy.
    pub slot_wait: Duration,
    /// How often each agent says it is alive while it holds the request
    /// (waiting for a slot or running); zero = never.
    pub heartbeat: Duration,
}

/// One message from one agent that answered a broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub agent: String,
    /// The tags the agent reports (for discovery).
    pub tags: Vec<String>,
    pub message: Message,
}

/// A broadcast carrier: one order, answered by whoever matches.
pub trait Broadcaster: Send + Sync {
    /// Send `run` to every agent in `scope`. An error means nothing was sent.
    fn publish<'a>(&'a self, run: &'a Run, scope: &'a Scope) -> BoxFuture<'a, Result<Box<dyn Replies>, OpenError>>;
}

/// The answers to one published broadcast.
pub trait Replies: Send {
    /// Answers that arrived, waiting at most `limit` for the first; an empty
    /// list when none came in time. An error means the carrier is lost and
    /// no more answers will come.
    fn next(&mut self, limit: Duration) -> BoxFuture<'_, Result<Vec<Answer>, Reason>>;
    /// Ask every agent running this request to cancel it.
    fn cancel(&mut self) -> BoxFuture<'_, Result<(), Reason>>;
    /// Ask agents that have not started this request yet (waiting for a run
    /// slot) not to start it: they answer refused `skipped`.
    fn stop_starting(&mut self) -> BoxFuture<'_, Result<(), Reason>>;
    /// Release what the broadcast holds on the carrier; returns remarks for
    /// the operator (e.g. how many replies were dropped as forged).
    fn close(self: Box<Self>) -> BoxFuture<'static, Vec<String>>;
}

/// The carrier a dispatch runs over, by shape.
#[derive(Clone)]
pub enum Carrier {
    Dial(Arc<dyn Dialer>),
    Broadcast(Arc<dyn Broadcaster>),
}
