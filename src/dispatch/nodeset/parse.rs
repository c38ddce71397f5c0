//! The node-set parser: a spec split at top-level operators into operands,
//! each operand into literal text and bracketed ranges, with every syntax
//! rule checked here so that generating names cannot fail.

use super::NodeSetError as E;

/// How an operand joins the set built so far (left to right).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `,` (and the first operand).
    Union,
    /// `!`
    Difference,
    /// `&`
    Intersection,
    /// `^`
    Symmetric,
}

/// One inclusive numeric range inside brackets, every `step`-th number;
/// `width` 0 means unpadded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub lo: u64,
    pub hi: u64,
    pub step: u64,
    pub width: usize,
}

/// A piece of a pattern: text as written, or the numbers of one bracket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Ranges(Vec<Range>),
}

/// What one operand names.
#[derive(Debug)]
pub enum Operand {
    /// Host names.
    Pattern(Vec<Part>),
    /// `@pattern` (or `all`): group names.
    Group(Vec<Part>),
}

/// One operand with the operator that joins it to the set so far.
#[derive(Debug)]
pub struct Term<'a> {
    pub op: Op,
    /// The operand as written, trimmed, for messages.
    pub text: &'a str,
    pub operand: Operand,
}

fn op_of(c: char) -> Option<Op> {
    match c {
        ',' => Some(Op::Union),
        '!' => Some(Op::Difference),
        '&' => Some(Op::Intersection),
        '^' => Some(Op::Symmetric),
        _ => None,
    }
}

/// Characters a node name may hold besides ASCII letters and digits.
const NAME_PUNCT: &[char] = &['-', '.', '_', ':', '@'];

/// Split `spec` at operators outside brackets and parse each operand.
pub fn parse(spec: &str) -> Result<Vec<Term<'_>>, E> {
    let mut pieces: Vec<(Op, usize, usize)> = Vec::new();
    let (mut depth, mut start, mut op) = (0usize, 0usize, Op::Union);
    for (i, c) in spec.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            c if depth == 0 => {
                if let Some(next) = op_of(c) {
                    pieces.push((op, start, i));
                    op = next;
                    start = i + 1;
                }
            }
            _ => {}
        }
    }
    pieces.push((op, start, spec.len()));
    let mut terms = Vec::with_capacity(pieces.len());
    for (k, &(op, a, b)) in pieces.iter().enumerate() {
        let text = spec[a..b].trim();
        if text.is_empty() {
            return Err(missing(spec, &pieces, k));
        }
        let operand = if text == "all" {
            Operand::Group(vec![Part::Literal("all".into())])
        } else if let Some(group) = text.strip_prefix('@') {
            if group.is_empty() || group.starts_with(['@', '-', '.']) {
                return Err(E::BadGroup { element: text.into() });
            }
            Operand::Group(parse_pattern(group, text)?)
        } else {
            let parts = parse_pattern(text, text)?;
            if let Some(Part::Literal(lit)) = parts.first() {
                let ch = lit.chars().next().unwrap_or('?');
                if !ch.is_ascii_alphanumeric() {
                    return Err(E::BadStart { element: text.into(), ch });
                }
            }
            Operand::Pattern(parts)
        };
        terms.push(Term { op, text, operand });
    }
    Ok(terms)
}

/// The error for the empty operand `k`: the operator on its left (or, for
/// the first, on its right) has nothing on that side.
fn missing(spec: &str, pieces: &[(Op, usize, usize)], k: usize) -> E {
    let char_of = |i: usize| spec[i..].chars().next().unwrap_or(',');
    let (op, side) = if k == 0 { (char_of(pieces[0].2), "before") } else { (char_of(pieces[k].1 - 1), "after") };
    if op == ',' {
        E::EmptyElement { spec: spec.into() }
    } else {
        E::MissingOperand { spec: spec.into(), op, side }
    }
}

