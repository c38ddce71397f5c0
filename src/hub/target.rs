//! How the hub reaches Redis, as written in a `[hub]` section or given
//! to `--redis`: one server, a primary found through Sentinel, or a Redis
//! Cluster, in URL or list form. Parsing checks the settings together, so
//! a mix of forms fails as the file is read, naming the setting and what
//! to write instead; [`crate::hub::conn`] makes the connections.

use serde::Deserialize;

/// How to reach Redis: one server (`url = "redis://..."`), a primary
/// found through Sentinel (`url = "redis+sentinel://..."`, or `sentinels`
/// and `master`), or a Redis Cluster (`url = "redis+cluster://..."`, or
/// `cluster`). Checked as it is read (see [`RedisTarget::deployment`]);
/// nothing set at all is allowed here, for a station that takes `--redis`.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(try_from = "RawTarget")]
pub struct RedisTarget {
    /// `redis://host:port/db`, `rediss://` for TLS, or the Sentinel and
    /// Cluster forms above.
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Sentinel addresses, `HOST:PORT` (port 26379 when left out).
    pub sentinels: Vec<String>,
    /// The name the sentinels monitor the primary under.
    pub master: Option<String>,
    /// Cluster seed nodes, `HOST:PORT` (port 6379 when left out).
    pub cluster: Vec<String>,
}

/// [`RedisTarget`] as written, before its settings are checked together.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    #[serde(default)]
    url: String,
    user: Option<String>,
    password: Option<String>,
    #[serde(default)]
    sentinels: Vec<String>,
    master: Option<String>,
    #[serde(default)]
    cluster: Vec<String>,
}

impl TryFrom<RawTarget> for RedisTarget {
    type Error = String;
    fn try_from(r: RawTarget) -> Result<RedisTarget, String> {
        let t = RedisTarget {
            url: r.url,
            user: r.user,
            password: r.password,
            sentinels: r.sentinels,
            master: r.master,
            cluster: r.cluster,
        };
        if !t.is_empty() {
            t.deployment()?;
        }
        Ok(t)
    }
}

/// A host and port of a sentinel or cluster node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Which kind of Redis deployment a [`RedisTarget`] names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deployment {
    /// One server (or a proxy), by its `redis://` or `rediss://` URL.
    Single(String),
    /// The primary the sentinels call `master`, asked for on every connect.
    Sentinel { sentinels: Vec<Node>, master: String, db: i64 },
    /// A Redis Cluster, found through its seed nodes.
    Cluster { seeds: Vec<Node> },
}

const SENTINEL_PORT: u16 = 26379;
const REDIS_PORT: u16 = 6379;
const FORMS: &str = "redis://HOST:PORT, rediss://HOST:PORT, redis+sentinel://HOST:PORT,HOST:PORT/MASTER or \
                     redis+cluster://HOST:PORT,HOST:PORT";

impl RedisTarget {
    /// A target for one URL (of any form), with these credentials.
    pub fn from_url(url: &str, user: Option<String>, password: Option<String>) -> RedisTarget {
        RedisTarget { url: url.to_string(), user, password, ..Default::default() }
    }

    /// No way to reach Redis is set.
    pub fn is_empty(&self) -> bool {
        self.url.is_empty() && self.sentinels.is_empty() && self.master.is_none() && self.cluster.is_empty()
    }

    /// The deployment these settings name; errors name the setting at
    /// fault and what to write instead.
    pub fn deployment(&self) -> Result<Deployment, String> {
        let (sentinel_set, cluster_set) =
            (!self.sentinels.is_empty() || self.master.is_some(), !self.cluster.is_empty());
        if !self.url.is_empty() && (sentinel_set || cluster_set) {
            return Err("url and sentinels/master/cluster both name Redis: keep one (url = \"redis+sentinel://...\" \
                        is the same as sentinels + master, url = \"redis+cluster://...\" the same as cluster)"
                .into());
        }
        if sentinel_set && cluster_set {
            return Err("sentinels/master and cluster cannot both be set: a Redis Cluster fails over by itself \
                        and has no sentinels; keep the one you run"
                .into());
        }
        if sentinel_set {
            let master = self.master.clone().ok_or(
                "sentinels needs master = \"NAME\", the name the sentinels monitor the primary under \
                 (`sentinel monitor NAME ...` in sentinel.conf)",
            )?;
            if self.sentinels.is_empty() {
                return Err("master needs sentinels = [\"HOST:PORT\", ...], the sentinels to ask for it".into());
            }
            check_master(&master)?;
            let sentinels = nodes(&self.sentinels, SENTINEL_PORT, "sentinels")?;
            return Ok(Deployment::Sentinel { sentinels, master, db: 0 });
        }
        if cluster_set {
            return Ok(Deployment::Cluster { seeds: nodes(&self.cluster, REDIS_PORT, "cluster")? });
        }
        if self.url.is_empty() {
            return Err(format!("no Redis set: set url ({FORMS}), or sentinels + master, or cluster"));
        }
        parse_url(&self.url)
    }

