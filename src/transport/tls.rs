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
    Handshake { addr: String, kind: &'static str, why: String },
    #[error("{addr} accepted the connection but gave no TLS answer within {limit:?}")]
    Silent { addr: String, limit: Duration },
    #[error("{addr} closed the connection during the TLS handshake: {why}")]
    Dropped { addr: String, why: String },
    #[error("{0:?} is not a valid agent name for TLS")]
    BadName(String),
}

impl TlsError {
    /// True for failures to reach the host at all: nothing answered, or
    /// the connection dropped before anything was proven.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, TlsError::Connect { .. } | TlsError::Silent { .. } | TlsError::Dropped { .. })
    }

    /// A short kind (the same for every host failing the same way).
    pub fn kind(&self) -> &'static str {
        match self {
            TlsError::Connect { why, .. } if why.contains("refused") => "connection refused",
            TlsError::Connect { why, .. } if why.starts_with("no answer") => "no answer",
            TlsError::Connect { .. } => "cannot connect",
            TlsError::Silent { .. } => "no TLS answer",
            TlsError::Dropped { .. } => "connection closed",
            TlsError::Handshake { kind, .. } => kind,
            TlsError::BadName(_) => "bad agent name",
            TlsError::Pki(_) | TlsError::Config(_) => "TLS configuration",
        }
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

/// Sessions kept per client config for resumption.
const SESSIONS: usize = 4096;
/// Most client configs (CA and dispatcher identity pairs) kept at once.
const CONFIGS: usize = 8;
/// Certificates as one comparable byte string (each length-prefixed).
fn fingerprint<'a>(ders: impl Iterator<Item = &'a CertificateDer<'static>>) -> Vec<u8> {
    ders.flat_map(|c| (c.len() as u64).to_be_bytes().into_iter().chain(c.iter().copied())).collect()
}

/// Dispatcher side: present `me`, trust agents signed by `ca`.
///
/// The config is built once per process for the same CA and identity and
/// then handed out again, so a long-lived dispatcher (the API, the daemon)
/// that asks for a config per run still resumes TLS 1.3 sessions with
/// agents it reached before: rustls resumes only with the very config
/// (verifier and certificate) a session was made with. A resumed session
/// keeps the identities it was made with, so a rotated certificate (a
/// different identity) starts afresh; the agent still checks the serial
/// of every session, resumed or not. rustls keeps sessions in memory
/// only, so a one-shot `muster run` never resumes (docs/performance.md).
pub fn client_config(ca: &[CertificateDer<'static>], me: Identity) -> Result<Arc<ClientConfig>, TlsError> {
    type Built = Vec<(Vec<u8>, Arc<ClientConfig>)>;
    static BUILT: std::sync::Mutex<Built> = std::sync::Mutex::new(Vec::new());
    let mut inputs = fingerprint(ca.iter().chain(&me.certs));
    inputs.extend_from_slice(me.key.secret_der());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = built.iter().position(|(k, _)| *k == inputs) {
        let entry = built.remove(i);
        let cfg = entry.1.clone();
        built.push(entry);
        return Ok(cfg);
    }
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots(ca)?)
        .with_client_auth_cert(me.certs, me.key)
        .map_err(|e| TlsError::Config(format!("dispatcher certificate/key: {e}")))?;
    cfg.resumption = rustls::client::Resumption::in_memory_sessions(SESSIONS);
    let cfg = Arc::new(cfg);
    built.push((inputs, cfg.clone()));
    if built.len() > CONFIGS {
        built.remove(0);
    }
    Ok(cfg)
}

/// Whether the handshake on an accepted stream resumed an earlier session
/// (its client certificate is then the one of that session).
pub fn resumed(stream: &ServerStream<TcpStream>) -> bool {
    stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
}

