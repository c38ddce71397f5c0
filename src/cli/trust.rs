//! `muster rotate-cert`, `muster maintain`, `muster serial-status`,
//! `muster revoke` (the dispatcher's side of keeping trust current) and
//! `muster agent self-check`.

use crate::dispatch::{registry, DispatcherConfig};
use crate::lifecycle::{maintain, revoke, rotation};
use anyhow::{anyhow, Result};
use std::path::Path;

fn cfg(state: &Path) -> Result<DispatcherConfig> {
    DispatcherConfig::load(state).map_err(|e| anyhow!(e))
}

/// Print per-agent push results; returns how many failed.
fn report(what: &str, rows: &[(String, Result<(), String>)]) -> usize {
    let mut failed = 0;
    for (name, r) in rows {
        match r {
            Ok(()) => println!("  {name}: {what}"),
            Err(why) => {
                failed += 1;
                println!("  {name}: not reached: {why}");
            }
        }
    }
    failed
}

pub fn rotate(state: &Path, overlap_days: f64, days: u32, force: bool) -> Result<u8> {
    let cfg = cfg(state)?;
    let r = super::run::runtime()?.block_on(rotation::rotate(state, &cfg, overlap_days, days, force))?;
    println!(
        "rotated: serial {} -> {}; the old serial stays trusted until {}: other instances sharing this identity use the new one from their next command; restart a resident `muster daemon` before then",
        r.previous, r.current, r.overlap_until
    );
    let failed = report("trusts the new serial", &r.agents);
    if failed > 0 {
        println!(
            "{} {} pending: `muster maintain` retries during the overlap",
            crate::words::plural(failed, "agent"),
            crate::words::is_are(failed)
        );
    }
    Ok(0)
}

pub fn maintain(state: &Path, renew_days: u32, days: u32) -> Result<u8> {
    let cfg = cfg(state)?;
    let lines =
        super::run::runtime()?.block_on(maintain::maintain(state, &cfg, crate::pairing::now(), renew_days, days))?;
    if lines.is_empty() {
        println!("nothing to do");
    }
    for l in lines {
        println!("{l}");
    }
    Ok(0)
}

pub fn serial_status(state: &Path, json: bool) -> Result<u8> {
    let me = crate::pki::load_dispatcher(state)?;
    let rot = rotation::load(state)?;
    let (entries, _) = registry::load_all(state);
    let status = |name: &str| -> String {
        match &rot {
            None => "current".into(),
            Some(r) => r.agents.get(name).map(|a| a.status.clone()).unwrap_or_else(|| "current".into()),
        }
    };
    if json {
        let agents: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                serde_json::json!({"name": e.name, "status": status(&e.name), "cert_serial": e.serial,
                "cert_not_after": e.not_after, "revoked": e.revoked})
            })
            .collect();
        let v = serde_json::json!({"dispatcher_id": me.id, "serial": me.serial, "rotation": rot, "agents": agents});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    println!("dispatcher {} serial {}", me.id, me.serial);
    if let Some(r) = &rot {
        let state = if r.previous_retired { "retired" } else { "trusted" };
        println!("previous serial {} ({state}; overlap until {})", r.previous, r.overlap_until);
    }
    for e in entries {
        let revoked = if e.revoked.is_some() { "  REVOKED" } else { "" };
        println!("{}\t{}\tcert {} until {}{revoked}", e.name, status(&e.name), e.serial, e.not_after);
    }
    Ok(0)
}

pub fn revoke(state: &Path, what: &str) -> Result<u8> {
    let cfg = cfg(state)?;
    let r = super::run::runtime()?.block_on(revoke::revoke(state, &cfg, what))?;
    match &r.agent {
        Some(a) => println!("revoked {a}'s certificate, serial {}", r.serial),
        None => println!("revoked serial {}", r.serial),
    }
    let failed = report("refuses it", &r.pushed);
    if !r.skipped.is_empty() {
        println!(
            "not told: revoked {} {} (never dialled); if one is paired again, run `muster revoke {what}` again",
            if r.skipped.len() == 1 { "agent" } else { "agents" },
            r.skipped.join(", ")
        );
    }
    if failed > 0 {
        println!(
            "{} {} not reached: run `muster revoke {what}` again when they are up",
            crate::words::plural(failed, "agent"),
            crate::words::was_were(failed)
        );
    }
    Ok(0)
}

pub fn self_check(config: &Path) -> Result<u8> {
    let checks = crate::agent::self_check::run(config);
    let mut failed = 0;
    for c in &checks {
        if !c.ok {
            failed += 1;
        }
        println!("{} {}: {}", if c.ok { "ok  " } else { "FAIL" }, c.what, c.detail);
    }
    if failed > 0 {
        println!("{failed} of {} checks failed", checks.len());
        return Ok(1);
    }
    Ok(0)
}
