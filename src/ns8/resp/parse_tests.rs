//! Unit tests of the pure RESP2 parser: every reply type, nesting, nulls
//! and negative lengths, the caps (announcements refused before their
//! bytes exist), truncation at every byte, non-UTF-8 and malformed lines.

use super::*;

fn complete(input: &[u8]) -> (Reply, usize) {
    match parse(input) {
        Ok(Parsed::Complete { reply, used }) => (reply, used),
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    }
}

fn bulk(b: &[u8]) -> Reply {
    Reply::Bulk(Some(b.to_vec()))
}

#[test]
fn every_reply_type() {
    assert_eq!(complete(b"+OK\r\n"), (Reply::Simple("OK".into()), 5));
    assert_eq!(complete(b"+\r\n"), (Reply::Simple(String::new()), 3));
    assert_eq!(complete(b"-ERR unknown\r\n"), (Reply::Error("ERR unknown".into()), 14));
    assert_eq!(complete(b":0\r\n").0, Reply::Int(0));
    assert_eq!(complete(b":-42\r\n").0, Reply::Int(-42));
    assert_eq!(complete(b":9223372036854775807\r\n").0, Reply::Int(i64::MAX));
    assert_eq!(complete(b"$5\r\nhello\r\n"), (bulk(b"hello"), 11));
    assert_eq!(complete(b"$0\r\n\r\n"), (bulk(b""), 6));
    // Binary payloads, CRLF and all, are taken by length.
    assert_eq!(complete(b"$4\r\n\r\n\xff\x00\r\n").0, bulk(b"\r\n\xff\x00"));
    assert_eq!(complete(b"*0\r\n").0, Reply::Array(Some(vec![])));
    assert_eq!(complete(b"$-1\r\n"), (Reply::Bulk(None), 5));
    assert_eq!(complete(b"*-1\r\n"), (Reply::Array(None), 5));
    assert_eq!(bulk(b"x").bytes(), Some(&b"x"[..]));
    assert_eq!(Reply::Simple("s".into()).bytes(), Some(&b"s"[..]));
    assert_eq!(Reply::Int(1).bytes(), None);
}

#[test]
fn a_pmessage_push_and_nested_arrays() {
    let push = b"*4\r\n$8\r\npmessage\r\n$9\r\n*/event/*\r\n$16\r\nnode/1/event/abc\r\n$2\r\n{}\r\n";
    assert_eq!(
        complete(push),
        (
            Reply::Array(Some(vec![bulk(b"pmessage"), bulk(b"*/event/*"), bulk(b"node/1/event/abc"), bulk(b"{}")])),
            push.len()
        )
    );
    let nested = b"*3\r\n*2\r\n:1\r\n*1\r\n+a\r\n$-1\r\n*-1\r\n";
    assert_eq!(
        complete(nested).0,
        Reply::Array(Some(vec![
            Reply::Array(Some(vec![Reply::Int(1), Reply::Array(Some(vec![Reply::Simple("a".into())]))])),
            Reply::Bulk(None),
            Reply::Array(None),
        ]))
    );
}

#[test]
fn only_the_first_reply_is_taken() {
    assert_eq!(complete(b"+PONG\r\n:1\r\n"), (Reply::Simple("PONG".into()), 7));
    assert_eq!(complete(b"$1\r\na\r\n$1\r\nb\r\n"), (bulk(b"a"), 7));
}

#[test]
fn negative_lengths_other_than_minus_one_are_invalid() {
    for input in [&b"$-2\r\n"[..], b"*-2\r\n", b"$-9223372036854775808\r\n", b"*-100\r\n"] {
        assert!(matches!(parse(input), Err(ParseError::Invalid(_))), "{input:?}");
    }
}

#[test]
fn oversized_announcements_fail_before_their_bytes_arrive() {
    // 512 MiB, Redis' own cap, then i64::MAX: refused from the header alone.
    for header in [&b"$536870912\r\n"[..], b"$9223372036854775807\r\n", b"*1\r\n$16777216\r\n"] {
        assert!(matches!(parse(header), Err(ParseError::TooLarge { limit: MAX_REPLY, .. })), "{header:?}");
    }
    // Exactly at the cap is fine (and incomplete until it is all there).
    let n = MAX_REPLY - 2 - "$16777214\r\n".len();
    let header = format!("${n}\r\n");
    assert_eq!(parse(header.as_bytes()), Ok(Parsed::Incomplete));
    let mut whole = header.into_bytes();
    whole.resize(MAX_REPLY - 2, b'x');
    whole.extend_from_slice(b"\r\n");
    assert_eq!(complete(&whole).1, MAX_REPLY);
    let header = format!("${}\r\n", n + 1);
    assert!(matches!(parse(header.as_bytes()), Err(ParseError::TooLarge { .. })));
    // Elements are counted as announced, before they arrive.
    assert_eq!(parse(b"*1024\r\n"), Ok(Parsed::Incomplete));
    assert_eq!(parse(b"*1025\r\n"), Err(ParseError::TooManyElements(MAX_ELEMENTS)));
    assert_eq!(parse(b"*2\r\n*1023\r\n"), Err(ParseError::TooManyElements(MAX_ELEMENTS)));
    assert_eq!(parse(b"*9223372036854775807\r\n"), Err(ParseError::TooManyElements(MAX_ELEMENTS)));
}

