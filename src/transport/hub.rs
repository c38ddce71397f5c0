//! The station side of the Redis hub, as a broadcast carrier: each order is
//! signed with the station key and sealed to the network key
//! (`protocol::envelope`) from a fresh ephemeral key, then published on the
//! channel's request topic; answers are read from the command's own reply
//! list, opened with the ephemeral key and checked for this command's
//! challenge and a rising per-agent sequence (anything else is dropped and
//! counted). Cancels and "do not start" orders are signed commands too, so
//! nobody without the station key can stop a run. Sequence numbers are
//! microseconds since the epoch, never below the last one this station
//! used (`<state>/hub/seq`).

use super::carrier::{Answer, BoxFuture, Broadcaster, OpenError, Reason, Replies, Scope};
use crate::hub::config::{self, RedisTarget, MAX_MESSAGE};
use crate::hub::conn::{Conn, Hub};
use crate::protocol::envelope::{self, Command, Fresh, Order, ReplyBox};
use crate::protocol::Run;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Most replies taken off the list in one read.
const BATCH: usize = 1000;

/// Who the station is and where it publishes.
pub struct HubCarrier {
    pub redis: RedisTarget,
    pub channel: String,
    /// The station's identity, carried in every command.
    pub identity: String,
    pub station_key: ed25519_dalek::SigningKey,
    pub network: crypto_box::PublicKey,
    /// Keeps the last sequence number so it always rises.
    pub seq_file: PathBuf,
}

fn unreachable(at: &str, e: impl std::fmt::Display) -> Reason {
    Reason::new("hub unreachable", format!("Redis at {at}: {e}"))
}

/// The run's connection broke: what was pushed after that is not read.
fn lost(at: &str, e: impl std::fmt::Display) -> Reason {
    Reason::new(
        "hub lost",
        format!(
            "lost Redis at {at} while waiting for replies ({e}); replies not read by then are lost (under Sentinel \
             or Cluster a failover may be under way: a run started after it is served by the new primary)"
        ),
    )
}

/// The next sequence number: now in microseconds, above the last one used.
fn next_seq(path: &Path) -> std::io::Result<u64> {
    let last: u64 = std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let seq = now.max(last.saturating_add(1));
    crate::fsutil::write_public(path, format!("{seq}\n").as_bytes())?;
    Ok(seq)
}

fn random<const N: usize>() -> Result<[u8; N], Reason> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b)
        .map_err(|e| Reason::new("no randomness", format!("no randomness from the OS: {e}")))?;
    Ok(b)
}

/// What one command needs to be sent again with another order.
struct Sender {
    carrier: Arc<HubShared>,
    scope: Scope,
    reply_to: String,
    challenge: [u8; 32],
}

/// The carrier's parts shared with its open broadcasts.
struct HubShared {
    hub: Hub,
    channel: String,
    identity: String,
    station_key: ed25519_dalek::SigningKey,
    network: crypto_box::PublicKey,
    seq_file: PathBuf,
}

impl Sender {
    /// Seal and publish one order; returns the ephemeral secret it used
    /// and how many subscribers Redis handed it to.
    async fn publish_counted(&self, conn: &mut Conn, order: Order) -> Result<([u8; 32], i64), Reason> {
        let c = &self.carrier;
        let fresh = Fresh { ephemeral: random()?, nonce: random()? };
        let seq_file = c.seq_file.clone();
        let seq = tokio::task::spawn_blocking(move || next_seq(&seq_file))
            .await
            .map_err(|e| Reason::new("station error", e.to_string()))?
            .map_err(|e| Reason::new("station error", format!("cannot write {}: {e}", c.seq_file.display())))?;
        let cmd = Command {
            station: c.identity.clone(),
            seq,
            challenge: self.challenge,
            tags: self.scope.tags.clone(),
            agents: self.scope.agents.clone(),
            reply_to: self.reply_to.clone(),
            fanout: self.scope.fanout,
            slot_wait_ms: u64::try_from(self.scope.slot_wait.as_millis()).unwrap_or(u64::MAX),
            heartbeat_ms: u64::try_from(self.scope.heartbeat.as_millis()).unwrap_or(u64::MAX),
            order,
        };
        let sealed = envelope::seal_command(&c.station_key, &c.network, &cmd, &fresh)
            .map_err(|e| Reason::new("station error", e.to_string()))?;
        let receivers: i64 =
            c.hub.publish(&config::requests_topic(&c.channel), &sealed).query_async(conn).await.map_err(|e| match e
                .redirect_node()
            {
                // The cluster keeps sending us to a node that does not answer.
                Some((node, _)) => unreachable(
                    c.hub.describe(),
                    format!("the node that owns the channel's hash slot ({node}) does not answer ({e})"),
                ),
                None => unreachable(c.hub.describe(), e),
            })?;
        Ok((fresh.ephemeral, receivers))
    }

    /// Seal and publish one order; returns the ephemeral secret it used.
    async fn publish(&self, conn: &mut Conn, order: Order) -> Result<[u8; 32], Reason> {
        self.publish_counted(conn, order).await.map(|(ephemeral, _)| ephemeral)
    }

