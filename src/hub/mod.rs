//! The Redis hub (cbradio's model). So far: key files (`keys`). The sealed
//! envelope and replay guard live in `protocol::{envelope, replay}`; the
//! station and the agent subscriber are the next steps.

pub mod keys;
