//! Pairing (ctrl-exec's, port 7444): how an agent that trusts nothing yet
//! gets a certificate from the fleet CA and a line in its trusted map,
//! with an operator comparing a 6-digit code on both sides. `store` keeps
//! pending requests as files any dispatcher process can decide; `server`
//! is `muster pair listen`; `client` is `muster agent pair`; `channel`
//! makes the TLS ends and the channel binding that defeats a relaying man
//! in the middle (see docs/security.md).

pub mod channel;
pub mod client;
pub mod server;
pub mod store;

use thiserror::Error;

/// Seconds since the epoch, now.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// What can go wrong on either side of a pairing connection.
#[derive(Debug, Error)]
pub enum PairingError {
    #[error("cannot reach the dispatcher at {addr}: {why}")]
    Connect { addr: String, why: String },
    #[error("pairing TLS with {addr}: {why}")]
    Tls { addr: String, why: String },
    #[error("the pairing connection failed: {0}")]
    Transport(#[from] crate::transport::TransportError),
    #[error("the dispatcher closed the connection before deciding (the request may have expired)")]
    Closed,
    #[error("the dispatcher denied the pairing: {0}")]
    Denied(String),
    #[error("no decision within {0}s; ask the operator to approve, then pair again")]
    NoDecision(u64),
    #[error("unexpected pairing message: {0}")]
    Protocol(String),
    #[error("the certificate the dispatcher sent is not usable: {0}")]
    BadGrant(String),
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error(transparent)]
    Enroll(#[from] crate::enroll::EnrollError),
    #[error(transparent)]
    Store(#[from] store::PairError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
}
