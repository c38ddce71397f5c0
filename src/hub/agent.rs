//! The agent's hub side: subscribe to the channel's request topic, open and
//! verify each command (garbage, foreign or badly signed messages are logged
//! and ignored), refuse replays by sequence number (high-water mark kept in
//! `<state_dir>/hub-<channel>.seq`), run matching requests through the same
//! path as mTLS requests, and push sealed replies to the command's reply
//! list with a TTL. Reconnects with backoff when Redis goes away. A swarm
//! (`muster hub swarm`) is the same subscriber answering for many
//! simulated identities at once, with builtins only, to load the hub.

use super::config::{self, AgentHub, MAX_MESSAGE, REPLY_TTL};
use super::throttle::{Slot, LEASE};
use crate::agent::session::{self, Peer};
use crate::agent::Agent;
use crate::protocol::envelope::{self, Command, Reply, ReplyBox};
use crate::protocol::replay::ReplayGuard;
use crate::protocol::{Message, Refusal};
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Commands this far below the newest are still accepted once.
const REPLAY_WINDOW: u64 = 1_000_000;
const MAX_BACKOFF: Duration = Duration::from_secs(1);

pub struct HubAgent {
    agent: Arc<Agent>,
    cfg: AgentHub,
    pub identity: String,
    pub tags: Vec<String>,
    /// Simulated identities answering builtins (swarm mode); empty normally.
    swarm: Vec<String>,
    station: ed25519_dalek::VerifyingKey,
    network: crypto_box::SecretKey,
    guard: Mutex<ReplayGuard>,
    seq_file: PathBuf,
}

impl HubAgent {
    /// A swarm of `count` simulated identities `<identity>-NNNNN`.
    pub fn swarm(agent: Arc<Agent>, cfg: AgentHub, count: usize) -> Result<HubAgent, String> {
        let mut h = HubAgent::new(agent, cfg)?;
        h.swarm = (0..count).map(|i| format!("{}-{i:05}", h.identity)).collect();
        Ok(h)
    }

    pub fn new(agent: Arc<Agent>, cfg: AgentHub) -> Result<HubAgent, String> {
        let station = super::keys::load_station_public(&cfg.station_key)?;
        let network = super::keys::load_network_secret(&cfg.network_key)?;
        cfg.redis.client()?;
        let seq_file = agent.cfg.state_dir.join(format!("hub-{}.seq", safe(&cfg.channel)));
        let high = match std::fs::read_to_string(&seq_file) {
            Ok(t) => {
                t.trim().parse().map_err(|_| format!("{} is not a number; remove it to reset", seq_file.display()))?
            }
            Err(_) => 0,
        };
        Ok(HubAgent {
            identity: cfg.identity.clone().unwrap_or_else(|| agent.cfg.name.clone()),
            tags: cfg.tags.clone().unwrap_or_else(|| agent.cfg.tags.clone()),
            swarm: Vec::new(),
            agent,
            station,
            network,
            guard: Mutex::new(ReplayGuard::new(high, REPLAY_WINDOW)),
            seq_file,
            cfg,
        })
    }

