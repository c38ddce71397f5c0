//! `muster maintain`, meant for a timer: after a rotation's overlap, retire
//! the previous serial from every agent that has the new one and mark the
//! agents that never got it `serial-stale` (they need pairing again);
//! during the overlap, retry agents still `pending` with the previous
//! identity; renew agent certificates that expire within `renew_days`
//! (the agent makes a CSR for its own key, the dispatcher signs it, the
//! agent installs it: no re-pairing); prune expired pairing requests and
//! run records past their retention. Each step reports one line.

use super::rotation::{self, carrier_for, AgentRotation};
use super::{push, LifecycleError};
use crate::dispatch::{registry, runs, DispatcherConfig};
use crate::transport::carrier::Target;
use base64::Engine;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn limit(cfg: &DispatcherConfig) -> Duration {
    Duration::from_secs(cfg.connect_timeout.max(10))
}

/// Run every housekeeping step at time `now` (seconds since the epoch).
pub async fn maintain(
    state: &Path,
    cfg: &DispatcherConfig,
    now: u64,
    renew_days: u32,
    days: u32,
) -> Result<Vec<String>, LifecycleError> {
    let mut lines = Vec::new();
    {
        let _lock = rotation::lock(state)?;
        if let Some(mut r) = rotation::load(state)? {
            if !r.previous_retired {
                rotation_step(state, cfg, &mut r, now, &mut lines).await?;
                rotation::save(state, &r)?;
            }
        }
    }
    renew(state, cfg, now, renew_days, days, &mut lines).await?;
    let expired = crate::pairing::store::list(state, now).map(|l| l.len());
    if let Err(e) = expired {
        lines.push(format!("pairing: {e}"));
    }
    let pruned = runs::prune(state, cfg.result_retention, now);
    if pruned > 0 {
        lines.push(format!("pruned {pruned} run records older than {}s", cfg.result_retention));
    }
    Ok(lines)
}

async fn rotation_step(
    state: &Path,
    cfg: &DispatcherConfig,
    r: &mut rotation::Rotation,
    now: u64,
    lines: &mut Vec<String>,
) -> Result<(), LifecycleError> {
    let at = crate::timefmt::unix_rfc3339(now);
    let regs: Vec<Target> = rotation::targets(state);
    let pick = |r: &rotation::Rotation, status: &str| -> Vec<Target> {
        regs.iter().filter(|t| r.agents.get(&t.name).is_some_and(|a| a.status == status)).cloned().collect()
    };
    let me = crate::pki::load_dispatcher(state)?;
    if now < r.overlap_until_s {
        let pending = pick(r, "pending");
        if pending.is_empty() {
            return Ok(());
        }
        let read = |f: &str| std::fs::read_to_string(state.join(f));
        let (Ok(cert), Ok(key)) = (read("dispatcher.prev.crt"), read("dispatcher.prev.key")) else {
            lines.push("rotation: the previous certificate is gone; pending agents cannot be updated".into());
            return Ok(());
        };
        let old = Arc::new(carrier_for(state, cfg, &me.id, &cert, &key)?);
        for (t, res) in
            push::call_all(old, pending, "rotate-serial", vec![me.cert_pem.clone()], cfg.fanout, limit(cfg)).await
        {
            match rotation::describe(&res) {
                Ok(()) => {
                    lines.push(format!("{}: now trusts serial {}", t.name, r.current));
                    r.agents.insert(t.name, AgentRotation { status: "updated".into(), at: at.clone(), detail: None });
                }
                Err(why) => lines.push(format!("{}: still pending ({why})", t.name)),
            }
        }
        return Ok(());
    }
    // The overlap is over.
    for t in pick(r, "pending") {
        lines.push(format!("{}: serial-stale: it never got serial {}; pair it again", t.name, r.current));
        r.agents.insert(
            t.name,
            AgentRotation { status: "serial-stale".into(), at: at.clone(), detail: Some("missed the rotation".into()) },
        );
    }
    let current = Arc::new(carrier_for(state, cfg, &me.id, &me.cert_pem, &me.key_pem)?);
    // The previous serial, and those of rotations forced during an open
    // overlap; an agent is retired once every one is gone from it.
    let serials: Vec<String> = std::iter::once(r.previous.clone()).chain(r.older.iter().cloned()).collect();
    let updated = pick(r, "updated");
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    for serial in &serials {
        let targets: Vec<Target> = updated.iter().filter(|t| !failed.contains_key(&t.name)).cloned().collect();
        for (t, res) in
            push::call_all(current.clone(), targets, "retire-serial", vec![serial.clone()], cfg.fanout, limit(cfg))
                .await
        {
            if let Err(why) = rotation::describe(&res) {
                lines.push(format!("{}: cannot retire serial {serial} yet ({why})", t.name));
                failed.insert(t.name, why);
            }
        }
    }
    for t in updated {
        match failed.remove(&t.name) {
            None => {
                lines.push(format!("{}: serial-retire {} done", t.name, serials.join(", ")));
                r.agents.insert(t.name, AgentRotation { status: "retired".into(), at: at.clone(), detail: None });
            }
            Some(why) => {
                if let Some(a) = r.agents.get_mut(&t.name) {
                    a.detail = Some(why);
                }
            }
        }
    }
    if !r.agents.values().any(|a| a.status == "updated") {
        r.previous_retired = true;
        r.older.clear();
        let _ = std::fs::remove_file(state.join("dispatcher.prev.key"));
        let _ = std::fs::remove_file(state.join("dispatcher.prev.crt"));
        lines.push(format!("rotation: serial {} retired", serials.join(", ")));
    }
    Ok(())
}

