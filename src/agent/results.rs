//! Results of asynchronous requests, kept by the agent for the dispatcher
//! that owns them (seed 002): `<state_dir>/runs/<dispatcher-id>/<request-id>.json`,
//! written atomically when the request starts and when it ends, and held
//! in memory while it runs so `muster status` sees output so far. A
//! dispatcher can fetch only its own results (the `result` builtin looks
//! under its own id only: any other gets "not found", never the data).
//! Records older than the retention are pruned; a record left `running`
//! by an agent that died is marked `lost` at the next start. The stored
//! context is masked like every stored context (`exec::secrets`).

use crate::protocol::{End, Finished, Message, Run, Stream};
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// One chunk of output, as the JSON events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub stream: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
}

impl Chunk {
    fn new(stream: Stream, bytes: &[u8]) -> Chunk {
        let stream = if stream == Stream::Stderr { "stderr" } else { "stdout" }.to_string();
        match std::str::from_utf8(bytes) {
            Ok(t) => Chunk { stream, text: Some(t.to_string()), base64: None },
            Err(_) => {
                Chunk { stream, text: None, base64: Some(base64::engine::general_purpose::STANDARD.encode(bytes)) }
            }
        }
    }

    /// The bytes and stream of this chunk.
    pub fn bytes(&self) -> (Stream, Vec<u8>) {
        let s = if self.stream == "stderr" { Stream::Stderr } else { Stream::Stdout };
        let b = match (&self.text, &self.base64) {
            (Some(t), _) => t.as_bytes().to_vec(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD.decode(b).unwrap_or_default(),
            (None, None) => Vec::new(),
        };
        (s, b)
    }
}

/// A stored result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub request_id: String,
    pub dispatcher: String,
    pub action: String,
    pub args: Vec<String>,
    pub username: String,
    /// `running`, `succeeded`, `failed`, `timed-out`, `cancelled`, `lost`.
    pub state: String,
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub exit: Option<i32>,
    #[serde(default)]
    pub signal: Option<i32>,
    /// Why it failed to start, or was lost.
    #[serde(default)]
    pub detail: Option<String>,
    pub started: String,
    #[serde(default)]
    pub ended: Option<String>,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub truncated: bool,
    pub output: Vec<Chunk>,
    /// Seconds since the epoch of the last write (for pruning).
    #[serde(default)]
    pub updated: u64,
    /// When a running record was last written (not stored).
    #[serde(skip)]
    written: Option<std::time::Instant>,
}

/// A running record's output so far is written at most this often, so an
/// agent killed outright (SIGKILL, power loss) leaves what was seen.
const WRITE_RUNNING_EVERY: Duration = Duration::from_secs(2);

fn epoch() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A name safe as one path component (dispatcher ids and request ids come
/// from peers).
fn component(s: &str) -> String {
    let mut c: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).take(100).collect();
    if c.starts_with('.') || c.is_empty() {
        c.insert(0, '_');
    }
    c
}

/// The agent's result store.
pub struct Results {
    dir: PathBuf,
    retention: Duration,
    /// Running records by (dispatcher, request id).
    live: Mutex<HashMap<(String, String), Record>>,
}

impl Results {
    pub fn new(state_dir: &Path, retention: Duration) -> Results {
        Results { dir: state_dir.join("runs"), retention, live: Mutex::new(HashMap::new()) }
    }

    fn path(&self, dispatcher: &str, request_id: &str) -> PathBuf {
        self.dir.join(component(dispatcher)).join(format!("{}.json", component(request_id)))
    }

    fn write(&self, r: &Record) {
        let p = self.path(&r.dispatcher, &r.request_id);
        let mut body = serde_json::to_vec_pretty(r).unwrap_or_default();
        body.push(b'\n');
        if let Err(e) = crate::fsutil::write_atomic(&p, &body, 0o600) {
            tracing::warn!("cannot store the result of {}: {}: {e}", r.request_id, p.display());
        }
    }

    /// Record that an asynchronous request started.
    pub fn begin(&self, dispatcher: &str, run: &Run) {
        let r = Record {
            request_id: run.request_id.clone(),
            dispatcher: dispatcher.to_string(),
            action: run.action.clone(),
            args: run.args.clone(),
            username: run.username.clone(),
            state: "running".into(),
            pid: None,
            exit: None,
            signal: None,
            detail: None,
            started: crate::timefmt::now_rfc3339(),
            ended: None,
            duration_ms: 0,
            truncated: false,
            output: Vec::new(),
            updated: epoch(),
            written: Some(std::time::Instant::now()),
        };
        self.write(&r);
        if let Ok(mut live) = self.live.lock() {
            live.insert((dispatcher.to_string(), run.request_id.clone()), r);
        }
    }

