//! Frames: a 4-byte big-endian length, then a compact binary (postcard) body
//! holding one [`Message`]. The length is checked against a cap before any
//! byte of the body is buffered, so a peer cannot make us allocate more than
//! the cap. [`FrameDecoder`] is push-based: feed it bytes as they arrive and
//! pull whole messages out; it never panics on any input.

use super::message::Message;
use thiserror::Error;

/// Default cap on one frame's body: 1 MiB.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Encode one message as a frame. Fails only if the body exceeds `max`.
pub fn encode(msg: &Message, max: usize) -> Result<Vec<u8>, FrameError> {
    encode_value(msg, max)
}

/// Encode any serde value as a frame (the pairing exchange uses its own
/// message set on the same framing).
pub fn encode_value<T: serde::Serialize>(msg: &T, max: usize) -> Result<Vec<u8>, FrameError> {
    let body = postcard::to_allocvec(msg).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if body.len() > max {
        return Err(FrameError::TooLarge { len: body.len(), max });
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decode the body of one frame.
pub fn decode_body(body: &[u8]) -> Result<Message, FrameError> {
    decode_value(body)
}

/// Decode the body of one frame as any serde value; trailing bytes are an error.
pub fn decode_value<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    match postcard::take_from_bytes::<T>(body) {
        Ok((msg, [])) => Ok(msg),
        Ok((_, rest)) => Err(FrameError::Malformed(format!("{} trailing bytes after the message", rest.len()))),
        Err(e) => Err(FrameError::Malformed(e.to_string())),
    }
}

/// Incremental decoder: push bytes in, pull messages out.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    max: usize,
}

impl FrameDecoder {
    pub fn new(max: usize) -> Self {
        FrameDecoder { buf: Vec::new(), max }
    }

    /// Append received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// True when some bytes of an unfinished frame are buffered.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Bytes needed before the next frame is complete (at least 1 when a
    /// frame is pending; 0 when a whole frame is already buffered).
    pub fn wanted(&self) -> usize {
        if self.buf.len() < 4 {
            return 4 - self.buf.len();
        }
        let len = frame_len(&self.buf);
        (4 + len).saturating_sub(self.buf.len())
    }

    /// The next whole message, `None` when more bytes are needed. After an
    /// error the stream is unusable and the connection should be closed.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        self.next_value()
    }

    /// [`Self::next_message`] for any serde value.
    pub fn next_value<T: serde::de::DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = frame_len(&self.buf);
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let msg = decode_value(&self.buf[4..4 + len]);
        self.buf.drain(..4 + len);
        msg.map(Some)
    }
}

fn frame_len(buf: &[u8]) -> usize {
    u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::message::*;
    use proptest::prelude::*;

    fn sample() -> Vec<Message> {
        vec![
            Message::Hello(Hello {
                version: 1,
                role: Role::Agent,
                name: "web01".into(),
                capabilities: vec!["run".into()],
            }),
            Message::Run(Run {
                id: 7,
                request_id: "r-1".into(),
                action: "check-disk".into(),
                args: vec!["-h".into()],
                username: "ops".into(),
                token: Some("t".into()),
                timeout_ms: Some(5000),
                detach: false,
            }),
            Message::Output { id: 7, stream: Stream::Stderr, bytes: vec![0xff, 0, 10] },
            Message::Finished(Finished {
                id: 7,
                exit: Some(3),
                signal: None,
                duration_ms: 12,
                truncated: true,
                end: End::TimedOut,
            }),
            Message::Refused { id: 8, reason: Refusal::Busy { limit: 4 } },
        ]
    }

    #[test]
    fn round_trip_in_one_buffer_and_byte_by_byte() {
        let mut all = Vec::new();
        for m in sample() {
            all.extend(encode(&m, DEFAULT_MAX_FRAME).unwrap());
        }
        let mut d = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let mut got = Vec::new();
        for b in &all {
            d.push(std::slice::from_ref(b));
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, sample());
    }

    #[test]
    fn oversized_header_is_refused_before_buffering() {
        let mut d = FrameDecoder::new(16);
        d.push(&1000u32.to_be_bytes());
        assert_eq!(d.next_message(), Err(FrameError::TooLarge { len: 1000, max: 16 }));
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (any::<u64>(), any::<Vec<u8>>()).prop_map(|(id, bytes)| Message::Output {
                id,
                stream: Stream::Stdout,
                bytes
            }),
            (any::<u64>(), ".*", proptest::collection::vec(".*", 0..4)).prop_map(|(id, action, args)| Message::Run(
                Run {
                    id,
                    request_id: format!("{id}"),
                    action,
                    args,
                    username: "u".into(),
                    token: None,
                    timeout_ms: None,
                    detach: false,
                }
            )),
            (any::<u64>(), any::<Option<i32>>(), any::<bool>()).prop_map(|(id, exit, t)| {
                Message::Finished(Finished {
                    id,
                    exit,
                    signal: None,
                    duration_ms: id / 3,
                    truncated: t,
                    end: End::Exited,
                })
            }),
            ".*".prop_map(|message| Message::Error { message }),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut d = FrameDecoder::new(256);
            d.push(&bytes);
            for _ in 0..64 {
                match d.next_message() {
                    Ok(Some(_)) => continue,
                    _ => break,
                }
            }
            let _ = decode_body(&bytes);
        }

        #[test]
        fn encode_decode_round_trips(msgs in proptest::collection::vec(arb_message(), 1..6)) {
            let mut d = FrameDecoder::new(DEFAULT_MAX_FRAME);
            for m in &msgs {
                d.push(&encode(m, DEFAULT_MAX_FRAME).unwrap());
            }
            for m in &msgs {
                prop_assert_eq!(d.next_message().unwrap(), Some(m.clone()));
            }
            prop_assert_eq!(d.next_message().unwrap(), None);
        }
    }
}
