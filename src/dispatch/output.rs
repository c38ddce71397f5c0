//! Output modes of a dispatch. `live` prints `name: line` as lines arrive
//! (stdout lines on stdout, stderr lines on stderr); `grouped` waits for the
//! end and folds targets with identical output and state under one node-set
//! header, as `clubak -b` does; `json` prints one JSON object per event per
//! line, with output bytes as `text` when they are UTF-8 and as `base64`
//! otherwise, so no byte is lost.

use super::nodeset;
use super::runner::{Event, EventKind};
use base64::Engine;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Live,
    Grouped,
    Json,
}

/// Consumes events as they come; `finish` runs once after the last.
pub struct Printer {
    mode: Mode,
    /// live: unfinished line per (target, is_stderr)
    partial: HashMap<(String, bool), Vec<u8>>,
    /// grouped: all output per target, then its state
    collected: BTreeMap<String, (Vec<u8>, String)>,
}

impl Printer {
    pub fn new(mode: Mode) -> Self {
        Printer { mode, partial: HashMap::new(), collected: BTreeMap::new() }
    }

    pub fn event(&mut self, ev: &Event) {
        match self.mode {
            Mode::Live => self.live(ev),
            Mode::Grouped => self.group(ev),
            Mode::Json => json_event(ev),
        }
    }

    fn live(&mut self, ev: &Event) {
        match &ev.kind {
            EventKind::Output { stream, bytes } => {
                let err = *stream == crate::protocol::Stream::Stderr;
                let buf = self.partial.entry((ev.target.clone(), err)).or_default();
                buf.extend_from_slice(bytes);
                if let Some(cut) = buf.iter().rposition(|b| *b == b'\n') {
                    let done: Vec<u8> = buf.drain(..=cut).collect();
                    print_lines(&ev.target, &done, err);
                }
            }
            EventKind::End(_) => {
                for err in [false, true] {
                    if let Some(rest) = self.partial.remove(&(ev.target.clone(), err)) {
                        if !rest.is_empty() {
                            print_lines(&ev.target, &rest, err);
                        }
                    }
                }
            }
            EventKind::Started { .. } => {}
        }
    }

    fn group(&mut self, ev: &Event) {
        let slot = self.collected.entry(ev.target.clone()).or_default();
        match &ev.kind {
            EventKind::Output { bytes, .. } => slot.0.extend_from_slice(bytes),
            EventKind::End(r) => slot.1 = r.state.to_string(),
            EventKind::Started { .. } => {}
        }
    }

    /// Print what grouped mode collected.
    pub fn finish(&mut self) {
        if self.mode != Mode::Grouped {
            return;
        }
        let mut groups: BTreeMap<(&[u8], &str), Vec<&str>> = BTreeMap::new();
        for (name, (out, state)) in &self.collected {
            groups.entry((out.as_slice(), state.as_str())).or_default().push(name);
        }
        let mut sorted: Vec<_> = groups.into_iter().collect();
        sorted.sort_by_key(|(_, names)| std::cmp::Reverse(names.len()));
        let stdout = std::io::stdout();
        let mut o = stdout.lock();
        for ((out, state), names) in sorted {
            let header = format!("{} ({}): {}", nodeset::fold(&names), names.len(), state);
            let rule = "-".repeat(header.chars().count().min(78));
            let _ = writeln!(o, "{rule}\n{header}\n{rule}");
            let _ = o.write_all(out);
            if !out.is_empty() && !out.ends_with(b"\n") {
                let _ = writeln!(o);
            }
        }
        let _ = o.flush();
    }
}

/// Run a printer on a blocking thread: send it events, drop the sender,
/// then await the handle (it returns after `finish`).
pub fn spawn_printer(mode: Mode) -> (tokio::sync::mpsc::Sender<Event>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let handle = tokio::task::spawn_blocking(move || {
        let mut p = Printer::new(mode);
        while let Some(ev) = rx.blocking_recv() {
            p.event(&ev);
        }
        p.finish();
    });
    (tx, handle)
}

fn print_lines(target: &str, bytes: &[u8], err: bool) {
    let mut text = Vec::with_capacity(bytes.len() + 32);
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        text.extend_from_slice(target.as_bytes());
        text.extend_from_slice(b": ");
        text.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            text.push(b'\n');
        }
    }
    let _ = if err { std::io::stderr().lock().write_all(&text) } else { std::io::stdout().lock().write_all(&text) };
}

/// The JSON object for one event.
pub fn event_json(ev: &Event) -> serde_json::Value {
    match &ev.kind {
        EventKind::Started { pid } => json!({"target": ev.target, "event": "started", "pid": pid}),
        EventKind::Output { stream, bytes } => {
            let stream = if *stream == crate::protocol::Stream::Stderr { "stderr" } else { "stdout" };
            match std::str::from_utf8(bytes) {
                Ok(t) => json!({"target": ev.target, "event": "output", "stream": stream, "text": t}),
                Err(_) => json!({"target": ev.target, "event": "output", "stream": stream,
                    "base64": base64::engine::general_purpose::STANDARD.encode(bytes)}),
            }
        }
        EventKind::End(r) => {
            let mut v = json!({"target": ev.target, "event": "end", "state": r.state.label(),
                "detail": r.state.to_string(), "truncated": r.truncated});
            if let super::outcome::State::Failed { exit, signal, .. } = &r.state {
                v["exit"] = json!(exit);
                v["signal"] = json!(signal);
            }
            v
        }
    }
}

fn json_event(ev: &Event) {
    let mut line = event_json(ev).to_string();
    line.push('\n');
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}
