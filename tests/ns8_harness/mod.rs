//! Harness for the ns8 agent tests: a private redis-server, a temp tree
//! with two action roots (`a`, `b`), an events root and the agent's state
//! directory (its working directory, holding `environment`), and the real
//! `muster ns8-agent` process with its stderr captured. Redis is driven and
//! observed through redis-cli (commands, `subscribe`, `monitor`).
#![allow(dead_code)]

#[path = "../common/redis.rs"]
pub mod redis;

use redis::Redis;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_muster");
pub const ID: &str = "module/t1000";
pub const WAIT: Duration = Duration::from_secs(15);
/// Password of the module user [`Ns8::module_acl`] creates.
pub const MODULE_PASSWORD: &str = "s3cret";

pub struct Ns8 {
    pub redis: Redis,
    pub tmp: tempfile::TempDir,
    pub child: Option<Child>,
    log: Arc<Mutex<Vec<u8>>>,
}

impl Ns8 {
    /// Redis started, tree created with `environment` = `VAR1=VAL1`; no agent yet.
    pub fn new() -> Ns8 {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["a", "b", "events", "state"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        std::fs::write(tmp.path().join("state/environment"), "VAR1=VAL1\n").unwrap();
        Ns8 { redis: Redis::start(), tmp, child: None, log: Arc::new(Mutex::new(Vec::new())) }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Write an executable `/bin/sh` script at `rel` (e.g. `a/run/10step`).
    pub fn script(&self, rel: &str, body: &str) {
        self.file(rel, &format!("#!/bin/sh\n{body}\n"), 0o755);
    }

    pub fn file(&self, rel: &str, content: &str, mode: u32) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Start the agent the way ns8's systemd units do, with a short polling interval.
    pub fn start(&mut self) {
        let args = vec![
            format!("--agentid={ID}"),
            format!("--actionsdir={}", self.path("a").display()),
            format!("--actionsdir={}", self.path("b").display()),
            format!("--eventsdir={}", self.path("events").display()),
        ];
        self.start_with(&args, &[("AGENT_POLLING_INTERVAL", "200ms")]);
    }

    pub fn start_with(&mut self, args: &[String], env: &[(&str, &str)]) {
        let mut cmd = Command::new(BIN);
        cmd.arg("ns8-agent")
            .args(args)
            .current_dir(self.path("state"))
            .env("REDIS_ADDRESS", self.redis.address())
            .env_remove("REDIS_PASSWORD")
            .env_remove("REDIS_REPLICA_ADDRESS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start muster ns8-agent");
        for out in [
            child.stdout.take().map(|o| Box::new(o) as Box<dyn Read + Send>),
            child.stderr.take().map(|e| Box::new(e) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = self.log.clone();
            std::thread::spawn(move || {
                let mut r = out;
                let mut buf = [0u8; 4096];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    log.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        self.child = Some(child);
        // The agent is serving once its task connection is named.
        self.wait_until("agent connected", || self.redis.cli(&["client", "list"]).contains(&format!("name={ID}")));
    }

    /// Give the agent id an ns8-like module ACL user: password
    /// [`MODULE_PASSWORD`], every key and channel, every command except
    /// `@admin` and `@dangerous` (so `client unblock` is refused), then
    /// `extra` rules. `default` stays open with any password, since the
    /// agent reads events as `default` with its id as the password.
    pub fn module_acl(&self, extra: &[&str]) {
        let pass = format!(">{MODULE_PASSWORD}");
        let mut args = vec!["acl", "setuser", ID, "reset", "on", &pass, "~*", "&*", "+@all", "-@admin", "-@dangerous"];
        args.extend_from_slice(extra);
        assert_eq!(self.redis.cli(&args).trim(), "OK", "acl setuser {args:?}");
        self.redis.cli(&["acl", "setuser", "default", "on", "nopass", "~*", "&*", "+@all"]);
    }

    /// Start the agent as the [`Ns8::module_acl`] user, with ns8's default
    /// 5 s polling interval unless `env` sets one.
    pub fn start_as_module(&mut self, env: &[(&str, &str)]) {
        let args = vec![
            format!("--agentid={ID}"),
            format!("--actionsdir={}", self.path("a").display()),
            format!("--eventsdir={}", self.path("events").display()),
        ];
        let mut all = vec![("REDIS_PASSWORD", MODULE_PASSWORD)];
        all.extend_from_slice(env);
        self.start_with(&args, &all);
    }

    /// Wait until no connection is blocked in (or last ran) `brpop`: the
    /// agent has stopped reading its task queue and closed that connection.
    pub fn wait_queue_released(&self) {
        self.wait_until("the task queue connection to close", || {
            !self.redis.cli(&["client", "list"]).contains("cmd=brpop")
        });
    }

    /// Push a raw item onto the task queue (as clients do, LPUSH).
    pub fn push(&self, raw: &str) {
        self.redis.cli(&["lpush", &format!("{ID}/tasks"), raw]);
    }

    pub fn task(&self, id: &str, action: &str, data: &str) {
        self.push(&format!(r#"{{"id":"{id}","action":"{action}","data":{data},"user":"admin"}}"#));
    }

    pub fn key(id: &str, what: &str) -> String {
        format!("task/{ID}/{id}/{what}")
    }

    /// GET a key (empty string when absent).
    pub fn get(&self, key: &str) -> String {
        let out = self.redis.cli(&["get", key]);
        out.strip_suffix('\n').unwrap_or(&out).to_string()
    }

    pub fn exists(&self, key: &str) -> bool {
        self.redis.cli(&["exists", key]).trim() == "1"
    }

    /// Wait for the task's exit code and return it.
    pub fn exit_code(&self, id: &str) -> String {
        let key = Self::key(id, "exit_code");
        self.wait_until(&format!("{key} to be set"), || self.exists(&key));
        self.get(&key)
    }

    pub fn output(&self, id: &str) -> String {
        self.get(&Self::key(id, "output"))
    }

    pub fn error(&self, id: &str) -> String {
        self.get(&Self::key(id, "error"))
    }

    pub fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    pub fn wait_log(&self, needle: &str) {
        self.wait_until(&format!("{needle:?} in the agent log"), || self.log().contains(needle));
    }

    pub fn wait_until(&self, what: &str, mut ok: impl FnMut() -> bool) {
        let t0 = Instant::now();
        while !ok() {
            assert!(t0.elapsed() < WAIT, "timed out waiting for {what}; agent log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().expect("agent running").id() as i32;
        // SAFETY: kill on the pid of the child this harness started.
        unsafe {
            libc::kill(pid, sig);
        }
    }

    /// Wait up to `limit` for the agent to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let t0 = Instant::now();
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return Some(s);
            }
            if t0.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Follow a redis-cli that prints pushed messages (`subscribe`,
    /// `psubscribe` or `monitor`); returns once it is listening.
    pub fn follow(&self, args: &[&str]) -> Follower {
        let mut child = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.redis.port.to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-cli (package redis-tools) is needed");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let f = Follower { child, lines };
        let t0 = Instant::now();
        while f.lines().is_empty() {
            assert!(t0.elapsed() < WAIT, "redis-cli {args:?} did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        f
    }
}

impl Drop for Ns8 {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub struct Follower {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Follower {
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Payloads of `message` / `pmessage` pushes, in order.
    pub fn messages(&self) -> Vec<String> {
        let lines = self.lines();
        let mut out = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            match lines[i].as_str() {
                "message" if i + 2 < lines.len() => {
                    out.push(lines[i + 2].clone());
                    i += 3;
                }
                "pmessage" if i + 3 < lines.len() => {
                    out.push(lines[i + 3].clone());
                    i += 4;
                }
                _ => i += 1,
            }
        }
        out
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
