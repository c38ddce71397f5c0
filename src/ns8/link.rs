//! Redis connections for the task side, shaped like the original's
//! go-redis client: commands in lower case as go-redis sends them, `client
//! setname <agent-id>` on every new connection, no `client setinfo`, and
//! network failures retried up to 10 times with a 100 ms to 5 s backoff on
//! a fresh connection. [`Link`] is the shared connection for keys and
//! progress; [`connect`] opens the dedicated one `brpop` blocks on. A
//! command the server refuses by ACL (`NOPERM`, e.g. under ns8's module
//! user, which has no `@admin` commands) is logged with the server's reason
//! on top of whatever the caller logs, never dropped silently.

use super::log::{log, ERR};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, FromRedisValue, IntoConnectionInfo, RedisError, RedisResult};
use std::time::Duration;
use tokio::sync::Mutex;

const MAX_RETRIES: u32 = 10;
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// go-redis' default read timeout, added to a blocking command's own.
pub const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `host:port`
    pub address: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Sent with `client setname`.
    pub name: String,
}

/// Open a connection, authenticate and name it.
pub async fn connect(s: &Settings, response_timeout: Option<Duration>) -> RedisResult<MultiplexedConnection> {
    let info = format!("redis://{}", s.address).into_connection_info()?;
    let mut redis = info.redis_settings().clone().set_skip_set_lib_name();
    if let Some(u) = &s.username {
        redis = redis.set_username(u);
    }
    if let Some(p) = &s.password {
        redis = redis.set_password(p);
    }
    let client = Client::open(info.set_redis_settings(redis))?;
    let config = AsyncConnectionConfig::new()
        .set_response_timeout(response_timeout)
        .set_connection_timeout(Some(Duration::from_secs(5)));
    let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
    redis::cmd("client").arg("setname").arg(&s.name).query_async::<()>(&mut conn).await?;
    Ok(conn)
}

/// True for failures worth a retry on a new connection.
pub fn retryable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(e.code(), Some("LOADING" | "READONLY" | "CLUSTERDOWN" | "TRYAGAIN" | "MASTERDOWN"))
}

/// The server's ACL refusal (`NOPERM this user has no permissions to run
/// the 'client|unblock' command`) when `e` is one.
pub fn refusal(e: &RedisError) -> Option<String> {
    (e.code() == Some("NOPERM")).then(|| error_text(e, ""))
}

/// A Redis error worded like go-redis words it in the original's log.
pub fn error_text(e: &RedisError, address: &str) -> String {
    if e.is_connection_refusal() {
        return format!("dial tcp {address}: connect: connection refused");
    }
    if e.is_connection_dropped() {
        return "EOF".into();
    }
    if e.is_timeout() {
        return format!("read tcp {address}: i/o timeout");
    }
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        // A pipeline's error keeps the failing command's text inside.
        (Some(code), None) => match e.clone().into_server_errors().and_then(|items| {
            let (_, first) = items.first()?;
            first.details().map(str::to_string)
        }) {
            Some(detail) => format!("{code} {detail}"),
            None => code.to_string(),
        },
        _ => e.to_string(),
    }
}

/// The shared connection, reopened on demand.
pub struct Link {
    settings: Settings,
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl Link {
    pub fn new(settings: Settings) -> Link {
        Link { settings, conn: Mutex::new(None) }
    }

    async fn get(&self) -> RedisResult<MultiplexedConnection> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = connect(&self.settings, Some(READ_TIMEOUT)).await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn forget(&self) {
        *self.conn.lock().await = None;
    }

    /// Run `op` on the shared connection, retrying network failures with
    /// backoff (a fresh connection each retry). `what` names the command in
    /// the log line of an ACL refusal.
    async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> RedisResult<T>
    where
        F: FnMut(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        let mut attempt = 0;
        loop {
            let result = match self.get().await {
                Ok(c) => op(c).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e) if retryable(&e) && attempt < MAX_RETRIES => {
                    self.forget().await;
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    if let Some(reason) = refusal(&e) {
                        log!(ERR, "Redis refused {what}: {reason}");
                    }
                    return Err(e);
                }
                ok => return ok,
            }
        }
    }

    /// Run `cmd`, retrying network failures.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        let what = format!("\"{}\"", name(cmd));
        self.retry(&what, |mut c| async move { cmd.query_async::<T>(&mut c).await }).await
    }

    /// Run `cmds` in order in one round trip (not atomically), retrying
    /// network failures. An ACL refusal names the command when all are
    /// the same one (`"publish"`).
    pub async fn pipeline(&self, cmds: &[Cmd]) -> RedisResult<()> {
        let mut pipe = redis::pipe();
        for c in cmds {
            pipe.add_command(c.clone());
        }
        let names: Vec<String> = cmds.iter().map(name).collect();
        let what = match names.first() {
            Some(n) if names.iter().all(|m| m == n) => format!("\"{n}\""),
            _ => "a command of a pipeline".to_string(),
        };
        let pipe = &pipe;
        self.retry(&what, |mut c| async move { pipe.query_async::<redis::Value>(&mut c).await.map(drop) }).await
    }

    /// Run `before` (plain commands), then `cmds` inside `multi` ... `exec`,
    /// all in one round trip (as go-redis' `TxPipelined` does for the
    /// transaction), retrying network failures.
    pub async fn transaction(&self, before: &[Cmd], cmds: &[Cmd]) -> RedisResult<()> {
        let mut pipe = redis::pipe();
        for c in before {
            pipe.add_command(c.clone());
        }
        pipe.cmd("multi");
        for c in cmds {
            pipe.add_command(c.clone());
        }
        pipe.cmd("exec");
        let pipe = &pipe;
        self.retry("a command of a transaction", |mut c| async move {
            pipe.query_async::<redis::Value>(&mut c).await.map(drop)
        })
        .await
    }
}

/// A command's name as sent ("publish").
fn name(cmd: &Cmd) -> String {
    match cmd.args_iter().next() {
        Some(redis::Arg::Simple(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    }
}

fn backoff(attempt: u32) -> Duration {
    MIN_BACKOFF.saturating_mul(1u32 << attempt.min(16)).min(MAX_BACKOFF)
}
