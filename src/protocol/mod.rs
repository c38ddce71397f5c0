//! The wire protocol shared by every carrier: message types, the frame codec
//! and the action-name rule. Pure: nothing here touches sockets, files,
//! processes or clocks, so all of it can be fuzzed and tested in memory.

pub mod daemon;
pub mod envelope;
pub mod frame;
pub mod message;
pub mod names;
pub mod pairing;
pub mod replay;
pub mod station_guards;

pub use frame::{encode, FrameDecoder, FrameError, DEFAULT_MAX_FRAME};
pub use message::*;
pub use names::{check_action_name, NameError};

/// Protocol version carried in every `Hello`; peers with another version are
/// refused with an error naming both.
pub const PROTOCOL_VERSION: u32 = 2;
