//! A private `redis-server` per test: free port on 127.0.0.1, temp dir, no
//! persistence, killed by the pid we started. A missing redis-server fails
//! the test with what to install. Also a Sentinel set (a replica and three
//! sentinels, `redis-server --sentinel`, watching a primary) and Redis
//! Cluster nodes, built from the same servers.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// A config file to start from (sentinels rewrite theirs), and more flags.
    conf: Option<PathBuf>,
    extra: Vec<String>,
}

/// A port on 127.0.0.1 nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Poll `cond` every 30 ms until it holds; panic with `what` after `limit`.
pub fn poll(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "timed out after {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(30));
    }
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_with(None, &[])
    }

    /// A server started from a config file holding `conf` (written into
    /// its dir; sentinels rewrite theirs) with `extra` flags.
    pub fn start_with(conf: Option<&str>, extra: &[&str]) -> Redis {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let conf = conf.map(|text| {
            let p = dir.path().join("server.conf");
            std::fs::write(&p, text).unwrap();
            p
        });
        let extra = extra.iter().map(|s| s.to_string()).collect();
        let mut r = Redis { port, dir, child: None, conf, extra };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        if let Some(c) = &self.conf {
            cmd.arg(c);
        }
        let child = cmd
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): install it with `apt-get install redis-server`")
            });
        self.child = Some(child);
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(10), "redis-server did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kill the server (SIGKILL to the pid we started).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port (empty: it keeps nothing).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Run redis-cli against this server and return its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli (package redis-tools) is needed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A replica and three sentinels (quorum 2) watching a primary as
/// [`SENTINEL_MASTER`], failing over 1 s after it stops answering.
pub struct SentinelSet {
    pub replica: Redis,
    pub sentinels: Vec<Redis>,
}

pub const SENTINEL_MASTER: &str = "hubm";

impl SentinelSet {
    /// Watch `primary` (which the caller keeps, to kill it by pid).
    pub fn start(primary: &Redis) -> SentinelSet {
        let replica = Redis::start_with(None, &["--replicaof", "127.0.0.1", &primary.port.to_string()]);
        poll(Duration::from_secs(10), "the replica syncs", || {
            replica.cli(&["INFO", "replication"]).contains("master_link_status:up")
        });
        let p = primary.port;
        let conf = format!(
            "sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {p} 2\n\
             sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n\
             sentinel failover-timeout {SENTINEL_MASTER} 4000\n\
             sentinel parallel-syncs {SENTINEL_MASTER} 1\n"
        );
        let sentinels: Vec<Redis> = (0..3).map(|_| Redis::start_with(Some(&conf), &["--sentinel"])).collect();
        // Each sentinel knows the replica and the two other sentinels, so
        // a failover can be voted and has somewhere to go.
        for s in &sentinels {
            poll(Duration::from_secs(20), "the sentinels find each other and the replica", || {
                s.cli(&["SENTINEL", "CKQUORUM", SENTINEL_MASTER]).starts_with("OK 3")
                    && s.cli(&["SENTINEL", "REPLICAS", SENTINEL_MASTER]).contains(&replica.port.to_string())
            });
        }
        SentinelSet { replica, sentinels }
    }

    /// `sentinels = [...]` entries.
    pub fn addresses(&self) -> Vec<String> {
        self.sentinels.iter().map(Redis::address).collect()
    }

    /// Every sentinel names the replica as primary and it says so itself.
    pub fn wait_failed_over(&self, limit: Duration) {
        let want = self.replica.port;
        poll(limit, "the sentinels promote the replica", || {
            self.sentinels.iter().all(|s| {
                let out = s.cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER]);
                out.lines().nth(1).and_then(|l| l.trim().parse::<u16>().ok()) == Some(want)
            }) && self.replica.cli(&["ROLE"]).starts_with("master")
        });
    }
}

/// A Redis Cluster node (cluster bus on a port of its own); join three
/// with [`cluster_create`].
pub fn cluster_node() -> Redis {
    let bus = free_port().to_string();
    let args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"];
    Redis::start_with(None, &[&args[..], &["--cluster-port", bus.as_str()][..]].concat())
}

/// Make `nodes` one cluster of primaries sharing the slots; waits until
/// every node says the cluster is ok.
pub fn cluster_create(nodes: &[&Redis]) {
    let out = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(nodes.iter().map(|n| n.address()))
        .arg("--cluster-yes")
        .output()
        .expect("redis-cli (package redis-tools) is needed");
    assert!(out.status.success(), "cluster create: {}", String::from_utf8_lossy(&out.stdout));
    for n in nodes {
        poll(Duration::from_secs(20), "every node sees the cluster ok", || {
            n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok")
        });
    }
}

/// The node owning `key`'s hash slot (the others answer MOVED).
pub fn cluster_owner<'a>(nodes: &[&'a Redis], key: &str) -> &'a Redis {
    let owners: Vec<&Redis> = nodes.iter().copied().filter(|n| !n.cli(&["EXISTS", key]).contains("MOVED")).collect();
    assert_eq!(owners.len(), 1, "exactly one node owns {key}");
    owners[0]
}

/// A `CLUSTER INFO` counter summed over `nodes` (absent counts 0).
pub fn cluster_stat(nodes: &[&Redis], name: &str) -> u64 {
    let field = format!("{name}:");
    nodes
        .iter()
        .map(|n| {
            n.cli(&["CLUSTER", "INFO"])
                .lines()
                .find_map(|l| l.strip_prefix(&field).and_then(|v| v.trim().parse::<u64>().ok()))
                .unwrap_or(0)
        })
        .sum()
}
