//! `muster revoke NAME|SERIAL`: an agent's certificate (by registry name)
//! or any serial (another dispatcher's, a lost one) is refused from now
//! on. The dispatcher lists it in `<state>/revoked-serials` and never
//! dials a revoked agent; the serial is pushed to every reachable agent's
//! `revoked-serials` with the `revoke-serial` builtin, so agents refuse it
//! as a client too. Agents that cannot be reached are listed, to push
//! again later (`muster revoke` is idempotent).

use super::rotation::{carrier_for, targets};
use super::{push, LifecycleError};
use crate::agent::trust::parse_serial;
use crate::dispatch::{registry, DispatcherConfig};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What a revocation did.
#[derive(Debug)]
pub struct Revoked {
    pub serial: String,
    /// The registry entry marked revoked, if the argument named one.
    pub agent: Option<String>,
    pub pushed: Vec<(String, Result<(), String>)>,
    /// Revoked agents, not told (they are never dialled); one paired again
    /// needs the revocation pushed again.
    pub skipped: Vec<String>,
}

pub async fn revoke(state: &Path, cfg: &DispatcherConfig, what: &str) -> Result<Revoked, LifecycleError> {
    let (serial, agent) = match registry::load(state, what) {
        Ok(Some(mut e)) => {
            e.revoked = Some(crate::timefmt::now_rfc3339());
            registry::save(state, &e)?;
            (e.serial.clone(), Some(e.name))
        }
        _ => {
            let s = parse_serial(what).map_err(|_| {
                LifecycleError::Refused(format!("{what:?} is neither a registered agent nor a hex serial"))
            })?;
            (s, None)
        }
    };
    let me = crate::pki::load_dispatcher(state)?;
    if serial == me.serial {
        return Err(LifecycleError::Refused(
            "that is this dispatcher's own serial: rotate first (`muster rotate-cert`), then revoke the old one".into(),
        ));
    }
    crate::agent::trust_edit::edit(state, "revoked-serials", |t| {
        (crate::agent::trust_edit::with_revoked(t, &serial), ())
    })
    .map_err(|source| LifecycleError::Io { path: state.join("revoked-serials"), source })?;
    let carrier = Arc::new(carrier_for(state, cfg, &me.id, &me.cert_pem, &me.key_pem)?);
    let limit = Duration::from_secs(cfg.connect_timeout.max(10));
    let answers =
        push::call_all(carrier, targets(state), "revoke-serial", vec![serial.clone()], cfg.fanout, limit).await;
    let pushed = answers.into_iter().map(|(t, r)| (t.name, super::rotation::describe(&r))).collect();
    let skipped = registry::load_all(state)
        .0
        .into_iter()
        .filter(|e| e.revoked.is_some() && agent.as_deref() != Some(e.name.as_str()))
        .map(|e| e.name)
        .collect();
    Ok(Revoked { serial, agent, pushed, skipped })
}