    /// Where Redis is, for messages (never with a password).
    pub fn describe(&self) -> String {
        match self.deployment() {
            Ok(Deployment::Single(url)) => hide_password(&url),
            Ok(Deployment::Sentinel { sentinels, master, .. }) => {
                format!("Sentinel primary {master:?} via {}", list(&sentinels))
            }
            Ok(Deployment::Cluster { seeds }) => format!("Redis Cluster via {}", list(&seeds)),
            Err(_) => hide_password(&self.url),
        }
    }

    /// A client for one server (a `Single` URL or a resolved primary's
    /// address), with user and password applied; errors name the URL.
    pub fn client_for(&self, url: &str) -> Result<redis::Client, String> {
        let bad = |e: redis::RedisError| format!("bad Redis URL {:?}: {e}", hide_password(url));
        let info: redis::ConnectionInfo = redis::IntoConnectionInfo::into_connection_info(url).map_err(bad)?;
        let settings = self.credentials(info.redis_settings().clone());
        let info = info.set_redis_settings(settings);
        redis::Client::open(info).map_err(bad)
    }

    /// `settings` with our user and password put in.
    pub fn credentials(&self, mut settings: redis::RedisConnectionInfo) -> redis::RedisConnectionInfo {
        if let Some(u) = &self.user {
            settings = settings.set_username(u.clone());
        }
        if let Some(p) = &self.password {
            settings = settings.set_password(p.clone());
        }
        settings
    }
}

fn list(nodes: &[Node]) -> String {
    nodes.iter().map(Node::to_string).collect::<Vec<_>>().join(",")
}

/// `scheme://user:secret@rest` as `scheme://user:***@rest`.
fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(p) if !p.0.contains('/') => p,
        _ => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

fn check_master(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 || name.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/') {
        return Err(format!(
            "master {name:?}: a Sentinel master name is 1 to 128 characters without spaces, control characters or /"
        ));
    }
    Ok(())
}

/// `HOST:PORT` entries (`[v6]:PORT`; the port may be left out).
fn nodes(entries: &[String], default_port: u16, what: &str) -> Result<Vec<Node>, String> {
    let mut out = Vec::new();
    for e in entries {
        let bad = |why: &str| format!("{what}: {e:?} is not HOST:PORT ({why})");
        let e = e.trim();
        let (host, port) = if let Some(rest) = e.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(|| bad("an IPv6 address needs its closing ]"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(bad("text after the ]")),
            }
        } else {
            match e.split_once(':') {
                Some((h, p)) if !p.contains(':') => (h, Some(p)),
                Some(_) => return Err(bad("write an IPv6 address as [ADDRESS]:PORT")),
                None => (e, None),
            }
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control() || "/@,".contains(c)) {
            return Err(bad("no host, or a space, /, @ or , in it"));
        }
        let port = match port {
            None => default_port,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| bad("the port is 1 to 65535"))?,
        };
        out.push(Node { host: host.to_string(), port });
    }
    if out.is_empty() {
        return Err(format!("{what}: no address given"));
    }
    Ok(out)
}

