//! The agent's hub front door: subscribe to the channel's request topic and
//! open and verify every command right in the subscriber loop (garbage,
//! foreign or badly signed messages are logged and dropped without a task),
//! refuse replays per station (`protocol::station_guards`, persisted in
//! `<state_dir>/hub-<channel>.seq` by one background writer, and made
//! durable before a command runs), then admit matching requests through
//! `agent::request` like any other front door. Tasks are bounded: a
//! request holds a run slot from before its hook until its end, and every
//! task that pushes replies holds one of a fixed number of permits.
//! Signed `Cancel` and `Stop` orders cancel a running request or keep a
//! queued one from starting. Reconnects with backoff when Redis goes away.

use super::hub_replies::push_replies;
use super::request::{self, Admitted, Claim};
use super::session::Peer;
use super::Agent;
use crate::hub::config::{self, AgentHub, MAX_MESSAGE};
use crate::hub::conn::{Conn, Hub};
use crate::hub::throttle::{Acquired, Slot, Waker, LEASE};
use crate::protocol::envelope::{self, Command, Order, ReplyBox};
use crate::protocol::station_guards::StationGuards;
use crate::protocol::{End, Finished, Message, Refusal, Run};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

/// Commands up to one second (of microsecond sequence numbers) late are
/// still accepted once, per station.
const REPLAY_WINDOW: u64 = 1_000_000;
/// Stations whose marks are kept (see `StationGuards`).
const MAX_STATIONS: usize = 4096;
/// Request ids remembered as stopped (error budget spent).
const MAX_STOPPED: usize = 1024;
/// How long a command may wait for its sequence number to be durable.
const DURABLE_WAIT: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How often an agent under Sentinel checks that it is still on the
/// primary: often when it cannot hear the sentinels' announcements, rarely
/// (a safety net) when it can.
const ROLE_CHECK: Duration = Duration::from_secs(1);
const ROLE_CHECK_WATCHED: Duration = Duration::from_secs(10);

pub struct HubAgent {
    pub(super) agent: Arc<Agent>,
    pub(super) cfg: AgentHub,
    /// The hub's Redis (one server, Sentinel or Cluster).
    pub(super) hub: Hub,
    pub identity: String,
    pub tags: Vec<String>,
    /// Simulated identities answering builtins (swarm mode); empty normally.
    pub(super) swarm: Vec<String>,
    station: ed25519_dalek::VerifyingKey,
    network: crypto_box::SecretKey,
    guards: Mutex<(StationGuards, u64)>,
    /// The latest (version, marks) to write; the writer reports the
    /// version made durable on `durable`.
    marks: watch::Sender<(u64, String)>,
    durable: watch::Receiver<u64>,
    stopped: Mutex<VecDeque<String>>,
    /// Permits for tasks that push replies.
    pub(super) tasks: Arc<Semaphore>,
}

/// Who a hub request comes from, for logs, hooks and cancels.
pub(super) fn peer(cmd: &Command, channel: &str) -> Peer {
    Peer { dispatcher: cmd.station.clone(), serial: String::new(), addr: format!("hub {channel}") }
}

impl HubAgent {
    pub fn new(agent: Arc<Agent>, cfg: AgentHub) -> Result<HubAgent, String> {
        let station = crate::hub::keys::load_station_public(&cfg.station_key)?;
        let network = crate::hub::keys::load_network_secret(&cfg.network_key)?;
        let hub = Hub::new(&cfg.redis).map_err(|e| format!("[hub] {e}"))?;
        let seq_file = agent.cfg.state_dir.join(format!("hub-{}.seq", safe(&cfg.channel)));
        let text = match std::fs::read_to_string(&seq_file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", seq_file.display())),
        };
        let guards = StationGuards::parse(&text, REPLAY_WINDOW, MAX_STATIONS)
            .map_err(|e| format!("{}: {e}; remove it to reset", seq_file.display()))?;
        let (marks, rx) = watch::channel((0, guards.render()));
        let (durable_tx, durable) = watch::channel(0);
        tokio::spawn(write_marks(seq_file, rx, durable_tx));
        let tasks = Arc::new(Semaphore::new(agent.cfg.max_concurrent as usize * 2 + 16));
        Ok(HubAgent {
            identity: cfg.identity.clone().unwrap_or_else(|| agent.cfg.name.clone()),
            tags: cfg.tags.clone().unwrap_or_else(|| agent.cfg.tags.clone()),
            swarm: Vec::new(),
            agent,
            hub,
            station,
            network,
            guards: Mutex::new((guards, 0)),
            marks,
            durable,
            stopped: Mutex::new(VecDeque::new()),
            tasks,
            cfg,
        })
    }

