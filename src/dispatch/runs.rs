//! The dispatcher's record of every run, `<state>/runs/<request-id>.json`
//! (written atomically when a run starts and again when its dispatch
//! ends): what ran, where, how, and how each target ended. `muster
//! list-requests` lists them; `muster status` and `muster wait` read them
//! to know which agents to ask for an asynchronous run's results (the
//! agents keep the results themselves). Records are pruned after the
//! retention (`result_retention` in dispatcher.toml, one day).

use super::outcome::Outcome;
use super::plan::Plan;
use crate::fsutil;
use crate::transport::carrier::Target;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How one target's dispatch ended, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEnd {
    pub target: String,
    pub state: String,
    pub detail: String,
    #[serde(default)]
    pub exit: Option<i32>,
}

/// One run, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub request_id: String,
    pub action: String,
    pub args: Vec<String>,
    pub username: String,
    pub dispatcher: String,
    pub via: String,
    /// Asynchronous (`--async`): results are collected from the agents.
    pub detach: bool,
    /// The targets dialled (name and address), in plan order.
    pub targets: Vec<RecordTarget>,
    /// RFC 3339.
    pub started: String,
    /// Seconds since the epoch (for pruning).
    pub started_s: u64,
    #[serde(default)]
    pub ended: Option<String>,
    /// One per target once the dispatch ended.
    #[serde(default)]
    pub results: Vec<RecordedEnd>,
    /// The exit status of the dispatch, once ended.
    #[serde(default)]
    pub exit: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordTarget {
    pub name: String,
    pub addr: String,
}

impl RunRecord {
    /// The record of a plan about to be dispatched.
    pub fn of(plan: &Plan, now: u64) -> RunRecord {
        RunRecord {
            request_id: plan.request.request_id.clone(),
            action: plan.request.action.clone(),
            args: plan.request.args.clone(),
            username: plan.request.username.clone(),
            dispatcher: plan.dispatcher.clone(),
            via: plan.via.clone(),
            detach: plan.request.detach,
            targets: plan.targets.iter().map(|t| RecordTarget { name: t.name.clone(), addr: t.addr.clone() }).collect(),
            started: crate::timefmt::unix_rfc3339(now),
            started_s: now,
            ended: None,
            results: Vec::new(),
            exit: None,
        }
    }

    /// Fold in how the dispatch ended.
    pub fn end(&mut self, outcome: &Outcome, now: u64) {
        self.ended = Some(crate::timefmt::unix_rfc3339(now));
        self.exit = Some(outcome.exit_status());
        self.results = outcome
            .results
            .iter()
            .map(|r| RecordedEnd {
                target: r.name.clone(),
                state: r.state.label().to_string(),
                detail: r.state.to_string(),
                exit: r.state.exit_code(),
            })
            .collect();
    }

    /// The targets to ask for results: those the dispatch started (or all
    /// of them when the dispatch never recorded its end).
    pub fn started_targets(&self) -> Vec<Target> {
        let started =
            |n: &str| self.results.is_empty() || self.results.iter().any(|r| r.target == n && r.state == "dispatched");
        self.targets
            .iter()
            .filter(|t| started(&t.name))
            .map(|t| Target { name: t.name.clone(), addr: t.addr.clone() })
            .collect()
    }
}

/// Why a record cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    #[error("no request {0} in this dispatcher's runs (see `muster list-requests`)")]
    NotFound(String),
    #[error("{} is not a run record: {why}", .path.display())]
    Corrupt { path: PathBuf, why: String },
    #[error("cannot write {}: {source}", .path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

pub fn dir(state: &Path) -> PathBuf {
    state.join("runs")
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Write (or replace) a record atomically.
pub fn save(state: &Path, r: &RunRecord) -> Result<(), RunsError> {
    let path = dir(state).join(format!("{}.json", r.request_id));
    let mut body =
        serde_json::to_vec_pretty(r).map_err(|e| RunsError::Corrupt { path: path.clone(), why: e.to_string() })?;
    body.push(b'\n');
    fsutil::write_atomic(&path, &body, 0o600).map_err(|source| RunsError::Write { path, source })
}

/// Read record `id`.
pub fn load(state: &Path, id: &str) -> Result<RunRecord, RunsError> {
    if !valid_id(id) {
        return Err(RunsError::NotFound(id.to_string()));
    }
    let path = dir(state).join(format!("{id}.json"));
    let bytes = std::fs::read(&path).map_err(|_| RunsError::NotFound(id.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| RunsError::Corrupt { path, why: e.to_string() })
}

/// Every readable record, newest first.
pub fn list(state: &Path) -> Vec<RunRecord> {
    let mut out: Vec<RunRecord> = std::fs::read_dir(dir(state))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            load(state, name.strip_suffix(".json")?).ok()
        })
        .collect();
    out.sort_by(|a, b| b.started_s.cmp(&a.started_s).then_with(|| a.request_id.cmp(&b.request_id)));
    out
}

/// Remove records that started more than `retention_s` seconds before `now`.
pub fn prune(state: &Path, retention_s: u64, now: u64) -> usize {
    let mut n = 0;
    for r in list(state) {
        if now.saturating_sub(r.started_s) >= retention_s
            && std::fs::remove_file(dir(state).join(format!("{}.json", r.request_id))).is_ok()
        {
            n += 1;
        }
    }
    n
}
