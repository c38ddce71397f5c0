//! Pending pairing requests, as files in `<state>/pairing/<id>.json` so
//! that any process on the same state dir can list, approve or deny them
//! (`muster pair list|approve|deny`) while `muster pair listen` holds the
//! agent's connection and delivers the decision. Every change happens
//! under an exclusive lock on `pairing/.lock`, so two dispatcher instances
//! never approve one request twice; files are written atomically. Time is
//! passed in (seconds since the epoch), so expiry is tested without
//! waiting. At most [`MAX_PENDING`] requests wait at once.

use crate::dispatch::registry::{self, AgentEntry};
use crate::fsutil;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Most requests waiting at once; more are refused.
pub const MAX_PENDING: usize = 100;
/// Decided requests (approved or denied) whose agent never collected the
/// answer are removed after this many seconds.
const DECIDED_KEEP_S: u64 = 60;

#[derive(Debug, Error)]
pub enum PairError {
    #[error("{MAX_PENDING} pairing requests are already waiting; approve or deny some first")]
    TooMany,
    #[error("no pending pairing request {0} (it may have expired, been decided, or its agent gone away)")]
    NoSuchRequest(String),
    #[error("{name} is already paired (certificate serial {serial}); approve with --replace to pair it again")]
    AlreadyPaired { name: String, serial: String },
    #[error("pairing request {0} expired")]
    Expired(String),
    #[error("pairing request {0} was held by `muster pair listen` (pid {1}), which has stopped, so nobody could deliver the certificate; the request is removed; start `muster pair listen` and have the agent ask again")]
    ListenerGone(String, u32),
    #[error("cannot use {}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{} is not a pairing request: {why}", .path.display())]
    Corrupt { path: PathBuf, why: String },
    #[error("cannot sign the certificate: {0}")]
    Sign(#[from] crate::pki::PkiError),
    #[error("the CSR of {0} no longer checks: {1}")]
    Csr(String, crate::pki::csr::CsrError),
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
}

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Decision {
    Pending,
    Approved { cert_pem: String, serial: String, not_after: String },
    Denied { reason: String },
}

/// One pairing request as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: String,
    pub name: String,
    pub addr: String,
    pub tags: Vec<String>,
    /// Where the request came from (`ip:port`).
    pub peer: String,
    /// `ECDSA P-256`, `RSA 4096`, ...
    pub key_type: String,
    /// The 6-digit pairing code.
    pub code: String,
    /// The CSR, DER in base64.
    pub csr: String,
    /// Seconds since the epoch.
    pub received: u64,
    pub expires: u64,
    /// The serial of an existing registry entry of the same name, if any.
    #[serde(default)]
    pub replaces: Option<String>,
    #[serde(flatten)]
    pub decision: Decision,
    /// When it was decided (seconds since the epoch).
    #[serde(default)]
    pub decided: Option<u64>,
    /// The pid of the `muster pair listen` holding the agent's connection;
    /// a request whose listener is gone can never be delivered.
    #[serde(default)]
    pub listener: Option<u32>,
}

impl Request {
    /// True when the listener that holds this request's connection is gone.
    pub fn orphaned(&self) -> bool {
        self.listener.is_some_and(|pid| !crate::exec::runner::process_alive(pid as i32))
    }
}

/// The pairing directory of a state dir.
pub fn dir(state: &Path) -> PathBuf {
    state.join("pairing")
}

fn path(state: &Path, id: &str) -> PathBuf {
    dir(state).join(format!("{id}.json"))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PairError + '_ {
    move |source| PairError::Io { path: path.to_path_buf(), source }
}

/// An exclusive lock on the pairing directory, held while it lives.
struct DirLock(#[allow(dead_code)] File);

fn lock(state: &Path) -> Result<DirLock, PairError> {
    let d = dir(state);
    std::fs::create_dir_all(&d).map_err(io(&d))?;
    let p = d.join(".lock");
    let f = File::options().create(true).truncate(false).write(true).open(&p).map_err(io(&p))?;
    f.lock().map_err(io(&p))?;
    Ok(DirLock(f))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.chars().all(|c| c.is_ascii_hexdigit())
}

/// Read request `id`; `None` when there is no such file.
pub fn load(state: &Path, id: &str) -> Result<Option<Request>, PairError> {
    if !valid_id(id) {
        return Ok(None);
    }
    let p = path(state, id);
    match std::fs::read(&p) {
        Ok(b) => {
            serde_json::from_slice(&b).map(Some).map_err(|e| PairError::Corrupt { path: p.clone(), why: e.to_string() })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&p)(e)),
    }
}

