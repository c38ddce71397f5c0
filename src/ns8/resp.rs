//! A minimal RESP2 connection for the event subscription. Events need a
//! connection that, like the original's, sends `auth default <agent-id>`,
//! `client setname <agent-id>`, `psubscribe */event/*` and a periodic
//! `ping`, then reads pushed messages; this file owns exactly that: framing
//! of commands (via the redis crate's packer) and a bounded reply reader.

use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Largest bulk string accepted (Redis' own limit).
const MAX_BULK: usize = 512 * 1024 * 1024;
const MAX_ARRAY: usize = 1024;

/// Why the subscription connection failed, worded as go-redis words it.
#[derive(Debug, Error)]
pub enum RespError {
    #[error("dial tcp {address}: {why}")]
    Dial { address: String, why: String },
    #[error("EOF")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An error reply from the server.
    #[error("{0}")]
    Server(String),
    #[error("redis: {0}")]
    Protocol(String),
    #[error("i/o timeout")]
    Silent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The bytes of a bulk or simple string.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Bulk(Some(b)) => Some(b),
            Reply::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }
}

pub struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Conn {
    pub async fn open(address: &str, timeout: Duration) -> Result<Conn, RespError> {
        let dial = |why: String| RespError::Dial { address: address.to_string(), why };
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(dial(format!("connect: {}", super::log::errno_text(&e)))),
            Err(_) => return Err(dial("i/o timeout".into())),
        };
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        Ok(Conn { reader: BufReader::new(r), writer: w })
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
        Box::pin(read_reply(&mut self.reader, 0)).await
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
                let r = Box::pin(read_reply(&mut reader, 0)).await;
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

async fn read_line(r: &mut BufReader<OwnedReadHalf>) -> Result<String, RespError> {
    let mut line = Vec::new();
    let n = r.take(64 * 1024).read_until(b'\n', &mut line).await?;
    if n == 0 {
        return Err(RespError::Closed);
    }
    if !line.ends_with(b"\r\n") {
        return Err(RespError::Protocol("invalid reply line".into()));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| RespError::Protocol("invalid reply line".into()))
}

async fn read_reply(r: &mut BufReader<OwnedReadHalf>, depth: usize) -> Result<Reply, RespError> {
    let line = read_line(r).await?;
    let (kind, rest) = line.split_at(line.len().min(1));
    let number = || rest.parse::<i64>().map_err(|_| RespError::Protocol(format!("invalid reply: {line:?}")));
    match kind {
        "+" => Ok(Reply::Simple(rest.to_string())),
        "-" => Ok(Reply::Error(rest.to_string())),
        ":" => Ok(Reply::Int(number()?)),
        "$" => {
            let n = number()?;
            if n < 0 {
                return Ok(Reply::Bulk(None));
            }
            let n = usize::try_from(n).map_err(|e| RespError::Protocol(e.to_string()))?;
            if n > MAX_BULK {
                return Err(RespError::Protocol(format!("bulk reply of {n} bytes is too large")));
            }
            let mut buf = vec![0u8; n + 2];
            r.read_exact(&mut buf).await?;
            buf.truncate(n);
            Ok(Reply::Bulk(Some(buf)))
        }
        "*" => {
            let n = number()?;
            if n < 0 {
                return Ok(Reply::Array(None));
            }
            let n = usize::try_from(n).map_err(|e| RespError::Protocol(e.to_string()))?;
            if n > MAX_ARRAY || depth > 4 {
                return Err(RespError::Protocol("array reply is too large or too deep".into()));
            }
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(Box::pin(read_reply(r, depth + 1)).await?);
            }
            Ok(Reply::Array(Some(items)))
        }
        _ => Err(RespError::Protocol(format!("invalid reply: {line:?}"))),
    }
}
