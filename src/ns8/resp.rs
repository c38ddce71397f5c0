//! A minimal RESP2 connection for the event subscription. Events need a
//! connection that, like the original's, sends `auth default <agent-id>`,
//! `client setname <agent-id>`, `psubscribe */event/*` and a periodic
//! `ping`, then reads pushed messages; this file owns exactly that: framing
//! of commands (via the redis crate's packer) and [`ReplyReader`], which
//! feeds received bytes to the pure parser in `parse`. Memory follows the
//! bytes received, never a length a server announces: reads go into a
//! buffer in chunks of at most [`CHUNK`] bytes, and a reply over
//! [`MAX_REPLY`] (16 MiB; events are small) is refused with
//! [`ParseError::TooLarge`] as soon as its header is read, which drops the
//! subscription (it is logged and re-established).

mod parse;

pub use parse::{parse, ParseError, Parsed, Reply, MAX_DEPTH, MAX_ELEMENTS, MAX_LINE, MAX_REPLY};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Most bytes asked of the socket per read; the buffer grows by this much
/// at a time, and only while a reply is still arriving.
pub const CHUNK: usize = 64 * 1024;

/// Why the subscription connection failed, worded as go-redis words it.
#[derive(Debug, Error)]
pub enum RespError {
    #[error("dial tcp {address}: {why}")]
    Dial { address: String, why: String },
    /// The server closed the connection between replies.
    #[error("EOF")]
    Closed,
    /// The server closed the connection in the middle of a reply.
    #[error("unexpected EOF")]
    Truncated,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An error reply from the server.
    #[error("{0}")]
    Server(String),
    /// Bytes that are not a reply, or one over the caps.
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("i/o timeout")]
    Silent,
}

/// Reads replies from any byte stream (a socket half, or a byte slice in
/// tests). Holds only bytes received and not yet consumed.
pub struct ReplyReader<R> {
    inner: R,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> ReplyReader<R> {
    /// Read from `inner`; nothing is buffered (or allocated) yet.
    pub fn new(inner: R) -> ReplyReader<R> {
        ReplyReader { inner, buf: Vec::new() }
    }

    /// The next reply. Errors: [`RespError::Closed`] at a clean end of
    /// stream, [`RespError::Truncated`] when it ends inside a reply,
    /// [`RespError::Parse`] for invalid or oversized replies (refused
    /// before their payload is read), [`RespError::Io`]. After an error the
    /// reader must be dropped with its connection.
    pub async fn read(&mut self) -> Result<Reply, RespError> {
        loop {
            if let Parsed::Complete { reply, used } = parse(&self.buf)? {
                self.buf.drain(..used);
                if self.buf.capacity() > 4 * CHUNK && self.buf.len() < CHUNK {
                    self.buf.shrink_to(CHUNK);
                }
                return Ok(reply);
            }
            self.buf.reserve(CHUNK);
            let room = (self.buf.capacity() - self.buf.len()).min(CHUNK) as u64;
            let n = (&mut self.inner).take(room).read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(if self.buf.is_empty() { RespError::Closed } else { RespError::Truncated });
            }
        }
    }

    /// Bytes currently allocated for buffering (what a peer made us hold).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

/// A connection: commands out, replies in.
pub struct Conn {
    reader: ReplyReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Conn {
    /// Connect to `host:port` within `timeout`. Errors read like go-redis'
    /// (`dial tcp ADDRESS: connect: connection refused`).
    pub async fn open(address: &str, timeout: Duration) -> Result<Conn, RespError> {
        let dial = |why: String| RespError::Dial { address: address.to_string(), why };
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(dial(format!("connect: {}", super::log::errno_text(&e)))),
            Err(_) => return Err(dial("i/o timeout".into())),
        };
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        Ok(Conn { reader: ReplyReader::new(r), writer: w })
    }

    /// Send one command.
    pub async fn send(&mut self, args: &[&str]) -> Result<(), RespError> {
        Ok(self.writer.write_all(&pack(args)).await?)
    }

    /// Send a command and read its reply; an error reply is an `Err`.
    pub async fn call(&mut self, args: &[&str]) -> Result<Reply, RespError> {
        self.send(args).await?;
        match self.read().await? {
            Reply::Error(e) => Err(RespError::Server(e)),
            r => Ok(r),
        }
    }

    /// Read one reply.
    pub async fn read(&mut self) -> Result<Reply, RespError> {
        self.reader.read().await
    }