/// Parse literal text and `[...]` groups; `element` is the operand for messages.
fn parse_pattern(text: &str, element: &str) -> Result<Vec<Part>, E> {
    let el = || element.to_string();
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let open = rest.find(['[', ']']).unwrap_or(rest.len());
        if open > 0 {
            let lit = &rest[..open];
            if let Some(ch) = lit.chars().find(|c| !(c.is_ascii_alphanumeric() || NAME_PUNCT.contains(c))) {
                return Err(if ch.is_whitespace() {
                    E::Whitespace { element: el() }
                } else {
                    E::BadChar { element: el(), ch }
                });
            }
            parts.push(Part::Literal(lit.into()));
        }
        if open == rest.len() {
            break;
        }
        if rest[open..].starts_with(']') {
            return Err(E::Unmatched { element: el() });
        }
        let body = &rest[open + 1..];
        let close = body.find(['[', ']']).ok_or_else(|| E::Unclosed { element: el() })?;
        if body[close..].starts_with('[') {
            return Err(if body[close..].contains(']') {
                E::Nested { element: el() }
            } else {
                E::Unclosed { element: el() }
            });
        }
        parts.push(Part::Ranges(parse_ranges(&body[..close], element)?));
        rest = &body[close + 1..];
    }
    Ok(parts)
}

/// True for a digit string with a leading zero that is not just "0".
fn is_padded(digits: &str) -> bool {
    digits.len() > 1 && digits.starts_with('0')
}

/// Parse the inside of one pair of brackets; whitespace is ignored.
fn parse_ranges(body: &str, element: &str) -> Result<Vec<Range>, E> {
    let el = || element.to_string();
    let body: String = body.chars().filter(|c| !c.is_whitespace()).collect();
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
        let (span, step_text) = match item.split_once('/') {
            Some((span, step)) => (span, Some(step)),
            None => (item, None),
        };
        let bad_step = |why| E::BadStep { element: el(), range: item.into(), why };
        let (lo_text, hi_text) = match span.split_once('-') {
            Some(pair) => pair,
            None if step_text.is_some() => return Err(bad_step("has no range before it")),
            None => (span, span),
        };
        let (lo, hi) = (number(lo_text)?, number(hi_text)?);
        let step = match step_text {
            None => 1,
            Some(s) if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(bad_step("is not a whole number"))
            }
            Some(s) => match s.parse::<u64>() {
                Ok(0) => return Err(bad_step("is 0")),
                Ok(n) => n,
                Err(_) => return Err(bad_step("is too large")),
            },
        };
        if lo > hi {
            return Err(E::Descending { element: el(), range: item.into() });
        }
        if (is_padded(lo_text) || is_padded(hi_text)) && lo_text.len() != hi_text.len() {
            return Err(E::Padding { element: el(), range: item.into(), lo: lo_text.into(), hi: hi_text.into() });
        }
        let width = if is_padded(lo_text) || is_padded(hi_text) { lo_text.len() } else { 0 };
        ranges.push(Range { lo, hi, step, width });
    }
    Ok(ranges)
}

/// True for a group name: letters, digits and `- _ . :`, not starting with
/// punctuation.
pub fn is_group_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

fn range_len(r: &Range) -> u64 {
    ((r.hi - r.lo) / r.step).saturating_add(1)
}

/// How many names a pattern gives, saturating.
pub fn count(parts: &[Part]) -> u64 {
    parts.iter().fold(1u64, |acc, part| match part {
        Part::Literal(_) => acc,
        Part::Ranges(ranges) => acc.saturating_mul(ranges.iter().fold(0u64, |n, r| n.saturating_add(range_len(r)))),
    })
}

/// The longest name a pattern can give, in bytes.
pub fn longest(parts: &[Part]) -> u64 {
    let digits = |n: u64| n.checked_ilog10().unwrap_or(0) as u64 + 1;
    parts
        .iter()
        .map(|part| match part {
            Part::Literal(text) => text.len() as u64,
            Part::Ranges(ranges) => ranges.iter().map(|r| digits(r.hi).max(r.width as u64)).max().unwrap_or(0),
        })
        .fold(0u64, u64::saturating_add)
}

/// The names of a pattern: the product of its parts, first bracket outermost.
/// Callers bound [`count`] first.
pub fn generate(parts: &[Part]) -> Vec<String> {
    let mut names = vec![String::new()];
    for part in parts {
        let alternatives: Vec<String> = match part {
            Part::Literal(text) => vec![text.clone()],
            Part::Ranges(ranges) => ranges
                .iter()
                .flat_map(|r| (0..range_len(r)).map(move |i| format!("{:0w$}", r.lo + i * r.step, w = r.width)))
                .collect(),
        };
        names = names.iter().flat_map(|head| alternatives.iter().map(move |alt| format!("{head}{alt}"))).collect();
    }
    names
}
