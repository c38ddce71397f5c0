//! Output modes of a dispatch.
//!
//! - `live` prints `name: line` as lines arrive: stdout lines on stdout,
//!   stderr lines on stderr; a line longer than [`MAX_LINE`] is printed in
//!   pieces; a target that ends in any state but `succeeded` gets one line
//!   `name: state(detail)` on stderr when it ends.
//! - `grouped` waits for the end and folds targets whose stdout block,
//!   stderr block and state are identical under one node-set header, as
//!   `clubak -b` does; the stdout block is printed first, then the stderr
//!   block under a `--- stderr ---` line, both on stdout. Unreachable,
//!   refused and lost targets fold on the kind of their reason, not its
//!   per-host detail. At most [`GROUPED_TARGET_CAP`] bytes per target and
//!   [`GROUPED_TOTAL_CAP`] in all are kept; beyond, the header says the
//!   output was cut.
//! - `json` prints one JSON object per event per line (schema:
//!   `docs/events.schema.json`), with output bytes as `text` when they are
//!   UTF-8 and as `base64` otherwise, so no byte is lost.

use super::event::{Event, EventKind};
use super::nodeset;
use crate::protocol::Stream;
use base64::Engine;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;

/// Live mode prints a line in pieces of at most this many bytes.
pub const MAX_LINE: usize = 64 * 1024;
/// Grouped mode keeps at most this much output per target.
pub const GROUPED_TARGET_CAP: usize = 1 << 20;
/// Grouped mode keeps at most this much output in all.
pub const GROUPED_TOTAL_CAP: usize = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Live,
    Grouped,
    Json,
}

/// What grouped mode keeps of one target.
#[derive(Debug, Default)]
struct Collected {
    out: Vec<u8>,
    err: Vec<u8>,
    /// Cut here: beyond the grouped caps.
    cut: bool,
    /// Cut at the agent: beyond its `max_output`.
    truncated: bool,
    state: String,
}

/// Consumes events as they come; `finish` runs once after the last.
pub struct Printer<W: Write, E: Write> {
    mode: Mode,
    out: W,
    err: E,
    /// live: unfinished line per (target, is_stderr)
    partial: HashMap<(String, bool), Vec<u8>>,
    /// grouped: output and state per target
    collected: BTreeMap<String, Collected>,
    /// grouped: the full state per target, for single-host groups
    detail: HashMap<String, String>,
    kept: usize,
    /// live on a terminal: the status line and end lines
    progress: Option<super::progress::Progress>,
}

impl Printer<std::io::Stdout, std::io::Stderr> {
    /// A printer on the process's stdout and stderr.
    pub fn new(mode: Mode) -> Self {
        Printer::with_writers(mode, std::io::stdout(), std::io::stderr())
    }
}

impl<W: Write, E: Write> Printer<W, E> {
    /// The writers back, once `finish` has run.
    pub fn into_writers(self) -> (W, E) {
        (self.out, self.err)
    }

    pub fn with_writers(mode: Mode, out: W, err: E) -> Self {
        Printer {
            mode,
            out,
            err,
            partial: HashMap::new(),
            collected: BTreeMap::new(),
            detail: HashMap::new(),
            kept: 0,
            progress: None,
        }
    }

    /// Show a status line for `total` targets and an end line per target
    /// (live mode on a terminal only; see [`super::progress`]).
    pub fn with_progress(mut self, total: usize) -> Self {
        if self.mode == Mode::Live {
            self.progress = Some(super::progress::Progress::new(total));
        }
        self
    }

    pub fn event(&mut self, ev: &Event) {
        match self.mode {
            Mode::Live => self.live(ev),
            Mode::Grouped => self.group(ev),
            Mode::Json => {
                let mut line = event_json(ev).to_string();
                line.push('\n');
                let _ = self.out.write_all(line.as_bytes());
            }
        }
    }

