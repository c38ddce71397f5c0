//! The command channel (`AGENT_COMFD`): a step writes lines such as
//! `set-progress 73`, `set-weight 50update 8` or `set-status
//! validation-failed`. Lines are records of space-separated fields with
//! the quoting rules of Go's `encoding/csv` (which the original uses with a
//! space as separator): a field may be wrapped in double quotes, `""` inside
//! quotes is a quote, a quoted field may span lines, empty lines are
//! skipped, and a stray quote is a parse error that is logged and skipped.

use super::log::{log, ERR};
use super::progress::{Processor, VALIDATION_FAILED};

const BARE_QUOTE: &str = "bare \" in non-quoted-field";
const BAD_QUOTE: &str = "extraneous or missing \" in quoted-field";

/// Incremental record parser: feed it lines as they arrive.
#[derive(Debug, Default)]
pub struct Parser {
    line_no: usize,
    /// A quoted field continuing on the next line.
    open: Option<Open>,
}

#[derive(Debug)]
struct Open {
    fields: Vec<String>,
    field: String,
    start_line: usize,
}

pub type Record = Result<Vec<String>, String>;

impl Parser {
    /// Feed one line, with its trailing `\n` unless it is the last of the
    /// stream. Returns a record (or a parse error) once one is complete.
    pub fn feed(&mut self, raw: &str) -> Option<Record> {
        self.line_no += 1;
        let line = match raw.strip_suffix("\r\n") {
            Some(body) => format!("{body}\n"),
            None => raw.to_string(),
        };
        let mut open = match self.open.take() {
            Some(open) => open,
            None if line == "\n" || line.is_empty() => return None,
            None => return self.parse(&line, Vec::new(), self.line_no, None),
        };
        let field = std::mem::take(&mut open.field);
        self.parse(&line, open.fields, open.start_line, Some(field))
    }

    /// End of stream: a quoted field still open is an error.
    pub fn finish(&mut self) -> Option<Record> {
        let open = self.open.take()?;
        Some(Err(self.error(open.start_line, self.line_no, 1, BAD_QUOTE)))
    }

    fn error(&self, start: usize, line: usize, col: usize, what: &str) -> String {
        if start != line {
            format!("record on line {start}; parse error on line {line}, column {col}: {what}")
        } else {
            format!("parse error on line {line}, column {col}: {what}")
        }
    }

    /// Parse `rest`; `quoted` is the text of a quoted field carried over.
    fn parse(&mut self, line: &str, mut fields: Vec<String>, start: usize, quoted: Option<String>) -> Option<Record> {
        let mut rest = line;
        let mut col = 1;
        let mut quoted = quoted;
        loop {
            if let Some(mut field) = quoted.take() {
                let Some(i) = rest.find('"') else {
                    // The field goes on past this line.
                    field.push_str(rest);
                    self.open = Some(Open { fields, field, start_line: start });
                    return None;
                };
                field.push_str(&rest[..i]);
                rest = &rest[i + 1..];
                col += i + 1;
                if let Some(after) = rest.strip_prefix('"') {
                    field.push('"');
                    rest = after;
                    col += 1;
                    quoted = Some(field);
                } else if let Some(after) = rest.strip_prefix(' ') {
                    fields.push(field);
                    rest = after;
                    col += 1;
                } else if rest.is_empty() || rest == "\n" {
                    fields.push(field);
                    return Some(Ok(fields));
                } else {
                    return Some(Err(self.error(start, self.line_no, col - 1, BAD_QUOTE)));
                }
                continue;
            }
            if let Some(after) = rest.strip_prefix('"') {
                rest = after;
                col += 1;
                quoted = Some(String::new());
                continue;
            }
            let (field, next) = match rest.find(' ') {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest.strip_suffix('\n').unwrap_or(rest), None),
            };
            if let Some(j) = field.find('"') {
                return Some(Err(self.error(start, self.line_no, col + j, BARE_QUOTE)));
            }
            fields.push(field.to_string());
            match next {
                Some(after) => {
                    col += field.len() + 1;
                    rest = after;
                }
                None => return Some(Ok(fields)),
            }
        }
    }
}

