//! What the Redis hub's two sides share (cbradio's model: a station
//! broadcasts commands signed and sealed end to end through a Redis server
//! that sees only sealed bytes; agents that match run them and push sealed
//! replies to a per-command list). `keys` writes and reads the key pairs,
//! `config` holds settings and Redis names, `target` where Redis is (one
//! server, Sentinel or Cluster), `conn` the connections to it, `throttle`
//! the hub-wide run slots, `discovery` the agents a station has seen
//! before. The sides themselves live with their roles: the station is a
//! broadcast carrier (`transport::hub`), the subscriber a front door of
//! the agent (`agent::hub`, and its load-test `agent::swarm`). Nothing here
//! imports either side.

pub mod config;
pub mod conn;
pub mod discovery;
pub mod keys;
pub mod target;
pub mod throttle;