/// Agent side: present `me`, require a client certificate signed by `ca`.
///
/// Configs built in one process for the same CA share their session
/// cache, so a reload (SIGHUP) that keeps the CA keeps dispatchers'
/// sessions resumable; a different CA starts with none, so no session
/// authenticated under another CA is ever resumed. Every session,
/// resumed or not, then goes through the trusted-map check.
pub fn server_config(ca: &[CertificateDer<'static>], me: Identity) -> Result<Arc<ServerConfig>, TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut cfg = presenting(verifier, me, "agent")?;
    cfg.session_storage = server_sessions(ca);
    Ok(Arc::new(cfg))
}

/// A server config presenting `me` (`who` names it in errors) and
/// checking client certificates with `verifier`.
fn presenting(
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    me: Identity,
    who: &str,
) -> Result<ServerConfig, TlsError> {
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(me.certs, me.key)
        .map_err(|e| TlsError::Config(format!("{who} certificate/key: {e}")))
}

/// The session cache of the agent configs for the CA `ca` in this process.
fn server_sessions(ca: &[CertificateDer<'static>]) -> Arc<dyn rustls::server::StoresServerSessions> {
    static BY_CA: std::sync::Mutex<Option<(Vec<u8>, Arc<rustls::server::ServerSessionMemoryCache>)>> =
        std::sync::Mutex::new(None);
    let key = fingerprint(ca.iter());
    let mut slot = BY_CA.lock().unwrap_or_else(|p| p.into_inner());
    match &*slot {
        Some((k, cache)) if *k == key => cache.clone(),
        _ => {
            let cache = rustls::server::ServerSessionMemoryCache::new(SERVER_SESSIONS);
            *slot = Some((key, cache.clone()));
            cache
        }
    }
}

/// Sessions an agent keeps for resumption (rustls's default is 256).
const SERVER_SESSIONS: usize = 1024;

/// HTTPS side of `muster api --tls`: present `me`; a client certificate
/// signed by `ca` is verified when offered, but not required (bearer
/// tokens are the other way in); HTTP/1.1 over ALPN.
pub fn api_server_config(ca: &[CertificateDer<'static>], me: Identity) -> Result<Arc<ServerConfig>, TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut cfg = presenting(verifier, me, "API")?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Dial `addr` and complete a TLS handshake that requires the agent's
/// certificate to name `name`. Both steps share the `limit`. A host that
/// accepts TCP but never answers TLS (a frozen agent) is a timeout, which
/// [`TlsError::is_unreachable`] counts as unreachable.
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
    match tokio::time::timeout_at(deadline, connector.connect(server_name, tcp)).await {
        Err(_) => Err(TlsError::Silent { addr: addr.into(), limit }),
        Ok(Err(e)) => Err(match rustls_error(&e).map(client_reason) {
            Some((kind, why)) => TlsError::Handshake { addr: addr.into(), kind, why },
            None => TlsError::Dropped { addr: addr.into(), why: e.to_string() },
        }),
        Ok(Ok(s)) => Ok(s),
    }
}

/// The rustls error inside an I/O error from a TLS stream, if any.
pub fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// A short kind and a sentence an operator can act on, for a TLS failure
/// seen by the dispatcher (client) side.
pub fn client_reason(e: &rustls::Error) -> (&'static str, String) {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    match e {
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => (
            "certificate names another host",
            format!("{e} (the agent's certificate names another host: check the registry address)"),
        ),
        E::InvalidCertificate(C::ExpiredContext { not_after, .. }) => (
            "agent certificate expired",
            format!(
                "the agent's certificate expired on {}: issue it a new one",
                crate::timefmt::unix_rfc3339(not_after.as_secs())
            ),
        ),
        E::InvalidCertificate(C::Expired) => {
            ("agent certificate expired", "the agent's certificate has expired: issue it a new one".into())
        }
        E::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            ("not from this fleet's CA", format!("{e} (the agent's certificate is not from this fleet's CA)"))
        }
        E::AlertReceived(A::CertificateExpired) => (
            "dispatcher certificate expired",
            "the agent refused this dispatcher's certificate as expired: renew it".into(),
        ),
        E::AlertReceived(a) => (
            "agent refused our certificate",
            format!("the agent refused this dispatcher's certificate (TLS alert {a:?}): is it from this fleet's CA?"),
        ),
        _ => ("TLS error", e.to_string()),
    }
}

/// The same for a failure seen by the agent (server) side, for its log.
pub fn server_reason(e: &rustls::Error) -> String {
    use rustls::{CertificateError as C, Error as E};
    match e {
        E::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            "refused a client certificate that is not from this fleet's CA".into()
        }
        E::InvalidCertificate(C::ExpiredContext { not_after, .. }) => {
            format!(
                "refused a client certificate that expired on {}",
                crate::timefmt::unix_rfc3339(not_after.as_secs())
            )
        }
        E::InvalidCertificate(C::Expired) => "refused an expired client certificate".into(),
        E::NoCertificatesPresented => "the client presented no certificate (not a muster dispatcher?)".into(),
        E::AlertReceived(a) => format!(
            "the client refused this agent's certificate (TLS alert {a:?}): it does not trust this fleet's CA \
             (a dispatcher of another fleet?)"
        ),
        E::InvalidMessage(_) | E::InappropriateHandshakeMessage { .. } | E::InappropriateMessage { .. } => {
            format!("the client does not speak TLS as expected: {e}")
        }
        _ => e.to_string(),
    }
}