    fn live(&mut self, ev: &Event) {
        match &ev.kind {
            EventKind::Output { stream, bytes } => {
                let is_err = *stream == Stream::Stderr;
                let buf = self.partial.entry((ev.target.clone(), is_err)).or_default();
                buf.extend_from_slice(bytes);
                let cut = match buf.iter().rposition(|b| *b == b'\n') {
                    Some(i) => i + 1,
                    None if buf.len() >= MAX_LINE => buf.len(),
                    None => 0,
                };
                if cut > 0 {
                    let done: Vec<u8> = buf.drain(..cut).collect();
                    self.lines(&ev.target, &done, is_err);
                }
            }
            EventKind::End(r) => {
                for is_err in [false, true] {
                    if let Some(rest) = self.partial.remove(&(ev.target.clone(), is_err)) {
                        if !rest.is_empty() {
                            self.lines(&ev.target, &rest, is_err);
                        }
                    }
                }
                if let Some(p) = &mut self.progress {
                    let line = p.ended(&ev.target, &r.state);
                    self.emit(format!("{line}\n").as_bytes(), true);
                } else if !r.state.is_success() {
                    let _ = writeln!(self.err, "{}: {}", ev.target, r.state);
                }
            }
            EventKind::Started { .. } => {
                if let Some(p) = &mut self.progress {
                    p.started(&ev.target);
                }
            }
        }
    }

    /// Write `text` to stderr or stdout, with the status line (if any)
    /// cleared meanwhile and redrawn below it.
    fn emit(&mut self, text: &[u8], is_err: bool) {
        let (out, err) = (&mut self.out, &mut self.err);
        let mut write = || {
            if is_err {
                let _ = err.write_all(text);
                let _ = err.flush();
            } else {
                let _ = out.write_all(text);
                let _ = out.flush();
            }
        };
        match &self.progress {
            Some(p) => p.suspend(write),
            None => write(),
        }
    }

    /// Print `target: line` for each line of `bytes` (pieces of long lines
    /// included), adding a newline where the last one lacks it.
    fn lines(&mut self, target: &str, bytes: &[u8], is_err: bool) {
        let mut text = Vec::with_capacity(bytes.len() + 32);
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            for piece in line.chunks(MAX_LINE) {
                text.extend_from_slice(target.as_bytes());
                text.extend_from_slice(b": ");
                text.extend_from_slice(piece);
                if !piece.ends_with(b"\n") {
                    text.push(b'\n');
                }
            }
        }
        if self.progress.is_some() {
            self.emit(&text, is_err);
        } else {
            let _ = if is_err { self.err.write_all(&text) } else { self.out.write_all(&text) };
        }
    }

    fn group(&mut self, ev: &Event) {
        let slot = self.collected.entry(ev.target.clone()).or_default();
        match &ev.kind {
            EventKind::Output { stream, bytes } => {
                let room = GROUPED_TARGET_CAP
                    .saturating_sub(slot.out.len() + slot.err.len())
                    .min(GROUPED_TOTAL_CAP.saturating_sub(self.kept));
                let take = room.min(bytes.len());
                slot.cut |= take < bytes.len();
                let block = if *stream == Stream::Stderr { &mut slot.err } else { &mut slot.out };
                block.extend_from_slice(&bytes[..take]);
                self.kept += take;
            }
            EventKind::End(r) => {
                slot.state = r.state.folded();
                slot.truncated = r.truncated;
                self.detail.insert(ev.target.clone(), r.state.to_string());
            }
            EventKind::Started { .. } => {}
        }
    }

    /// Print what grouped mode collected: groups by size, largest first.
    pub fn finish(&mut self) {
        if self.mode != Mode::Grouped {
            if let Some(p) = &self.progress {
                p.finish();
            }
            let _ = self.out.flush();
            return;
        }
        type Key<'a> = (&'a [u8], &'a [u8], &'a str, bool, bool);
        let mut groups: BTreeMap<Key, Vec<&str>> = BTreeMap::new();
        for (name, c) in &self.collected {
            let key = (c.out.as_slice(), c.err.as_slice(), c.state.as_str(), c.cut, c.truncated);
            groups.entry(key).or_default().push(name);
        }
        let mut sorted: Vec<_> = groups.into_iter().collect();
        // Largest first; equal sizes by their first host's name (names are
        // collected in name order), so the order never depends on output.
        sorted.sort_by(|(_, a), (_, b)| b.len().cmp(&a.len()).then_with(|| a[0].cmp(b[0])));
        let o = &mut self.out;
        for ((out, err, state, cut, truncated), names) in sorted {
            let mut note = String::new();
            if truncated {
                note.push_str(" [truncated by the agent: its max_output limit]");
            }
            if cut {
                note.push_str(" [output cut here: see --output live or json for all of it]");
            }
            let state = match names.as_slice() {
                [one] => self.detail.get(*one).map(String::as_str).unwrap_or(state),
                _ => state,
            };
            let header = format!("{} ({}): {state}{note}", nodeset::fold(&names), names.len());
            let rule = "-".repeat(header.chars().count().min(78));
            let _ = writeln!(o, "{rule}\n{header}\n{rule}");
            for (i, block) in [out, err].into_iter().enumerate() {
                if block.is_empty() {
                    continue;
                }
                if i == 1 {
                    let _ = writeln!(o, "--- stderr ---");
                }
                let _ = o.write_all(block);
                if !block.ends_with(b"\n") {
                    let _ = writeln!(o);
                }
            }
        }
        let _ = o.flush();
    }
}

