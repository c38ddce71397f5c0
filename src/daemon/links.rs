//! The daemon's links: one session per agent (over mTLS or SSH), opened on
//! first use and shared by every client. Requests of different clients are
//! renumbered onto the link and their answers routed back with the
//! client's own ids. A heartbeat pings every agent every 5 s; an agent
//! silent for 3 beats is lost: its clients' channels are closed, and for an
//! SSH agent the daemon checks over SSH whether the remote process still
//! lives, kills it and its action groups, and starts a new one.

use super::log::Log;
use crate::protocol::daemon::{DaemonFrame, LinkInfo, Via};
use crate::protocol::{Hello, Message};
use crate::transport::carrier::{Dialer, OpenError, Session, Target};
use crate::transport::ssh::SshCarrier;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Heartbeat period and how many missed beats make an agent lost.
pub const BEAT: Duration = Duration::from_secs(5);
pub const MISSES: u32 = 3;
/// Heartbeat ids live above this, apart from client ids.
const BEAT_IDS: u64 = 1 << 62;

/// Where an agent's answer to one request goes.
struct Route {
    client: u64,
    tx: mpsc::Sender<DaemonFrame>,
    chan: u32,
    id: u64,
    /// Keep it running when the client goes away.
    detach: bool,
}

/// One shared agent session.
pub struct Link {
    pub name: String,
    pub addr: String,
    pub via: Via,
    pub hello: Hello,
    out: mpsc::Sender<Message>,
    routes: Mutex<HashMap<u64, Route>>,
    next: AtomicU64,
    heard: Mutex<Instant>,
    pub lost: CancellationToken,
    pub restarts: AtomicU32,
}

fn is_end(m: &Message) -> bool {
    matches!(m, Message::Finished(_) | Message::Refused { .. } | Message::Pong { .. })
}

fn with_id(m: Message, id: u64) -> Message {
    match m {
        Message::Run(mut r) => {
            r.id = id;
            Message::Run(r)
        }
        Message::Started { pid, .. } => Message::Started { id, pid },
        Message::Output { stream, bytes, .. } => Message::Output { id, stream, bytes },
        Message::Progress { pct, .. } => Message::Progress { id, pct },
        Message::Finished(mut f) => {
            f.id = id;
            Message::Finished(f)
        }
        Message::Refused { reason, .. } => Message::Refused { id, reason },
        Message::Cancel { .. } => Message::Cancel { id },
        Message::Ping { .. } => Message::Ping { id },
        Message::Pong { .. } => Message::Pong { id },
        Message::Queued { .. } => Message::Queued { id },
        Message::WriteFile(mut w) => {
            w.id = id;
            Message::WriteFile(w)
        }
        other => other,
    }
}