/// Renew every agent certificate expiring within `renew_days`.
async fn renew(
    state: &Path,
    cfg: &DispatcherConfig,
    now: u64,
    renew_days: u32,
    days: u32,
    lines: &mut Vec<String>,
) -> Result<(), LifecycleError> {
    let horizon = now.saturating_add(u64::from(renew_days) * 86_400);
    let (entries, _) = registry::load_all(state);
    let due: Vec<registry::AgentEntry> = entries
        .into_iter()
        .filter(|e| e.revoked.is_none())
        .filter(|e| {
            time::OffsetDateTime::parse(&e.not_after, &time::format_description::well_known::Rfc3339)
                .is_ok_and(|t| u64::try_from(t.unix_timestamp()).unwrap_or(0) <= horizon)
        })
        .collect();
    if due.is_empty() {
        return Ok(());
    }
    let me = crate::pki::load_dispatcher(state)?;
    let carrier = carrier_for(state, cfg, &me.id, &me.cert_pem, &me.key_pem)?;
    for mut e in due {
        let t = Target { name: e.name.clone(), addr: e.addr.clone() };
        let csr = match push::call(&carrier, &t, "renew-csr", &[], limit(cfg)).await {
            Ok(a) if a.exit == 0 => base64::engine::general_purpose::STANDARD.decode(a.text()).ok(),
            Ok(a) => {
                lines.push(format!("{}: cannot renew: {}", e.name, a.text()));
                continue;
            }
            Err(err) => {
                lines.push(format!("{}: cannot renew now: {err}", e.name));
                continue;
            }
        };
        let checked = csr.as_deref().map(|d| crate::pki::csr::check_csr(d, &e.name));
        let Some(Ok(checked)) = checked else {
            lines.push(format!("{}: cannot renew: its CSR does not check", e.name));
            continue;
        };
        let cert = crate::pki::issue_agent_from_csr(state, &e.name, &checked, days)?;
        match push::call(&carrier, &t, "install-cert", std::slice::from_ref(&cert.cert_pem), limit(cfg)).await {
            Ok(a) if a.exit == 0 => {
                lines.push(format!("{}: renewed, serial {} valid until {}", e.name, cert.serial, cert.not_after));
                e.serial = cert.serial;
                e.not_after = cert.not_after;
                registry::save(state, &e)?;
            }
            Ok(a) => lines.push(format!("{}: the agent refused its renewed certificate: {}", e.name, a.text())),
            Err(err) => lines.push(format!("{}: cannot install the renewed certificate: {err}", e.name)),
        }
    }
    Ok(())
}
