//! One way to talk to the hub's Redis whatever its deployment: a single
//! server, a primary found through Sentinel, or a Redis Cluster. The rest
//! of the hub asks a [`Hub`] for a command connection ([`Conn`], which
//! scripts, pipelines and commands use like any redis-rs connection) and
//! for a [`Subscription`] to the request topic; it never sees which kind
//! of deployment is behind them. Sentinel is asked for the current primary
//! on every connect (redis-rs checks that the server it names really is a
//! primary), so a caller that reconnects after an error follows a
//! failover; [`Hub::switches`] tells a long-lived subscriber when the
//! sentinels moved the primary while its old one stays up. On a Cluster,
//! the request topic is a sharded channel (`SPUBLISH`/`SSUBSCRIBE`, Redis
//! 7) on the shard owning the topic's hash slot. redis-rs subscribes again
//! after a disconnect; when the slot migrates the server drops the
//! subscription, and the [`Subscription`] ends so its owner subscribes
//! again on the new owner. Everything else keeps `PUBLISH`/`SUBSCRIBE`.

use super::target::{Deployment, Node, RedisTarget};
use futures_util::StreamExt;
use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Cmd, Pipeline, PushKind, RedisFuture, Value};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long connecting to one node may take.
const CONNECT: Duration = Duration::from_secs(3);
/// How long one command on a managed connection may wait for Redis's
/// answer. The client's default (500 ms) is shorter than a busy Redis
/// takes to answer a burst of thousands of agents' replies, and a
/// timed-out push used to lose its replies.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// The hub's Redis, resolved from its settings once; connections are
/// made on demand.
#[derive(Debug, Clone)]
pub struct Hub {
    target: RedisTarget,
    deployment: Deployment,
    describe: String,
}

