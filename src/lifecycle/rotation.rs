//! Dispatcher certificate rotation (seed 002's "seamless rotation"):
//! `muster rotate-cert` issues this dispatcher a new certificate with the
//! same dispatcher id, pushes it to every registered agent with the
//! `rotate-serial` builtin (the agent adds the new serial beside the old
//! one), then switches to it; the old serial stays trusted for the overlap
//! (`cert_overlap_days`, 30) so other instances sharing this identity can
//! restart at their own pace and agents that were offline can still be
//! reached. `rotation.json` records the current and previous serial, the
//! overlap end and each agent's status (`updated`, `pending`, later
//! `retired` or `serial-stale`). Everything happens under an exclusive
//! lock on `rotation.lock`, so two instances never rotate at once.

use super::push::{self, CallError};
use super::LifecycleError;
use crate::dispatch::{registry, DispatcherConfig};
use crate::transport::carrier::Target;
use crate::transport::tls_carrier::TlsCarrier;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Default overlap of the old and new serial, days.
pub const DEFAULT_OVERLAP_DAYS: f64 = 30.0;

/// One agent's part in a rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRotation {
    /// `updated` (trusts the new serial), `pending` (not reached yet),
    /// `retired` (the old serial removed), `serial-stale` (missed the new
    /// serial until the overlap ended: needs re-pairing).
    pub status: String,
    /// RFC 3339 of the last change.
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `rotation.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    pub dispatcher_id: String,
    pub current: String,
    pub previous: String,
    pub rotated: String,
    pub overlap_until: String,
    /// Seconds since the epoch.
    pub overlap_until_s: u64,
    /// The previous serial has been retired from every agent that had it.
    pub previous_retired: bool,
    /// Serials of earlier rotations whose overlap was still open when
    /// `rotate-cert --force` started this one: retired with `previous`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub older: Vec<String>,
    pub agents: BTreeMap<String, AgentRotation>,
}

pub fn path(state: &Path) -> PathBuf {
    state.join("rotation.json")
}

/// The exclusive rotation lock, held while it lives.
pub struct RotationLock(#[allow(dead_code)] File);

pub fn lock(state: &Path) -> Result<RotationLock, LifecycleError> {
    let p = state.join("rotation.lock");
    let io = |source| LifecycleError::Io { path: p.clone(), source };
    let f = File::options().create(true).truncate(false).write(true).open(&p).map_err(io)?;
    f.lock().map_err(io)?;
    Ok(RotationLock(f))
}

pub fn load(state: &Path) -> Result<Option<Rotation>, LifecycleError> {
    let p = path(state);
    match std::fs::read(&p) {
        Ok(b) => {
            serde_json::from_slice(&b).map(Some).map_err(|e| LifecycleError::Corrupt { path: p, why: e.to_string() })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LifecycleError::Io { path: p, source }),
    }
}

pub fn save(state: &Path, r: &Rotation) -> Result<(), LifecycleError> {
    let p = path(state);
    let mut body =
        serde_json::to_vec_pretty(r).map_err(|e| LifecycleError::Corrupt { path: p.clone(), why: e.to_string() })?;
    body.push(b'\n');
    crate::fsutil::write_public(&p, &body).map_err(|source| LifecycleError::Io { path: p, source })
}

/// A carrier presenting the identity in `cert_pem`/`key_pem`.
pub fn carrier_for(
    state: &Path,
    cfg: &DispatcherConfig,
    id: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<TlsCarrier, LifecycleError> {
    let ca = crate::pki::load_certs(&state.join("ca").join("ca.crt"))?;
    let identity = crate::transport::tls::Identity {
        certs: crate::pki::parse_certs_pem(cert_pem)?,
        key: crate::pki::parse_key_pem(key_pem)?,
    };
    Ok(TlsCarrier {
        config: crate::transport::tls::client_config(&ca, identity)?,
        dispatcher_id: id.to_string(),
        connect_timeout: Duration::from_secs(cfg.connect_timeout),
        max_frame: crate::protocol::DEFAULT_MAX_FRAME,
        revoked: crate::transport::tls_carrier::revoked_serials(state),
    })
}

/// The registered, unrevoked agents as targets.
pub fn targets(state: &Path) -> Vec<Target> {
    let (entries, bad) = registry::load_all(state);
    for b in bad {
        tracing::warn!("{b}");
    }
    entries.into_iter().filter(|e| e.revoked.is_none()).map(|e| Target { name: e.name, addr: e.addr }).collect()
}

/// What a rotation did, agent by agent.
#[derive(Debug)]
pub struct Rotated {
    pub previous: String,
    pub current: String,
    pub overlap_until: String,
    pub agents: Vec<(String, Result<(), String>)>,
}

fn now_s() -> u64 {
    crate::pairing::now()
}

/// Rotate this dispatcher's certificate. Refused while a previous
/// rotation's overlap is open (its old serial not yet retired) unless
/// `force`.
pub async fn rotate(
    state: &Path,
    cfg: &DispatcherConfig,
    overlap_days: f64,
    days: u32,
    force: bool,
) -> Result<Rotated, LifecycleError> {
    let _lock = lock(state)?;
    let mut older = Vec::new();
    if let Some(old) = load(state)? {
        if !old.previous_retired && !force {
            return Err(LifecycleError::Refused(format!(
                "the previous rotation's overlap is still open (serial {} trusted until {}); run `muster maintain` after it, or pass --force",
                old.previous, old.overlap_until
            )));
        }
        // Forced: the serials not yet retired are retired with this
        // rotation's previous one, after its overlap.
        if !old.previous_retired {
            older = old.older;
            older.push(old.previous);
        }
    }
    let me = crate::pki::load_dispatcher(state)?;
    let new = crate::pki::issue_dispatcher(state, &me.id, days)?;
    let old_carrier = Arc::new(carrier_for(state, cfg, &me.id, &me.cert_pem, &me.key_pem)?);
    let answers = push::call_all(
        old_carrier,
        targets(state),
        "rotate-serial",
        vec![new.cert_pem.clone()],
        cfg.fanout,
        Duration::from_secs(cfg.connect_timeout.max(10)),
    )
    .await;
    crate::pki::switch_dispatcher(state, &me.id, &new)?;
    let now = now_s();
    let overlap_days = if overlap_days.is_finite() { overlap_days.clamp(0.0, 3650.0) } else { 0.0 };
    let overlap_until_s = now.saturating_add((overlap_days * 86_400.0).round() as u64);
    let mut rotation = Rotation {
        dispatcher_id: me.id.clone(),
        current: new.serial.clone(),
        previous: me.serial.clone(),
        rotated: crate::timefmt::unix_rfc3339(now),
        overlap_until: crate::timefmt::unix_rfc3339(overlap_until_s),
        overlap_until_s,
        previous_retired: false,
        older,
        agents: BTreeMap::new(),
    };
    let mut report = Vec::new();
    for (t, r) in answers {
        let outcome = match r {
            Ok(a) if a.exit == 0 => Ok(()),
            Ok(a) => Err(a.text()),
            Err(e) => Err(e.to_string()),
        };
        let status = AgentRotation {
            status: if outcome.is_ok() { "updated" } else { "pending" }.into(),
            at: rotation.rotated.clone(),
            detail: outcome.clone().err(),
        };
        rotation.agents.insert(t.name.clone(), status);
        report.push((t.name, outcome));
    }
    save(state, &rotation)?;
    Ok(Rotated { previous: me.serial, current: new.serial, overlap_until: rotation.overlap_until, agents: report })
}

/// The outcome of a push to one agent, as a status line detail.
pub fn describe(r: &Result<push::Answer, CallError>) -> Result<(), String> {
    match r {
        Ok(a) if a.exit == 0 => Ok(()),
        Ok(a) => Err(a.text()),
        Err(e) => Err(e.to_string()),
    }
}
