//! `muster run` and `muster ping`: turn the arguments into a plan and a
//! carrier (mTLS here, the hub in `cli::hub`), then take the one dispatch
//! path: print while it runs, summarize, exit with the bitmask.

use super::RunArgs;
use crate::dispatch::outcome::{self, Outcome, State, TargetResult};
use crate::dispatch::output::{spawn_printer_with, Mode};
use crate::dispatch::plan::{HookSpec, Plan, Request};
use crate::dispatch::{self, DispatcherConfig};
use crate::transport::carrier::Carrier;
use crate::transport::tls_carrier::TlsCarrier;
use anyhow::{anyhow, bail, Context, Result};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The process's one async runtime (two workers), built on first use;
/// tasks spawned in one `block_on` (a daemon connection) live on for the
/// next.
pub fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    if let Some(rt) = RT.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(RT.get_or_init(|| rt))
}

/// The mTLS carrier for the dispatcher whose state is in `state`.
pub fn tls_carrier(state: &Path, cfg: &DispatcherConfig) -> Result<TlsCarrier> {
    crate::transport::tls_carrier::for_state(state, Duration::from_secs(cfg.connect_timeout)).map_err(|e| anyhow!(e))
}

/// A fresh fleet-wide request id: 16 lowercase hex digits.
pub fn request_id() -> String {
    crate::hexstr::random(8)
}

/// The request the arguments describe.
pub(super) fn request(a: &RunArgs, cfg: &DispatcherConfig) -> Result<Request> {
    let (action, args) = match (&a.action, a.via) {
        (Some(name), _) => (name.clone(), a.command.clone()),
        (None, super::Via::Ssh) if !a.command.is_empty() => ("shell".to_string(), vec![a.command.join(" ")]),
        (None, _) => {
            let (action, args) = a.command.split_first().ok_or_else(|| {
                anyhow!("no action given: put it after --, as in `muster run {} -- ACTION [ARGS...]`", a.targets)
            })?;
            (action.clone(), args.to_vec())
        }
    };
    Ok(Request {
        request_id: request_id(),
        action,
        args,
        username: a.username.clone().unwrap_or_else(crate::audit::login_name),
        token: a.token.clone().or_else(|| std::env::var("MUSTER_TOKEN").ok()),
        timeout: a.timeout.unwrap_or(Duration::from_secs(cfg.default_timeout)),
        detach: a.detach,
    })
}

/// A plan with the settings every carrier shares; targets left empty.
pub(super) fn base_plan(a: &RunArgs, cfg: &DispatcherConfig, dispatcher: String, via: &str) -> Result<Plan> {
    Ok(Plan {
        request: request(a, cfg)?,
        dispatcher,
        via: via.to_string(),
        targets: Vec::new(),
        missing: Vec::new(),
        tags: a.tags.clone(),
        fanout: a.fanout.unwrap_or(cfg.fanout),
        max_errors: a.max_errors,
        lock_dir: None,
        hook: cfg.hook.clone().map(|path| HookSpec { path, timeout: Duration::from_secs(cfg.hook_timeout) }),
        liveness: Default::default(),
        broadcast: Default::default(),
    })
}

pub(super) fn mode(a: &RunArgs) -> Mode {
    a.output.unwrap_or(if std::io::stdout().is_terminal() { Mode::Live } else { Mode::Grouped })
}

/// Whether to show the status line and end lines: live output on a
/// terminal, not `--quiet`, not `--async` (which returns at once).
pub(super) fn progress(a: &RunArgs) -> bool {
    mode(a) == Mode::Live && !a.detach && crate::dispatch::progress::wanted(a.quiet)
}

/// Run a plan over a carrier on the one dispatch path, printing events in
/// `mode`; Ctrl-C cancels running targets and skips the rest. Prints the
/// summary and the carrier's remarks. With `progress` (live mode on a
/// terminal), a status line and one end line per target are shown too
/// ([`crate::dispatch::progress`]). An error means nothing was
/// dispatched (the carrier could not be reached).
pub fn dispatch_plan(carrier: Carrier, plan: Plan, mode: Mode, progress: bool) -> Result<Outcome> {
    let t0 = Instant::now();
    let total = plan.targets.len() + plan.missing.len();
    let outcome = runtime()?.block_on(async move {
        let (tx, printer) = spawn_printer_with(mode, progress.then_some(total));
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("muster: interrupted; cancelling running targets, skipping the rest");
                let _ = stop_tx.send(true);
            }
        });
        let r = dispatch::run(&carrier, plan, tx, stop_rx).await;
        let _ = printer.await;
        r
    });
    let outcome = outcome.map_err(|e| anyhow!("nothing was dispatched: {e}"))?;
    eprint!("{}", outcome::summary(&outcome.results, t0.elapsed()));
    if let Some(why) = &outcome.refused_run {
        eprintln!("muster: {why}");
    }
    for n in &outcome.notes {
        eprintln!("muster: {n}");
    }
    Ok(outcome)
}

