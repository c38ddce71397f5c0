//! `muster run --via hub` (the station) and `muster hub swarm`.

use super::RunArgs;
use crate::dispatch::nodeset;
use crate::dispatch::outcome;
use crate::dispatch::output::{spawn_printer, Mode};
use crate::dispatch::DispatcherConfig;
use crate::hub::discovery::Discovery;
use crate::hub::station::{self, StationPlan, Waits};
use crate::hub::{config::RedisTarget, keys};
use crate::protocol::Run;
use anyhow::{anyhow, bail, Result};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn secs(v: f64, name: &str) -> Result<f64> {
    if !(v.is_finite() && v >= 0.0) {
        bail!("--{name} must be a number of seconds, 0 or more");
    }
    Ok(v)
}

fn wait(v: f64, name: &str) -> Result<Option<Duration>> {
    Ok((secs(v, name)? > 0.0).then(|| Duration::from_secs_f64(v)))
}

pub fn run(state: &Path, cfg: &DispatcherConfig, a: RunArgs) -> Result<u8> {
    let hub = &cfg.hub;
    let channel = a.channel.clone().or_else(|| hub.channel.clone()).ok_or_else(|| {
        anyhow!("no hub channel: pass --channel or set channel in the [hub] section of dispatcher.toml")
    })?;
    let url = a.redis.clone().or_else(|| Some(hub.redis.url.clone()).filter(|u| !u.is_empty()));
    let url =
        url.ok_or_else(|| anyhow!("no Redis URL: pass --redis or set url in the [hub] section of dispatcher.toml"))?;
    let redis = RedisTarget { url, user: hub.redis.user.clone(), password: hub.redis.password.clone() };
    let hub_dir = state.join("hub");
    let station_key =
        keys::load_station_secret(&hub.station_key.clone().unwrap_or_else(|| hub_dir.join("station.key")))
            .map_err(|e| anyhow!("{e} (create it with `muster hub keygen station --out {}`)", hub_dir.display()))?;
    let network = keys::load_network_public(&hub.network_key.clone().unwrap_or_else(|| hub_dir.join("network.pub")))
        .map_err(|e| anyhow!("{e} (copy the network's public key there)"))?;
    let (action, args) = a.command.split_first().ok_or_else(|| anyhow!("no action given after --"))?;
    let mut names = a.agents.clone();
    if a.targets.trim() != "all" {
        names.extend(nodeset::expand(&a.targets).map_err(|e| anyhow!("bad TARGETS: {e}"))?);
    }
    let disc_path = hub_dir.join("discovery.toml");
    let mut discovery =
        if a.no_discovery { Discovery::default() } else { Discovery::load(&disc_path).map_err(|e| anyhow!(e))? };
    let mut expected = discovery.expected(&channel, &a.tags, &names);
    for n in &names {
        if !expected.contains(n) {
            expected.push(n.clone());
        }
    }
    let minimum = secs(a.minimum_wait, "minimum-wait")?;
    let plan = StationPlan {
        redis,
        channel: channel.clone(),
        identity: hub.identity.clone().unwrap_or_else(super::admin::hostname),
        station_key,
        network,
        tags: a.tags.clone(),
        agents: names,
        fanout: a.fanout.unwrap_or(0).min(u32::MAX as usize) as u32,
        waits: Waits {
            hello: wait(a.hello_wait, "hello-wait")?,
            reply: wait(a.reply_wait, "reply-wait")?,
            minimum: Duration::from_secs_f64(if minimum == 0.0 { 1.0 } else { minimum }),
        },
        expected,
        expect: a.expect,
        fail_missing: a.fail_missing,
        run: Run {
            id: 1,
            request_id: super::request_id(),
            action: action.clone(),
            args: args.to_vec(),
            username: a.username.clone().or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "unknown".into()),
            token: a.token.clone().or_else(|| std::env::var("MUSTER_TOKEN").ok()),
            timeout_ms: a.timeout.map(|t| (t * 1000.0) as u64),
        },
        seq_file: hub_dir.join("seq"),
    };
    std::fs::create_dir_all(&hub_dir).map_err(|e| anyhow!("cannot create {}: {e}", hub_dir.display()))?;
    let mode = a.output.unwrap_or(if std::io::stdout().is_terminal() { Mode::Live } else { Mode::Grouped });
    let t0 = Instant::now();
    let rt = super::run::runtime()?;
    let outcome = rt.block_on(async move {
        let (tx, printer) = spawn_printer(mode);
        let r = station::broadcast(plan, tx).await;
        let _ = printer.await;
        r
    });
    let outcome = outcome.map_err(|e| anyhow!(e))?;
    eprint!("{}", outcome::summary(&outcome.results, t0.elapsed()));
    if !a.no_discovery {
        for n in discovery.record(&channel, &outcome.seen) {
            eprintln!("muster: new agent on {channel}: {n}");
        }
        if let Err(e) = discovery.save(&disc_path) {
            eprintln!("muster: {e}");
        }
    }
    for n in &outcome.missing {
        eprintln!("muster: missing agent on {channel}: {n} (seen before or named, did not answer)");
    }
    if outcome.wait_expired {
        eprintln!("muster: reply wait expired with agents still running (see --reply-wait)");
    }
    if outcome.dropped > 0 {
        eprintln!("muster: dropped {} replies that were not sealed for this request", outcome.dropped);
    }
    Ok(outcome.exit_bits(a.fail_missing))
}

pub fn swarm(config: &Path, count: usize) -> Result<u8> {
    let cfg = crate::agent::AgentConfig::load(config)?;
    let hub = cfg.hub.clone().ok_or_else(|| anyhow!("{} has no [hub] section", config.display()))?;
    let agent = Arc::new(crate::agent::Agent::new(cfg).map_err(|e| anyhow!(e))?);
    let rt = super::run::runtime()?;
    rt.block_on(crate::hub::swarm::run(agent, hub, count)).map_err(|e| anyhow!(e))?;
    Ok(0)
}
