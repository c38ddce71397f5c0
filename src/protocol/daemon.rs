//! What a client (`muster run`, `muster console`, another daemon) and a
//! resident daemon say to each other on the daemon's socket: after a
//! `Hello`/`Welcome`, the client opens *channels*, each a virtual session
//! to one agent that the daemon keeps linked (over mTLS or SSH) and shares
//! between clients; agent messages travel inside `Data` with the client's
//! own request ids (the daemon renumbers them on the shared link, so
//! results of different clients and requests may interleave and arrive
//! out of order). Framed like every muster message.

use super::message::{Hello, Message};
use serde::{Deserialize, Serialize};

/// Version of this exchange.
pub const DAEMON_VERSION: u32 = 1;

/// How the daemon should reach a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Via {
    Tls,
    Ssh,
}

/// A link the daemon holds, for status displays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkInfo {
    pub name: String,
    pub via: Via,
    /// Requests in flight on the link.
    pub inflight: u32,
    /// Milliseconds since the agent last answered.
    pub silent_ms: u64,
    /// Times the link was restarted after being lost.
    pub restarts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DaemonFrame {
    /// Client first: protocol version, what it is, who uses it.
    Hello {
        version: u32,
        client: String,
        user: String,
    },
    /// Daemon's answer.
    Welcome {
        version: u32,
        daemon: String,
        pid: u32,
    },
    /// Open channel `chan` to the agent `name` at `addr`.
    Open {
        chan: u32,
        name: String,
        addr: String,
        via: Via,
        install: bool,
    },
    /// The channel is open; the agent's Hello.
    Opened {
        chan: u32,
        hello: Hello,
    },
    /// It could not be opened: `unreachable` (else refused), a short kind, the detail.
    OpenFailed {
        chan: u32,
        unreachable: bool,
        kind: String,
        detail: String,
    },
    /// An agent protocol message on a channel, either way.
    Data {
        chan: u32,
        msg: Message,
    },
    /// Client: done with the channel (its unfinished requests are cancelled).
    Close {
        chan: u32,
    },
    /// Daemon: the link behind the channel is gone.
    Closed {
        chan: u32,
        why: String,
    },
    /// Client: what links does the daemon hold?
    Status,
    StatusReply {
        links: Vec<LinkInfo>,
    },
    /// Either side, before closing: what went wrong.
    Error {
        message: String,
    },
}
