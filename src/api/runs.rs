//! The API's runs while it serves: each run's events in order (the same
//! JSON objects `muster run --output json` prints, numbered from 1 for
//! Server-Sent Events and `Last-Event-ID`), each target's collected
//! output, and a way to cancel it. The run's record is also written to
//! `<state>/runs/` (the format the CLI writes), so `muster list-requests`
//! and `muster status` see API runs, and the API answers for CLI runs
//! from their records. Runs leave memory after the retention
//! (`result_retention`, one day); at most [`MAX_EVENTS`] events and
//! [`MAX_OUTPUT`] bytes of output per target are kept, past which output
//! events are dropped and the target's `output_truncated` is set (ends
//! are always kept).

use crate::dispatch::event::{Event, EventKind};
use crate::dispatch::output::event_json;
use crate::dispatch::runs::RunRecord;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Events kept per run.
pub const MAX_EVENTS: usize = 100_000;
/// Output bytes kept per target.
pub const MAX_OUTPUT: usize = 256 * 1024;

/// A target's output as collected.
#[derive(Debug, Default, Clone)]
pub struct Collected {
    pub stdout: String,
    pub stderr: String,
    pub truncated: bool,
}

/// What a run holds while it is in memory.
#[derive(Debug)]
pub struct RunState {
    pub record: RunRecord,
    /// Events in order; the SSE id of `events[i]` is `i + 1`.
    pub events: Vec<Value>,
    pub output: BTreeMap<String, Collected>,
    /// The token (or certificate) name that started it.
    pub owner: String,
    pub done: bool,
    pub dropped_events: usize,
    /// Targets whose action has started.
    pub started: std::collections::HashSet<String>,
}

/// One run in memory: its state, a counter that moves on every change
/// (SSE readers wait on it), and its cancel switch.
#[derive(Debug)]
pub struct LiveRun {
    pub state: Mutex<RunState>,
    pub changed: watch::Sender<u64>,
    pub cancel: watch::Sender<bool>,
}