fn save(state: &Path, r: &Request) -> Result<(), PairError> {
    let p = path(state, &r.id);
    let mut body =
        serde_json::to_vec_pretty(r).map_err(|e| PairError::Corrupt { path: p.clone(), why: e.to_string() })?;
    body.push(b'\n');
    fsutil::write_atomic(&p, &body, 0o600).map_err(io(&p))
}

/// Remove request `id` (done, gone, or collected).
pub fn remove(state: &Path, id: &str) {
    if valid_id(id) {
        let _ = std::fs::remove_file(path(state, id));
    }
}

/// Every stored request, after removing expired pending ones and decided
/// ones nobody collected.
fn sweep(state: &Path, now: u64) -> Result<Vec<Request>, PairError> {
    let d = dir(state);
    let rd = match std::fs::read_dir(&d) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&d)(e)),
    };
    let mut out = Vec::new();
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(id) = name.strip_suffix(".json") else { continue };
        let Ok(Some(r)) = load(state, id) else { continue };
        let stale = match r.decision {
            Decision::Pending => now >= r.expires || r.orphaned(),
            _ => r.decided.is_some_and(|d| now >= d + DECIDED_KEEP_S),
        };
        if stale {
            remove(state, id);
        } else {
            out.push(r);
        }
    }
    out.sort_by_key(|r| (r.received, r.id.clone()));
    Ok(out)
}

/// What a new request brings.
pub struct NewRequest {
    pub name: String,
    pub addr: String,
    pub tags: Vec<String>,
    pub peer: String,
    pub key_type: String,
    pub code: String,
    pub csr_der: Vec<u8>,
    /// The pid of the listener that holds the connection.
    pub listener: Option<u32>,
}

/// Queue a request valid for `expire_s` seconds from `now`. A pending
/// request for the same name is superseded (denied).
pub fn queue(state: &Path, new: NewRequest, now: u64, expire_s: u64) -> Result<Request, PairError> {
    let _l = lock(state)?;
    let existing = sweep(state, now)?;
    for old in existing.iter().filter(|r| r.name == new.name && r.decision == Decision::Pending) {
        let mut old = old.clone();
        old.decision = Decision::Denied { reason: "superseded by a newer request for the same name".into() };
        old.decided = Some(now);
        save(state, &old)?;
    }
    if existing.iter().filter(|r| r.decision == Decision::Pending && r.name != new.name).count() >= MAX_PENDING {
        return Err(PairError::TooMany);
    }
    let replaces = registry::load(state, &new.name)?.map(|e| e.serial);
    let r = Request {
        id: crate::hexstr::random(4),
        name: new.name,
        addr: new.addr,
        tags: new.tags,
        peer: new.peer,
        key_type: new.key_type,
        code: new.code,
        csr: base64::engine::general_purpose::STANDARD.encode(&new.csr_der),
        received: now,
        expires: now.saturating_add(expire_s),
        replaces,
        decision: Decision::Pending,
        decided: None,
        listener: new.listener,
    };
    save(state, &r)?;
    Ok(r)
}

/// Pending requests, oldest first (expired ones are removed).
pub fn list(state: &Path, now: u64) -> Result<Vec<Request>, PairError> {
    let _l = lock(state)?;
    Ok(sweep(state, now)?.into_iter().filter(|r| r.decision == Decision::Pending).collect())
}

fn pending(state: &Path, id: &str, now: u64) -> Result<Request, PairError> {
    let r = load(state, id)?.ok_or_else(|| PairError::NoSuchRequest(id.to_string()))?;
    if r.decision != Decision::Pending {
        return Err(PairError::NoSuchRequest(id.to_string()));
    }
    if now >= r.expires {
        remove(state, id);
        return Err(PairError::Expired(id.to_string()));
    }
    if let (true, Some(pid)) = (r.orphaned(), r.listener) {
        remove(state, id);
        return Err(PairError::ListenerGone(id.to_string(), pid));
    }
    Ok(r)
}

/// Remove the pending requests held by listener `pid` (it is stopping).
pub fn remove_held_by(state: &Path, pid: u32) {
    let Ok(_l) = lock(state) else { return };
    let Ok(rd) = std::fs::read_dir(dir(state)) else { return };
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(id) = name.strip_suffix(".json") else { continue };
        if let Ok(Some(r)) = load(state, id) {
            if r.listener == Some(pid) && r.decision == Decision::Pending {
                remove(state, id);
            }
        }
    }
}