/// What the step loop must do after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    Nothing,
    /// The progress changed: publish the status.
    Publish,
}

/// Apply one record from the step at `index` to the task's processor,
/// logging what the original logs for bad commands.
pub fn apply(record: &Record, proc: &mut Processor, index: usize) -> Effect {
    let fields = match record {
        Ok(f) => f,
        Err(e) => {
            log!(ERR, "Parse error: {e}");
            return Effect::Nothing;
        }
    };
    let arg = |n: usize| fields.get(n).map(String::as_str);
    match fields.first().map(String::as_str).unwrap_or("") {
        "set-status" => match arg(1) {
            Some(VALIDATION_FAILED) => proc.status = VALIDATION_FAILED,
            Some(other) => log!(ERR, "set-status command failed: unknown status \"{other}\""),
            None => log!(ERR, "set-status command failed: missing status argument"),
        },
        "set-weight" => {
            let result = match (arg(1), arg(2)) {
                (Some(step), Some(w)) => atoi(w).and_then(|w| proc.set_step_weight(step, w)),
                _ => Err("missing step name or weight argument".into()),
            };
            if let Err(e) = result {
                log!(ERR, "set-weight command failed: {e}");
            }
        }
        "set-progress" => {
            let result = match arg(1) {
                Some(p) => atoi(p).and_then(|p| proc.set_progress_at_step(index, p)),
                None => Err("missing progress argument".into()),
            };
            match result {
                Ok(()) => return Effect::Publish,
                Err(e) => log!(ERR, "set-progress command failed: {e}"),
            }
        }
        other => log!(ERR, "Unknown command {other}"),
    }
    Effect::Nothing
}

/// `strconv.Atoi`, with its error text.
fn atoi(s: &str) -> Result<i64, String> {
    use std::num::IntErrorKind::{NegOverflow, PosOverflow};
    s.parse::<i64>().map_err(|e| match e.kind() {
        PosOverflow | NegOverflow => format!("strconv.Atoi: parsing {s:?}: value out of range"),
        _ => format!("strconv.Atoi: parsing {s:?}: invalid syntax"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(lines: &[&str]) -> Vec<Record> {
        let mut p = Parser::default();
        let mut out: Vec<Record> = lines.iter().filter_map(|l| p.feed(l)).collect();
        out.extend(p.finish());
        out
    }

    fn ok(v: &[&str]) -> Record {
        Ok(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn fields_quotes_and_errors() {
        let got = all(&[
            "set-progress 73\n",
            "\n",
            "set-weight \"50 update\" 8\r\n",
            "a \"x\"\"y\" \"multi\n",
            "line\" end\n",
            "bad x\"y\n",
            "last",
        ]);
        assert_eq!(got[0], ok(&["set-progress", "73"]));
        assert_eq!(got[1], ok(&["set-weight", "50 update", "8"]));
        assert_eq!(got[2], ok(&["a", "x\"y", "multi\nline", "end"]));
        assert_eq!(got[3], Err("parse error on line 6, column 6: bare \" in non-quoted-field".into()));
        assert_eq!(got[4], ok(&["last"]));
        assert_eq!(
            all(&["\"open\n"]),
            vec![Err("parse error on line 1, column 1: extraneous or missing \" in quoted-field".into())]
        );
    }

    #[test]
    fn commands_change_the_processor() {
        let mut p = Processor::new(vec![("a".into(), 1), ("b".into(), 1)]);
        assert_eq!(apply(&ok(&["set-weight", "b", "3"]), &mut p, 0), Effect::Nothing);
        assert_eq!(apply(&ok(&["set-progress", "40"]), &mut p, 0), Effect::Publish);
        assert_eq!(p.progress, 10);
        assert_eq!(apply(&ok(&["set-progress", "x"]), &mut p, 0), Effect::Nothing);
        apply(&ok(&["set-status", "validation-failed"]), &mut p, 0);
        assert_eq!(p.status, VALIDATION_FAILED);
        assert_eq!(
            atoi("99999999999999999999").unwrap_err(),
            "strconv.Atoi: parsing \"99999999999999999999\": value out of range"
        );
    }
}
