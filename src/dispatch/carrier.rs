//! The one thing dispatch knows about transports: a [`Carrier`] opens a
//! [`Session`] to a target, after which requests and events are protocol
//! messages. `TlsCarrier` dials agents over mutual TLS; tests add an
//! in-memory carrier; the hub and SSH carriers implement the same trait.

use crate::protocol::{Hello, Role};
use crate::transport::{self, tls, FrameReader, FrameWriter};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// A target as dispatch sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub addr: String,
}

pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// An open session to one agent, Hellos already exchanged.
pub struct Session {
    pub reader: FrameReader<BoxRead>,
    pub writer: FrameWriter<BoxWrite>,
    pub peer: Hello,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Nothing answered: the target ends `unreachable`.
    Unreachable(String),
    /// Something answered but refused us or failed to prove its identity:
    /// the target ends `refused`.
    Refused(String),
}

pub trait Carrier: Send + Sync + 'static {
    fn open(&self, target: &Target) -> impl Future<Output = Result<Session, OpenError>> + Send;
}

/// Mutual TLS to `target.addr`, requiring a certificate naming `target.name`.
pub struct TlsCarrier {
    pub config: Arc<rustls::ClientConfig>,
    pub dispatcher_id: String,
    pub connect_timeout: Duration,
    pub max_frame: usize,
}

impl Carrier for TlsCarrier {
    async fn open(&self, target: &Target) -> Result<Session, OpenError> {
        let stream =
            tls::connect(&target.addr, &target.name, self.config.clone(), self.connect_timeout).await.map_err(|e| {
                if e.is_unreachable() {
                    OpenError::Unreachable(e.to_string())
                } else {
                    OpenError::Refused(e.to_string())
                }
            })?;
        let (r, w) = tokio::io::split(stream);
        let mut reader = FrameReader::new(Box::new(r) as BoxRead, self.max_frame);
        let mut writer = FrameWriter::new(Box::new(w) as BoxWrite, self.max_frame);
        let ours = transport::hello(Role::Dispatcher, &self.dispatcher_id);
        let peer = transport::handshake(&mut reader, &mut writer, &ours, self.connect_timeout)
            .await
            .map_err(|e| OpenError::Refused(tls_hint(e.to_string())))?;
        if peer.role != Role::Agent || peer.name != target.name {
            return Err(OpenError::Refused(format!(
                "expected agent {:?}, the peer says it is {:?} {:?}",
                target.name, peer.role, peer.name
            )));
        }
        Ok(Session { reader, writer, peer })
    }
}

/// Explain a read error that may be a late TLS alert.
pub fn explain_read(text: &str) -> String {
    tls_hint(text.to_string())
}

/// TLS 1.3 reports a refused client certificate only on the first read;
/// say what it means.
fn tls_hint(text: String) -> String {
    if text.contains("alert") {
        format!("{text} (the agent rejected this dispatcher's certificate: is it from this fleet's CA?)")
    } else {
        text
    }
}