    /// Serve forever, reconnecting after Redis goes away.
    pub async fn run(self: Arc<Self>) {
        let topic = config::requests_topic(&self.cfg.channel);
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.clone().serve_once(&topic, &mut backoff).await {
                Ok(()) => tracing::warn!("hub: lost the connection to {}; reconnecting", self.cfg.redis.url),
                Err(e) => tracing::warn!("hub: {e}; retrying in {backoff:?}"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn serve_once(self: Arc<Self>, topic: &str, backoff: &mut Duration) -> Result<(), String> {
        let url = &self.cfg.redis.url;
        let client = self.cfg.redis.client()?;
        let mut pubsub = client.get_async_pubsub().await.map_err(|e| format!("cannot reach Redis at {url}: {e}"))?;
        pubsub.subscribe(topic).await.map_err(|e| format!("cannot subscribe to {topic} at {url}: {e}"))?;
        let conn = ConnectionManager::new(client).await.map_err(|e| format!("cannot reach Redis at {url}: {e}"))?;
        tracing::info!("hub: {} subscribed to {topic} at {url}", self.identity);
        *backoff = Duration::from_millis(100);
        let mut stream = pubsub.into_on_message();
        while let Some(msg) = stream.next().await {
            let payload = msg.get_payload_bytes().to_vec();
            tokio::spawn(self.clone().handle(payload, conn.clone()));
        }
        Ok(())
    }

    /// Open, check and (if it is for us) run one command.
    async fn handle(self: Arc<Self>, payload: Vec<u8>, mut conn: ConnectionManager) {
        let (cmd, eph) = match envelope::open_command(&self.network, &self.station, &payload, MAX_MESSAGE) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("hub: ignored a {}-byte message: {e}", payload.len());
                return;
            }
        };
        if !self.accept_seq(cmd.seq) {
            tracing::warn!("hub: refused command seq {} from {}: replayed or too old", cmd.seq, cmd.station);
            return;
        }
        if !self.swarm.is_empty() {
            return self.swarm_replies(&cmd, &eph, &conn).await;
        }
        if !self.wants(&cmd, &self.identity) {
            return;
        }
        let (tx, rx) = mpsc::channel(256);
        let pusher = tokio::spawn(push_replies(
            rx,
            ReplyBox::for_agent(&self.network, &eph),
            cmd.clone(),
            self.identity.clone(),
            self.tags.clone(),
            conn.clone(),
        ));
        let id = cmd.run.id;
        let mut renewer = None;
        let slot = if cmd.fanout > 0 {
            let _ = tx.send(Message::Queued { id }).await;
            let slot = Slot::new(config::slots_key(&cmd.reply_to), cmd.fanout);
            match slot.wait(&mut conn, Duration::from_millis(cmd.slot_wait_ms)).await {
                Ok(true) => {
                    renewer = Some(tokio::spawn(renew(Slot::clone_for_renew(&slot), conn.clone())));
                    Some(slot)
                }
                Ok(false) => {
                    let _ = tx.send(Message::Refused { id, reason: Refusal::Busy { limit: cmd.fanout } }).await;
                    drop(tx);
                    let _ = pusher.await;
                    return;
                }
                Err(e) => {
                    tracing::warn!("hub: cannot take a run slot: {e}");
                    let reason = Refusal::Denied(format!("no run slot: {e}"));
                    let _ = tx.send(Message::Refused { id, reason }).await;
                    drop(tx);
                    let _ = pusher.await;
                    return;
                }
            }
        } else {
            None
        };
        let peer =
            Peer { dispatcher: cmd.station.clone(), serial: String::new(), addr: format!("hub {}", self.cfg.channel) };
        session::handle_run(self.agent.clone(), peer, cmd.run, tx).await;
        if let Some(r) = renewer {
            r.abort();
        }
        if let Some(s) = slot {
            s.release(&mut conn).await;
        }
        let _ = pusher.await;
    }

    fn accept_seq(&self, seq: u64) -> bool {
        let Ok(mut g) = self.guard.lock() else { return false };
        if !g.accept(seq) {
            return false;
        }
        if let Err(e) = crate::fsutil::write_public(&self.seq_file, format!("{}\n", g.high()).as_bytes()) {
            tracing::warn!("hub: cannot persist {}: {e}", self.seq_file.display());
        }
        true
    }

    /// Tags: every requested tag present; agents: empty or naming us.
    fn wants(&self, cmd: &Command, identity: &str) -> bool {
        cmd.tags.iter().all(|t| self.tags.contains(t))
            && (cmd.agents.is_empty() || cmd.agents.iter().any(|a| a == identity))
    }

    /// Swarm mode: every matching simulated identity answers a builtin
    /// (or refuses anything else) through the real reply path.
    async fn swarm_replies(&self, cmd: &Command, eph: &crypto_box::PublicKey, conn: &ConnectionManager) {
        let rbox = ReplyBox::for_agent(&self.network, eph);
        let id = cmd.run.id;
        let answer = match crate::protocol::check_action_name(&cmd.run.action) {
            Err(e) => Err(Refusal::BadName(e.to_string())),
            Ok(()) => crate::agent::builtins::run(&self.agent, &cmd.run.action, &cmd.run.args, &cmd.station)
                .ok_or_else(|| Refusal::UnknownAction(format!("{} (a swarm answers builtins only)", cmd.run.action))),
        };
        let messages = match answer {
            Ok((exit, bytes)) => vec![
                Message::Started { id, pid: std::process::id() },
                Message::Output { id, stream: crate::protocol::Stream::Stdout, bytes },
                Message::Finished(crate::protocol::Finished {
                    id,
                    exit: Some(exit),
                    signal: None,
                    duration_ms: 0,
                    truncated: false,
                    end: crate::protocol::End::Exited,
                }),
            ],
            Err(reason) => vec![Message::Refused { id, reason }],
        };
        let mut pushes = Vec::new();
        for identity in self.swarm.iter().filter(|i| self.wants(cmd, i)) {
            let (tx, rx) = mpsc::channel(messages.len());
            for m in &messages {
                let _ = tx.try_send(m.clone());
            }
            drop(tx);
            pushes.push(tokio::spawn(push_replies(
                rx,
                rbox.clone(),
                cmd.clone(),
                identity.clone(),
                self.tags.clone(),
                conn.clone(),
            )));
        }
        for p in pushes {
            let _ = p.await;
        }
    }
}

async fn renew(slot: Slot, mut conn: ConnectionManager) {
    loop {
        tokio::time::sleep(LEASE / 3).await;
        let _ = slot.try_take(&mut conn).await;
    }
}

/// Seal each message and push it (batched) to the reply list, with a TTL.
pub async fn push_replies(
    mut rx: mpsc::Receiver<Message>,
    rbox: ReplyBox,
    cmd: Command,
    identity: String,
    tags: Vec<String>,
    mut conn: ConnectionManager,
) {
    let mut seq = 0u64;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        let mut pipe = redis::pipe();
        for message in batch {
            seq += 1;
            let reply = Reply { challenge: cmd.challenge, agent: identity.clone(), tags: tags.clone(), seq, message };
            let mut nonce = [0u8; 24];
            let _ = getrandom::getrandom(&mut nonce);
            match rbox.seal(&reply, nonce) {
                Ok(bytes) => {
                    pipe.rpush(&cmd.reply_to, bytes).ignore();
                }
                Err(e) => tracing::warn!("hub: cannot seal a reply: {e}"),
            }
        }
        pipe.pexpire(&cmd.reply_to, REPLY_TTL.as_millis() as i64).ignore();
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            tracing::warn!("hub: cannot push replies to {}: {e}", cmd.reply_to);
        }
    }
}

fn safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}
