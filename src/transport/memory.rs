//! An in-process transport: two connected byte pipes, used by unit tests to
//! drive an agent session and the dispatcher without sockets.

use super::{FrameReader, FrameWriter};
use crate::protocol::DEFAULT_MAX_FRAME;
use tokio::io::{DuplexStream, ReadHalf, WriteHalf};

pub type MemReader = FrameReader<ReadHalf<DuplexStream>>;
pub type MemWriter = FrameWriter<WriteHalf<DuplexStream>>;

/// Two connected ends, each split into a frame reader and writer.
pub fn pair() -> ((MemReader, MemWriter), (MemReader, MemWriter)) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    (split(a), split(b))
}

fn split(s: DuplexStream) -> (MemReader, MemWriter) {
    let (r, w) = tokio::io::split(s);
    (FrameReader::new(r, DEFAULT_MAX_FRAME), FrameWriter::new(w, DEFAULT_MAX_FRAME))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Message, Role};
    use crate::transport::{handshake, hello};
    use std::time::Duration;

    #[tokio::test]
    async fn hello_exchange_and_version_mismatch() {
        let ((mut ar, mut aw), (mut br, mut bw)) = pair();
        let t = Duration::from_secs(1);
        let a = tokio::spawn(async move { handshake(&mut ar, &mut aw, &hello(Role::Dispatcher, "d"), t).await });
        let got = handshake(&mut br, &mut bw, &hello(Role::Agent, "web01"), t).await.unwrap();
        assert_eq!(got.name, "d");
        assert_eq!(a.await.unwrap().unwrap().name, "web01");

        let ((mut ar, mut aw), (mut br, mut bw)) = pair();
        let mut old = hello(Role::Agent, "old");
        old.version = 99;
        bw.write(&Message::Hello(old)).await.unwrap();
        let err = handshake(&mut ar, &mut aw, &hello(Role::Dispatcher, "d"), t).await.unwrap_err();
        assert!(err.to_string().contains("version 99"), "{err}");
        let _ = br.read().await;
    }
}