/// A `url` setting or `--redis` value of any of the four forms.
fn parse_url(url: &str) -> Result<Deployment, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("url {:?} is not a Redis URL: use {FORMS}", hide_password(url)));
    };
    match scheme {
        "redis" | "rediss" | "unix" | "redis+unix" => {
            let info = redis::IntoConnectionInfo::into_connection_info(url)
                .map_err(|e| format!("bad Redis URL {:?}: {e}", hide_password(url)))?;
            drop(info);
            Ok(Deployment::Single(url.to_string()))
        }
        "redis+sentinel" | "redis+cluster" => {
            let cluster = scheme == "redis+cluster";
            if rest.contains('@') {
                return Err(format!(
                    "url: {scheme}:// takes no user or password in the URL; set user and password in the [hub] section"
                ));
            }
            if rest.contains('?') || rest.contains('#') {
                return Err(format!("url: {scheme}:// takes no ?query or #fragment"));
            }
            let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
            let entries: Vec<String> = hosts.split(',').map(str::to_string).collect();
            let (default_port, what) = if cluster { (REDIS_PORT, "url") } else { (SENTINEL_PORT, "url") };
            let found = nodes(&entries, default_port, what)?;
            let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
            if cluster {
                if !parts.is_empty() {
                    return Err("url: redis+cluster:// takes no path: a Redis Cluster has only database 0".into());
                }
                return Ok(Deployment::Cluster { seeds: found });
            }
            let (master, db) = match parts.as_slice() {
                [m] => (m.to_string(), 0),
                [m, db] => {
                    let db = db.parse::<i64>().ok().filter(|d| *d >= 0).ok_or_else(|| {
                        format!("url: {db:?} is not a database number (redis+sentinel://HOSTS/MASTER/DB)")
                    })?;
                    (m.to_string(), db)
                }
                [] => {
                    return Err(
                        "url: redis+sentinel:// needs the master name: redis+sentinel://HOST:PORT,.../MASTER".into()
                    )
                }
                _ => return Err("url: redis+sentinel://HOSTS/MASTER[/DB] has at most two path parts".into()),
            };
            check_master(&master)?;
            Ok(Deployment::Sentinel { sentinels: found, master, db })
        }
        "rediss+sentinel" | "rediss+cluster" => Err(format!(
            "url: {scheme}:// (TLS to sentinels or cluster nodes) is not supported yet; use a plain \
             redis+sentinel:// or redis+cluster:// on a trusted network, or rediss:// to one server"
        )),
        _ => Err(format!("url: unknown scheme {scheme}://; use {FORMS}")),
    }
}

#[cfg(test)]
mod tests {
    use super::{Deployment, Node, RedisTarget};

    fn node(h: &str, p: u16) -> Node {
        Node { host: h.into(), port: p }
    }

    #[test]
    fn sentinel_and_cluster_forms_parse_to_one_deployment() {
        let url = |u: &str| RedisTarget::from_url(u, None, None).deployment();
        assert_eq!(url("redis://127.0.0.1:7/2").unwrap(), Deployment::Single("redis://127.0.0.1:7/2".into()));
        assert_eq!(
            url("redis+sentinel://a:1,b,[::1]:3/mymaster/4").unwrap(),
            Deployment::Sentinel {
                sentinels: vec![node("a", 1), node("b", 26379), node("::1", 3)],
                master: "mymaster".into(),
                db: 4
            }
        );
        assert_eq!(
            url("redis+cluster://a:1,b").unwrap(),
            Deployment::Cluster { seeds: vec![node("a", 1), node("b", 6379)] }
        );
        let listed = RedisTarget { sentinels: vec!["h:5".into()], master: Some("m".into()), ..Default::default() };
        assert_eq!(
            listed.deployment().unwrap(),
            Deployment::Sentinel { sentinels: vec![node("h", 5)], master: "m".into(), db: 0 }
        );
        assert_eq!(listed.describe(), "Sentinel primary \"m\" via h:5");
        let cluster = RedisTarget { cluster: vec!["[::1]:7000".into()], ..Default::default() };
        assert_eq!(cluster.describe(), "Redis Cluster via [::1]:7000");
        assert_eq!(RedisTarget::from_url("redis://u:secret@h:1", None, None).describe(), "redis://u:***@h:1");
        for (u, want) in [
            ("redis+sentinel://a:1", "needs the master name"),
            ("redis+sentinel://a:1/m/x", "\"x\" is not a database number"),
            ("redis+sentinel://a:1/m/1/2", "at most two path parts"),
            ("redis+sentinel://a:0/m", "the port is 1 to 65535"),
            ("redis+sentinel://u:secret@a:1/m", "takes no user or password"),
            ("redis+cluster://a:1/0", "only database 0"),
            ("redis+cluster://a:1,,b:2", "no host"),
            ("redis+cluster://a:1?x=1", "no ?query"),
            ("rediss+cluster://a:1", "not supported yet"),
            ("http://a", "unknown scheme http://"),
            ("a:1", "is not a Redis URL"),
            ("redis+cluster://fe80::1:7000", "[ADDRESS]:PORT"),
        ] {
            let e = url(u).unwrap_err();
            assert!(e.contains(want), "{u}: {e}");
            assert!(!e.contains("secret"), "{u}: a password is echoed: {e}");
        }
    }
}
