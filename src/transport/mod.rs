//! Carrying frames over byte streams, and the carriers dispatch drives.
//! [`FrameReader`] and [`FrameWriter`] wrap any async stream half with the
//! codec of `protocol::frame`; [`handshake`] exchanges `Hello`s and refuses
//! a version mismatch. `carrier` defines the two carrier shapes; `tls`
//! makes mutual-TLS streams and `tls_carrier` dials agents with them; `hub`
//! is the station side of the Redis hub (a broadcast carrier); `memory` is
//! an in-process pair for tests.

pub mod carrier;
pub mod daemon;
pub mod hub;
pub mod memory;
pub mod ssh;
pub mod tls;
pub mod tls_carrier;

use crate::protocol::{self, FrameDecoder, FrameError, Hello, Message, Refusal, PROTOCOL_VERSION};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Debug, Error)]
pub enum TransportError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("peer speaks protocol version {peer}, this muster speaks {ours}; upgrade the older side")]
    Version { peer: u32, ours: u32 },
    #[error("peer closed the connection during the handshake")]
    ClosedInHandshake,
    #[error("peer refused the session: {0}")]
    PeerError(String),
    #[error("peer refused the session: {0}")]
    Refused(Refusal),
    #[error("expected Hello, got another message first")]
    NoHello,
    #[error("timed out after {0:?} {1}")]
    Timeout(Duration, &'static str),
}

/// Reads whole messages from a stream half.
pub struct FrameReader<R> {
    inner: R,
    decoder: FrameDecoder,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, max_frame: usize) -> Self {
        FrameReader { inner, decoder: FrameDecoder::new(max_frame), buf: vec![0; 16 * 1024] }
    }

    /// The next message; `Ok(None)` at a clean end of stream.
    pub async fn read(&mut self) -> Result<Option<Message>, TransportError> {
        self.read_value().await
    }

    /// [`Self::read`] for any serde value framed the same way.
    pub async fn read_value<T: serde::de::DeserializeOwned>(&mut self) -> Result<Option<T>, TransportError> {
        loop {
            if let Some(msg) = self.decoder.next_value()? {
                return Ok(Some(msg));
            }
            let n = self.inner.read(&mut self.buf).await?;
            if n == 0 {
                if self.decoder.has_partial() {
                    return Err(TransportError::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "connection closed in the middle of a frame",
                    )));
                }
                return Ok(None);
            }
            self.decoder.push(&self.buf[..n]);
        }
    }
}

/// Writes whole messages to a stream half.
pub struct FrameWriter<W> {
    inner: W,
    max_frame: usize,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(inner: W, max_frame: usize) -> Self {
        FrameWriter { inner, max_frame }
    }

    pub async fn write(&mut self, msg: &Message) -> Result<(), TransportError> {
        self.write_value(msg).await
    }

    /// [`Self::write`] for any serde value.
    pub async fn write_value<T: serde::Serialize>(&mut self, msg: &T) -> Result<(), TransportError> {
        let frame = protocol::frame::encode_value(msg, self.max_frame)?;
        self.inner.write_all(&frame).await?;
        self.inner.flush().await?;
        Ok(())
    }

    /// Write raw bytes (tests use this to send malformed frames).
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        self.inner.write_all(bytes).await?;
        self.inner.flush().await?;
        Ok(())
    }

    pub async fn shutdown(&mut self) {
        let _ = self.inner.shutdown().await;
    }
}

/// Build this side's `Hello`.
pub fn hello(role: protocol::Role, name: &str) -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        role,
        name: name.to_string(),
        capabilities: vec!["run".into(), "cancel".into(), "ping".into()],
    }
}

/// Send our `Hello`, then read the peer's within `limit`. A peer `Error`
/// (for example "dispatcher not trusted") becomes [`TransportError::PeerError`].
pub async fn handshake<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    ours: &Hello,
    limit: Duration,
) -> Result<Hello, TransportError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    writer.write(&Message::Hello(ours.clone())).await?;
    let got = tokio::time::timeout(limit, reader.read())
        .await
        .map_err(|_| TransportError::Timeout(limit, "waiting for the peer's Hello"))??;
    match got {
        Some(Message::Hello(h)) if h.version == PROTOCOL_VERSION => Ok(h),
        Some(Message::Hello(h)) => Err(TransportError::Version { peer: h.version, ours: PROTOCOL_VERSION }),
        Some(Message::Error { message }) => Err(TransportError::PeerError(message)),
        Some(Message::Refused { reason, .. }) => Err(TransportError::Refused(reason)),
        Some(_) => Err(TransportError::NoHello),
        None => Err(TransportError::ClosedInHandshake),
    }
}