/// A command connection to the hub's Redis (see [`Hub::managed`] and
/// [`Hub::dedicated`]); cheap to clone, every clone shares it.
#[derive(Clone)]
pub enum Conn {
    /// One server or a resolved primary, reconnecting by itself.
    Managed(ConnectionManager),
    /// One server or a resolved primary, on a connection of its own.
    Node(MultiplexedConnection),
    /// A Redis Cluster: commands go to the shard owning their keys.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Managed(c) => c.req_packed_command(cmd),
            Conn::Node(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Managed(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Managed(c) => c.get_db(),
            Conn::Node(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Messages on the request topic, until the subscription is lost.
pub struct Subscription {
    inner: Inner,
}

enum Inner {
    Plain(redis::aio::PubSubStream),
    /// The connection is kept only to keep the subscription alive.
    Sharded {
        pushes: mpsc::UnboundedReceiver<redis::PushInfo>,
        _conn: ClusterConnection,
    },
}

impl Subscription {
    /// The next message's payload; `None` when the subscription is gone
    /// (the server went away): subscribe again.
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        match &mut self.inner {
            Inner::Plain(s) => s.next().await.map(|m| m.get_payload_bytes().to_vec()),
            Inner::Sharded { pushes, .. } => loop {
                let push = pushes.recv().await?;
                match push.kind {
                    PushKind::SMessage => {
                        if let Some(Value::BulkString(payload)) = push.data.into_iter().nth(1) {
                            return Some(payload);
                        }
                    }
                    // We never unsubscribe: the server dropped us because
                    // the topic's slot moved to another shard, which
                    // redis-rs does not follow by itself. Subscribe again.
                    PushKind::SUnsubscribe => return None,
                    // (Re)subscription confirmations and disconnect
                    // notices: after a reconnect redis-rs subscribes again.
                    _ => {}
                }
            },
        }
    }
}

/// A sentinel's `+switch-master` announcements for one master.
pub struct Switches {
    stream: redis::aio::PubSubStream,
    /// `<master> `: the announcement is `<master> <old ip> <old port> <new ip> <new port>`.
    prefix: String,
}

impl Switches {
    /// The next announcement that our master moved (its text); `None`
    /// when the sentinel connection is gone.
    pub async fn next(&mut self) -> Option<String> {
        loop {
            let m = self.stream.next().await?;
            let text = String::from_utf8_lossy(m.get_payload_bytes()).into_owned();
            if text.starts_with(&self.prefix) {
                return Some(text);
            }
        }
    }
}

impl Hub {
    /// Check the settings (see [`RedisTarget::deployment`]); connects to nothing.
    pub fn new(target: &RedisTarget) -> Result<Hub, String> {
        let deployment = target.deployment()?;
        if let Deployment::Single(url) = &deployment {
            target.client_for(url)?;
        }
        Ok(Hub { target: target.clone(), deployment, describe: target.describe() })
    }

    /// Where Redis is, for messages (no password).
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// A Sentinel deployment: a connection stays on the primary it was
    /// made to, so callers check [`Hub::is_primary`] now and then.
    pub fn is_sentinel(&self) -> bool {
        matches!(self.deployment, Deployment::Sentinel { .. })
    }

    /// `PUBLISH`, or `SPUBLISH` on a Cluster, of `payload` on `topic`.
    pub fn publish(&self, topic: &str, payload: &[u8]) -> Cmd {
        let verb = if matches!(self.deployment, Deployment::Cluster { .. }) { "SPUBLISH" } else { "PUBLISH" };
        redis::cmd(verb).arg(topic).arg(payload).clone()
    }

    /// A client for the server commands go to: the URL's, or the primary
    /// the sentinels name right now. `None` on a Cluster.
    async fn node(&self) -> Result<Option<redis::Client>, String> {
        match &self.deployment {
            Deployment::Single(url) => self.target.client_for(url).map(Some),
            Deployment::Sentinel { sentinels, master, db } => self.primary(sentinels, master, *db).await.map(Some),
            Deployment::Cluster { .. } => Ok(None),
        }
    }

    fn sentinel_client(&self, sentinels: &[Node], master: &str, db: i64) -> Result<SentinelClient, String> {
        let addrs = sentinels.iter().map(|n| redis::ConnectionAddr::Tcp(n.host.clone(), n.port));
        let mut b = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)
            .map_err(|e| format!("bad Sentinel settings: {e}"))?
            .set_client_to_redis_db(db);
        if let Some(u) = &self.target.user {
            b = b.set_client_to_redis_username(u);
        }
        if let Some(p) = &self.target.password {
            b = b.set_client_to_redis_password(p);
        }
        b.build().map_err(|e| format!("bad Sentinel settings: {e}"))
    }

    async fn primary(&self, sentinels: &[Node], master: &str, db: i64) -> Result<redis::Client, String> {
        let mut sc = self.sentinel_client(sentinels, master, db)?;
        let found = tokio::time::timeout(CONNECT * 2, sc.async_get_client())
            .await
            .map_err(|_| format!("{}: no sentinel answered in {}s", self.describe, (CONNECT * 2).as_secs()))?;
        match found {
            Ok(client) => Ok(client),
            Err(e) if e.kind() == redis::ErrorKind::MasterNameNotFoundBySentinel => {
                Err(match self.sentinels_know(sentinels, master).await {
                    Some(false) => format!(
                        "{}: no sentinel monitors a master named {master:?}: check the master name (`SENTINEL \
                         MASTERS` on a sentinel lists the names)",
                        self.describe
                    ),
                    _ => format!(
                        "{}: the sentinels name no reachable primary for {master:?} right now (a failover may be \
                         under way)",
                        self.describe
                    ),
                })
            }
            Err(e) => Err(format!("{}: no primary: {e}", self.describe)),
        }
    }

    /// Whether any sentinel that answers monitors `master`; `None` when
    /// none answers.
    async fn sentinels_know(&self, sentinels: &[Node], master: &str) -> Option<bool> {
        let mut answered = false;
        for n in sentinels {
            let Ok(client) = redis::Client::open(redis::ConnectionAddr::Tcp(n.host.clone(), n.port)) else { continue };
            let cfg = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT))
                .set_response_timeout(Some(CONNECT));
            let Ok(mut conn) = client.get_multiplexed_async_connection_with_config(&cfg).await else { continue };
            let addr: redis::RedisResult<Option<Vec<String>>> =
                redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg(master).query_async(&mut conn).await;
            match addr {
                Ok(Some(_)) => return Some(true),
                Ok(None) => answered = true,
                Err(_) => {}
            }
        }
        answered.then_some(false)
    }

    /// "cannot reach" this hub, with what to do when a Sentinel primary
    /// cannot be reached (it may have just failed).
    fn unreachable(&self, e: impl std::fmt::Display) -> String {
        match self.deployment {
            Deployment::Sentinel { .. } => format!(
                "cannot reach {}: {e} (if the primary has just failed, the sentinels promote a replica within \
                 seconds: try again)",
                self.describe
            ),
            _ => format!("cannot reach {}: {e}", self.describe),
        }
    }

    fn cluster(&self, response: Option<Duration>) -> ClusterClientBuilder {
        let seeds = match &self.deployment {
            Deployment::Cluster { seeds } => seeds.clone(),
            _ => Vec::new(),
        };
        let infos: Vec<redis::ConnectionInfo> = seeds
            .iter()
            .filter_map(|n| {
                let addr = redis::ConnectionAddr::Tcp(n.host.clone(), n.port);
                let info = redis::IntoConnectionInfo::into_connection_info(addr).ok()?;
                let settings = self.target.credentials(info.redis_settings().clone());
                Some(info.set_redis_settings(settings))
            })
            .collect();
        let mut b = ClusterClient::builder(infos).connection_timeout(CONNECT).retries(2);
        if let Some(r) = response {
            b = b.response_timeout(r);
        }
        b
    }