    /// Publish a run. When Redis handed it to no subscriber at all (agents
    /// resubscribing after a failover or a Redis restart, typically within
    /// a second), publish it again, for up to [`REPUBLISH_FOR`]: no agent
    /// has it yet, so none runs it twice. Returns the ephemeral secret of
    /// the last publication, the one replies are sealed for.
    async fn publish_run(&self, conn: &mut Conn, run: &Run) -> Result<[u8; 32], Reason> {
        let until = tokio::time::Instant::now() + REPUBLISH_FOR;
        let mut pause = Duration::from_millis(50);
        loop {
            let (ephemeral, receivers) = self.publish_counted(conn, Order::Run(run.clone())).await?;
            if receivers > 0 || tokio::time::Instant::now() + pause > until {
                return Ok(ephemeral);
            }
            tracing::debug!("no agent was subscribed to the channel; publishing again in {pause:?}");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(400));
        }
    }
}

/// How long a run nobody was subscribed to is published again.
const REPUBLISH_FOR: Duration = Duration::from_secs(2);

impl HubCarrier {
    async fn start(&self, run: &Run, scope: &Scope) -> Result<Box<dyn Replies>, OpenError> {
        let describe = self.redis.describe();
        let hub = Hub::new(&self.redis).map_err(|e| OpenError::Unreachable(unreachable(&describe, e)))?;
        // Reads block up to a second (see `dispatch::broadcast`); the bound
        // is for a server that stops answering without closing.
        let mut conn = hub
            .dedicated(Some(Duration::from_secs(30)))
            .await
            .map_err(|e| OpenError::Unreachable(Reason::new("hub unreachable", e)))?;
        let shared = Arc::new(HubShared {
            hub,
            channel: self.channel.clone(),
            identity: self.identity.clone(),
            station_key: self.station_key.clone(),
            network: self.network.clone(),
            seq_file: self.seq_file.clone(),
        });
        let sender = Sender {
            carrier: shared,
            scope: scope.clone(),
            reply_to: config::replies_key(&self.channel, &config::random_hex(16)),
            challenge: random().map_err(OpenError::Unreachable)?,
        };
        let ephemeral = sender.publish_run(&mut conn, run).await.map_err(OpenError::Unreachable)?;
        let rbox = ReplyBox::for_station(&crypto_box::SecretKey::from(ephemeral), &self.network);
        Ok(Box::new(HubReplies {
            conn,
            rbox,
            request_id: run.request_id.clone(),
            sender,
            last_seq: HashMap::new(),
            dropped: 0,
        }))
    }
}

impl Broadcaster for HubCarrier {
    fn publish<'a>(&'a self, run: &'a Run, scope: &'a Scope) -> BoxFuture<'a, Result<Box<dyn Replies>, OpenError>> {
        Box::pin(self.start(run, scope))
    }
}

/// The answers to one published command.
struct HubReplies {
    conn: Conn,
    rbox: ReplyBox,
    request_id: String,
    sender: Sender,
    /// Highest reply sequence seen per agent: lower or equal ones are replays.
    last_seq: HashMap<String, u64>,
    /// Replies that were not sealed for this command, or replayed.
    dropped: usize,
}

impl HubReplies {
    async fn read(&mut self, limit: Duration) -> Result<Vec<Answer>, Reason> {
        let key = &self.sender.reply_to;
        let at = self.sender.carrier.hub.describe();
        let first: Option<(String, Vec<u8>)> = redis::cmd("BLPOP")
            .arg(key)
            .arg(limit.as_secs_f64().max(0.01))
            .query_async(&mut self.conn)
            .await
            .map_err(|e| lost(at, e))?;
        let Some((_, first)) = first else { return Ok(Vec::new()) };
        let more: Option<Vec<Vec<u8>>> =
            redis::cmd("LPOP").arg(key).arg(BATCH).query_async(&mut self.conn).await.map_err(|e| lost(at, e))?;
        let mut out = Vec::new();
        for bytes in std::iter::once(first).chain(more.unwrap_or_default()) {
            let reply = match self.rbox.open(&self.sender.challenge, &bytes, MAX_MESSAGE) {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!("dropped a reply: {e}");
                    self.dropped += 1;
                    continue;
                }
            };
            let last = self.last_seq.entry(reply.agent.clone()).or_insert(0);
            if reply.seq <= *last {
                self.dropped += 1;
                continue;
            }
            *last = reply.seq;
            out.push(Answer { agent: reply.agent, tags: reply.tags, message: reply.message });
        }
        Ok(out)
    }
}

impl Replies for HubReplies {
    fn next(&mut self, limit: Duration) -> BoxFuture<'_, Result<Vec<Answer>, Reason>> {
        Box::pin(self.read(limit))
    }

    fn cancel(&mut self) -> BoxFuture<'_, Result<(), Reason>> {
        let order = Order::Cancel { request_id: self.request_id.clone() };
        Box::pin(async move { self.sender.publish(&mut self.conn, order).await.map(|_| ()) })
    }

    fn stop_starting(&mut self) -> BoxFuture<'_, Result<(), Reason>> {
        let order = Order::Stop { request_id: self.request_id.clone() };
        Box::pin(async move { self.sender.publish(&mut self.conn, order).await.map(|_| ()) })
    }

    fn close(mut self: Box<Self>) -> BoxFuture<'static, Vec<String>> {
        Box::pin(async move {
            let key = self.sender.reply_to.clone();
            let _: redis::RedisResult<i64> =
                redis::cmd("DEL").arg(&key).arg(config::slots_key(&key)).query_async(&mut self.conn).await;
            let mut notes = Vec::new();
            if self.dropped > 0 {
                notes.push(format!(
                    "dropped {} replies that were not sealed for this request or were replayed",
                    self.dropped
                ));
            }
            notes
        })
    }
}