impl Link {
    /// Take over an open session: start its reader, writer and heartbeat.
    pub fn start(session: Session, target: &Target, via: Via, log: Arc<Log>) -> Arc<Link> {
        let (tx, mut rx) = mpsc::channel::<Message>(1024);
        let link = Arc::new(Link {
            name: target.name.clone(),
            addr: target.addr.clone(),
            via,
            hello: session.peer.clone(),
            out: tx,
            routes: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            heard: Mutex::new(Instant::now()),
            lost: CancellationToken::new(),
            restarts: AtomicU32::new(0),
        });
        let Session { mut reader, mut writer, .. } = session;
        let l = link.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    m = rx.recv() => match m {
                        Some(m) => if writer.write(&m).await.is_err() { break },
                        None => break,
                    },
                    _ = l.lost.cancelled() => break,
                }
            }
            writer.shutdown().await;
        });
        let l = link.clone();
        let reader_log = log.clone();
        tokio::spawn(async move {
            let why = loop {
                let m = tokio::select! {
                    m = reader.read() => m,
                    _ = l.lost.cancelled() => break "stopped".to_string(),
                };
                match m {
                    Ok(Some(m)) => l.deliver(m, &reader_log).await,
                    Ok(None) => break "the agent closed the session".into(),
                    Err(e) => break format!("the session failed: {e}"),
                }
            };
            l.close(&why, &reader_log).await;
        });
        let l = link.clone();
        tokio::spawn(async move {
            let mut beat = 0u64;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(BEAT) => {},
                    _ = l.lost.cancelled() => return,
                }
                let silent = l.heard.lock().map(|h| h.elapsed()).unwrap_or_default();
                if silent >= BEAT * MISSES {
                    l.close(&format!("no answer to {MISSES} heartbeats ({}s)", silent.as_secs()), &log).await;
                    return;
                }
                beat += 1;
                let _ = l.out.try_send(Message::Ping { id: BEAT_IDS + beat });
            }
        });
        link
    }

    /// The agent's pid, from its Hello (`pid=N`).
    pub fn remote_pid(&self) -> Option<u32> {
        self.hello.capabilities.iter().find_map(|c| c.strip_prefix("pid=")).and_then(|p| p.parse().ok())
    }

    async fn deliver(&self, m: Message, log: &Log) {
        if let Ok(mut h) = self.heard.lock() {
            *h = Instant::now();
        }
        let Some(id) = m.request_id() else {
            if let Message::Error { message } = &m {
                log.event("agent-error", serde_json::json!({"host": self.name, "message": message}));
            }
            return;
        };
        if id >= BEAT_IDS {
            return;
        }
        let end = is_end(&m);
        if let Message::Finished(f) = &m {
            log.event("end", serde_json::json!({"host": self.name, "exit": f.exit, "signal": f.signal, "end": format!("{:?}", f.end)}));
        }
        let route = {
            let Ok(mut routes) = self.routes.lock() else { return };
            if end {
                routes.remove(&id).map(|r| (r.tx, r.chan, r.id))
            } else {
                routes.get(&id).map(|r| (r.tx.clone(), r.chan, r.id))
            }
        };
        if let Some((tx, chan, cid)) = route {
            let _ = tx.send(DaemonFrame::Data { chan, msg: with_id(m, cid) }).await;
        }
    }

    /// Forward a client's message on `chan`, renumbered.
    pub async fn forward(&self, client: u64, tx: &mpsc::Sender<DaemonFrame>, chan: u32, m: Message) {
        match m {
            Message::Cancel { id } => {
                let agent_id = self.routes.lock().ok().and_then(|r| {
                    r.iter().find(|(_, x)| x.client == client && x.chan == chan && x.id == id).map(|(a, _)| *a)
                });
                if let Some(a) = agent_id {
                    let _ = self.out.send(Message::Cancel { id: a }).await;
                }
            }
            m => {
                let Some(id) = m.request_id() else { return };
                let detach = matches!(&m, Message::Run(r) if r.detach);
                let agent_id = match &m {
                    // Later chunks of a write go where the first did.
                    Message::WriteFile(_) => self.routes.lock().ok().and_then(|r| {
                        r.iter().find(|(_, x)| x.client == client && x.chan == chan && x.id == id).map(|(a, _)| *a)
                    }),
                    _ => None,
                };
                let agent_id = match agent_id {
                    Some(a) => a,
                    None => {
                        let a = self.next.fetch_add(1, Ordering::AcqRel);
                        if let Ok(mut r) = self.routes.lock() {
                            r.insert(a, Route { client, tx: tx.clone(), chan, id, detach });
                        }
                        a
                    }
                };
                let _ = self.out.send(with_id(m, agent_id)).await;
            }
        }
    }

    /// A client is done with `chan`: cancel what it left running (but
    /// asynchronous requests) and forget its routes.
    pub async fn close_chan(&self, client: u64, chan: u32) {
        let gone: Vec<(u64, bool)> = match self.routes.lock() {
            Ok(mut r) => {
                let ids: Vec<(u64, bool)> = r
                    .iter()
                    .filter(|(_, x)| x.client == client && x.chan == chan)
                    .map(|(a, x)| (*a, x.detach))
                    .collect();
                for (a, _) in &ids {
                    r.remove(a);
                }
                ids
            }
            Err(_) => Vec::new(),
        };
        for (a, detach) in gone {
            if !detach {
                let _ = self.out.send(Message::Cancel { id: a }).await;
            }
        }
    }

    /// The link is gone: tell every client on it.
    async fn close(&self, why: &str, log: &Log) {
        if self.lost.is_cancelled() {
            return;
        }
        self.lost.cancel();
        log.event("lost", serde_json::json!({"host": self.name, "why": why}));
        let routes: Vec<Route> =
            self.routes.lock().map(|mut r| r.drain().map(|(_, v)| v).collect()).unwrap_or_default();
        let mut told = std::collections::HashSet::new();
        for r in routes {
            if told.insert((r.client, r.chan)) {
                let _ = r.tx.send(DaemonFrame::Closed { chan: r.chan, why: format!("{}: {why}", self.name) }).await;
            }
        }
    }

    pub fn info(&self) -> LinkInfo {
        LinkInfo {
            name: self.name.clone(),
            via: self.via,
            inflight: self.routes.lock().map(|r| r.len() as u32).unwrap_or(0),
            silent_ms: self.heard.lock().map(|h| h.elapsed().as_millis() as u64).unwrap_or(0),
            restarts: self.restarts.load(Ordering::Acquire),
        }
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<Link>>>>;

/// Every link, by carrier and name; opening one host never waits for another.
pub struct Links {
    slots: Mutex<HashMap<(Via, String), Slot>>,
    tls: Option<Arc<dyn Dialer>>,
    ssh: Option<Arc<SshCarrier>>,
    ssh_no_install: Option<Arc<SshCarrier>>,
    log: Arc<Log>,
}

/// Kill what a lost agent left on its host: its action groups, then itself.
fn reap_script(pid: u32) -> String {
    format!(
        "if kill -0 {pid} 2>/dev/null; then for g in $(ps -o pgid= --ppid {pid}); do kill -9 -- -$g 2>/dev/null; done; \
         kill -9 {pid}; echo killed; else echo gone; fi"
    )
}

impl Links {
    pub fn new(
        tls: Option<Arc<dyn Dialer>>,
        ssh: Option<Arc<SshCarrier>>,
        ssh_no_install: Option<Arc<SshCarrier>>,
        log: Arc<Log>,
    ) -> Links {
        Links { slots: Mutex::new(HashMap::new()), tls, ssh, ssh_no_install, log }
    }

    /// When `link` is lost: over SSH, kill what is left of the remote agent
    /// and start a new one (the next request would otherwise pay for it).
    fn watch(self: &Arc<Self>, link: Arc<Link>, install: bool) {
        let links = self.clone();
        tokio::spawn(async move {
            link.lost.cancelled().await;
            if link.via != Via::Ssh {
                return;
            }
            let Some(ssh) = links.ssh.clone() else { return };
            let target = Target { name: link.name.clone(), addr: link.addr.clone() };
            if let Some(pid) = link.remote_pid() {
                let r = ssh.remote(&target, &reap_script(pid)).await;
                let said = match &r {
                    Ok((_, out, _)) => out.trim().to_string(),
                    Err(e) => e.to_string(),
                };
                links.log.event("reap", serde_json::json!({"host": link.name, "pid": pid, "result": said}));
            }
            match links.get(&target, Via::Ssh, install).await {
                Ok(l) => links.log.event(
                    "restart",
                    serde_json::json!({"host": l.name, "restarts": l.restarts.load(Ordering::Acquire)}),
                ),
                Err(e) => {
                    links.log.event("restart-failed", serde_json::json!({"host": link.name, "why": e.to_string()}))
                }
            }
        });
    }

    fn slot(&self, via: Via, name: &str) -> Slot {
        let mut s = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        s.entry((via, name.to_string())).or_default().clone()
    }

    fn dialer(&self, via: Via, install: bool) -> Result<Arc<dyn Dialer>, OpenError> {
        let d = match (via, install) {
            (Via::Tls, _) => self.tls.clone(),
            (Via::Ssh, true) => self.ssh.clone().map(|s| s as Arc<dyn Dialer>),
            (Via::Ssh, false) => self.ssh_no_install.clone().map(|s| s as Arc<dyn Dialer>),
        };
        d.ok_or_else(|| {
            OpenError::Refused(crate::transport::carrier::Reason::new(
                "carrier unavailable",
                format!("this daemon cannot reach agents over {via:?} (see its log)"),
            ))
        })
    }

    /// The link to `target`, opened when there is none (or it was lost).
    pub async fn get(self: &Arc<Self>, target: &Target, via: Via, install: bool) -> Result<Arc<Link>, OpenError> {
        let slot = self.slot(via, &target.name);
        let mut held = slot.lock().await;
        if let Some(l) = held.as_ref().filter(|l| !l.lost.is_cancelled() && l.addr == target.addr) {
            return Ok(l.clone());
        }
        let previous = held.take();
        let session = self.dialer(via, install)?.open(target).await?;
        let link = Link::start(session, target, via, self.log.clone());
        if let Some(p) = previous {
            link.restarts.store(p.restarts.load(Ordering::Acquire) + 1, Ordering::Release);
        }
        self.log
            .event("link", serde_json::json!({"host": target.name, "addr": target.addr, "via": format!("{via:?}")}));
        *held = Some(link.clone());
        self.watch(link.clone(), install);
        Ok(link)
    }

    /// Every link held now.
    pub fn all(&self) -> Vec<Arc<Link>> {
        let slots: Vec<Slot> = self.slots.lock().map(|s| s.values().cloned().collect()).unwrap_or_default();
        slots.iter().filter_map(|s| s.try_lock().ok().and_then(|l| l.clone())).collect()
    }
}
