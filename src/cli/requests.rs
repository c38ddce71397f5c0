//! `muster status ID`, `muster wait ID` and `muster list-requests`: the
//! dispatcher's side of asynchronous runs. The run record says which
//! agents to ask; each agent answers from its own result store, for this
//! dispatcher only.

use crate::dispatch::outcome::{self, State, TargetResult, BIT_WAIT};
use crate::dispatch::output::{Mode, Printer};
use crate::dispatch::status::{self, Fetched};
use crate::dispatch::{runs, DispatcherConfig};
use anyhow::{anyhow, Result};
use clap::Args;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The request id that `muster run --async` printed
    pub id: String,
    /// live (default on a terminal), grouped (default otherwise) or json: as for `muster run --output`
    #[arg(long, value_enum)]
    pub output: Option<Mode>,
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    /// The request id that `muster run --async` printed
    pub id: String,
    /// Give up after this many seconds, fractions allowed (the exit status then adds +8)
    #[arg(long, value_name = "SECONDS", value_parser = super::positive_seconds, allow_negative_numbers = true)]
    pub timeout: Option<Duration>,
    /// live (default on a terminal), grouped (default otherwise) or json: as for `muster run --output`
    #[arg(long, value_enum)]
    pub output: Option<Mode>,
}

fn mode(m: Option<Mode>) -> Mode {
    m.unwrap_or(if std::io::stdout().is_terminal() { Mode::Live } else { Mode::Grouped })
}

/// A run that was not `--async` ended with its dispatch: what the record
/// kept of each target's end (the output was shown then). Returns the
/// recorded exit status; a dispatch that never recorded its end (it was
/// killed) counts as +8.
fn show_recorded(r: &runs::RunRecord) -> u8 {
    println!(
        "request {} ({} {}) ran without --async over {}: its output was shown when it ran; the ends recorded:",
        r.request_id,
        r.action,
        r.args.join(" "),
        r.via
    );
    for e in &r.results {
        println!("  {}: {}", e.target, e.detail);
    }
    match r.exit {
        Some(code) => {
            println!("exit status {code} (ended {})", r.ended.as_deref().unwrap_or("?"));
            code
        }
        None => {
            println!("its end was never recorded: the dispatching process was probably killed");
            BIT_WAIT
        }
    }
}

/// Ask every agent the run started on.
fn fetch(state: &Path, record: &runs::RunRecord) -> Result<Vec<(String, Fetched)>> {
    let cfg = DispatcherConfig::load(state).map_err(|e| anyhow!(e))?;
    let id = &record.request_id;
    if record.via != "tls" {
        return Err(anyhow!("request {id} ran over {}; only runs over mTLS keep results on the agents", record.via));
    }
    let carrier = Arc::new(super::run::tls_carrier(state, &cfg)?);
    let targets = record.started_targets();
    let limit = Duration::from_secs(cfg.connect_timeout.max(5));
    let got = super::run::runtime()?.block_on(status::fetch_all(carrier, targets, id, cfg.fanout, limit));
    Ok(got)
}

/// Print what was fetched; returns every target's result.
fn show(got: &[(String, Fetched)], mode: Mode, t0: Instant) -> Vec<TargetResult> {
    let mut printer = Printer::new(mode);
    let mut results = Vec::new();
    for (name, f) in got {
        let (events, result) = status::events(name, f);
        for e in &events {
            printer.event(e);
        }
        results.push(result);
    }
    printer.finish();
    eprint!("{}", outcome::summary(&results, t0.elapsed()));
    results
}

pub fn status(state: &Path, a: StatusArgs) -> Result<u8> {
    let t0 = Instant::now();
    let record = runs::load(state, &a.id)?;
    if !record.detach {
        return Ok(show_recorded(&record));
    }
    let got = fetch(state, &record)?;
    Ok(outcome::exit_status(&show(&got, mode(a.output), t0)))
}

fn pending(got: &[(String, Fetched)]) -> bool {
    got.iter().any(|(_, f)| match f {
        Fetched::Record(r) => r.state == "running",
        Fetched::Failed(State::Unreachable(_)) => true,
        _ => false,
    })
}

pub fn wait(state: &Path, a: WaitArgs) -> Result<u8> {
    let t0 = Instant::now();
    let record = runs::load(state, &a.id)?;
    if !record.detach {
        return Ok(show_recorded(&record));
    }
    loop {
        let got = fetch(state, &record)?;
        let timed_out = a.timeout.is_some_and(|t| t0.elapsed() >= t);
        if !pending(&got) || timed_out {
            let results = show(&got, mode(a.output), t0);
            let mut bits = outcome::exit_status(&results);
            if pending(&got) {
                eprintln!("muster: still not ended after {:.0}s (see --timeout)", t0.elapsed().as_secs_f64());
                bits |= BIT_WAIT;
            }
            return Ok(bits);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub fn list(state: &Path, json: bool) -> Result<u8> {
    let all = runs::list(state);
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(0);
    }
    if all.is_empty() {
        println!("no runs recorded in {}", runs::dir(state).display());
    }
    for r in all {
        let how = if r.detach { "async" } else { "sync" };
        // An async run's dispatch ends once it started: say where it
        // started; its results are on the agents (`muster status`).
        let started = r.results.iter().filter(|e| e.state == "dispatched").count();
        let ended = match r.exit {
            Some(_) if r.detach && started == 0 => "nothing started".to_string(),
            Some(_) if r.detach => format!("started on {started}; see `muster status {}`", r.request_id),
            Some(code) => format!("exit {code}"),
            None => "not ended".into(),
        };
        println!(
            "{}  {}  {:<5} {:<4}  {} {}  on {}  {ended}",
            r.request_id,
            r.started,
            how,
            r.via,
            r.action,
            r.args.join(" "),
            crate::words::plural(r.targets.len(), "target")
        );
    }
    Ok(0)
}
