//! RESP2 replies parsed from a byte buffer, purely and incrementally: give
//! [`parse`] whatever bytes have arrived; it answers with a whole reply and
//! the bytes it used, with [`Parsed::Incomplete`] when more must arrive, or
//! with an error the connection cannot recover from. Nothing is allocated
//! for what a length header announces: the buffer only holds bytes that
//! were received, a reply is built only once it is whole (a first pass
//! checks it without copying), and a header announcing more than the caps
//! below is refused as soon as it is read. The caps suit the one use, the
//! event subscription, whose `pmessage` pushes carry small JSON payloads.

use thiserror::Error;

/// Bytes one reply may span, every line and payload included (16 MiB;
/// Redis would send up to 512 MiB, ns8 events are a few hundred bytes).
pub const MAX_REPLY: usize = 16 * 1024 * 1024;
/// Bytes of one type line (`+OK`, `-ERR ...`, `:1`, `$5`) before its CRLF.
pub const MAX_LINE: usize = 64 * 1024;
/// Array elements in one reply, counting every nesting level.
pub const MAX_ELEMENTS: usize = 1024;
/// Arrays nested inside one another (a `pmessage` push needs 1).
pub const MAX_DEPTH: usize = 4;

/// One RESP2 reply. `Bulk(None)` and `Array(None)` are the null bulk string
/// (`$-1`) and null array (`*-1`).
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

/// What [`parse`] found at the start of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A whole reply, which took the first `used` bytes.
    Complete { reply: Reply, used: usize },
    /// Valid so far; more bytes are needed.
    Incomplete,
}

/// Input that is not a RESP2 reply, or one over the caps. After any of
/// these the stream cannot be resynchronised: drop the connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("redis: reply of {size} bytes or more exceeds the {limit}-byte cap")]
    TooLarge { size: u64, limit: usize },
    #[error("redis: reply line longer than {0} bytes")]
    LongLine(usize),
    #[error("redis: reply has more than {0} array elements")]
    TooManyElements(usize),
    #[error("redis: reply nests arrays deeper than {0}")]
    TooDeep(usize),
    #[error("redis: reply line is not UTF-8")]
    NotUtf8,
    #[error("redis: bulk string is not followed by CRLF")]
    BadTerminator,
    #[error("redis: invalid reply: {0}")]
    Invalid(String),
}

/// Parse one reply from the start of `buf` (see the module text).
/// Errors: [`ParseError`]; a prefix of a valid reply is never an error.
pub fn parse(buf: &[u8]) -> Result<Parsed, ParseError> {
    let mut check = Cursor { buf, pos: 0, elements: 0, build: false };
    match check.value(0) {
        Ok(_) => {}
        Err(Stop::Incomplete) => return Ok(Parsed::Incomplete),
        Err(Stop::Bad(e)) => return Err(e),
    }
    let mut build = Cursor { buf, pos: 0, elements: 0, build: true };
    match build.value(0) {
        Ok(reply) => Ok(Parsed::Complete { reply, used: build.pos }),
        Err(Stop::Incomplete) => Ok(Parsed::Incomplete),
        Err(Stop::Bad(e)) => Err(e),
    }
}

/// Why a pass stopped early.
enum Stop {
    Incomplete,
    Bad(ParseError),
}

impl From<ParseError> for Stop {
    fn from(e: ParseError) -> Stop {
        Stop::Bad(e)
    }
}

/// One pass over the buffer; with `build` false it only checks (no copies).
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    elements: usize,
    build: bool,
}

