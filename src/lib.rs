//! muster: run named actions on many hosts at once.
//!
//! One library holds every role; `src/main.rs` only calls [`cli::main`].
//! `protocol` is pure (no I/O); `transport` carries frames; `exec` runs
//! actions; `agent` serves them; `dispatch` fans a request out to many
//! agents; `pki` owns the CA and certificates; `enroll` issues an agent's
//! files; `demo` is the throwaway fleet of `muster demo`.

pub mod agent;
pub mod api;
pub mod audit;
pub mod cli;
pub mod console;
pub mod daemon;
pub mod demo;
pub mod dispatch;
pub mod enroll;
pub mod exec;
pub mod fsutil;
pub mod hexstr;
pub mod hub;
pub mod lifecycle;
pub mod ns8;
pub mod pairing;
pub mod pki;
pub mod protocol;
pub mod settings;
pub mod state;
pub mod timefmt;
pub mod transport;
pub mod words;
