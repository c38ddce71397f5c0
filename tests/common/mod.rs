//! Test fleet: a dispatcher state dir with a real CA and real agent
//! processes (`muster agent serve`) on loopback addresses, driven through
//! the real binary. Agents are killed (by the pid we started) on drop.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_muster");

pub struct Agent {
    pub name: String,
    pub dir: PathBuf,
    pub addr: SocketAddr,
    pub child: Option<Child>,
}

pub struct Fleet {
    pub tmp: tempfile::TempDir,
    pub state: PathBuf,
    pub agents: Vec<Agent>,
}

fn rand_u8() -> u8 {
    let mut b = [0u8; 1];
    getrandom::getrandom(&mut b).unwrap();
    b[0]
}

/// A free TCP address on a random 127.0.0.x.
pub fn free_addr() -> SocketAddr {
    let ip = format!("127.0.0.{}", 2 + rand_u8() % 250);
    TcpListener::bind((ip.as_str(), 0)).unwrap().local_addr().unwrap()
}

pub fn write_script(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Start `muster agent serve` on DIR/agent.toml, logging (appending) to DIR/agent.log.
pub fn spawn_agent(dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("agent.log")).unwrap();
    Command::new(BIN)
        .args(["agent", "serve", "--config"])
        .arg(dir.join("agent.toml"))
        .env("MUSTER_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Parse `start|end <nanos>` lines and return the most ever running at once.
pub fn max_overlap(log: &str) -> usize {
    let mut ev: Vec<(u128, i32)> = log
        .lines()
        .filter_map(|l| {
            let (k, t) = l.split_once(' ')?;
            Some((t.trim().parse().ok()?, if k == "start" { 1 } else { -1 }))
        })
        .collect();
    ev.sort_by_key(|(t, d)| (*t, *d));
    let (mut cur, mut max) = (0i32, 0i32);
    for (_, d) in ev {
        cur += d;
        max = max.max(cur);
    }
    max as usize
}

impl Fleet {
    pub fn new() -> Fleet {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("dispatcher");
        let f = Fleet { tmp, state, agents: Vec::new() };
        let out = f.muster(&["ca", "init", "--id", "test-dispatcher"]);
        assert!(out.status.success(), "ca init: {}", stderr(&out));
        f
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    /// Write a script under the fleet's scripts dir and return its path.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.path("scripts").join(name);
        write_script(&p, body);
        p
    }

    /// Enroll an agent (not started) with these allowlist entries.
    pub fn add(&mut self, name: &str, tags: &[&str], allow: &[(&str, &Path)]) -> usize {
        let addr = free_addr();
        let dir = self.path("agents").join(name);
        let mut args = vec!["ca", "issue-agent", name, "--addr"];
        let a = addr.to_string();
        args.push(&a);
        let t = tags.join(",");
        if !tags.is_empty() {
            args.extend(["--tags", &t]);
        }
        let d = dir.display().to_string();
        args.extend(["--out", &d]);
        let out = self.muster(&args);
        assert!(out.status.success(), "issue-agent: {}", stderr(&out));
        let conf: String = allow.iter().map(|(n, p)| format!("{n} = {}\n", p.display())).collect();
        std::fs::write(dir.join("scripts.conf"), conf).unwrap();
        self.agents.push(Agent { name: name.into(), dir, addr, child: None });
        self.agents.len() - 1
    }

    /// Append lines to an agent's agent.toml before it starts.
    pub fn configure(&self, i: usize, lines: &str) {
        let p = self.agents[i].dir.join("agent.toml");
        let mut t = std::fs::read_to_string(&p).unwrap();
        t.push_str(lines);
        t.push('\n');
        std::fs::write(p, t).unwrap();
    }

    pub fn start(&mut self, i: usize) {
        let a = &mut self.agents[i];
        a.child = Some(spawn_agent(&a.dir));
    }

    pub fn start_all(&mut self) {
        for i in 0..self.agents.len() {
            self.start(i);
        }
        for i in 0..self.agents.len() {
            self.wait_listening(i);
        }
    }

    pub fn wait_listening(&self, i: usize) {
        let a = &self.agents[i];
        let t0 = Instant::now();
        while TcpStream::connect_timeout(&a.addr, Duration::from_millis(200)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(15), "agent {} never listened; log:\n{}", a.name, self.log(i));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.agents[i].dir.join("agent.log")).unwrap_or_default()
    }

    pub fn signal(&self, i: usize, sig: i32) {
        let pid = self.agents[i].child.as_ref().unwrap().id() as i32;
        unsafe { libc::kill(pid, sig) };
    }

    pub fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.agents[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn muster(&self, args: &[&str]) -> Output {
        Command::new(BIN).arg("--state-dir").arg(&self.state).args(args).stdin(Stdio::null()).output().unwrap()
    }

    /// `muster run TARGETS OPTS -- ACTION ARGS`
    pub fn run(&self, targets: &str, opts: &[&str], cmd: &[&str]) -> Output {
        let mut args = vec!["run", targets];
        args.extend_from_slice(opts);
        args.push("--");
        args.extend_from_slice(cmd);
        self.muster(&args)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for i in 0..self.agents.len() {
            self.stop(i);
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// JSON events printed by `--output json`.
pub fn events(o: &Output) -> Vec<serde_json::Value> {
    stdout(o).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
}

/// The end event of each target, by name.
pub fn ends(o: &Output) -> std::collections::BTreeMap<String, serde_json::Value> {
    events(o)
        .into_iter()
        .filter(|e| e["event"] == "end")
        .map(|e| (e["target"].as_str().unwrap().to_string(), e))
        .collect()
}

/// Poll `cond` every 20 ms until it holds; panic with `what` after `limit`.
pub fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Start `muster run` in the background with piped output.
pub fn spawn_run(f: &Fleet, targets: &str, opts: &[&str], cmd: &[&str]) -> Child {
    Command::new(BIN)
        .arg("--state-dir")
        .arg(&f.state)
        .args(["run", targets])
        .args(opts)
        .arg("--")
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The pids of live processes in process group `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // fields[0] = state, fields[2] = pgrp
        if fields.len() > 2 && fields[2].parse::<i32>() == Ok(pgid) && !matches!(fields[0], "Z" | "X") {
            out.push(pid);
        }
    }
    out
}
