//! The Redis hub (cbradio's model): a station broadcasts commands that are
//! signed and sealed end to end (`protocol::envelope`) through a Redis
//! server that sees only sealed bytes; agents that match run them and push
//! sealed replies to a per-command list. `keys` writes the key pairs,
//! `config` holds settings and Redis names, `agent` is the subscriber,
//! `throttle` the hub-wide run slots, `station` the sending side with its
//! reply waits, `discovery` remembers agents seen before, `swarm` simulates
//! many agent identities in one process for load tests.

pub mod agent;
pub mod config;
pub mod discovery;
pub mod keys;
pub mod station;
pub mod swarm;
pub mod throttle;
