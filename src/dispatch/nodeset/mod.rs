//! Node-set syntax in the style of ClusterShell's `nodeset` and `clubak -b`.
//! This module owns two pure string transformations: [`expand`] turns a
//! compact host pattern such as `web[01-20],db[3,5-6]` into the host names it
//! denotes, and [`fold`] turns a list of names back into that compact form for
//! display. There is no I/O here: no DNS, no inventory or `@group` lookup, no
//! check that a host exists; callers decide what the names mean.

use std::collections::HashSet;

mod fold;
pub use fold::fold;

/// Most names one spec may expand to, counted before duplicates are removed.
pub const MAX_NAMES: u64 = 100_000;
/// Longest spec accepted, in bytes.
pub const MAX_SPEC_LEN: usize = 64 * 1024;
/// Most bytes the expanded names of one spec may add up to (16 MiB).
pub const MAX_NAME_BYTES: u64 = 16 << 20;

/// How much one spec may cost; [`expand`] uses [`Bounds::DEFAULT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Names, counted before duplicates are removed.
    pub max_names: u64,
    /// Spec length in bytes.
    pub max_spec_len: usize,
    /// Bytes of all names added up.
    pub max_name_bytes: u64,
}

impl Bounds {
    pub const DEFAULT: Bounds =
        Bounds { max_names: MAX_NAMES, max_spec_len: MAX_SPEC_LEN, max_name_bytes: MAX_NAME_BYTES };
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NodeSetError {
    #[error("empty node set; expected names such as \"web[01-20],db1\"")]
    Empty,
    #[error("empty element in {spec:?} (stray comma); separate names with single commas")]
    EmptyElement { spec: String },
    #[error("unclosed '[' in {element:?}; write ranges as name[01-20]")]
    Unclosed { element: String },
    #[error("unmatched ']' in {element:?}; write ranges as name[01-20]")]
    Unmatched { element: String },
    #[error("nested '[' in {element:?}; brackets cannot nest, write r[1-2]n[1-4]")]
    Nested { element: String },
    #[error("empty brackets in {element:?}; put numbers or ranges inside, as in name[1-4]")]
    EmptyBrackets { element: String },
    #[error("empty range item in {element:?}; write ranges as name[1,3-5]")]
    EmptyRange { element: String },
    #[error("range bound {bound:?} in {element:?} is not a number; write name[01-20]")]
    NotNumeric { element: String, bound: String },
    #[error("number {bound:?} in {element:?} is too large; the largest is {}", u64::MAX)]
    TooLarge { element: String, bound: String },
    #[error("range {range:?} in {element:?} runs downwards; write the lower bound first")]
    Descending { element: String, range: String },
    #[error("{spec:?} expands to more than {max} names; split it into smaller node sets")]
    TooMany { spec: String, max: u64 },
    #[error("node set of {len} bytes is longer than {max}; use ranges (web[001-500]) or split it")]
    TooLong { len: usize, max: usize },
    #[error("{spec:?} expands to more than {max} bytes of names; use shorter names or split it")]
    TooBig { spec: String, max: u64 },
    #[error("whitespace inside {element:?}; separate node names with commas")]
    Whitespace { element: String },
}

/// One inclusive numeric range inside brackets; `width` 0 means unpadded.
struct Range {
    lo: u64,
    hi: u64,
    width: usize,
}

enum Part {
    Literal(String),
    Group(Vec<Range>),
}

/// Expand "web[01-20],db1,db[3,5-6]" into names in the given order,
/// duplicates removed (first occurrence kept).
///
/// Zero padding is kept: "web[08-10]" -> web08, web09, web10. Width is the
/// width of the lower bound when it has a leading zero ("[1-10]" -> 1..10
/// unpadded; "[01-10]" -> 01..10); numbers wider than that are not cut.
/// Several bracket groups in one element give the cartesian product
/// ("r[1-2]n[1-2]" -> r1n1, r1n2, r2n1, r2n2), first group outermost.
///
/// Errors: empty element (",,", leading/trailing comma), unclosed/unbalanced
/// brackets, nested brackets, empty brackets, non-numeric bounds, lower >
/// upper, a spec producing more than 100_000 names in total (counted before
/// duplicates are removed), whitespace inside a name. Whitespace around
/// elements is trimmed. The input "" (or only whitespace) is an error.
///
/// Work is bounded before anything is generated: a spec longer than
/// [`MAX_SPEC_LEN`] bytes, or whose names would add up to more than
/// [`MAX_NAME_BYTES`], is refused (`TooLong`, `TooBig`), so one spec costs
/// at most a few tens of MiB and milliseconds.
pub fn expand(spec: &str) -> Result<Vec<String>, NodeSetError> {
    expand_within(spec, Bounds::DEFAULT)
}

/// [`expand`] with other bounds (a smaller budget for fuzzing, say); the
/// syntax and the result within the bounds are the same.
pub fn expand_within(spec: &str, bounds: Bounds) -> Result<Vec<String>, NodeSetError> {
    if spec.len() > bounds.max_spec_len {
        return Err(NodeSetError::TooLong { len: spec.len(), max: bounds.max_spec_len });
    }
    if spec.trim().is_empty() {
        return Err(NodeSetError::Empty);
    }
    let mut elements = Vec::new();
    let (mut total, mut bytes): (u64, u64) = (0, 0);
    for raw in split_top_level(spec) {
        let element = raw.trim();
        if element.is_empty() {
            return Err(NodeSetError::EmptyElement { spec: spec.into() });
        }
        let parts = parse_element(element)?;
        let count = parts.iter().fold(1u64, |acc, part| match part {
            Part::Literal(_) => acc,
            Part::Group(ranges) => {
                acc.saturating_mul(ranges.iter().fold(0u64, |n, r| n.saturating_add((r.hi - r.lo).saturating_add(1))))
            }
        });
        total = total.saturating_add(count);
        if total > bounds.max_names {
            return Err(NodeSetError::TooMany { spec: spec.into(), max: bounds.max_names });
        }
        bytes = bytes.saturating_add(count.saturating_mul(longest_name(&parts)));
        if bytes > bounds.max_name_bytes {
            return Err(NodeSetError::TooBig { spec: spec.into(), max: bounds.max_name_bytes });
        }
        elements.push(parts);
    }
    let mut names = Vec::with_capacity(total as usize);
    for parts in &elements {
        names.extend(generate(parts));
    }
    let mut seen = HashSet::with_capacity(names.len());
    let keep: Vec<bool> = names.iter().map(|name| seen.insert(name.as_str())).collect();
    drop(seen);
    let mut keep = keep.into_iter();
    names.retain(|_| keep.next().unwrap_or(false));
    Ok(names)
}

/// The longest name an element can produce, in bytes: its literals plus,
/// for each bracket group, the widest number it can write.
fn longest_name(parts: &[Part]) -> u64 {
    let digits = |n: u64| n.checked_ilog10().unwrap_or(0) as u64 + 1;
    parts
        .iter()
        .map(|part| match part {
            Part::Literal(text) => text.len() as u64,
            Part::Group(ranges) => ranges.iter().map(|r| digits(r.hi).max(r.width as u64)).max().unwrap_or(0),
        })
        .fold(0u64, u64::saturating_add)
}

/// Split on commas that are not inside brackets; bracket errors are left to
/// [`parse_element`] so they can name the element they occur in.
fn split_top_level(spec: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0usize, 0, Vec::new());
    for (i, c) in spec.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&spec[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&spec[start..]);
    out
}

