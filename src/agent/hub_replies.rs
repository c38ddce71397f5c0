//! How a hub agent's replies reach the station: each message of a command
//! is sealed for that command's station (`protocol::envelope::ReplyBox`)
//! and pushed, in batches, onto the command's reply list with its TTL. A
//! push is never given up early: Redis may be busy, restarting or failing
//! over, so a failed batch is tried again, in order, for as long as the
//! reply list lives.

use crate::hub::config::REPLY_TTL;
use crate::hub::conn::Conn;
use crate::protocol::envelope::{Command, Reply, ReplyBox};
use crate::protocol::Message;
use std::time::Duration;
use tokio::sync::mpsc;

/// Longest pause between two tries of a reply push.
const PUSH_BACKOFF: Duration = Duration::from_secs(2);

/// Push one batch of sealed replies, trying again (100 ms doubling to 2 s)
/// while Redis refuses, times out or is away, for as long as the reply
/// list lives ([`REPLY_TTL`]); later messages wait, so order is kept. A
/// batch sent twice (its first answer timed out after Redis ran it) is
/// harmless: the station drops replies whose sequence it has seen.
async fn push_until_done(pipe: &redis::Pipeline, reply_to: &str, conn: &mut Conn) {
    let started = tokio::time::Instant::now();
    let mut backoff = Duration::from_millis(100);
    let mut tries = 0u32;
    loop {
        tries += 1;
        match pipe.query_async::<()>(conn).await {
            Ok(()) if tries > 1 => {
                tracing::info!("hub: pushed replies to {reply_to} after {tries} tries");
                return;
            }
            Ok(()) => return,
            Err(e) if started.elapsed() + backoff > REPLY_TTL => {
                tracing::error!("hub: gave up pushing replies to {reply_to} after {tries} tries: {e}");
                return;
            }
            Err(e) => {
                if tries == 1 {
                    tracing::warn!("hub: cannot push replies to {reply_to}: {e}; trying again");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(PUSH_BACKOFF);
            }
        }
    }
}

/// Seal each message and push it (batched) to the reply list, with a TTL.
pub async fn push_replies(
    mut rx: mpsc::Receiver<Message>,
    rbox: ReplyBox,
    cmd: Command,
    identity: String,
    tags: Vec<String>,
    mut conn: Conn,
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
        pipe.pexpire(&cmd.reply_to, i64::try_from(REPLY_TTL.as_millis()).unwrap_or(i64::MAX)).ignore();
        push_until_done(&pipe, &cmd.reply_to, &mut conn).await;
    }
}