pub fn run(state: &Path, a: RunArgs) -> Result<u8> {
    let cfg = DispatcherConfig::load(state).map_err(|e| anyhow!(e))?;
    // A missing action is a usage error, whatever else is wrong.
    request(&a, &cfg)?;
    if a.detach && a.via != super::Via::Tls {
        bail!(
            "--async needs --via tls: over the hub a result travels only while the station waits for it, and an \
             agent started over SSH ends with its session; run without --async, or over mTLS"
        );
    }
    match a.via {
        super::Via::Hub => return super::hub::run(state, &cfg, a),
        super::Via::Ssh => return super::ssh::run(state, &cfg, a),
        super::Via::Tls => {}
    }
    let resolved = resolve(state, &a.targets, &a.tags)?;
    let carrier = tls_carrier(state, &cfg)?;
    let mut plan = base_plan(&a, &cfg, carrier.dispatcher_id.clone(), "tls")?;
    plan.targets = resolved.targets;
    plan.missing = resolved.missing;
    plan.lock_dir = Some(state.join("locks"));
    let id = plan.request.request_id.clone();
    let dialer = dialer(state, &cfg, &a, crate::protocol::daemon::Via::Tls, Arc::new(carrier))?;
    let outcome = dispatch_recorded(state, &cfg, Carrier::Dial(dialer), plan, mode(&a), progress(&a))?;
    if a.detach {
        let n = outcome.results.iter().filter(|r| r.state == State::Dispatched).count();
        let started = outcome.refused_run.is_none() && n > 0;
        if mode(&a) == Mode::Json {
            // JSON lines stay JSON: the request id is one more event.
            let total = outcome.results.len();
            println!("{}", serde_json::json!({"event": "request", "request_id": id, "started": n, "targets": total}));
            if started {
                eprintln!(
                    "muster: see where it stands with `muster status {id}`; wait for its end with `muster wait {id}`"
                );
            }
        } else if !started {
            println!("request {id}: nothing started");
        } else {
            println!("request {id} started on {n} of {}", crate::words::plural(outcome.results.len(), "target"));
            println!("see where it stands with `muster status {id}`; wait for its end with `muster wait {id}`");
        }
    }
    Ok(outcome.exit_status())
}

/// The way to reach agents: a daemon (`--daemon`, or the one answering on
/// the state dir's socket) unless `--no-daemon`, else `direct`.
pub(super) fn dialer(
    state: &Path,
    cfg: &DispatcherConfig,
    a: &RunArgs,
    via: crate::protocol::daemon::Via,
    direct: Arc<dyn crate::transport::carrier::Dialer>,
) -> Result<Arc<dyn crate::transport::carrier::Dialer>> {
    if let Some(addr) = &a.daemon {
        let c = super::daemon_tls::connect(state, cfg, addr, via, !a.no_install)?;
        if a.verbose {
            eprintln!("muster: through the daemon {} at {addr} (pid {})", c.daemon, c.pid);
        }
        return Ok(Arc::new(c));
    }
    if !a.no_daemon {
        if let Some(c) = super::daemon::connect(state, None, via, !a.no_install) {
            if a.verbose {
                eprintln!(
                    "muster: through the daemon at {} (pid {})",
                    crate::daemon::socket_path(state).display(),
                    c.pid
                );
            }
            return Ok(Arc::new(c));
        }
    }
    if a.verbose {
        let why = if a.no_daemon {
            "--no-daemon".to_string()
        } else {
            format!("no daemon answers on {}", crate::daemon::socket_path(state).display())
        };
        eprintln!("muster: dialling agents directly ({why})");
    }
    Ok(direct)
}