impl<'a> Cursor<'a> {
    /// The next line without its CRLF.
    fn line(&mut self) -> Result<&'a [u8], Stop> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let window = &rest[..rest.len().min(MAX_LINE + 2)];
        let Some(nl) = window.iter().position(|&b| b == b'\n') else {
            return Err(if window.len() >= MAX_LINE + 2 {
                ParseError::LongLine(MAX_LINE).into()
            } else {
                Stop::Incomplete
            });
        };
        if nl == 0 || window[nl - 1] != b'\r' {
            return Err(ParseError::Invalid("line not ended by CRLF".into()).into());
        }
        self.advance(nl + 1)?;
        Ok(&window[..nl - 1])
    }

    /// Move past `n` bytes, keeping the reply within [`MAX_REPLY`].
    fn advance(&mut self, n: usize) -> Result<(), ParseError> {
        let end = self.pos.saturating_add(n);
        if end > MAX_REPLY {
            return Err(ParseError::TooLarge { size: end as u64, limit: MAX_REPLY });
        }
        self.pos = end;
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Reply, Stop> {
        let line = self.line()?;
        let Some((&kind, rest)) = line.split_first() else {
            return Err(ParseError::Invalid("empty line".into()).into());
        };
        match kind {
            b'+' => Ok(Reply::Simple(self.text(rest)?)),
            b'-' => Ok(Reply::Error(self.text(rest)?)),
            b':' => Ok(Reply::Int(number(rest)?)),
            b'$' => match length(rest)? {
                None => Ok(Reply::Bulk(None)),
                Some(n) => self.bulk(n),
            },
            b'*' => match length(rest)? {
                None => Ok(Reply::Array(None)),
                Some(n) => self.array(n, depth),
            },
            _ => Err(ParseError::Invalid(format!("{:?}", String::from_utf8_lossy(line))).into()),
        }
    }

    /// A simple string or error text (UTF-8).
    fn text(&self, bytes: &[u8]) -> Result<String, ParseError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ParseError::NotUtf8)?;
        Ok(if self.build { text.to_string() } else { String::new() })
    }

    /// `n` payload bytes and their CRLF; refused before they arrive when
    /// they would take the reply over [`MAX_REPLY`].
    fn bulk(&mut self, n: u64) -> Result<Reply, Stop> {
        let end = usize::try_from(n).unwrap_or(usize::MAX).saturating_add(2).saturating_add(self.pos);
        if end > MAX_REPLY {
            return Err(ParseError::TooLarge {
                size: n.saturating_add(2).saturating_add(self.pos as u64),
                limit: MAX_REPLY,
            }
            .into());
        }
        let Some(chunk) = self.buf.get(self.pos..end) else { return Err(Stop::Incomplete) };
        let (payload, crlf) = chunk.split_at(chunk.len() - 2);
        if crlf != b"\r\n" {
            return Err(ParseError::BadTerminator.into());
        }
        let bytes = if self.build { payload.to_vec() } else { Vec::new() };
        self.pos = end;
        Ok(Reply::Bulk(Some(bytes)))
    }

    /// `n` elements, counted against [`MAX_ELEMENTS`] before any is read.
    fn array(&mut self, n: u64, depth: usize) -> Result<Reply, Stop> {
        if depth + 1 > MAX_DEPTH {
            return Err(ParseError::TooDeep(MAX_DEPTH).into());
        }
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        self.elements = self.elements.saturating_add(n);
        if self.elements > MAX_ELEMENTS {
            return Err(ParseError::TooManyElements(MAX_ELEMENTS).into());
        }
        let mut items = Vec::with_capacity(if self.build { n } else { 0 });
        for _ in 0..n {
            let item = self.value(depth + 1)?;
            if self.build {
                items.push(item);
            }
        }
        Ok(Reply::Array(Some(items)))
    }
}

/// An integer reply: decimal, optional sign.
fn number(bytes: &[u8]) -> Result<i64, ParseError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ParseError::Invalid(format!("bad number {:?}", String::from_utf8_lossy(bytes))))
}

/// A bulk or array length: `-1` is null (`None`), other negatives are
/// invalid.
fn length(bytes: &[u8]) -> Result<Option<u64>, ParseError> {
    match number(bytes)? {
        -1 => Ok(None),
        n => u64::try_from(n).map(Some).map_err(|_| ParseError::Invalid(format!("negative length {n}"))),
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