/// Run a printer on a blocking thread: send it events, drop the sender,
/// then await the handle (it returns after `finish`).
pub fn spawn_printer(mode: Mode) -> (tokio::sync::mpsc::Sender<Event>, tokio::task::JoinHandle<()>) {
    spawn_printer_with(mode, None)
}

/// [`spawn_printer`], with a status line for `progress` targets when
/// given (live mode; the caller has checked the terminal).
pub fn spawn_printer_with(
    mode: Mode,
    progress: Option<usize>,
) -> (tokio::sync::mpsc::Sender<Event>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let handle = tokio::task::spawn_blocking(move || {
        let mut p = Printer::new(mode);
        if let Some(total) = progress {
            p = p.with_progress(total);
        }
        while let Some(ev) = rx.blocking_recv() {
            p.event(&ev);
        }
        p.finish();
    });
    (tx, handle)
}

/// The JSON object for one event. Every `end` carries the same fields
/// whatever the state: `state`, `detail`, `reason` (the kind of an
/// unreachable, refused or lost end, else null), `exit` and `signal`
/// (numbers or null) and `truncated`.
pub fn event_json(ev: &Event) -> serde_json::Value {
    match &ev.kind {
        EventKind::Started { pid } => json!({"target": ev.target, "event": "started", "pid": pid}),
        EventKind::Output { stream, bytes } => {
            let stream = if *stream == Stream::Stderr { "stderr" } else { "stdout" };
            match std::str::from_utf8(bytes) {
                Ok(t) => json!({"target": ev.target, "event": "output", "stream": stream, "text": t}),
                Err(_) => json!({"target": ev.target, "event": "output", "stream": stream,
                    "base64": base64::engine::general_purpose::STANDARD.encode(bytes)}),
            }
        }
        EventKind::End(r) => {
            let (exit, signal) = match &r.state {
                super::outcome::State::Failed { exit, signal, .. } => (*exit, *signal),
                super::outcome::State::Succeeded => (Some(0), None),
                _ => (None, None),
            };
            json!({"target": ev.target, "event": "end", "state": r.state.label(),
                "detail": r.state.to_string(), "reason": r.state.reason().map(|x| x.kind.clone()),
                "exit": exit, "signal": signal, "truncated": r.truncated})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::outcome::{Reason, State, TargetResult};
    use super::*;

    fn out(t: &str, s: Stream, b: &str) -> Event {
        Event { target: t.into(), kind: EventKind::Output { stream: s, bytes: b.as_bytes().to_vec() } }
    }

    fn grouped(events: &[Event]) -> String {
        let mut p = Printer::with_writers(Mode::Grouped, Vec::new(), Vec::new());
        for e in events {
            p.event(e);
        }
        p.finish();
        String::from_utf8(p.out).unwrap()
    }

    #[test]
    fn interleaving_of_stdout_and_stderr_does_not_split_groups() {
        let end = |t: &str| Event::end(TargetResult::new(t, State::Succeeded));
        let a = [
            out("h1", Stream::Stdout, "out1\n"),
            out("h1", Stream::Stderr, "err1\n"),
            out("h1", Stream::Stdout, "out2\n"),
            end("h1"),
        ];
        let b = [out("h2", Stream::Stderr, "err1\n"), out("h2", Stream::Stdout, "out1\nout2\n"), end("h2")];
        let text = grouped(&[a.as_slice(), b.as_slice()].concat());
        assert!(text.contains("h[1-2] (2): succeeded\n"), "{text}");
        assert!(text.contains("out1\nout2\n--- stderr ---\nerr1\n"), "{text}");
    }

    #[test]
    fn reasons_fold_on_their_kind_and_output_is_capped() {
        let ends: Vec<Event> = (1..=3)
            .map(|i| {
                let n = format!("zz{i}");
                let why = Reason::new("no registry entry", format!("no registry entry for {n}"));
                Event::end(TargetResult::new(n, State::Unreachable(why)))
            })
            .collect();
        let text = grouped(&ends);
        assert!(text.contains("zz[1-3] (3): unreachable(no registry entry)\n"), "{text}");
        let big = "x".repeat(GROUPED_TARGET_CAP + 10);
        let text = grouped(&[out("a", Stream::Stdout, &big), Event::end(TargetResult::new("a", State::Succeeded))]);
        assert!(text.contains("[output cut here"), "{}", &text[..200]);
        assert!(!text.contains("truncated by the agent"), "{}", &text[..200]);
        assert!(text.len() < GROUPED_TARGET_CAP + 500);
        // Cut at the agent (its max_output): said so, and not folded with
        // an identical but whole output.
        let mut cut_there = TargetResult::new("b1", State::Succeeded);
        cut_there.truncated = true;
        let text = grouped(&[
            out("b1", Stream::Stdout, "same\n"),
            Event::end(cut_there),
            out("b2", Stream::Stdout, "same\n"),
            Event::end(TargetResult::new("b2", State::Succeeded)),
        ]);
        assert!(text.contains("b1 (1): succeeded [truncated by the agent: its max_output limit]"), "{text}");
        assert!(text.contains("b2 (1): succeeded\n"), "{text}");
    }

    #[test]
    fn groups_of_equal_size_come_in_host_order_whatever_their_output() {
        for (first, second) in [("aaa\n", "zzz\n"), ("zzz\n", "aaa\n")] {
            let text = grouped(&[
                out("m2", Stream::Stdout, second),
                Event::end(TargetResult::new("m2", State::Succeeded)),
                out("m1", Stream::Stdout, first),
                Event::end(TargetResult::new("m1", State::Succeeded)),
            ]);
            let (a, b) = (text.find("m1 (1)").unwrap(), text.find("m2 (1)").unwrap());
            assert!(a < b, "{text}");
        }
    }

    #[test]
    fn live_splits_endless_lines_and_reports_failed_ends() {
        let mut p = Printer::with_writers(Mode::Live, Vec::new(), Vec::new());
        p.event(&out("a", Stream::Stdout, &"y".repeat(MAX_LINE * 2 + 5)));
        assert_eq!(p.partial.get(&("a".to_string(), false)).map(Vec::len), Some(0), "kept no endless partial line");
        let fail = State::Failed { exit: Some(3), signal: None, why: None };
        p.event(&Event::end(TargetResult::new("a", fail)));
        assert_eq!(String::from_utf8(p.out).unwrap().lines().count(), 3);
        assert_eq!(String::from_utf8(p.err).unwrap(), "a: failed(exit 3)\n");
    }
}
