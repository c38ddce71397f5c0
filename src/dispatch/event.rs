//! What a dispatch reports while it runs: one [`Event`] per start, per
//! chunk of output and per end, each naming its target. Every target of a
//! plan gets exactly one `End`.

use super::outcome::TargetResult;
use crate::protocol::Stream;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The action's first process started with this pid on the agent.
    Started { pid: u32 },
    /// Bytes the action wrote, as produced (binary-safe).
    Output { stream: Stream, bytes: Vec<u8> },
    /// The target's end state.
    End(TargetResult),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub target: String,
    pub kind: EventKind,
}

impl Event {
    pub fn end(result: TargetResult) -> Event {
        Event { target: result.name.clone(), kind: EventKind::End(result) }
    }
}