/// Approve request `id`: sign its CSR, write the registry entry, and record
/// the certificate for the listener to deliver. A name already in the
/// registry needs `replace`.
pub fn approve(state: &Path, id: &str, replace: bool, now: u64, days: u32) -> Result<Request, PairError> {
    let _l = lock(state)?;
    let mut r = pending(state, id, now)?;
    if let Some(old) = registry::load(state, &r.name)? {
        if !replace {
            return Err(PairError::AlreadyPaired { name: r.name.clone(), serial: old.serial });
        }
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(&r.csr)
        .map_err(|e| PairError::Corrupt { path: path(state, id), why: e.to_string() })?;
    let csr = crate::pki::csr::check_csr(&der, &r.name).map_err(|e| PairError::Csr(r.name.clone(), e))?;
    let cert = crate::pki::issue_agent_from_csr(state, &r.name, &csr, days)?;
    let entry = AgentEntry {
        name: r.name.clone(),
        addr: r.addr.clone(),
        tags: r.tags.clone(),
        serial: cert.serial.clone(),
        not_after: cert.not_after.clone(),
        added: crate::timefmt::unix_rfc3339(now),
        paired: Some(crate::timefmt::unix_rfc3339(now)),
        revoked: None,
    };
    registry::save(state, &entry)?;
    r.decision = Decision::Approved { cert_pem: cert.cert_pem, serial: cert.serial, not_after: cert.not_after };
    r.decided = Some(now);
    save(state, &r)?;
    Ok(r)
}

/// Deny request `id` with `reason`.
pub fn deny(state: &Path, id: &str, reason: &str, now: u64) -> Result<Request, PairError> {
    let _l = lock(state)?;
    let mut r = pending(state, id, now)?;
    r.decision = Decision::Denied { reason: reason.to_string() };
    r.decided = Some(now);
    save(state, &r)?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(name: &str) -> NewRequest {
        NewRequest {
            name: name.into(),
            addr: "127.0.0.9:7443".into(),
            tags: vec![],
            peer: "127.0.0.9:5000".into(),
            key_type: "ECDSA P-256".into(),
            code: "123456".into(),
            csr_der: vec![1, 2, 3],
            listener: None,
        }
    }

    #[test]
    fn expiry_with_an_injected_clock() {
        let d = tempfile::tempdir().unwrap();
        let r = queue(d.path(), new("a1"), 1_000, 600).unwrap();
        assert_eq!(list(d.path(), 1_599).unwrap().len(), 1);
        assert!(list(d.path(), 1_600).unwrap().is_empty(), "expired at received + 600 s");
        assert!(load(d.path(), &r.id).unwrap().is_none(), "and removed");
        let r = queue(d.path(), new("a1"), 2_000, 600).unwrap();
        assert!(matches!(deny(d.path(), &r.id, "no", 2_600), Err(PairError::Expired(_))));
    }

    #[test]
    fn deny_supersede_and_the_pending_cap() {
        let d = tempfile::tempdir().unwrap();
        let a = queue(d.path(), new("a1"), 1_000, 600).unwrap();
        let b = queue(d.path(), new("a1"), 1_001, 600).unwrap();
        assert!(matches!(load(d.path(), &a.id).unwrap().unwrap().decision, Decision::Denied { .. }));
        let denied = deny(d.path(), &b.id, "not this one", 1_002).unwrap();
        assert_eq!(denied.decision, Decision::Denied { reason: "not this one".into() });
        assert!(matches!(deny(d.path(), &b.id, "again", 1_003), Err(PairError::NoSuchRequest(_))));
        assert!(list(d.path(), 1_003 + DECIDED_KEEP_S).unwrap().is_empty());
        for i in 0..MAX_PENDING {
            queue(d.path(), new(&format!("n{i}")), 5_000, 600).unwrap();
        }
        assert!(matches!(queue(d.path(), new("one-more"), 5_000, 600), Err(PairError::TooMany)));
        assert!(load(d.path(), "../../etc/passwd").unwrap().is_none());
    }

    #[test]
    fn a_request_whose_listener_is_gone_cannot_be_approved() {
        let d = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        let r = queue(d.path(), NewRequest { listener: Some(gone), ..new("a1") }, 1_000, 600).unwrap();
        match approve(d.path(), &r.id, false, 1_001, 30) {
            Err(e @ PairError::ListenerGone(..)) => assert!(e.to_string().contains("pair listen"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(load(d.path(), &r.id).unwrap().is_none(), "removed");
        let live = queue(d.path(), NewRequest { listener: Some(std::process::id()), ..new("a2") }, 1_000, 600).unwrap();
        let orphan = queue(d.path(), NewRequest { listener: Some(gone), ..new("a3") }, 1_000, 600).unwrap();
        let listed: Vec<String> = list(d.path(), 1_002).unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(listed, vec![live.id.clone()], "an orphan is swept from the list");
        assert!(load(d.path(), &orphan.id).unwrap().is_none());
        remove_held_by(d.path(), std::process::id());
        assert!(list(d.path(), 1_003).unwrap().is_empty(), "a stopping listener removes what it held");
    }
}