fn parse_element(element: &str) -> Result<Vec<Part>, NodeSetError> {
    let el = || element.to_string();
    if element.chars().any(char::is_whitespace) {
        return Err(NodeSetError::Whitespace { element: el() });
    }
    let mut parts = Vec::new();
    let mut rest = element;
    while !rest.is_empty() {
        let Some(open) = rest.find(['[', ']']) else {
            parts.push(Part::Literal(rest.into()));
            break;
        };
        if rest[open..].starts_with(']') {
            return Err(NodeSetError::Unmatched { element: el() });
        }
        if open > 0 {
            parts.push(Part::Literal(rest[..open].into()));
        }
        let body = &rest[open + 1..];
        let close = body.find(['[', ']']).ok_or_else(|| NodeSetError::Unclosed { element: el() })?;
        if body[close..].starts_with('[') {
            return Err(NodeSetError::Nested { element: el() });
        }
        parts.push(Part::Group(parse_ranges(&body[..close], element)?));
        rest = &body[close + 1..];
    }
    Ok(parts)
}

fn parse_ranges(body: &str, element: &str) -> Result<Vec<Range>, NodeSetError> {
    use NodeSetError as E;
    let el = || element.to_string();
    if body.is_empty() {
        return Err(E::EmptyBrackets { element: el() });
    }
    let number = |text: &str| {
        let (element, bound) = (el(), text.to_string());
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(E::NotNumeric { element, bound });
        }
        text.parse::<u64>().map_err(|_| E::TooLarge { element, bound })
    };
    let mut ranges = Vec::new();
    for item in body.split(',') {
        if item.is_empty() {
            return Err(E::EmptyRange { element: el() });
        }
        let (lo_text, hi_text) = item.split_once('-').unwrap_or((item, item));
        let (lo, hi) = (number(lo_text)?, number(hi_text)?);
        if lo > hi {
            let (element, range) = (el(), item.to_string());
            return Err(E::Descending { element, range });
        }
        let width = pad_width(lo_text);
        ranges.push(Range { lo, hi, width });
    }
    Ok(ranges)
}

