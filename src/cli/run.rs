//! `muster run` and `muster ping`: resolve targets, apply the dispatcher
//! hook, fan out over mTLS, print, summarize, exit with the bitmask.

use super::RunArgs;
use crate::dispatch::carrier::TlsCarrier;
use crate::dispatch::outcome::{self, State, TargetResult};
use crate::dispatch::output::{spawn_printer, Mode};
use crate::dispatch::runner::{self, Plan};
use crate::dispatch::{self, DispatcherConfig};
use crate::exec::hook::{self, Verdict};
use crate::transport::tls::{self, Identity};
use anyhow::{anyhow, bail, Context, Result};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The mTLS carrier for the dispatcher whose state is in `state`.
pub fn tls_carrier(state: &Path, cfg: &DispatcherConfig) -> Result<TlsCarrier> {
    let me = crate::pki::load_dispatcher(state)?;
    let ca = crate::pki::load_certs(&state.join("ca").join("ca.crt"))?;
    let identity =
        Identity { certs: crate::pki::parse_certs_pem(&me.cert_pem)?, key: crate::pki::parse_key_pem(&me.key_pem)? };
    Ok(TlsCarrier {
        config: tls::client_config(&ca, identity)?,
        dispatcher_id: me.id,
        connect_timeout: Duration::from_secs(cfg.connect_timeout),
        max_frame: crate::protocol::DEFAULT_MAX_FRAME,
    })
}

pub fn request_id() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::getrandom(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn run(state: &Path, a: RunArgs) -> Result<u8> {
    let cfg = DispatcherConfig::load(state).map_err(|e| anyhow!(e))?;
    if a.via == super::Via::Hub {
        return super::hub::run(state, &cfg, a);
    }
    let (action, args) = a.command.split_first().ok_or_else(|| anyhow!("no action given after --"))?;
    if let Some(t) = a.timeout {
        if !(t.is_finite() && t > 0.0) {
            bail!("--timeout must be a positive number of seconds");
        }
    }
    let resolved = dispatch::resolve(state, &a.targets, &a.tags).map_err(|e| anyhow!(e))?;
    if resolved.targets.is_empty() && resolved.missing.is_empty() {
        bail!(
            "no agent matches {:?}{}",
            a.targets,
            if a.tags.is_empty() { String::new() } else { format!(" with tags {}", a.tags.join(",")) }
        );
    }
    let carrier = Arc::new(tls_carrier(state, &cfg)?);
    let mode = a.output.unwrap_or(if std::io::stdout().is_terminal() { Mode::Live } else { Mode::Grouped });
    let plan = Plan {
        targets: resolved.targets,
        missing: resolved.missing,
        request_id: request_id(),
        action: action.clone(),
        args: args.to_vec(),
        username: a.username.clone().or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "unknown".into()),
        token: a.token.clone().or_else(|| std::env::var("MUSTER_TOKEN").ok()),
        timeout: a.timeout.map(Duration::from_secs_f64),
        fanout: a.fanout.unwrap_or(cfg.fanout),
        max_errors: a.max_errors,
        lock_dir: Some(state.join("locks")),
    };
    let t0 = Instant::now();
    let rt = runtime()?;
    let results = rt.block_on(async move {
        if let Some(hook_path) = &cfg.hook {
            if let Some(refused) = dispatcher_hook(hook_path, &cfg, &carrier.dispatcher_id, &plan).await {
                return refused;
            }
        }
        let (tx, printer) = spawn_printer(mode);
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("muster: interrupted; cancelling running targets, skipping the rest");
                let _ = stop_tx.send(true);
            }
        });
        let results = runner::dispatch(carrier, plan, tx, stop_rx).await;
        let _ = printer.await;
        results
    });
    eprint!("{}", outcome::summary(&results, t0.elapsed()));
    Ok(outcome::exit_status(&results))
}

/// Run the dispatcher-side hook once for the whole run; on denial every
/// target ends refused and nothing is dialled.
async fn dispatcher_hook(
    path: &Path,
    cfg: &DispatcherConfig,
    dispatcher: &str,
    plan: &Plan,
) -> Option<Vec<TargetResult>> {
    let names: Vec<&str> = plan.targets.iter().map(|t| t.name.as_str()).collect();
    let ctx = serde_json::json!({
        "request_id": plan.request_id, "action": plan.action, "args": plan.args,
        "username": plan.username, "token": plan.token.as_ref().map(|_| "XXX"),
        "dispatcher": dispatcher, "targets": names,
    });
    let env = vec![
        ("MUSTER_REQUEST_ID".to_string(), plan.request_id.clone()),
        ("MUSTER_ACTION".to_string(), plan.action.clone()),
        ("MUSTER_USERNAME".to_string(), plan.username.clone()),
        ("MUSTER_DISPATCHER".to_string(), dispatcher.to_string()),
        ("MUSTER_TOKEN".to_string(), plan.token.clone().unwrap_or_default()),
    ];
    let why = match hook::run_hook(path, &ctx, &env, Duration::from_secs(cfg.hook_timeout)).await {
        Verdict::Allow => return None,
        Verdict::Deny(w) => format!("denied: {w}"),
        Verdict::Error(w) => format!("auth hook error: {w}"),
    };
    eprintln!("muster: dispatcher hook refused the run: {why}");
    Some(
        plan.targets
            .iter()
            .map(|t| TargetResult { name: t.name.clone(), state: State::Refused(why.clone()), truncated: false })
            .collect(),
    )
}

pub fn ping(state: &Path, spec: &str, tags: &[String], fanout: Option<usize>) -> Result<u8> {
    let cfg = DispatcherConfig::load(state).map_err(|e| anyhow!(e))?;
    let resolved = dispatch::resolve(state, spec, tags).map_err(|e| anyhow!(e))?;
    if resolved.targets.is_empty() && resolved.missing.is_empty() {
        bail!("no agent matches {spec:?}");
    }
    let carrier = Arc::new(tls_carrier(state, &cfg)?);
    let t0 = Instant::now();
    let limit = Duration::from_secs(cfg.connect_timeout);
    let got =
        runtime()?.block_on(dispatch::ping::ping_all(carrier, resolved.targets, fanout.unwrap_or(cfg.fanout), limit));
    let mut results = Vec::new();
    for (name, why) in resolved.missing {
        println!("{name}: unreachable ({why})");
        results.push(TargetResult { name, state: State::Unreachable(why), truncated: false });
    }
    for (r, rtt) in got {
        match rtt {
            Some(d) => println!("{}: ok {:.1} ms", r.name, d.as_secs_f64() * 1000.0),
            None => println!("{}: {}", r.name, r.state),
        }
        results.push(r);
    }
    eprint!("{}", outcome::summary(&results, t0.elapsed()));
    Ok(outcome::exit_status(&results))
}