    async fn cluster_conn(&self, b: ClusterClientBuilder) -> Result<ClusterConnection, String> {
        let client = b.build().map_err(|e| format!("bad Cluster settings: {e}"))?;
        tokio::time::timeout(CONNECT * 2, client.get_async_connection())
            .await
            .map_err(|_| self.unreachable("no seed node answered"))?
            .map_err(|e| self.unreachable(e))
    }

    /// A command connection that reconnects by itself (to the same
    /// primary, under Sentinel: reconnect through the hub to follow a
    /// failover), for commands that do not block.
    pub async fn managed(&self) -> Result<Conn, String> {
        match self.node().await? {
            Some(client) => {
                let cfg = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT));
                ConnectionManager::new_with_config(client, cfg)
                    .await
                    .map(Conn::Managed)
                    .map_err(|e| self.unreachable(e))
            }
            None => self.cluster_conn(self.cluster(Some(RESPONSE_TIMEOUT))).await.map(Conn::Cluster),
        }
    }

    /// A connection of its own, for blocking reads (`BLPOP`) that must not
    /// hold up other commands; `response` bounds each answer (`None`: no
    /// bound). It does not reconnect: open another after an error.
    pub async fn dedicated(&self, response: Option<Duration>) -> Result<Conn, String> {
        match self.node().await? {
            Some(client) => {
                let cfg = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT))
                    .set_response_timeout(response);
                client
                    .get_multiplexed_async_connection_with_config(&cfg)
                    .await
                    .map(Conn::Node)
                    .map_err(|e| self.unreachable(e))
            }
            None => self.cluster_conn(self.cluster(response)).await.map(Conn::Cluster),
        }
    }

    /// Subscribe to `topic`: `SUBSCRIBE` on the server or primary,
    /// `SSUBSCRIBE` on the Cluster shard that owns it.
    pub async fn subscribe(&self, topic: &str) -> Result<Subscription, String> {
        let failed = |e: redis::RedisError| format!("cannot subscribe to {topic} at {}: {e}", self.describe);
        match self.node().await? {
            Some(client) => {
                let mut pubsub = tokio::time::timeout(CONNECT, client.get_async_pubsub())
                    .await
                    .map_err(|_| self.unreachable(format!("no answer in {}s", CONNECT.as_secs())))?
                    .map_err(|e| self.unreachable(e))?;
                pubsub.subscribe(topic).await.map_err(failed)?;
                Ok(Subscription { inner: Inner::Plain(pubsub.into_on_message()) })
            }
            None => {
                let (tx, pushes) = mpsc::unbounded_channel();
                let b = self.cluster(None).use_protocol(redis::ProtocolVersion::RESP3).push_sender(tx);
                let mut conn = self.cluster_conn(b).await?;
                conn.ssubscribe(topic).await.map_err(failed)?;
                Ok(Subscription { inner: Inner::Sharded { pushes, _conn: conn } })
            }
        }
    }

    /// Under Sentinel, the sentinels' announcements that our primary moved
    /// (`+switch-master` naming our master, subscribed on the first
    /// sentinel that answers): a planned failover leaves the old primary
    /// up and calling itself primary until the sentinels demote it, up to
    /// ten seconds later. `None` for other deployments, or when no
    /// sentinel can be subscribed to (the `ROLE` check still applies).
    pub async fn switches(&self) -> Option<Switches> {
        let Deployment::Sentinel { sentinels, master, db } = &self.deployment else { return None };
        let watch = async {
            let mut sc = self.sentinel_client(sentinels, master, *db)?;
            let client = sc.async_get_sentinel_client().await.map_err(|e| e.to_string())?;
            let mut pubsub = client.get_async_pubsub().await.map_err(|e| e.to_string())?;
            pubsub.subscribe("+switch-master").await.map_err(|e| e.to_string())?;
            Ok::<_, String>(pubsub.into_on_message())
        };
        match tokio::time::timeout(CONNECT * 2, watch).await {
            Ok(Ok(stream)) => Some(Switches { stream, prefix: format!("{master} ") }),
            Ok(Err(e)) => {
                tracing::warn!("hub: cannot watch the sentinels for failovers ({e}); checking ROLE only");
                None
            }
            Err(_) => {
                tracing::warn!("hub: no sentinel answered a watch for failovers; checking ROLE only");
                None
            }
        }
    }

    /// Whether `conn` is still on a primary (`ROLE`): false once a
    /// failover made its server a replica, or it stopped answering.
    /// A server that does not answer within 3 s counts as not.
    pub async fn is_primary(conn: &mut Conn) -> bool {
        let role = tokio::time::timeout(CONNECT, redis::cmd("ROLE").query_async::<Vec<Value>>(conn)).await;
        match role {
            Ok(Ok(v)) => match v.first() {
                Some(Value::BulkString(r)) => r == b"master",
                Some(Value::SimpleString(r)) => r == "master",
                _ => false,
            },
            _ => false,
        }
    }
}