/// Turn a TLS I/O error into a sentence an operator can act on.
pub fn explain(e: &std::io::Error) -> String {
    match rustls_error(e) {
        Some(r) => client_reason(r).1,
        None => e.to_string(),
    }
}

/// An I/O error's text in an operator's words: rustls's "peer closed
/// connection without sending TLS close_notify" (with its manual's URL)
/// says what happened instead, and any `https://docs.rs/...` reference
/// is dropped.
pub fn plain_io(text: &str) -> String {
    if text.contains("close_notify") {
        return "the peer closed the connection without ending the TLS session (it stopped, was killed, or the \
                network dropped it)"
            .into();
    }
    let mut out = text.to_string();
    while let Some(at) = out.find("https://docs.rs/") {
        let end = out[at..].find(char::is_whitespace).map(|n| at + n).unwrap_or(out.len());
        let mut start = at;
        // Drop the glue before the URL too (": ", " see ", " (").
        for glue in [": ", "; see ", " (see ", " see ", " (", " "] {
            if out[..start].ends_with(glue) {
                start -= glue.len();
                break;
            }
        }
        let mut stop = end;
        if out[start..].starts_with(" (") && out[stop..].starts_with(')') {
            stop += 1;
        }
        out.replace_range(start..stop, "");
    }
    out.trim_end().to_string()
}

/// Explain a read error that may be a late TLS alert (TLS 1.3 reports a
/// refused client certificate only on the first read).
pub fn explain_read(text: &str) -> String {
    let text = &plain_io(text);
    if text.contains("alert") {
        format!("{text} (the agent rejected this dispatcher's certificate: is it from this fleet's CA?)")
    } else {
        text.to_string()
    }
}

/// Lowercase hex serial of the client certificate on an accepted stream.
pub fn peer_serial(stream: &ServerStream<TcpStream>) -> Option<String> {
    let (_, conn) = stream.get_ref();
    let cert = conn.peer_certificates()?.first()?;
    pki::cert_serial_hex(cert.as_ref()).ok()
}

#[cfg(test)]
mod tests {
    use super::plain_io;

    #[test]
    fn io_errors_read_plainly() {
        let eof = "peer closed connection without sending TLS close_notify: \
                   https://docs.rs/rustls/latest/rustls/manual/_03_howto/index.html#unexpected-eof";
        assert!(plain_io(eof).starts_with("the peer closed the connection without ending the TLS session"));
        assert_eq!(plain_io("bad thing: https://docs.rs/x/y#z"), "bad thing");
        assert_eq!(plain_io("bad thing (see https://docs.rs/x/y) then more"), "bad thing then more");
        assert_eq!(plain_io("a https://docs.rs/x b"), "a b");
        assert_eq!(plain_io("connection refused (os error 111)"), "connection refused (os error 111)");
        assert_eq!(plain_io(""), "");
    }
}
