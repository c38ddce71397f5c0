//! The mutual-TLS carrier: dial `target.addr`, require a certificate that
//! names `target.name`, exchange Hellos, and classify every failure as
//! unreachable (nothing answered, or the connection dropped or timed out)
//! or refused (a TLS identity or trust decision, or the agent's own
//! refusal such as `busy` or `dispatcher not trusted`).

use super::carrier::{BoxFuture, BoxRead, BoxWrite, Dialer, OpenError, Reason, Session, Target};
use super::tls::{self, client_reason, rustls_error};
use super::{FrameReader, FrameWriter, TransportError};
use crate::protocol::Role;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Mutual TLS to each target's address.
pub struct TlsCarrier {
    pub config: Arc<rustls::ClientConfig>,
    pub dispatcher_id: String,
    /// Bounds the TCP connect, the TLS handshake and the Hello exchange.
    pub connect_timeout: Duration,
    pub max_frame: usize,
    /// Agent certificate serials this dispatcher refuses (`muster revoke`).
    pub revoked: HashSet<String>,
}

/// Why the carrier of a state dir cannot be set up: a file of the
/// dispatcher's identity or the CA (named in the message), or the TLS
/// configuration made from them.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// The carrier of the dispatcher whose state is in `state`: its
/// certificate and key, the CA, and the revoked serials, read now (so a
/// rotation is picked up by the next run).
pub fn for_state(state: &Path, connect_timeout: Duration) -> Result<TlsCarrier, SetupError> {
    let me = crate::pki::load_dispatcher(state)?;
    let ca = crate::pki::load_certs(&state.join("ca").join("ca.crt"))?;
    let identity = tls::Identity {
        certs: crate::pki::parse_certs_pem(&me.cert_pem)?,
        key: crate::pki::parse_key_pem(&me.key_pem)?,
    };
    Ok(TlsCarrier {
        config: tls::client_config(&ca, identity)?,
        dispatcher_id: me.id,
        connect_timeout,
        max_frame: crate::protocol::DEFAULT_MAX_FRAME,
        revoked: revoked_serials(state),
    })
}

/// The serials in `<state>/revoked-serials` (canonical lowercase hex); an
/// unreadable line is skipped with a warning.
pub fn revoked_serials(state: &Path) -> HashSet<String> {
    let text = std::fs::read_to_string(state.join("revoked-serials")).unwrap_or_default();
    let mut out = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let l = line.split('#').next().unwrap_or("").trim();
        if l.is_empty() {
            continue;
        }
        match crate::agent::trust::parse_serial(l) {
            Ok(s) => {
                out.insert(s);
            }
            Err(why) => tracing::warn!("{}:{}: {why}", state.join("revoked-serials").display(), n + 1),
        }
    }
    out
}

impl TlsCarrier {
    async fn dial(&self, target: &Target) -> Result<Session, OpenError> {
        let stream =
            tls::connect(&target.addr, &target.name, self.config.clone(), self.connect_timeout).await.map_err(|e| {
                let why = Reason::new(e.kind(), e.to_string());
                if e.is_unreachable() {
                    OpenError::Unreachable(why)
                } else {
                    OpenError::Refused(why)
                }
            })?;
        if !self.revoked.is_empty() {
            let serial = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| crate::pki::cert_serial_hex(c).ok())
                .unwrap_or_default();
            if self.revoked.contains(&serial) {
                return Err(OpenError::Refused(Reason::new(
                    "agent certificate revoked",
                    format!("{}'s certificate serial {serial} is revoked (muster revoke); pair it again", target.name),
                )));
            }
        }
        let (r, w) = tokio::io::split(stream);
        let mut reader = FrameReader::new(Box::new(r) as BoxRead, self.max_frame);
        let mut writer = FrameWriter::new(Box::new(w) as BoxWrite, self.max_frame);
        let ours = super::hello(Role::Dispatcher, &self.dispatcher_id);
        let peer = super::handshake(&mut reader, &mut writer, &ours, self.connect_timeout)
            .await
            .map_err(|e| classify_hello(&target.name, e))?;
        if peer.role != Role::Agent || peer.name != target.name {
            return Err(OpenError::Refused(Reason::new(
                "wrong agent",
                format!("expected agent {:?}, the peer says it is {:?} {:?}", target.name, peer.role, peer.name),
            )));
        }
        Ok(Session { reader, writer, peer })
    }
}

impl Dialer for TlsCarrier {
    fn open<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Session, OpenError>> {
        Box::pin(self.dial(target))
    }
}

/// Classify a failed Hello exchange right after the TLS handshake.
fn classify_hello(name: &str, e: TransportError) -> OpenError {
    match e {
        TransportError::Refused(r) => OpenError::Refused(Reason::from_refusal(&r)),
        TransportError::PeerError(m) => OpenError::Refused(Reason::new("agent error", m)),
        TransportError::Io(io) => match rustls_error(&io) {
            Some(r) => {
                let (kind, why) = client_reason(r);
                OpenError::Refused(Reason::new(kind, why))
            }
            None => OpenError::Unreachable(Reason::new("connection lost", format!("{name}: {io}"))),
        },
        TransportError::Timeout(..) => OpenError::Unreachable(Reason::new("no answer", e.to_string())),
        TransportError::ClosedInHandshake => OpenError::Unreachable(Reason::new("connection closed", e.to_string())),
        e @ (TransportError::Version { .. } | TransportError::NoHello | TransportError::Frame(_)) => {
            OpenError::Refused(Reason::new("protocol error", e.to_string()))
        }
    }
}
