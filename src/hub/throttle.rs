//! Hub-wide throttling without the station talking to agents: a Redis
//! sorted set per command holds the run slots, each member a random token
//! scored with its lease expiry in Redis's own clock (`TIME`). An agent takes
//! a slot with one atomic script (drop expired leases, then add itself if
//! fewer than `fanout` remain), renews its lease while it runs, and removes
//! it when done. An agent that dies stops renewing, so its slot frees
//! itself after one lease; nobody can hold a slot forever.

use redis::aio::ConnectionManager;
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
    pub async fn try_take(&self, conn: &mut ConnectionManager) -> redis::RedisResult<bool> {
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

    /// Wait for a slot, polling with jitter, for at most `limit`.
    pub async fn wait(&self, conn: &mut ConnectionManager, limit: Duration) -> redis::RedisResult<bool> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.try_take(conn).await? {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            let mut j = [0u8; 1];
            let _ = getrandom::getrandom(&mut j);
            tokio::time::sleep(Duration::from_millis(40 + u64::from(j[0] % 40))).await;
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

    /// Give the slot back.
    pub async fn release(&self, conn: &mut ConnectionManager) {
        let _: redis::RedisResult<i64> = redis::cmd("ZREM").arg(&self.key).arg(&self.token).query_async(conn).await;
    }
}
