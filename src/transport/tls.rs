//! Mutual TLS over TCP with rustls (ring provider, TLS 1.3 and 1.2). The
//! agent requires a client certificate chaining to the fleet CA; the
//! dispatcher requires the agent's certificate to name the agent it dialled.
//! Serial and trusted-map checks happen after the handshake (see `agent`),
//! so the refused peer gets a message saying why.

use crate::pki;
use rustls::client::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpStream;

pub use tokio_rustls::{client::TlsStream as ClientStream, server::TlsStream as ServerStream};

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{0}")]
    Pki(#[from] pki::PkiError),
    #[error("TLS configuration: {0}")]
    Config(String),
    #[error("cannot connect to {addr}: {why}")]
    Connect { addr: String, why: String },
    #[error("TLS handshake with {addr} failed: {why}")]
    Handshake { addr: String, why: String },
    #[error("{0:?} is not a valid agent name for TLS")]
    BadName(String),
}

impl TlsError {
    /// True for failures to reach the host at all (nothing answered).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, TlsError::Connect { .. })
    }
}

/// Certificate chain and key of one side.
pub struct Identity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Ok(Identity { certs: pki::load_certs(cert)?, key: pki::load_key(key)? })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &[CertificateDer<'static>]) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for c in ca {
        store.add(c.clone()).map_err(|e| TlsError::Config(format!("bad CA certificate: {e}")))?;
    }
    Ok(store)
}

/// Dispatcher side: present `me`, trust agents signed by `ca`.
pub fn client_config(ca: &[CertificateDer<'static>], me: Identity) -> Result<Arc<ClientConfig>, TlsError> {
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots(ca)?)
        .with_client_auth_cert(me.certs, me.key)
        .map_err(|e| TlsError::Config(format!("dispatcher certificate/key: {e}")))?;
    Ok(Arc::new(cfg))
}

/// Agent side: present `me`, require a client certificate signed by `ca`.
pub fn server_config(ca: &[CertificateDer<'static>], me: Identity) -> Result<Arc<ServerConfig>, TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(me.certs, me.key)
        .map_err(|e| TlsError::Config(format!("agent certificate/key: {e}")))?;
    Ok(Arc::new(cfg))
}

/// Dial `addr` and complete a TLS handshake that requires the agent's
/// certificate to name `name`. Both steps share the `limit`.
pub async fn connect(
    addr: &str,
    name: &str,
    config: Arc<ClientConfig>,
    limit: Duration,
) -> Result<ClientStream<TcpStream>, TlsError> {
    let server_name = ServerName::try_from(name.to_string()).map_err(|_| TlsError::BadName(name.into()))?;
    let deadline = tokio::time::Instant::now() + limit;
    let tcp = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| TlsError::Connect { addr: addr.into(), why: format!("no answer within {limit:?}") })?
        .map_err(|e| TlsError::Connect { addr: addr.into(), why: e.to_string() })?;
    let _ = tcp.set_nodelay(true);
    let connector = tokio_rustls::TlsConnector::from(config);
    tokio::time::timeout_at(deadline, connector.connect(server_name, tcp))
        .await
        .map_err(|_| TlsError::Handshake { addr: addr.into(), why: format!("no TLS answer within {limit:?}") })?
        .map_err(|e| TlsError::Handshake { addr: addr.into(), why: explain(&e) })
}

/// Turn a rustls error into a sentence an operator can act on.
pub fn explain(e: &std::io::Error) -> String {
    let text = e.to_string();
    if text.contains("NotValidForName") || text.contains("not valid for name") {
        format!("{text} (the agent's certificate names another host: check the registry address)")
    } else if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        format!("{text} (the peer's certificate is not from this fleet's CA)")
    } else {
        text
    }
}

/// Lowercase hex serial of the client certificate on an accepted stream.
pub fn peer_serial(stream: &ServerStream<TcpStream>) -> Option<String> {
    let (_, conn) = stream.get_ref();
    let cert = conn.peer_certificates()?.first()?;
    pki::cert_serial_hex(cert.as_ref()).ok()
}
