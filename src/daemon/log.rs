//! The daemon's log: one JSON object per line (`ts`, `event`, and the
//! event's fields) for clients, requests, ends, lost and restarted links,
//! appended to `<state>/daemon/daemon.log` and rotated by size: past
//! `max_bytes` the file becomes `daemon.log.1` (older ones shift up to
//! `.N`, the oldest dropped).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

pub struct Log {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: Mutex<Option<std::fs::File>>,
}

impl Log {
    pub fn new(path: PathBuf, max_bytes: u64, keep: u32) -> Log {
        Log { path, max_bytes, keep: keep.max(1), file: Mutex::new(None) }
    }

    fn rotate(&self) {
        for i in (1..self.keep).rev() {
            let _ = std::fs::rename(
                self.path.with_extension(format!("log.{i}")),
                self.path.with_extension(format!("log.{}", i + 1)),
            );
        }
        let _ = std::fs::rename(&self.path, self.path.with_extension("log.1"));
    }

    /// Append one event.
    pub fn event(&self, event: &str, mut fields: serde_json::Value) {
        if !fields.is_object() {
            fields = serde_json::json!({ "value": fields });
        }
        fields["ts"] = serde_json::json!(crate::timefmt::now_rfc3339());
        fields["event"] = serde_json::json!(event);
        let mut line = fields.to_string();
        line.push('\n');
        let Ok(mut slot) = self.file.lock() else { return };
        let size = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        if size + line.len() as u64 > self.max_bytes {
            *slot = None;
            self.rotate();
        }
        if slot.is_none() {
            if let Some(d) = self.path.parent() {
                let _ = std::fs::create_dir_all(d);
            }
            *slot = std::fs::OpenOptions::new().create(true).append(true).open(&self.path).ok();
        }
        if let Some(f) = slot.as_mut() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_rotate_by_size() {
        let d = tempfile::tempdir().unwrap();
        let log = Log::new(d.path().join("daemon.log"), 200, 2);
        for i in 0..20 {
            log.event("request", serde_json::json!({"n": i}));
        }
        let cur = std::fs::read_to_string(d.path().join("daemon.log")).unwrap();
        assert!(cur.len() <= 200);
        let first: serde_json::Value = serde_json::from_str(cur.lines().next().unwrap()).unwrap();
        assert_eq!(first["event"], "request");
        assert!(d.path().join("daemon.log.1").exists() && d.path().join("daemon.log.2").exists());
        assert!(!d.path().join("daemon.log.3").exists());
    }
}
