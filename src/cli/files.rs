//! `muster put TARGETS LOCAL REMOTE` and `muster get TARGETS REMOTE
//! LOCALDIR`, over mTLS (agents allow paths under their `file_roots`) or
//! SSH (anywhere the login may write).

use super::Via;
use crate::dispatch::files::{copy_all, Copy};
use crate::dispatch::outcome::{self, State, TargetResult};
use crate::dispatch::DispatcherConfig;
use crate::transport::carrier::{Dialer, Target};
use anyhow::{anyhow, bail, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct Where {
    /// `all`, or agent names and node sets, comma-separated (syntax: `muster run --help`)
    pub targets: String,
    /// Keep targets that carry every one of these tags (comma-separated)
    #[arg(long, value_delimiter = ',', value_name = "TAG,...")]
    pub tags: Vec<String>,
    /// Carrier: tls (mutual TLS to registered agents) or ssh
    #[arg(long, value_enum, default_value_t = Via::Tls)]
    pub via: Via,
    /// Targets at once, 1 or more (default: fanout in dispatcher.toml, else 64)
    #[arg(long, value_name = "N", value_parser = super::at_least_one, allow_negative_numbers = true)]
    pub fanout: Option<usize>,
    /// SSH: do not copy the agent to hosts that lack it
    #[arg(long)]
    pub no_install: bool,
}

#[derive(Args, Debug)]
pub struct PutArgs {
    #[command(flatten)]
    pub at: Where,
    /// The local file to copy
    pub local: PathBuf,
    /// The absolute path on each target (under one of the agent's file_roots)
    pub remote: String,
    /// Octal mode to give the file, e.g. 0640 (default: keep an existing file's, else 0644)
    #[arg(long, value_name = "OCTAL", value_parser = octal)]
    pub mode: Option<u32>,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    #[command(flatten)]
    pub at: Where,
    /// The absolute path on each target (under one of the agent's file_roots)
    pub remote: String,
    /// Local directory; each target's copy goes to LOCALDIR/<target>/<basename>
    pub localdir: PathBuf,
}

fn octal(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("{s:?} is not an octal file mode such as 0644"))
}

/// The carrier, the targets to dial, and the names that cannot be reached.
type Reach = (Arc<dyn Dialer>, Vec<Target>, Vec<TargetResult>);

fn dialer(state: &Path, cfg: &DispatcherConfig, at: &Where) -> Result<Reach> {
    match at.via {
        Via::Tls => {
            let resolved = crate::dispatch::resolve(state, &at.targets, &at.tags).map_err(|e| anyhow!(e))?;
            let missing =
                resolved.missing.into_iter().map(|(n, why)| TargetResult::new(n, State::not_dialled(why))).collect();
            Ok((Arc::new(super::run::tls_carrier(state, cfg)?), resolved.targets, missing))
        }
        Via::Ssh => {
            let (carrier, config) = super::ssh::carrier(state, cfg, !at.no_install)?;
            Ok((Arc::new(carrier), super::ssh::targets(&config, &at.targets, &at.tags)?, Vec::new()))
        }
        Via::Hub => bail!("files are copied over direct sessions: use --via tls or --via ssh"),
    }
}

fn copy(state: &Path, at: &Where, what: Copy) -> Result<u8> {
    let cfg = DispatcherConfig::load(state).map_err(|e| anyhow!(e))?;
    let (dialer, targets, mut results) = dialer(state, &cfg, at)?;
    if targets.is_empty() && results.is_empty() {
        bail!("no target matches {:?}", at.targets);
    }
    let t0 = Instant::now();
    let limit = Duration::from_secs(cfg.connect_timeout.max(30));
    let got = super::run::runtime()?.block_on(copy_all(dialer, targets, what, at.fanout.unwrap_or(cfg.fanout), limit));
    results.extend(got);
    for r in &results {
        println!("{}: {}", r.name, r.state);
    }
    eprint!("{}", outcome::summary(&results, t0.elapsed()));
    Ok(outcome::exit_status(&results))
}

pub fn put(state: &Path, a: PutArgs) -> Result<u8> {
    if !a.local.is_file() {
        bail!("{} is not a readable file", a.local.display());
    }
    if !a.remote.starts_with('/') {
        bail!("the remote path {:?} must be absolute", a.remote);
    }
    copy(state, &a.at, Copy::Put { local: a.local, remote: a.remote, mode: a.mode })
}

pub fn get(state: &Path, a: GetArgs) -> Result<u8> {
    if !a.remote.starts_with('/') {
        bail!("the remote path {:?} must be absolute", a.remote);
    }
    copy(state, &a.at, Copy::Get { remote: a.remote, dir: a.localdir })
}
