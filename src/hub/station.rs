//! The station: seal and sign one command, publish it on the channel, then
//! collect sealed replies from the command's own list until the waits say
//! stop. Waits follow cbradio: `hello` bounds the wait for a first reply;
//! `reply` bounds each silence while some agent is running (expiry adds
//! +8); once nothing runs, the station stays until `minimum` has passed
//! since the request, unless every expected agent (seen before, named, or
//! `--expect N`) has already finished, in which case it returns at once.

use super::config::{self, RedisTarget, MAX_MESSAGE};
use crate::dispatch::outcome::{State, TargetResult, BIT_AGENT, BIT_COMMAND, BIT_MISSING, BIT_WAIT};
use crate::dispatch::runner::{Event, EventKind};
use crate::protocol::envelope::{self, Command, Fresh, ReplyBox};
use crate::protocol::{Message, Run};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub struct Waits {
    /// `None` waits forever.
    pub hello: Option<Duration>,
    pub reply: Option<Duration>,
    pub minimum: Duration,
}

pub struct StationPlan {
    pub redis: RedisTarget,
    pub channel: String,
    pub identity: String,
    pub station_key: ed25519_dalek::SigningKey,
    pub network: crypto_box::PublicKey,
    pub tags: Vec<String>,
    pub agents: Vec<String>,
    pub fanout: u32,
    pub waits: Waits,
    /// Agents that should answer (seen before or named); finishing all of
    /// them ends the wait early.
    pub expected: Vec<String>,
    pub expect: Option<usize>,
    pub fail_missing: bool,
    pub run: Run,
    /// Keeps the last sequence number so it always rises.
    pub seq_file: PathBuf,
}

#[derive(Debug, Default)]
pub struct StationOutcome {
    pub results: Vec<TargetResult>,
    pub wait_expired: bool,
    pub missing: Vec<String>,
    /// Who answered, with their tags.
    pub seen: BTreeMap<String, Vec<String>>,
    /// Replies dropped as undecryptable, without our challenge or replayed.
    pub dropped: usize,
}

impl StationOutcome {
    /// The exit bitmask of the seed: +2 missing (with fail_missing), +4
    /// command errors, +8 reply wait expired, +16 agent errors.
    pub fn exit_bits(&self, fail_missing: bool) -> u8 {
        let mut bits = 0;
        for r in &self.results {
            bits |= match &r.state {
                State::Failed { .. } | State::TimedOut | State::Cancelled => BIT_COMMAND,
                State::Refused(_) => BIT_AGENT,
                _ => 0,
            };
        }
        if self.wait_expired {
            bits |= BIT_WAIT;
        }
        if fail_missing && !self.missing.is_empty() {
            bits |= BIT_MISSING;
        }
        bits
    }
}

#[derive(Default)]
struct Track {
    state: Option<State>,
    last_seq: u64,
    truncated: bool,
}

fn next_seq(path: &PathBuf) -> u64 {
    let last: u64 = std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
    let seq = now.max(last + 1);
    let _ = crate::fsutil::write_public(path, format!("{seq}\n").as_bytes());
    seq
}

