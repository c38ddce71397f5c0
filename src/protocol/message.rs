//! The message set spoken between a dispatcher (or station, or daemon) and an
//! agent. One session carries many requests; every request-scoped message
//! names its request `id`, so replies to different requests may interleave.
//! New variants are only ever appended, so the encoding of old ones stays put.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Every message that crosses a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// First message of each side: version, role, name, capabilities.
    Hello(Hello),
    /// Run an action.
    Run(Run),
    /// The action's first process started.
    Started {
        id: u64,
        pid: u32,
    },
    /// Bytes the action wrote, as produced.
    Output {
        id: u64,
        stream: Stream,
        bytes: Vec<u8>,
    },
    /// Overall progress in percent (0-100).
    Progress {
        id: u64,
        pct: u8,
    },
    /// The request ended after it started.
    Finished(Finished),
    /// The request was refused before anything ran.
    Refused {
        id: u64,
        reason: Refusal,
    },
    /// Stop a running request (TERM to its process group, KILL after a grace).
    Cancel {
        id: u64,
    },
    /// Liveness probe; answered at once with `Pong` carrying the same id.
    Ping {
        id: u64,
    },
    Pong {
        id: u64,
    },
    /// Session-level error sent just before the sender closes the session.
    Error {
        message: String,
    },
    /// The request was accepted and waits for a run slot (hub throttling).
    Queued {
        id: u64,
    },
    /// Write a file on the agent, in chunks of at most 256 KiB; the first
    /// chunk opens a temporary file beside the target, the one with `last`
    /// set makes it the target atomically. Answered once, after the last
    /// chunk: `Finished` (exit 0) or `Refused`.
    WriteFile(WriteFile),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteFile {
    pub id: u64,
    /// Absolute path on the agent.
    pub path: String,
    /// Unix mode to set; `None` keeps an existing file's mode (0644 for a new one).
    pub mode: Option<u32>,
    pub data: Vec<u8>,
    pub last: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    pub role: Role,
    /// Agent name, or dispatcher id.
    pub name: String,
    pub capabilities: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Dispatcher,
    Agent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Session-scoped id that every reply carries.
    pub id: u64,
    /// Fleet-wide request id used in logs, contexts and stored results.
    pub request_id: String,
    pub action: String,
    pub args: Vec<String>,
    pub username: String,
    /// Passed to hooks and scripts; masked in logs.
    pub token: Option<String>,
    /// Time limit in milliseconds; the agent's default applies when absent.
    pub timeout_ms: Option<u64>,
    /// Asynchronous run: the agent answers `Started`, keeps the request
    /// running when the session ends (it is not cancelled on session loss)
    /// and stores its result for the dispatcher that owns it.
    pub detach: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How a started request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    pub id: u64,
    /// Exit code when the process exited by itself.
    pub exit: Option<i32>,
    /// Signal that ended the process, if any.
    pub signal: Option<i32>,
    pub duration_ms: u64,
    /// Output beyond the agent's cap was dropped.
    pub truncated: bool,
    pub end: End,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum End {
    Exited,
    TimedOut,
    Cancelled,
    /// A step could not be started (the OS refused exec).
    SpawnFailed(String),
}

impl Finished {
    /// True when the request ran to completion with exit 0.
    pub fn succeeded(&self) -> bool {
        self.end == End::Exited && self.exit == Some(0)
    }
}

/// Why a request was refused before it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    BadName(String),
    UnknownAction(String),
    BadArgs(String),
    Denied(String),
    HookError(String),
    Busy {
        limit: u32,
    },
    Locked,
    DuplicateId,
    /// The dispatcher's certificate serial is not trusted (not in the
    /// trusted-dispatcher map, or revoked).
    Untrusted(String),
    /// The agent already serves its maximum number of sessions.
    SessionsFull {
        limit: u32,
    },
    /// Not started: the run's error budget was spent before a slot freed.
    Skipped,
    /// The agent is shutting down and starts nothing new.
    ShuttingDown,
    /// A file could not be read or written (path outside the allowed
    /// roots, too large, not found, permission denied).
    FileError(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::BadName(why) => write!(f, "bad action name: {why}"),
            Refusal::UnknownAction(name) => write!(f, "unknown action {name:?}"),
            Refusal::BadArgs(why) => write!(f, "bad arguments: {why}"),
            Refusal::Denied(why) => write!(f, "denied: {why}"),
            Refusal::HookError(why) => write!(f, "auth hook error: {why}"),
            Refusal::Busy { limit } if *limit == 1 => write!(f, "busy: 1 request already running"),
            Refusal::Busy { limit } => write!(f, "busy: {limit} requests already running"),
            Refusal::Locked => write!(f, "locked: this action is already running on this host"),
            Refusal::DuplicateId => write!(f, "request id already in use on this session"),
            Refusal::Untrusted(why) => write!(f, "dispatcher not trusted: {why}"),
            Refusal::SessionsFull { limit } => write!(f, "busy: {limit} sessions already open"),
            Refusal::Skipped => write!(f, "skipped: the run's error budget was spent before this agent started"),
            Refusal::ShuttingDown => write!(f, "the agent is shutting down"),
            Refusal::FileError(why) => write!(f, "file error: {why}"),
        }
    }
}

impl Refusal {
    /// A short phrase naming the kind of refusal, the same for every agent
    /// refusing the same way (what grouped output folds on).
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::BadName(_) => "bad action name",
            Refusal::UnknownAction(_) => "unknown action",
            Refusal::BadArgs(_) => "bad arguments",
            Refusal::Denied(_) => "denied",
            Refusal::HookError(_) => "auth hook error",
            Refusal::Busy { .. } | Refusal::SessionsFull { .. } => "busy",
            Refusal::Locked => "locked",
            Refusal::DuplicateId => "duplicate request id",
            Refusal::Untrusted(_) => "dispatcher not trusted",
            Refusal::Skipped => "skipped",
            Refusal::ShuttingDown => "agent shutting down",
            Refusal::FileError(_) => "file error",
        }
    }
}

impl Message {
    /// The request id a message belongs to, if it is request-scoped.
    pub fn request_id(&self) -> Option<u64> {
        match self {
            Message::Run(r) => Some(r.id),
            Message::Finished(f) => Some(f.id),
            Message::Started { id, .. }
            | Message::Output { id, .. }
            | Message::Progress { id, .. }
            | Message::Refused { id, .. }
            | Message::Cancel { id }
            | Message::Ping { id }
            | Message::Pong { id }
            | Message::Queued { id } => Some(*id),
            Message::WriteFile(w) => Some(w.id),
            Message::Hello(_) | Message::Error { .. } => None,
        }
    }
}