    /// Fold one message of a running request into its record; on
    /// `Finished` or `Refused` the record is final and written.
    pub fn note(&self, dispatcher: &str, request_id: &str, m: &Message) {
        let key = (dispatcher.to_string(), request_id.to_string());
        let Ok(mut live) = self.live.lock() else { return };
        let Some(r) = live.get_mut(&key) else { return };
        let mut write_now = false;
        match m {
            Message::Started { pid, .. } => {
                r.pid = Some(*pid);
                write_now = true;
            }
            Message::Output { stream, bytes, .. } => {
                r.output.push(Chunk::new(*stream, bytes));
                // The first chunk at once, then at most every 2 s.
                write_now = r.output.len() == 1 || r.written.is_none_or(|w| w.elapsed() >= WRITE_RUNNING_EVERY);
            }
            Message::Finished(f) => finish(r, f),
            Message::Refused { reason, .. } => {
                r.state = "refused".into();
                r.detail = Some(reason.to_string());
            }
            _ => return,
        }
        if r.state != "running" {
            r.ended = Some(crate::timefmt::now_rfc3339());
            r.updated = epoch();
            let done = r.clone();
            live.remove(&key);
            drop(live);
            self.write(&done);
        } else if write_now {
            r.updated = epoch();
            r.written = Some(std::time::Instant::now());
            let now = r.clone();
            drop(live);
            self.write(&now);
        }
    }

    /// The record of `request_id`, if it belongs to `dispatcher`.
    pub fn fetch(&self, dispatcher: &str, request_id: &str) -> Option<Record> {
        if let Some(r) = self.live.lock().ok()?.get(&(dispatcher.to_string(), request_id.to_string())) {
            return Some(r.clone());
        }
        let b = std::fs::read(self.path(dispatcher, request_id)).ok()?;
        serde_json::from_slice::<Record>(&b).ok().filter(|r| r.dispatcher == dispatcher && r.request_id == request_id)
    }

    /// Remove records not written for longer than the retention; mark
    /// records left `running` by an earlier process `lost`. Returns how
    /// many were removed.
    pub fn sweep(&self, startup: bool) -> usize {
        let now = epoch();
        let keep = self.retention.as_secs();
        let mut removed = 0;
        let Ok(dirs) = std::fs::read_dir(&self.dir) else { return 0 };
        for d in dirs.flatten() {
            let Ok(files) = std::fs::read_dir(d.path()) else { continue };
            for f in files.flatten() {
                let p = f.path();
                let Ok(b) = std::fs::read(&p) else { continue };
                let Ok(mut r) = serde_json::from_slice::<Record>(&b) else { continue };
                if now.saturating_sub(r.updated) >= keep {
                    let _ = std::fs::remove_file(&p);
                    removed += 1;
                } else if startup && r.state == "running" {
                    r.state = "lost".into();
                    r.detail = Some(
                        "the agent stopped while it ran (its output up to then is kept; \
                         processes it left were killed when it started again)"
                            .into(),
                    );
                    r.updated = now;
                    self.write(&r);
                }
            }
        }
        removed
    }
}

fn finish(r: &mut Record, f: &Finished) {
    r.exit = f.exit;
    r.signal = f.signal;
    r.duration_ms = f.duration_ms;
    r.truncated = f.truncated;
    r.state = match &f.end {
        End::Exited if f.exit == Some(0) => "succeeded".into(),
        End::Exited => "failed".into(),
        End::TimedOut => "timed-out".into(),
        End::Cancelled => "cancelled".into(),
        End::SpawnFailed(e) => {
            r.detail = Some(e.clone());
            "failed".into()
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str) -> Run {
        Run {
            id: 1,
            request_id: id.into(),
            action: "a".into(),
            args: vec![],
            username: "u".into(),
            token: None,
            timeout_ms: None,
            detach: true,
        }
    }

    #[test]
    fn owner_gated_live_and_stored() {
        let d = tempfile::tempdir().unwrap();
        let s = Results::new(d.path(), Duration::from_secs(3600));
        s.begin("ops", &run("r1"));
        s.note("ops", "r1", &Message::Output { id: 1, stream: Stream::Stdout, bytes: b"so far\n".to_vec() });
        assert_eq!(s.fetch("ops", "r1").unwrap().state, "running");
        assert!(s.fetch("audit", "r1").is_none(), "another dispatcher gets nothing");
        let fin = Finished { id: 1, exit: Some(3), signal: None, duration_ms: 5, truncated: false, end: End::Exited };
        s.note("ops", "r1", &Message::Finished(fin));
        let r = s.fetch("ops", "r1").unwrap();
        assert_eq!((r.state.as_str(), r.exit), ("failed", Some(3)));
        assert_eq!(r.output[0].bytes().1, b"so far\n");
        assert!(s.fetch("audit", "r1").is_none());
        assert!(s.fetch("ops", "../ops/r1").is_none());
    }

    #[test]
    fn sweep_prunes_old_records_and_marks_orphans_lost() {
        let d = tempfile::tempdir().unwrap();
        let s = Results::new(d.path(), Duration::from_secs(3600));
        s.begin("ops", &run("r2"));
        s.note("ops", "r2", &Message::Started { id: 1, pid: 4242 });
        s.note("ops", "r2", &Message::Output { id: 1, stream: Stream::Stdout, bytes: b"first\n".to_vec() });
        let again = Results::new(d.path(), Duration::from_secs(3600));
        assert_eq!(again.sweep(true), 0);
        let lost = again.fetch("ops", "r2").unwrap();
        assert_eq!((lost.state.as_str(), lost.pid), ("lost", Some(4242)), "the pid was written when it started");
        assert_eq!(lost.output.len(), 1, "output seen before the agent died is kept");
        let short = Results::new(d.path(), Duration::ZERO);
        assert_eq!(short.sweep(false), 1);
        assert!(short.fetch("ops", "r2").is_none());
    }
}