/// Broadcast the plan's command and collect the outcome.
pub async fn broadcast(plan: StationPlan, events: mpsc::Sender<Event>) -> Result<StationOutcome, String> {
    let url = plan.redis.url.clone();
    let client = plan.redis.client()?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(3)))
        .set_response_timeout(None);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(|e| format!("cannot reach Redis at {url}: {e}"))?;
    let mut fresh = Fresh { ephemeral: [0; 32], nonce: [0; 24] };
    let mut challenge = [0u8; 32];
    for b in [&mut fresh.ephemeral[..], &mut fresh.nonce[..], &mut challenge[..]] {
        getrandom::getrandom(b).map_err(|e| format!("no randomness from the OS: {e}"))?;
    }
    let reply_to = config::replies_key(&plan.channel, &config::random_hex(16));
    let cmd = Command {
        station: plan.identity.clone(),
        seq: next_seq(&plan.seq_file),
        challenge,
        tags: plan.tags.clone(),
        agents: plan.agents.clone(),
        reply_to: reply_to.clone(),
        fanout: plan.fanout,
        slot_wait_ms: plan.waits.reply.unwrap_or(Duration::from_secs(86_400)).as_millis() as u64,
        run: plan.run.clone(),
    };
    let sealed = envelope::seal_command(&plan.station_key, &plan.network, &cmd, &fresh).map_err(|e| e.to_string())?;
    let rbox = ReplyBox::for_station(&crypto_box::SecretKey::from(fresh.ephemeral), &plan.network);
    let t0 = Instant::now();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(config::requests_topic(&plan.channel))
        .arg(sealed)
        .query_async(&mut conn)
        .await
        .map_err(|e| format!("cannot publish to Redis at {url}: {e}"))?;

    let mut out = StationOutcome::default();
    let mut agents: BTreeMap<String, Track> = BTreeMap::new();
    let mut last_activity = t0;
    loop {
        let active = agents.values().filter(|a| a.state.is_none()).count();
        let finished = agents.len() - active;
        let deadline = if agents.is_empty() {
            plan.waits.hello.map(|h| t0 + h)
        } else if active > 0 {
            plan.waits.reply.map(|r| last_activity + r)
        } else {
            let all_expected = !plan.expected.is_empty()
                && plan.expected.iter().all(|n| agents.get(n).is_some_and(|a| a.state.is_some()));
            if all_expected || plan.expect.is_some_and(|n| finished >= n) {
                break;
            }
            Some(t0 + plan.waits.minimum)
        };
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            out.wait_expired = active > 0;
            break;
        }
        let chunk = deadline.map(|d| d - now).unwrap_or(Duration::from_secs(1)).min(Duration::from_secs(1));
        let first: Option<(String, Vec<u8>)> = redis::cmd("BLPOP")
            .arg(&reply_to)
            .arg(chunk.as_secs_f64().max(0.01))
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("lost Redis at {url}: {e}"))?;
        let Some((_, first)) = first else { continue };
        let more: Option<Vec<Vec<u8>>> = redis::cmd("LPOP")
            .arg(&reply_to)
            .arg(1000)
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("lost Redis at {url}: {e}"))?;
        last_activity = Instant::now();
        for bytes in std::iter::once(first).chain(more.unwrap_or_default()) {
            let reply = match rbox.open(&challenge, &bytes, MAX_MESSAGE) {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!("dropped a reply: {e}");
                    out.dropped += 1;
                    continue;
                }
            };
            let track = agents.entry(reply.agent.clone()).or_default();
            if reply.seq <= track.last_seq || track.state.is_some() {
                out.dropped += 1;
                continue;
            }
            track.last_seq = reply.seq;
            out.seen.insert(reply.agent.clone(), reply.tags.clone());
            let kind = match reply.message {
                Message::Started { pid, .. } => Some(EventKind::Started { pid }),
                Message::Output { stream, bytes, .. } => Some(EventKind::Output { stream, bytes }),
                Message::Finished(f) => {
                    track.truncated = f.truncated;
                    track.state = Some(State::from_finished(&f));
                    None
                }
                Message::Refused { reason, .. } => {
                    track.state = Some(State::Refused(reason.to_string()));
                    None
                }
                _ => None,
            };
            if let Some(kind) = kind {
                let _ = events.send(Event { target: reply.agent.clone(), kind }).await;
            }
            if let Some(state) = &track.state {
                let r = TargetResult { name: reply.agent.clone(), state: state.clone(), truncated: track.truncated };
                let _ = events.send(Event { target: reply.agent, kind: EventKind::End(r) }).await;
            }
        }
    }
    let _: redis::RedisResult<i64> =
        redis::cmd("DEL").arg(&reply_to).arg(config::slots_key(&reply_to)).query_async(&mut conn).await;
    let silent = plan.waits.reply.map(|d| format!("went silent: no reply for {}s", d.as_secs())).unwrap_or_default();
    for (name, t) in agents {
        let state = t.state.unwrap_or_else(|| State::Unreachable(silent.clone()));
        if matches!(state, State::Unreachable(_)) {
            let r = TargetResult { name: name.clone(), state: state.clone(), truncated: false };
            let _ = events.send(Event { target: name.clone(), kind: EventKind::End(r) }).await;
        }
        out.results.push(TargetResult { name, state, truncated: t.truncated });
    }
    for name in &plan.expected {
        if !out.seen.contains_key(name) {
            out.missing.push(name.clone());
            let state = State::Unreachable("missing: expected to answer, did not".into());
            let r = TargetResult { name: name.clone(), state, truncated: false };
            let _ = events.send(Event { target: name.clone(), kind: EventKind::End(r.clone()) }).await;
            out.results.push(r);
        }
    }
    Ok(out)
}