/// The zero-padded width of a digit string, 0 when it has no leading zero.
fn pad_width(digits: &str) -> usize {
    if digits.len() > 1 && digits.starts_with('0') {
        digits.len()
    } else {
        0
    }
}

/// Cartesian product of the parts, first bracket group outermost.
fn generate(parts: &[Part]) -> Vec<String> {
    let mut names = vec![String::new()];
    for part in parts {
        let alternatives: Vec<String> = match part {
            Part::Literal(text) => vec![text.clone()],
            Part::Group(ranges) => {
                ranges.iter().flat_map(|r| (r.lo..=r.hi).map(move |n| format!("{n:0w$}", w = r.width))).collect()
            }
        };
        names = names.iter().flat_map(|head| alternatives.iter().map(move |alt| format!("{head}{alt}"))).collect();
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(spec: &str) -> Vec<String> {
        expand(spec).unwrap()
    }

    #[test]
    fn expands_examples() {
        let names = ok("web[01-20],db1,db[3,5-6]");
        assert_eq!(names.len(), 24);
        assert_eq!((names[0].as_str(), names[19].as_str()), ("web01", "web20"));
        assert_eq!(names[20..], ["db1", "db3", "db5", "db6"]);
        assert_eq!(ok("web[08-10]"), ["web08", "web09", "web10"]);
        assert_eq!(ok("n[1-10]")[8..], ["n9", "n10"]);
        assert_eq!(ok("n[01-10]")[8..], ["n09", "n10"]);
        assert_eq!(ok("n[08-100]")[90..], ["n98", "n99", "n100"]);
        assert_eq!(ok("r[1-2]n[1-2]"), ["r1n1", "r1n2", "r2n1", "r2n2"]);
        assert_eq!(ok("n2,n[1-3],n2"), ["n2", "n1", "n3"]);
        assert_eq!(ok(" web1 ,\tdb2 "), ["web1", "db2"]);
        assert_eq!(ok("[0-1]-ib,rack1-n[05]"), ["0-ib", "1-ib", "rack1-n05"]);
        assert_eq!(ok("n[1-100000]").len(), 100_000);
    }

    #[test]
    fn rejects_bad_specs() {
        let cases = [
            ("", "empty node set"),
            ("  ", "empty node set"),
            (",,", "empty element in \",,\""),
            ("a,,b", "empty element in \"a,,b\""),
            (",a", "empty element in \",a\""),
            ("a, ", "empty element in \"a, \""),
            ("web1],db", "unmatched ']' in \"web1]\""),
            ("a[1]2]", "unmatched ']' in \"a[1]2]\""),
            ("a[1[2]],b", "nested '[' in \"a[1[2]]\""),
            ("web[]", "empty brackets in \"web[]\""),
            ("w[1,,2]", "empty range item in \"w[1,,2]\""),
            ("w[a-3]", "range bound \"a\" in \"w[a-3]\" is not"),
            ("w[-3]", "range bound \"\" in \"w[-3]\" is not"),
            ("w[+3]", "range bound \"+3\" in \"w[+3]\" is not"),
            ("w[1-2-3]", "range bound \"2-3\" in \"w[1-2-3]\""),
            ("w[99999999999999999999]", "number \"99999999999999999999\""),
            ("web[5-3]", "range \"5-3\" in \"web[5-3]\" runs down"),
            ("n[1-100001]", "\"n[1-100001]\" expands to more than"),
            ("r[1-400]n[1-400]", "\"r[1-400]n[1-400]\" expands to"),
            ("n[1-6],m[1-99999]", "\"n[1-6],m[1-99999]\" expands to"),
            ("web 01", "whitespace inside \"web 01\""),
            ("web[1, 2]", "whitespace inside \"web[1, 2]\""),
        ];
        for (spec, want) in cases {
            let msg = expand(spec).unwrap_err().to_string();
            assert!(msg.starts_with(want), "{spec:?} gave {msg:?}");
        }
        let msg = expand("x,web[01-03").unwrap_err().to_string();
        assert_eq!(msg, "unclosed '[' in \"web[01-03\"; write ranges as name[01-20]");
        assert!(expand("n[0-999999]").unwrap_err().to_string().contains("100000 names"));
    }

    #[test]
    fn work_is_bounded_before_generating() {
        let long = "a".repeat(MAX_SPEC_LEN + 1);
        assert_eq!(expand(&long), Err(NodeSetError::TooLong { len: MAX_SPEC_LEN + 1, max: MAX_SPEC_LEN }));
        let msg = expand(&long).unwrap_err().to_string();
        assert!(msg.starts_with(&format!("node set of {} bytes is longer than 65536", MAX_SPEC_LEN + 1)), "{msg}");
        assert_eq!(expand(&"a".repeat(MAX_SPEC_LEN)).unwrap().len(), 1, "exactly the limit is fine");
        // 100,000 names of 200 bytes would be 20 MB: refused before any is made.
        let wide = format!("{}[1-100000]", "x".repeat(194));
        assert!(matches!(expand(&wide), Err(NodeSetError::TooBig { .. })));
        assert!(expand(&wide).unwrap_err().to_string().contains("16777216 bytes of names"));
        // 100,000 names of 150 bytes (15 MB) are still allowed.
        assert_eq!(expand(&format!("{}[1-100000]", "x".repeat(144))).unwrap().len(), 100_000);
        // The padded width counts: [000001-2] writes six digits.
        let padded = format!("{}[0000000001-0000100000]", "y".repeat(158));
        assert!(matches!(expand(&padded), Err(NodeSetError::TooBig { .. })));
        let t0 = std::time::Instant::now();
        for _ in 0..20 {
            assert!(expand(&wide).is_err());
            assert!(expand(&long).is_err());
        }
        assert!(t0.elapsed() < std::time::Duration::from_secs(1), "refusals are cheap: {:?}", t0.elapsed());
        let small = Bounds { max_names: 10, max_spec_len: 20, max_name_bytes: 30 };
        assert_eq!(expand_within("n[1-10]", small).unwrap(), expand("n[1-10]").unwrap());
        assert_eq!(expand_within("n[1-11]", small), Err(NodeSetError::TooMany { spec: "n[1-11]".into(), max: 10 }));
        assert!(matches!(expand_within("abcdefghijkl[1-3]", small), Err(NodeSetError::TooBig { max: 30, .. })));
        assert!(matches!(expand_within(&"a".repeat(21), small), Err(NodeSetError::TooLong { len: 21, max: 20 })));
    }

    proptest! {
        #[test]
        fn expand_never_panics(spec in any::<String>()) {
            let _ = expand(&spec);
        }

        #[test]
        fn expand_never_panics_on_syntax(spec in "[a-z0-9\\[\\],\\-]{0,40}") {
            let _ = expand(&spec);
        }
    }
}