    /// Serve until the agent stops, reconnecting after Redis goes away.
    pub async fn run(self: Arc<Self>) {
        let topic = config::requests_topic(&self.cfg.channel);
        let stopping = self.agent.stopping();
        let mut backoff = Duration::from_millis(100);
        loop {
            let served = tokio::select! {
                r = self.clone().serve_once(&topic, &mut backoff) => r,
                _ = stopping.cancelled() => return,
            };
            match served {
                Ok(()) => tracing::warn!("hub: lost the connection to {}; reconnecting", self.hub.describe()),
                Err(e) => tracing::warn!("hub: {e}; retrying in {backoff:?}"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Subscribe and serve until the subscription is lost. Under Sentinel
    /// the primary is looked up again on every call; the call also ends
    /// when the sentinels announce that the primary moved, or when its
    /// server no longer says it is primary (checked every [`ROLE_CHECK`], or
    /// [`ROLE_CHECK_WATCHED`] while the sentinels are heard),
    /// so a failover that leaves the old primary up is followed too.
    async fn serve_once(self: Arc<Self>, topic: &str, backoff: &mut Duration) -> Result<(), String> {
        let at = self.hub.describe();
        let mut sub = self.hub.subscribe(topic).await?;
        let conn = self.hub.managed().await?;
        tracing::info!("hub: {} subscribed to {topic} at {at}", self.identity);
        *backoff = Duration::from_millis(100);
        let mut switches = self.hub.switches().await;
        let mut check = tokio::time::interval(if switches.is_some() { ROLE_CHECK_WATCHED } else { ROLE_CHECK });
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = sub.next() => match msg {
                    Some(payload) => self.take(&payload, &conn),
                    None => return Ok(()),
                },
                moved = async { switches.as_mut()?.next().await }, if switches.is_some() => match moved {
                    Some(text) => {
                        tracing::warn!("hub: the sentinels moved the primary ({text}); following it");
                        return Ok(());
                    }
                    None => {
                        tracing::warn!("hub: lost the sentinel watched for failovers; checking ROLE every second");
                        switches = None;
                        check = tokio::time::interval(ROLE_CHECK);
                    }
                },
                _ = check.tick(), if self.hub.is_sentinel() => {
                    if !Hub::is_primary(&mut conn.clone()).await {
                        tracing::warn!("hub: {at} is no longer the primary (a failover?); looking it up again");
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Open, verify and dispatch one message, in the subscriber loop.
    fn take(self: &Arc<Self>, payload: &[u8], conn: &Conn) {
        let (cmd, eph) = match envelope::open_command(&self.network, &self.station, payload, MAX_MESSAGE) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("hub: ignored a {}-byte message: {e}", payload.len());
                return;
            }
        };
        let Some(version) = self.accept_seq(&cmd.station, cmd.seq) else {
            tracing::warn!("hub: refused command seq {} from {}: replayed or too old", cmd.seq, cmd.station);
            return;
        };
        let run = match &cmd.order {
            Order::Run(run) => run.clone(),
            Order::Cancel { request_id } => {
                if self.wants(&cmd, &self.identity) && self.agent.cancel(request_id, &cmd.station) {
                    tracing::info!(request = %request_id, station = %cmd.station, "hub: cancelling on the station's order");
                }
                return;
            }
            Order::Stop { request_id } => {
                if let Ok(mut s) = self.stopped.lock() {
                    s.push_back(request_id.clone());
                    while s.len() > MAX_STOPPED {
                        s.pop_front();
                    }
                }
                return;
            }
        };
        if self.swarm.is_empty() && !self.wants(&cmd, &self.identity) {
            return;
        }
        let Ok(permit) = self.tasks.clone().try_acquire_owned() else {
            tracing::warn!("hub: too many commands in flight; ignored seq {} from {}", cmd.seq, cmd.station);
            return;
        };
        let rbox = ReplyBox::for_agent(&self.network, &eph);
        if self.swarm.is_empty() {
            self.agent.spawn_request(self.clone().handle(cmd, run, rbox, version, conn.clone(), permit));
        } else {
            tokio::spawn(self.clone().swarm_replies(cmd, run, rbox, conn.clone(), permit));
        }
    }

    /// Check the replay guard; the marks version to wait for when accepted.
    fn accept_seq(&self, station: &str, seq: u64) -> Option<u64> {
        let mut g = self.guards.lock().ok()?;
        if !g.0.accept(station, seq) {
            return None;
        }
        g.1 += 1;
        let _ = self.marks.send((g.1, g.0.render()));
        Some(g.1)
    }

    /// Tags: every requested tag present; agents: empty or naming us.
    pub(super) fn wants(&self, cmd: &Command, identity: &str) -> bool {
        cmd.tags.iter().all(|t| self.tags.contains(t))
            && (cmd.agents.is_empty() || cmd.agents.iter().any(|a| a == identity))
    }

    fn is_stopped(&self, request_id: &str) -> bool {
        self.stopped.lock().map(|s| s.iter().any(|r| r == request_id)).unwrap_or(false)
    }

    /// Run one command addressed to us and push every reply.
    async fn handle(
        self: Arc<Self>,
        cmd: Command,
        run: Run,
        rbox: ReplyBox,
        version: u64,
        conn: Conn,
        _permit: OwnedSemaphorePermit,
    ) {
        let (tx, rx) = mpsc::channel(256);
        let pusher =
            tokio::spawn(push_replies(rx, rbox, cmd.clone(), self.identity.clone(), self.tags.clone(), conn.clone()));
        let peer = peer(&cmd, &self.cfg.channel);
        let heartbeat = (cmd.heartbeat_ms > 0).then(|| tokio::spawn(heartbeats(tx.clone(), cmd.heartbeat_ms)));
        let mut held = None;
        if !self.wait_durable(version).await {
            let why = "this agent cannot record the command's sequence number, so a replay could not be refused";
            request::refuse(&peer, &run, Refusal::Denied(why.into()), &tx).await;
        } else {
            match request::admit(&self.agent, &peer, &run) {
                Err(reason) => request::refuse(&peer, &run, reason, &tx).await,
                Ok(Admitted::Builtin(exit, out)) => request::answer_builtin(&run, exit, out, &tx).await,
                Ok(Admitted::ReadFile(_)) => {
                    let why = Refusal::FileError("files are read over direct sessions (mTLS, SSH), not the hub".into());
                    request::refuse(&peer, &run, why, &tx).await
                }
                Ok(Admitted::Action { steps, args }) => match request::claim(&self.agent, &peer, &run) {
                    Err(reason) => request::refuse(&peer, &run, reason, &tx).await,
                    Ok(claim) => {
                        held = self.run_claimed(&cmd, run, steps, args, claim, conn.clone(), peer, tx.clone()).await
                    }
                },
            }
        }
        if let Some(h) = heartbeat {
            h.abort();
        }
        drop(tx);
        let _ = pusher.await;
        // The station has the end report before the slot frees, so its
        // error budget can stop the next agent in time.
        if let Some((slot, renewer)) = held {
            renewer.abort();
            slot.release(&mut conn.clone()).await;
        }
    }

    async fn wait_durable(&self, version: u64) -> bool {
        let mut d = self.durable.clone();
        let durable = tokio::time::timeout(DURABLE_WAIT, d.wait_for(|v| *v >= version)).await;
        matches!(durable, Ok(Ok(_)))
    }

    /// With hub-wide throttling, wait for a run slot (while the station may
    /// stop or cancel the request), then execute; returns the slot still
    /// held (and its renewer), for the caller to release once the end
    /// report is pushed.
    #[allow(clippy::too_many_arguments)]
    async fn run_claimed(
        &self,
        cmd: &Command,
        run: Run,
        steps: Vec<PathBuf>,
        args: Vec<String>,
        claim: Claim,
        mut conn: Conn,
        peer: Peer,
        tx: mpsc::Sender<Message>,
    ) -> Option<(Slot, tokio::task::JoinHandle<()>)> {
        if cmd.fanout == 0 {
            request::execute(self.agent.clone(), peer, run, steps, args, claim, tx).await;
            return None;
        }
        let _ = tx.send(Message::Queued { id: run.id }).await;
        let slot = Slot::new(config::slots_key(&cmd.reply_to), cmd.fanout);
        let wait = Duration::from_millis(cmd.slot_wait_ms).min(Duration::from_secs(86_400));
        let deadline = tokio::time::Instant::now() + wait;
        let cancelled = claim.cancelled();
        let mut waker = Waker::new(self.hub.clone());
        let give_up = || self.is_stopped(&run.request_id) || *cancelled.borrow();
        let got = tokio::select! {
            got = slot.acquire(&mut conn, &mut waker, deadline, give_up) => got,
            // A cancel needs no wake-up to be seen.
            _ = until_cancelled(cancelled.clone()) => Ok(Acquired::GaveUp),
        };
        match got {
            Ok(Acquired::Taken) => {}
            Ok(Acquired::TimedOut) => {
                request::refuse(&peer, &run, Refusal::Busy { limit: cmd.fanout }, &tx).await;
                return None;
            }
            Ok(Acquired::GaveUp) if !self.is_stopped(&run.request_id) => {
                let fin = Finished {
                    id: run.id,
                    exit: None,
                    signal: None,
                    duration_ms: 0,
                    truncated: false,
                    end: End::Cancelled,
                };
                let _ = tx.send(Message::Finished(fin)).await;
                return None;
            }
            Ok(Acquired::GaveUp) => {
                request::refuse(&peer, &run, Refusal::Skipped, &tx).await;
                return None;
            }
            Err(e) => {
                tracing::warn!("hub: cannot take a run slot: {e}");
                request::refuse(&peer, &run, Refusal::Denied(format!("no run slot: {e}")), &tx).await;
                return None;
            }
        }
        let renewer = tokio::spawn(renew(slot.clone_for_renew(), conn));
        request::execute(self.agent.clone(), peer, run, steps, args, claim, tx).await;
        Some((slot, renewer))
    }
}

/// Write the replay marks whenever they change (latest wins), off the
/// async workers, and report each version made durable.
async fn write_marks(path: PathBuf, mut marks: watch::Receiver<(u64, String)>, durable: watch::Sender<u64>) {
    while marks.changed().await.is_ok() {
        let (version, text) = marks.borrow_and_update().clone();
        let p = path.clone();
        match tokio::task::spawn_blocking(move || crate::fsutil::write_public(&p, format!("{text}\n").as_bytes())).await
        {
            Ok(Ok(())) => {
                let _ = durable.send(version);
            }
            Ok(Err(e)) => tracing::warn!("hub: cannot persist {}: {e}", path.display()),
            Err(e) => tracing::warn!("hub: cannot persist {}: {e}", path.display()),
        }
    }
}

/// Say `Pong { id: 0 }` every `every_ms` (at least 1 s) while the request
/// is held; aborted when it ends.
async fn heartbeats(tx: mpsc::Sender<Message>, every_ms: u64) {
    let every = Duration::from_millis(every_ms.max(1000));
    loop {
        tokio::time::sleep(every).await;
        if tx.send(Message::Pong { id: 0 }).await.is_err() {
            return;
        }
    }
}

/// Resolve once `cancelled` turns true; never if it no longer can.
async fn until_cancelled(mut cancelled: watch::Receiver<bool>) {
    if cancelled.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn renew(slot: Slot, mut conn: Conn) {
    loop {
        tokio::time::sleep(LEASE / 3).await;
        let _ = slot.try_take(&mut conn).await;
    }
}

fn safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}
