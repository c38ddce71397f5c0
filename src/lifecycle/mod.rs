//! Keeping a fleet's trust current for years (seed 002), from the
//! dispatcher's side: `rotation` (a new dispatcher certificate pushed to
//! every agent, the old one trusted through an overlap window),
//! `maintain` (retiring the old serial after the overlap, marking agents
//! that missed it `serial-stale`, renewing agent certificates before they
//! expire, pruning), `revoke` (a serial refused by the dispatcher and
//! pushed to every agent), all through `push`, which calls the agents'
//! trust builtins over mutual TLS.

pub mod maintain;
pub mod push;
pub mod revoke;
pub mod rotation;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error(transparent)]
    Registry(#[from] crate::dispatch::registry::RegistryError),
    #[error("cannot use {}: {source}", .path.display())]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("{} is not valid: {why}; fix or remove it", .path.display())]
    Corrupt { path: std::path::PathBuf, why: String },
    #[error("{0}")]
    Refused(String),
    #[error("TLS configuration: {0}")]
    Tls(#[from] crate::transport::tls::TlsError),
}