impl LiveRun {
    pub fn new(record: RunRecord, owner: &str) -> (Arc<LiveRun>, watch::Receiver<bool>) {
        let (cancel, cancel_rx) = watch::channel(false);
        let run = LiveRun {
            state: Mutex::new(RunState {
                record,
                events: Vec::new(),
                output: BTreeMap::new(),
                owner: owner.to_string(),
                done: false,
                dropped_events: 0,
                started: Default::default(),
            }),
            changed: watch::channel(0).0,
            cancel,
        };
        (Arc::new(run), cancel_rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RunState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fold one dispatch event in.
    pub fn push(&self, ev: &Event) {
        let mut s = self.lock();
        if let EventKind::Started { .. } = &ev.kind {
            s.started.insert(ev.target.clone());
        }
        if let EventKind::Output { stream, bytes } = &ev.kind {
            let c = s.output.entry(ev.target.clone()).or_default();
            let room = MAX_OUTPUT.saturating_sub(c.stdout.len() + c.stderr.len());
            let text = String::from_utf8_lossy(bytes);
            if text.len() > room {
                c.truncated = true;
            }
            let mut cut = room.min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let buf = if *stream == crate::protocol::Stream::Stderr { &mut c.stderr } else { &mut c.stdout };
            buf.push_str(&text[..cut]);
            if s.events.len() >= MAX_EVENTS {
                s.dropped_events += 1;
                return;
            }
        }
        s.events.push(event_json(ev));
        let n = s.events.len() as u64;
        drop(s);
        self.changed.send_replace(n);
    }

    /// The dispatch ended: fold the record's end in and wake every reader.
    pub fn finish(&self, record: RunRecord) {
        let mut s = self.lock();
        s.record = record;
        s.done = true;
        let n = s.events.len() as u64 + 1;
        drop(s);
        self.changed.send_replace(n);
    }

    /// Events after `after` (an SSE id), and whether the run is done.
    pub fn events_after(&self, after: usize) -> (Vec<(usize, Value)>, bool) {
        let s = self.lock();
        let from = after.min(s.events.len());
        let evs = s.events[from..].iter().enumerate().map(|(i, v)| (from + i + 1, v.clone())).collect();
        (evs, s.done)
    }

    /// The run as `GET /runs/{id}` shows it.
    pub fn view(&self) -> Value {
        let s = self.lock();
        view_of(&s.record, Some((&s.output, &s.started)), s.done, Some(&s.owner))
    }

    pub fn owner(&self) -> String {
        self.lock().owner.clone()
    }

    pub fn is_done(&self) -> bool {
        self.lock().done
    }
}

/// The JSON of a run: its record, each target's state and, when
/// collected, its output. A target not ended yet is `pending` until its
/// action starts, then `running` (a run known only from its record:
/// `running`, or `unknown` when the record ended without it).
pub fn view_of(
    r: &RunRecord,
    live: Option<(&BTreeMap<String, Collected>, &std::collections::HashSet<String>)>,
    done: bool,
    owner: Option<&str>,
) -> Value {
    let mut targets: Vec<Value> = Vec::new();
    let ended: HashMap<&str, &crate::dispatch::runs::RecordedEnd> =
        r.results.iter().map(|e| (e.target.as_str(), e)).collect();
    let mut names: Vec<&str> = r.targets.iter().map(|t| t.name.as_str()).collect();
    for e in &r.results {
        if !names.contains(&e.target.as_str()) {
            names.push(&e.target);
        }
    }
    for name in names {
        let mut t = match ended.get(name) {
            Some(e) => json!({"target": name, "state": e.state, "detail": e.detail, "exit": e.exit}),
            None => {
                let state = match live {
                    _ if done => "unknown",
                    Some((_, started)) if !started.contains(name) => "pending",
                    _ => "running",
                };
                json!({"target": name, "state": state, "detail": null, "exit": null})
            }
        };
        if let Some(c) = live.and_then(|(o, _)| o.get(name)) {
            t["stdout"] = json!(c.stdout);
            t["stderr"] = json!(c.stderr);
            t["output_truncated"] = json!(c.truncated);
        }
        targets.push(t);
    }
    let counts = counts(&targets);
    json!({
        "request_id": r.request_id,
        "action": r.action,
        "args": crate::audit::mask_args(&r.args),
        "user": r.username,
        "owner": owner,
        "via": r.via,
        "async": r.detach,
        "started": r.started,
        "ended": r.ended,
        "done": done,
        "exit": r.exit,
        "counts": counts,
        "targets": targets,
    })
}

/// How many of `targets` (JSON objects with a `state`) are in each state.
pub fn counts(targets: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for t in targets {
        *counts.entry(t["state"].as_str().unwrap_or("unknown").to_string()).or_default() += 1;
    }
    counts
}

/// The events of a run known only from its record: one `end` per recorded
/// end, in order.
pub fn recorded_events(r: &RunRecord) -> Vec<Value> {
    r.results
        .iter()
        .map(|e| {
            json!({"target": e.target, "event": "end", "state": e.state, "detail": e.detail, "exit": e.exit,
                "reason": null, "signal": null, "truncated": false})
        })
        .collect()
}

/// Every run this API process holds, by request id.
#[derive(Debug, Default)]
pub struct RunTable {
    runs: Mutex<HashMap<String, (u64, Arc<LiveRun>)>>,
}

impl RunTable {
    pub fn insert(&self, id: &str, run: Arc<LiveRun>, now: u64) {
        self.runs.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string(), (now, run));
    }

    pub fn get(&self, id: &str) -> Option<Arc<LiveRun>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner()).get(id).map(|(_, r)| r.clone())
    }

    /// How many runs are not done.
    pub fn running(&self) -> usize {
        self.runs.lock().unwrap_or_else(|p| p.into_inner()).values().filter(|(_, r)| !r.is_done()).count()
    }

    /// Drop finished runs started more than `retention_s` before `now`.
    pub fn prune(&self, retention_s: u64, now: u64) {
        self.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (t, r)| !r.is_done() || now.saturating_sub(*t) <= retention_s);
    }
}