/// [`dispatch_plan`], recorded in `<state>/runs/` before and after (records
/// past the retention are pruned on the way) and in the audit log.
pub(super) fn dispatch_recorded(
    state: &Path,
    cfg: &DispatcherConfig,
    carrier: Carrier,
    plan: Plan,
    mode: Mode,
    progress: bool,
) -> Result<Outcome> {
    use crate::dispatch::runs;
    let now = crate::pairing::now();
    runs::prune(state, cfg.result_retention, now);
    let mut record = runs::RunRecord::of(&plan, now);
    if let Err(e) = runs::save(state, &record) {
        tracing::warn!("{e}");
    }
    let audited = plan.clone();
    let t0 = Instant::now();
    let outcome = dispatch_plan(carrier, plan, mode, progress)?;
    record.end(&outcome, crate::pairing::now());
    if let Err(e) = runs::save(state, &record) {
        tracing::warn!("{e}");
    }
    let entry = crate::audit::AuditEntry::of(
        &audited,
        &outcome,
        "cli",
        &crate::audit::local_origin(),
        t0.elapsed().as_secs_f64(),
    );
    if let Err(e) = crate::audit::append(state, &entry) {
        eprintln!("muster: {e}");
    }
    Ok(outcome)
}

/// Resolve TARGETS against the registry; nothing at all is a setup error
/// that says how to get a registry or which filter matched nothing.
fn resolve(state: &Path, spec: &str, tags: &[String]) -> Result<dispatch::Resolved> {
    let resolved = dispatch::resolve(state, spec, tags).map_err(|e| anyhow!(e))?;
    if resolved.targets.is_empty() && resolved.missing.is_empty() {
        if resolved.registered == 0 {
            bail!(
                "there is no agent registry in {} yet: create a CA with `muster ca init`, then enrol agents with \
                 `muster ca issue-agent NAME --addr HOST:PORT --out DIR` (or try `muster demo`)",
                crate::dispatch::registry::dir(state).display()
            );
        }
        bail!(
            "no registered agent matches {spec:?}{} (see `muster agents list`)",
            if tags.is_empty() { String::new() } else { format!(" with tags {}", tags.join(",")) }
        );
    }
    Ok(resolved)
}

/// Ping through a carrier that runs actions (the hub, SSH): dispatch the
/// builtin `ping` in `plan` and print, per target, the time from the
/// start of the dispatch to its first answer (`NAME: ok 87 µs`), or its
/// end state. Returns the outcome and the exit status.
pub(super) fn timed_ping(carrier: Carrier, plan: Plan) -> Result<(Outcome, u8)> {
    let t0 = Instant::now();
    let (outcome, first) = runtime()?.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<crate::dispatch::event::Event>(1024);
        let (_stop, stop_rx) = watch::channel(false);
        let clock = tokio::spawn(async move {
            let mut first = std::collections::BTreeMap::new();
            while let Some(ev) = rx.recv().await {
                first.entry(ev.target).or_insert_with(|| t0.elapsed());
            }
            first
        });
        let outcome = dispatch::run(&carrier, plan, tx, stop_rx).await;
        (outcome, clock.await.unwrap_or_default())
    });
    let outcome = outcome.map_err(|e| anyhow!("nothing was sent: {e}"))?;
    for r in &outcome.results {
        match (&r.state, first.get(&r.name)) {
            (State::Succeeded, Some(d)) => println!("{}: ok {}", r.name, crate::timefmt::round_trip(*d)),
            (state, _) => println!("{}: {state}", r.name),
        }
    }
    eprint!("{}", outcome::summary(&outcome.results, t0.elapsed()));
    let code = outcome.exit_status();
    Ok((outcome, code))
}

pub fn ping(state: &Path, spec: &str, tags: &[String], fanout: Option<usize>) -> Result<u8> {
    let cfg = DispatcherConfig::load(state).map_err(|e| anyhow!(e))?;
    let resolved = resolve(state, spec, tags)?;
    let carrier = Arc::new(tls_carrier(state, &cfg)?);
    let t0 = Instant::now();
    let limit = Duration::from_secs(cfg.connect_timeout);
    let got =
        runtime()?.block_on(dispatch::ping::ping_all(carrier, resolved.targets, fanout.unwrap_or(cfg.fanout), limit));
    let mut results = Vec::new();
    for (name, why) in resolved.missing {
        let r = TargetResult::new(name, State::not_dialled(why));
        println!("{}: {}", r.name, r.state);
        results.push(r);
    }
    for (r, rtt) in got {
        match rtt {
            Some(d) => println!("{}: ok {}", r.name, crate::timefmt::round_trip(d)),
            None => println!("{}: {}", r.name, r.state),
        }
        results.push(r);
    }
    eprint!("{}", outcome::summary(&results, t0.elapsed()));
    Ok(outcome::exit_status(&results))
}