    /// Hand the reading side to a task that forwards every reply (and the
    /// error that ends the connection) to the returned channel, so callers
    /// can wait on replies, timers and writes at once without ever
    /// abandoning a half-read reply. The writing side stays here.
    pub fn into_split(self) -> (Writer, tokio::sync::mpsc::Receiver<Result<Reply, RespError>>) {
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let mut reader = self.reader;
        tokio::spawn(async move {
            loop {
                let r = reader.read().await;
                let failed = r.is_err();
                if tx.send(r).await.is_err() || failed {
                    break;
                }
            }
        });
        (Writer { writer: self.writer }, rx)
    }
}

/// The writing half of a split connection.
pub struct Writer {
    writer: OwnedWriteHalf,
}

impl Writer {
    /// Send one command (its reply arrives on the reply channel).
    pub async fn send(&mut self, args: &[&str]) -> Result<(), RespError> {
        Ok(self.writer.write_all(&pack(args)).await?)
    }
}

fn pack(args: &[&str]) -> Vec<u8> {
    let mut cmd = redis::cmd(args.first().copied().unwrap_or("ping"));
    for a in args.iter().skip(1) {
        cmd.arg(*a);
    }
    cmd.get_packed_command()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    /// Poll once: everything the stream has is consumed, then it waits.
    fn poll_once<F: std::future::Future>(f: F) -> Poll<F::Output> {
        pin!(f).as_mut().poll(&mut Context::from_waker(Waker::noop()))
    }

    #[tokio::test]
    async fn replies_in_sequence_from_a_byte_slice() {
        let input: &[u8] = b"+OK\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n-NOPERM no\r\n";
        let mut r = ReplyReader::new(input);
        assert_eq!(r.read().await.unwrap(), Reply::Simple("OK".into()));
        assert!(matches!(r.read().await.unwrap(), Reply::Array(Some(items)) if items.len() == 3));
        assert_eq!(r.read().await.unwrap(), Reply::Error("NOPERM no".into()));
        assert!(matches!(r.read().await, Err(RespError::Closed)));
    }

    #[tokio::test]
    async fn truncated_input_is_unexpected_eof() {
        for cut in [&b"$5\r\nhel"[..], b"*2\r\n:1\r\n", b"+OK\r"] {
            let mut r = ReplyReader::new(cut);
            assert!(matches!(r.read().await, Err(RespError::Truncated)), "{cut:?}");
        }
    }

    #[tokio::test]
    async fn bad_input_is_a_parse_error() {
        let mut r = ReplyReader::new(&b"+\xff\r\n"[..]);
        assert!(matches!(r.read().await, Err(RespError::Parse(ParseError::NotUtf8))));
        let mut r = ReplyReader::new(&b"$-5\r\n"[..]);
        let e = r.read().await.unwrap_err();
        assert_eq!(e.to_string(), "redis: invalid reply: negative length -5");
    }

    #[test]
    fn an_oversized_announcement_fails_without_waiting_or_allocating() {
        let (mut server, client) = tokio::io::duplex(1024);
        let mut r = ReplyReader::new(client);
        // 512 MiB announced, 3 bytes sent, the connection left open.
        assert!(matches!(poll_once(server.write_all(b"$536870912\r\nabc")), Poll::Ready(Ok(()))));
        match poll_once(r.read()) {
            Poll::Ready(Err(RespError::Parse(ParseError::TooLarge { limit: MAX_REPLY, .. }))) => {}
            other => panic!("{other:?}"),
        }
        assert!(r.capacity() <= 2 * CHUNK, "{}", r.capacity());
    }

    #[test]
    fn memory_follows_the_bytes_received_not_the_announcement() {
        let (mut server, client) = tokio::io::duplex(256 * 1024);
        let mut r = ReplyReader::new(client);
        // 16 MiB - 20 announced (within the cap), 100 KiB sent so far.
        let mut sent = b"$16777196\r\n".to_vec();
        sent.resize(sent.len() + 100 * 1024, b'z');
        assert!(matches!(poll_once(server.write_all(&sent)), Poll::Ready(Ok(()))));
        assert!(poll_once(r.read()).is_pending());
        // At most twice what was received plus one chunk (Vec growth).
        assert!(r.capacity() <= 2 * (sent.len() + CHUNK), "{} bytes held for 100 KiB received", r.capacity());
        // The rest arrives (through the small pipe, chunk by chunk): one reply.
        let rest = vec![b'z'; 16_777_196 - 100 * 1024];
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let got = rt.block_on(async {
            let writer = async {
                server.write_all(&rest).await.unwrap();
                server.write_all(b"\r\n").await.unwrap();
            };
            let (_, got) = tokio::join!(writer, r.read());
            got
        });
        match got {
            Ok(Reply::Bulk(Some(b))) => assert_eq!(b.len(), 16_777_196),
            other => panic!("{:?}", other.map(|_| ())),
        }
    }
}
