//! Hub-wide throttling without the station talking to agents: a Redis
//! sorted set per command holds the run slots, each member a random token
//! scored with its lease expiry in Redis's own clock (`TIME`). An agent takes
//! a slot with one atomic script (drop expired leases, then add itself if
//! fewer than `fanout` remain), renews its lease while it runs, and removes
//! it when done. An agent that dies stops renewing, so its slot frees
//! itself after one lease; nobody can hold a slot forever.
//! Waiters do not poll: a release pushes a token on the set's wake list
//! (`<slots>:wake`) in the same script, and each waiter blocks on it with
//! `BLPOP` on a connection of its own, trying again when woken and at least
//! every [`SAFETY_NET`] (for a lease that ran out with nobody to release
//! it). A token nobody waits for is harmless: it costs the next waiter one
//! try.

use super::conn::{Conn, Hub};
use std::time::Duration;

/// A slot lease lasts this long unless renewed.
pub const LEASE: Duration = Duration::from_secs(3);

const ACQUIRE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
  return 1
end
return 0
"#;

/// One agent's claim on a command's slot set.
pub struct Slot {
    key: String,
    token: String,
    fanout: u32,
    script: redis::Script,
}

impl Slot {
    pub fn new(key: String, fanout: u32) -> Slot {
        Slot { key, token: super::config::random_hex(12), fanout, script: redis::Script::new(ACQUIRE) }
    }

    /// Take (or renew) the slot; false when all are taken.
    pub async fn try_take(&self, conn: &mut Conn) -> redis::RedisResult<bool> {
        let got: i64 = self
            .script
            .key(&self.key)
            .arg(&self.token)
            .arg(self.fanout)
            .arg(LEASE.as_millis() as u64)
            .arg(super::config::REPLY_TTL.as_millis() as u64)
            .invoke_async(conn)
            .await?;
        Ok(got == 1)
    }

    /// Wait for a slot until `deadline`, trying again whenever a holder
    /// releases one (see [`Waker`]) and at least every [`SAFETY_NET`];
    /// `give_up` is checked before every try (a stopped request).
    pub async fn acquire(
        &self,
        conn: &mut Conn,
        waker: &mut Waker,
        deadline: tokio::time::Instant,
        give_up: impl Fn() -> bool,
    ) -> redis::RedisResult<Acquired> {
        loop {
            if give_up() {
                return Ok(Acquired::GaveUp);
            }
            if self.try_take(conn).await? {
                return Ok(Acquired::Taken);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Acquired::TimedOut);
            }
            waker.wait(&wake_key(&self.key), deadline - now).await;
        }
    }

    /// A second handle on the same lease, for the renewing task.
    pub fn clone_for_renew(&self) -> Slot {
        Slot {
            key: self.key.clone(),
            token: self.token.clone(),
            fanout: self.fanout,
            script: redis::Script::new(ACQUIRE),
        }
    }

    /// Give the slot back and wake one waiter (one atomic script: the
    /// lease goes, a token goes on the wake list, which is capped at the
    /// fanout and expires with the request).
    pub async fn release(&self, conn: &mut Conn) {
        let _: redis::RedisResult<i64> = redis::Script::new(RELEASE)
            .key(&self.key)
            .key(wake_key(&self.key))
            .arg(&self.token)
            .arg(self.fanout)
            .arg(super::config::REPLY_TTL.as_millis() as u64)
            .invoke_async(conn)
            .await;
    }
}

const RELEASE: &str = r#"
local gone = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('LPUSH', KEYS[2], '1')
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
return gone
"#;

/// Longest a waiter sleeps without a wake-up before it tries again: a slot
/// also frees when a holder dies and its lease runs out, which wakes nobody.
pub const SAFETY_NET: Duration = Duration::from_secs(2);

/// The wake list of a slot set: one token pushed per release.
pub fn wake_key(slots_key: &str) -> String {
    format!("{slots_key}:wake")
}

/// How [`Slot::acquire`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    Taken,
    TimedOut,
    GaveUp,
}

/// A waiter's own blocking connection (`BLPOP` on the wake list), opened
/// on first use: blocking on the shared multiplexed connection would hold
/// up every other command queued behind it. When it cannot be opened, or a
/// `BLPOP` fails, the waiter sleeps a short random time instead (the old
/// polling), so a Redis that refuses `BLPOP` still works.
pub struct Waker {
    hub: Hub,
    conn: Option<Conn>,
    /// The server answered `BLPOP` with an error (a proxy without blocking
    /// commands, a renamed command, an ACL): poll from then on.
    refused: bool,
}

impl Waker {
    pub fn new(hub: Hub) -> Waker {
        Waker { hub, conn: None, refused: false }
    }

    /// Block until a token arrives on `key`, [`SAFETY_NET`] or `limit` passes.
    pub async fn wait(&mut self, key: &str, limit: Duration) {
        let limit = limit.min(SAFETY_NET);
        // BLPOP takes whole seconds on every Redis version (fractions need 6).
        let secs = limit.as_secs();
        if self.refused {
            return jitter().await;
        }
        if secs == 0 {
            tokio::time::sleep(limit).await;
            return;
        }
        if self.conn.is_none() {
            self.conn = self.hub.dedicated(Some(limit + Duration::from_secs(3))).await.ok();
        }
        let Some(conn) = self.conn.as_mut() else {
            return jitter().await;
        };
        let popped: redis::RedisResult<Option<(String, String)>> =
            redis::cmd("BLPOP").arg(key).arg(secs).query_async(conn).await;
        if let Err(e) = popped {
            // A server that is failing over or moving slots answers with
            // an error too: that is worth a new connection, not polling.
            let passing = matches!(e.code(), Some("READONLY" | "LOADING" | "MASTERDOWN" | "TRYAGAIN" | "CLUSTERDOWN"));
            if e.code().is_some() && !passing && !e.is_cluster_error() {
                tracing::warn!("hub: Redis refused BLPOP ({e}); waiting for run slots by polling");
                self.refused = true;
            } else {
                self.conn = None;
            }
            jitter().await;
        }
    }
}

/// 40-80 ms, random.
async fn jitter() {
    let mut j = [0u8; 1];
    let _ = getrandom::getrandom(&mut j);
    tokio::time::sleep(Duration::from_millis(40 + u64::from(j[0] % 40))).await;
}
