//! `muster hub swarm`: many simulated agent identities in one process, to
//! load a hub with realistic traffic (one verified command in, sealed
//! replies from every identity out). Identities answer builtins only
//! (`ping`, `info`, `list-actions`); they never start processes. It is the
//! hub front door with a list of identities instead of one. Under hub-wide
//! throttling (`--fanout`) each identity waits for a run slot as a real
//! agent does, so a swarm also loads Redis with thousands of waiters.

use super::hub::HubAgent;
use super::hub_replies::push_replies;
use super::Agent;
use crate::hub::config;
use crate::hub::config::AgentHub;
use crate::hub::conn::Conn;
use crate::hub::throttle::{Acquired, Slot, Waker};
use crate::protocol::envelope::{Command, ReplyBox};
use crate::protocol::{End, Finished, Message, Refusal, Run, Stream};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

impl HubAgent {
    /// A swarm of `count` simulated identities `<identity>-NNNNN`.
    pub fn swarm(agent: Arc<Agent>, cfg: AgentHub, count: usize) -> Result<HubAgent, String> {
        let mut h = HubAgent::new(agent, cfg)?;
        h.swarm = (0..count).map(|i| format!("{}-{i:05}", h.identity)).collect();
        Ok(h)
    }

    /// Every matching simulated identity answers a builtin (or refuses
    /// anything else) through the real reply path.
    pub(super) async fn swarm_replies(
        self: Arc<Self>,
        cmd: Command,
        run: Run,
        rbox: ReplyBox,
        conn: Conn,
        _permit: OwnedSemaphorePermit,
    ) {
        let id = run.id;
        let answer = match crate::protocol::check_action_name(&run.action) {
            Err(e) => Err(Refusal::BadName(e.to_string())),
            Ok(()) => {
                super::builtins::run(&self.agent, &run.action, &run.args, &super::hub::peer(&cmd, &self.cfg.channel))
                    .ok_or_else(|| Refusal::UnknownAction(format!("{} (a swarm answers builtins only)", run.action)))
            }
        };
        let messages = match answer {
            Ok((exit, bytes)) => vec![
                Message::Started { id, pid: std::process::id() },
                Message::Output { id, stream: Stream::Stdout, bytes },
                Message::Finished(Finished {
                    id,
                    exit: Some(exit),
                    signal: None,
                    duration_ms: 0,
                    truncated: false,
                    end: End::Exited,
                }),
            ],
            Err(reason) => vec![Message::Refused { id, reason }],
        };
        let mut pushes = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(cmd.slot_wait_ms.min(86_400_000));
        for identity in self.swarm.iter().filter(|i| self.wants(&cmd, i)) {
            let (me, cmd, rbox, messages) = (self.clone(), cmd.clone(), rbox.clone(), messages.clone());
            let (identity, mut conn) = (identity.clone(), conn.clone());
            pushes.push(tokio::spawn(async move {
                // With hub-wide throttling each identity waits for a slot
                // like a real agent, answers, then gives the slot back.
                let slot = (cmd.fanout > 0).then(|| Slot::new(config::slots_key(&cmd.reply_to), cmd.fanout));
                let (tx, rx) = mpsc::channel(messages.len() + 1);
                let pusher = tokio::spawn(push_replies(rx, rbox, cmd.clone(), identity, me.tags.clone(), conn.clone()));
                let (mut messages, mut taken) = (messages, false);
                if let Some(slot) = &slot {
                    let _ = tx.send(Message::Queued { id }).await;
                    let got = slot.acquire(&mut conn, &mut Waker::new(me.hub.clone()), deadline, || false).await;
                    match got {
                        Ok(Acquired::Taken) => taken = true,
                        Ok(_) => messages = vec![Message::Refused { id, reason: Refusal::Busy { limit: cmd.fanout } }],
                        Err(e) => {
                            let reason = Refusal::Denied(format!("no run slot: {e}"));
                            messages = vec![Message::Refused { id, reason }];
                        }
                    }
                }
                for m in messages {
                    let _ = tx.send(m).await;
                }
                drop(tx);
                let _ = pusher.await;
                if let Some(slot) = slot.as_ref().filter(|_| taken) {
                    slot.release(&mut conn).await;
                }
            }));
        }
        for p in pushes {
            let _ = p.await;
        }
    }
}

/// Serve a swarm of `count` identities until the process is stopped.
pub async fn run(agent: Arc<Agent>, hub: AgentHub, count: usize) -> Result<(), String> {
    if count == 0 {
        return Err("--count must be at least 1".into());
    }
    let swarm = Arc::new(HubAgent::swarm(agent, hub, count)?);
    tracing::info!("swarm of {count} identities {}-00000..", swarm.identity);
    swarm.run().await;
    Ok(())
}
