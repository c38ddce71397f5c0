//! HTTPS for `muster api --tls`: a server certificate from the muster CA
//! (`<state>/api/server.crt` and `.key`, issued at start for `--tls-name`
//! and reissued when the name changes or it is within 30 days of expiry),
//! and client certificates from the same CA as a second way in beside
//! bearer tokens. A client certificate counts only when it is a user
//! certificate made by `muster api token add NAME --cert` (client use only:
//! an agent's certificate, which also serves TLS, is refused), its serial
//! is not revoked, and the tokens file has a certificate entry of that
//! name. Handshakes run off the accept loop, at most [`HANDSHAKES`] at
//! once, each bounded by [`HANDSHAKE_LIMIT`].

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// TLS handshakes in progress at once.
pub const HANDSHAKES: usize = 256;
/// How long a client may take to finish its handshake.
pub const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// Who connected: the address, and the client certificate's identity
/// when one was presented over TLS.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub cert: Option<CertIdentity>,
}

/// What a verified client certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// The subject's common name.
    pub name: String,
    /// Lowercase hex serial.
    pub serial: String,
    /// The certificate may also serve TLS (an agent's): not a user's.
    pub server_use: bool,
}

impl CertIdentity {
    /// Read a DER certificate (already verified against the CA by rustls).
    pub fn of(der: &[u8]) -> Option<CertIdentity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let name = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
        let server_use = cert.extended_key_usage().ok().flatten().map(|e| e.value.server_auth).unwrap_or(false);
        let serial = crate::pki::cert_serial_hex(der).ok()?;
        Some(CertIdentity { name, serial, server_use })
    }
}

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Peer { addr: *stream.remote_addr(), cert: None }
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        let cert =
            stream.io().get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| CertIdentity::of(c));
        Peer { addr: *stream.remote_addr(), cert }
    }
}

/// A listener whose connections have finished their TLS handshake.
pub struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accept on `tcp`, handshaking with `config` in background tasks.
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let slots = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else { return };
                let (sock, addr) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("api: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (tx, acceptor) = (tx.clone(), acceptor.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(sock)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("api: TLS handshake with {addr} failed: {e}"),
                        Err(_) => tracing::debug!("api: TLS handshake with {addr} took too long"),
                    }
                    drop(permit);
                });
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept task ended (it never does while the runtime runs).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The server config: a certificate for `name` from the CA (issued or
/// reused), client certificates from the CA optional.
pub fn server_config(state: &Path, name: &str) -> Result<Arc<rustls::ServerConfig>, String> {
    let dir = state.join("api");
    let (crt, key, name_file) = (dir.join("server.crt"), dir.join("server.key"), dir.join("server.name"));
    let current = std::fs::read_to_string(&name_file).ok();
    let fresh = std::fs::read(&crt)
        .ok()
        .and_then(|pem| crate::pki::parse_certs_pem(&String::from_utf8_lossy(&pem)).ok())
        .and_then(|c| {
            let der = c.first()?.clone();
            let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
            Some(cert.validity().not_after.timestamp())
        })
        .is_some_and(|t| t > (crate::pairing::now() + 30 * 86_400) as i64);
    if current.as_deref() != Some(name) || !fresh || !key.exists() {
        let issued = crate::pki::issue_agent(state, name, crate::pki::DEFAULT_CERT_DAYS)
            .map_err(|e| format!("cannot issue the API's server certificate for {name:?}: {e} (see --tls-name)"))?;
        let w = |p: &Path, b: &str, secret: bool| {
            if secret {
                crate::fsutil::write_secret(p, b.as_bytes())
            } else {
                crate::fsutil::write_public(p, b.as_bytes())
            }
            .map_err(|e| format!("cannot write {}: {e}", p.display()))
        };
        w(&key, &issued.key_pem, true)?;
        w(&crt, &issued.cert_pem, false)?;
        w(&name_file, name, false)?;
        tracing::info!("issued the API's server certificate for {name} (serial {})", issued.serial);
    }
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let certs = crate::pki::parse_certs_pem(&read(&crt)?).map_err(|e| e.to_string())?;
    let key = crate::pki::parse_key_pem(&read(&key)?).map_err(|e| e.to_string())?;
    let ca = crate::pki::load_certs(&state.join("ca").join("ca.crt")).map_err(|e| e.to_string())?;
    crate::transport::tls::api_server_config(&ca, crate::transport::tls::Identity { certs, key })
        .map_err(|e| e.to_string())
}