#[test]
fn many_small_elements_still_count_against_the_byte_cap() {
    let mut input = b"*1000\r\n".to_vec();
    let item = format!("${}\r\n{}\r\n", 20_000, "y".repeat(20_000));
    for _ in 0..1000 {
        input.extend_from_slice(item.as_bytes());
    }
    assert!(matches!(parse(&input), Err(ParseError::TooLarge { .. })));
}

#[test]
fn depth_limit() {
    let nest = |levels: usize| {
        let mut s = "*1\r\n".repeat(levels);
        s.push_str(":7\r\n");
        s
    };
    let mut reply = complete(nest(MAX_DEPTH).as_bytes()).0;
    for _ in 0..MAX_DEPTH {
        let Reply::Array(Some(mut items)) = reply else { panic!("not an array") };
        reply = items.remove(0);
    }
    assert_eq!(reply, Reply::Int(7));
    assert_eq!(parse(nest(MAX_DEPTH + 1).as_bytes()), Err(ParseError::TooDeep(MAX_DEPTH)));
    // Deep nesting is refused from the headers, before anything else arrives.
    assert_eq!(parse("*1\r\n".repeat(100).as_bytes()), Err(ParseError::TooDeep(MAX_DEPTH)));
}

#[test]
fn every_truncation_of_a_valid_reply_is_incomplete() {
    let inputs: [&[u8]; 5] = [
        b"*4\r\n$8\r\npmessage\r\n$9\r\n*/event/*\r\n$16\r\nnode/1/event/abc\r\n$2\r\n{}\r\n",
        b"*3\r\n*2\r\n:1\r\n*1\r\n+a\r\n$-1\r\n*-1\r\n",
        b"-NOPERM this user has no permissions\r\n",
        b"$10\r\n0123456789\r\n",
        b":-1\r\n",
    ];
    for input in inputs {
        for cut in 0..input.len() {
            assert_eq!(parse(&input[..cut]), Ok(Parsed::Incomplete), "{:?}", String::from_utf8_lossy(&input[..cut]));
        }
        assert_eq!(complete(input).1, input.len());
    }
}

#[test]
fn non_utf8_and_malformed_lines() {
    assert_eq!(parse(b"+\xff\xfe\r\n"), Err(ParseError::NotUtf8));
    assert_eq!(parse(b"-ERR \xc3\x28\r\n"), Err(ParseError::NotUtf8));
    // A bulk payload may be anything; only lines must be text.
    assert_eq!(complete(b"$2\r\n\xff\xfe\r\n").0, bulk(b"\xff\xfe"));
    for bad in [
        &b"\r\n"[..],
        b"?what\r\n",
        b"+no carriage return\n",
        b"\n",
        b":12a\r\n",
        b":\r\n",
        b"$\r\n",
        b"$abc\r\n",
        b":99999999999999999999\r\n",
        b"$\xff\r\n",
        b"_\r\n",
    ] {
        assert!(matches!(parse(bad), Err(ParseError::Invalid(_))), "{:?}", String::from_utf8_lossy(bad));
    }
    assert_eq!(parse(b"$3\r\nabcX\r\n"), Err(ParseError::BadTerminator));
    assert_eq!(parse(b"$3\r\nabc\n\r"), Err(ParseError::BadTerminator));
}

#[test]
fn long_lines_are_refused_once_they_pass_the_cap() {
    let mut line = b"+".to_vec();
    line.resize(MAX_LINE + 1, b'a');
    assert_eq!(parse(&line), Ok(Parsed::Incomplete));
    line.push(b'a');
    assert_eq!(parse(&line), Err(ParseError::LongLine(MAX_LINE)));
    // A line of exactly MAX_LINE bytes before its CRLF is accepted.
    let mut ok = b"+".to_vec();
    ok.resize(MAX_LINE, b'a');
    ok.extend_from_slice(b"\r\n");
    assert_eq!(complete(&ok).1, MAX_LINE + 2);
}
