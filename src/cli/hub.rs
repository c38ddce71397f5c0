//! `muster run --via hub` (the station) and `muster hub swarm`. The
//! station builds a plan whose targets are the agents that must answer
//! (named on the command line, or remembered by discovery with
//! `--fail-missing`) and a broadcast scope, then takes the same dispatch
//! path as every carrier; afterwards it records who answered.

use super::RunArgs;
use crate::dispatch::nodeset;
use crate::dispatch::outcome::State;
use crate::dispatch::plan::{BroadcastPlan, Waits};
use crate::dispatch::DispatcherConfig;
use crate::hub::discovery::Discovery;
use crate::hub::{config::RedisTarget, keys};
use crate::transport::carrier::{Carrier, Scope, Target};
use crate::transport::hub::HubCarrier;
use anyhow::{anyhow, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A hub run made ready: the carrier, the plan, and what discovery needs
/// afterwards.
struct Prepared {
    carrier: HubCarrier,
    plan: crate::dispatch::plan::Plan,
    channel: String,
    discovery: Discovery,
    disc_path: std::path::PathBuf,
    also_expected: Vec<String>,
}

pub fn run(state: &Path, cfg: &DispatcherConfig, a: RunArgs) -> Result<u8> {
    let p = prepare(state, cfg, &a)?;
    let outcome = super::run::dispatch_recorded(
        state,
        cfg,
        Carrier::Broadcast(Arc::new(p.carrier)),
        p.plan,
        super::run::mode(&a),
        super::run::progress(&a),
    )?;
    after(&a, &p.channel, p.discovery, &p.disc_path, &p.also_expected, &outcome);
    Ok(outcome.exit_status())
}

/// `muster ping --via hub`: broadcast the builtin `ping` to TARGETS on the
/// channel (with discovery, as `muster run --via hub`), and print each
/// agent's time from the start of the broadcast to its first answer.
pub fn ping(state: &Path, cfg: &DispatcherConfig, a: RunArgs) -> Result<u8> {
    let p = prepare(state, cfg, &a)?;
    let (outcome, code) = super::run::timed_ping(Carrier::Broadcast(Arc::new(p.carrier)), p.plan)?;
    after(&a, &p.channel, p.discovery, &p.disc_path, &p.also_expected, &outcome);
    Ok(code)
}

fn prepare(state: &Path, cfg: &DispatcherConfig, a: &RunArgs) -> Result<Prepared> {
    let hub = &cfg.hub;
    let channel = a.channel.clone().or_else(|| hub.channel.clone()).ok_or_else(|| {
        anyhow!("no hub channel: pass --channel or set channel in the [hub] section of dispatcher.toml")
    })?;
    let redis = match &a.redis {
        Some(url) => {
            let r = RedisTarget::from_url(url, hub.redis.user.clone(), hub.redis.password.clone());
            r.deployment().map_err(|e| anyhow!("--redis: {}", e.strip_prefix("url: ").unwrap_or(&e)))?;
            r
        }
        None if hub.redis.is_empty() => {
            return Err(anyhow!(
                "no Redis: pass --redis or set url (or sentinels + master, or cluster) in the [hub] section of \
                 dispatcher.toml"
            ))
        }
        None => hub.redis.clone(),
    };
    let hub_dir = state.join("hub");
    // Relative key paths in dispatcher.toml are relative to the state dir
    // that holds it, wherever muster is started from.
    let key_path = |set: &Option<std::path::PathBuf>, default: &str| match set {
        Some(p) => state.join(p),
        None => hub_dir.join(default),
    };
    let station_path = key_path(&hub.station_key, "station.key");
    let station_key = keys::load_station_secret(&station_path).map_err(|e| {
        let dir = station_path.parent().unwrap_or(&hub_dir);
        anyhow!("{e} (create it with `muster hub keygen station --out {}`)", dir.display())
    })?;
    let network = keys::load_network_public(&key_path(&hub.network_key, "network.pub"))
        .map_err(|e| anyhow!("{e} (copy the network's public key there)"))?;
    let mut names = a.agents.clone();
    if a.targets.trim() != "all" {
        // Over the hub only groups.toml names groups: agents are found on
        // the channel, and tags are the --tags filter.
        let groups = crate::dispatch::groups::Inventory::new(None, [], &crate::state::config_dir());
        let expanded = nodeset::expand_with(&a.targets, &groups, nodeset::Bounds::DEFAULT).map_err(|e| match e {
            nodeset::NodeSetError::UnknownGroup { ref group, .. } if group == "all" => {
                anyhow!("bad TARGETS: {e}; over the hub, `all` alone reaches every agent on the channel")
            }
            e => anyhow!("bad TARGETS: {e}"),
        })?;
        names.extend(expanded);
    }
    names.dedup();
    let disc_path = hub_dir.join("discovery.toml");
    let discovery =
        if a.no_discovery { Discovery::default() } else { Discovery::load(&disc_path).map_err(|e| anyhow!(e))? };
    let remembered = discovery.expected(&channel, &a.tags, &names);
    let mut required = names.clone();
    if a.fail_missing {
        required.extend(remembered.iter().filter(|n| !names.contains(n)).cloned());
    }
    let also_expected: Vec<String> = remembered.into_iter().filter(|n| !required.contains(n)).collect();
    std::fs::create_dir_all(&hub_dir).map_err(|e| anyhow!("cannot create {}: {e}", hub_dir.display()))?;
    let identity = hub.identity.clone().unwrap_or_else(super::admin::hostname);
    let mut plan = super::run::base_plan(a, cfg, identity.clone(), "hub")?;
    plan.targets = required.iter().map(|n| Target { name: n.clone(), addr: String::new() }).collect();
    let forever = |d: Duration| (!d.is_zero()).then_some(d);
    plan.broadcast = BroadcastPlan {
        scope: Scope {
            tags: a.tags.clone(),
            agents: names,
            fanout: u32::try_from(a.fanout.unwrap_or(0)).unwrap_or(u32::MAX),
            slot_wait: forever(a.reply_wait).unwrap_or(Duration::from_secs(86_400)),
            heartbeat: heartbeat_for(forever(a.reply_wait)),
        },
        waits: Waits {
            hello: forever(a.hello_wait),
            reply: forever(a.reply_wait),
            minimum: if a.minimum_wait.is_zero() { Duration::from_secs(1) } else { a.minimum_wait },
        },
        also_expected: also_expected.clone(),
        expect: a.expect,
    };
    let carrier =
        HubCarrier { redis, channel: channel.clone(), identity, station_key, network, seq_file: hub_dir.join("seq") };
    Ok(Prepared { carrier, plan, channel, discovery, disc_path, also_expected })
}

/// After a hub run: record who answered (discovery) and say who is new,
/// who is missing, and what went wrong as a whole.
fn after(
    a: &RunArgs,
    channel: &str,
    mut discovery: Discovery,
    disc_path: &Path,
    also_expected: &[String],
    outcome: &crate::dispatch::outcome::Outcome,
) {
    // A run the hook refused published nothing: nobody was asked, so
    // nobody is new or missing.
    let asked = outcome.refused_run.is_none();
    if asked && !a.no_discovery {
        for n in discovery.record(channel, &outcome.answered) {
            eprintln!("muster: new agent on {channel}: {n}");
        }
        if let Err(e) = discovery.save(disc_path) {
            eprintln!("muster: {e}");
        }
    }
    for n in also_expected.iter().filter(|n| asked && !outcome.answered.contains_key(*n)) {
        eprintln!(
            "muster: missing agent on {channel}: {n} (seen before, did not answer; --fail-missing makes this an error)"
        );
    }
    if outcome.results.iter().any(|r| matches!(&r.state, State::Lost(why) if why.kind == "went silent")) {
        eprintln!("muster: some agents went silent past the reply wait while holding the request (see --reply-wait)");
    }
    if outcome.results.is_empty() && outcome.refused_run.is_none() {
        eprintln!(
            "muster: no agent answered on channel {channel} (check the channel, the tags, the keys, and that agents \
             are subscribed)"
        );
    }
}

/// Agents say they are alive four times per reply wait (1 s to 30 s), so
/// one lost heartbeat never ends a run; no reply wait, no heartbeats.
fn heartbeat_for(reply: Option<Duration>) -> Duration {
    reply.map(|r| (r / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))).unwrap_or(Duration::ZERO)
}

pub fn swarm(config: &Path, count: usize) -> Result<u8> {
    let cfg = crate::agent::AgentConfig::load(config)?;
    let hub = cfg.hub.clone().ok_or_else(|| anyhow!("{} has no [hub] section", config.display()))?;
    let agent = Arc::new(crate::agent::Agent::new(cfg).map_err(|e| anyhow!(e))?);
    let rt = super::run::runtime()?;
    rt.block_on(crate::agent::swarm::run(agent, hub, count)).map_err(|e| anyhow!(e))?;
    Ok(0)
}
