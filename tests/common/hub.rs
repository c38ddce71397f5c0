//! Hub test fleet: a private redis-server, station and network keys made
//! with `muster hub keygen`, a station state dir whose dispatcher.toml
//! points at the hub, and hub-only agent processes (`tls = false`).
#![allow(dead_code)]

use crate::common::{spawn_agent, stderr, write_script, BIN};
use crate::redis::Redis;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct HubAgent {
    pub name: String,
    pub dir: PathBuf,
    pub child: Option<Child>,
}

pub struct HubFleet {
    pub redis: Redis,
    pub tmp: tempfile::TempDir,
    pub state: PathBuf,
    pub keys: PathBuf,
    pub agents: Vec<HubAgent>,
    /// The `[hub]` lines naming Redis, in agent.toml and dispatcher.toml.
    pub redis_conf: String,
}

pub const CHANNEL: &str = "test";

pub fn keygen(kind: &str, out: &Path) {
    let o = Command::new(BIN).args(["hub", "keygen", kind, "--out"]).arg(out).output().unwrap();
    assert!(o.status.success(), "keygen: {}", stderr(&o));
}

impl HubFleet {
    pub fn new() -> HubFleet {
        let redis = Redis::start();
        let conf = format!("url = {:?}\n", redis.url());
        HubFleet::with(redis, conf)
    }

    /// A fleet whose configs name Redis with `redis_conf` (Sentinel or
    /// Cluster settings); `redis` is the server the test watches.
    pub fn with(redis: Redis, redis_conf: String) -> HubFleet {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("station");
        let keys = tmp.path().join("keys");
        keygen("station", &keys);
        keygen("network", &keys);
        std::fs::create_dir_all(state.join("hub")).unwrap();
        std::fs::copy(keys.join("station.key"), state.join("hub/station.key")).unwrap();
        std::fs::copy(keys.join("network.pub"), state.join("hub/network.pub")).unwrap();
        let conf = format!("[hub]\n{redis_conf}channel = {CHANNEL:?}\nidentity = \"station1\"\n");
        std::fs::write(state.join("dispatcher.toml"), conf).unwrap();
        HubFleet { redis, tmp, state, keys, agents: Vec::new(), redis_conf }
    }

    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.tmp.path().join("scripts").join(name);
        write_script(&p, body);
        p
    }

    /// Add a hub agent with these tags and allowlist; `extra` goes at the top level of agent.toml.
    pub fn add(&mut self, name: &str, tags: &[&str], allow: &[(&str, &Path)], extra: &str) -> usize {
        let dir = self.tmp.path().join("agents").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let conf: String = allow.iter().map(|(n, p)| format!("{n} = {}\n", p.display())).collect();
        std::fs::write(dir.join("scripts.conf"), conf).unwrap();
        let toml = format!(
            "name = {name:?}\nstate_dir = \".\"\ntls = false\ntags = {tags:?}\n{extra}\n[hub]\n{}channel = {CHANNEL:?}\nstation_key = {:?}\nnetwork_key = {:?}\n",
            self.redis_conf,
            self.keys.join("station.pub").display().to_string(),
            self.keys.join("network.key").display().to_string(),
        );
        std::fs::write(dir.join("agent.toml"), toml).unwrap();
        self.agents.push(HubAgent { name: name.into(), dir, child: None });
        self.agents.len() - 1
    }

    pub fn start(&mut self, i: usize) {
        let a = &mut self.agents[i];
        a.child = Some(spawn_agent(&a.dir));
    }

    /// Start every agent, without waiting for their subscriptions.
    pub fn start_each(&mut self) {
        for i in 0..self.agents.len() {
            self.start(i);
        }
    }

    /// Start every agent and wait until each is subscribed.
    pub fn start_all(&mut self) {
        for i in 0..self.agents.len() {
            self.start(i);
        }
        self.wait_subscribed(self.agents.len());
    }

    /// Wait until the request topic has `n` subscribers.
    pub fn wait_subscribed(&self, n: usize) {
        wait_subscribed_on(&self.redis, "NUMSUB", n)
    }
}

/// `items` as a TOML array of strings.
pub fn toml_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", "))
}

/// Wait until the request topic has `n` subscribers on `server`
/// (`how`: NUMSUB, or SHARDNUMSUB for sharded pub/sub).
pub fn wait_subscribed_on(server: &Redis, how: &str, n: usize) {
    let t0 = Instant::now();
    loop {
        let out = server.cli(&["PUBSUB", how, &format!("muster/{CHANNEL}/requests")]);
        let count: usize = out.lines().nth(1).and_then(|l| l.trim().parse().ok()).unwrap_or(0);
        if count >= n {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "only {count} of {n} agents subscribed on {}", server.port);
        std::thread::sleep(Duration::from_millis(30));
    }
}

impl HubFleet {
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.agents[i].dir.join("agent.log")).unwrap_or_default()
    }

    pub fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.agents[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn alive(&mut self, i: usize) -> bool {
        matches!(self.agents[i].child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// `muster agent self-check` of agent `i`: (exit code, stdout).
    pub fn self_check(&self, i: usize) -> (i32, String) {
        let out = Command::new(BIN)
            .args(["agent", "self-check", "--config"])
            .arg(self.agents[i].dir.join("agent.toml"))
            .output()
            .unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `muster run TARGETS --via hub OPTS -- CMD` in the background, its
    /// output piped (collect it with `wait_with_output`).
    pub fn spawn_run(&self, targets: &str, opts: &[&str], cmd: &[&str]) -> Child {
        self.run_command(targets, opts, cmd).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }

    /// `muster run TARGETS --via hub OPTS -- CMD`
    pub fn run(&self, targets: &str, opts: &[&str], cmd: &[&str]) -> Output {
        self.run_command(targets, opts, cmd).output().unwrap()
    }

    /// The station's `muster run TARGETS --via hub OPTS -- CMD`, stdin closed.
    fn run_command(&self, targets: &str, opts: &[&str], cmd: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--state-dir")
            .arg(&self.state)
            .args(["run", targets, "--via", "hub"])
            .args(opts)
            .arg("--")
            .args(cmd)
            .stdin(Stdio::null());
        c
    }
}

impl Drop for HubFleet {
    fn drop(&mut self) {
        for i in 0..self.agents.len() {
            self.stop(i);
        }
    }
}
