//! Acceptance (issue 10, daemon): a resident daemon keeps one session per
//! host and shares it; 20 hosts over SSH run a command through it; a
//! killed or frozen remote agent is found (session end, heartbeat),
//! reaped and restarted; the queue limit refuses; mTLS agents work
//! through it too, locally and from a remote client over its TLS door.

mod common;
#[path = "common/ssh.rs"]
mod ssh;

use common::*;
use ssh::*;
use std::time::Duration;

#[test]
fn twenty_hosts_through_the_daemon_share_their_sessions() {
    let mut f = SshFleet::shared(20, "");
    f.start_daemon();
    let out = f.run("all", &["-v", "--output", "json"], &["echo", "$SSH_CONNECTION"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("through the daemon"), "{}", stderr(&out));
    assert_eq!(ends(&out).values().filter(|e| e["state"] == "succeeded").count(), 20);
    let links = |log: &str| log.lines().filter(|l| l.contains("\"event\":\"link\"")).count();
    assert_eq!(links(&f.daemon_log()), 20);
    let again = f.run("all", &["--output", "json"], &["true"]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert_eq!(links(&f.daemon_log()), 20, "the second run reuses every session");
    let direct = f.run("h1", &["--no-daemon", "-v"], &["true"]);
    assert!(stderr(&direct).contains("directly"), "{}", stderr(&direct));
}

fn one_agent(f: &SshFleet, name: &str) -> i32 {
    let mut pids = Vec::new();
    wait_for(Duration::from_secs(10), "one remote agent", || {
        pids = agents_in(&f.install_dir(name));
        pids.len() == 1
    });
    pids[0]
}

#[test]
fn a_killed_remote_agent_is_restarted() {
    let mut f = SshFleet::new(1, "");
    f.start_daemon();
    assert_eq!(code(&f.run("h1", &[], &["true"])), 0);
    let pid = one_agent(&f, "h1");
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_for(Duration::from_secs(20), "the restart", || f.daemon_log().contains("\"event\":\"restart\""));
    let newer = one_agent(&f, "h1");
    assert_ne!(newer, pid);
    let out = f.run("h1", &["--output", "json"], &["echo", "back"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn a_frozen_remote_agent_is_found_by_heartbeat_reaped_and_restarted() {
    let mut f = SshFleet::new(1, "");
    f.start_daemon();
    assert_eq!(code(&f.run("h1", &[], &["true"])), 0);
    let pid = one_agent(&f, "h1");
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    wait_for(Duration::from_secs(40), "the heartbeat to give up", || f.daemon_log().contains("heartbeats"));
    wait_for(Duration::from_secs(20), "the reap and restart", || f.daemon_log().contains("\"event\":\"restart\""));
    assert!(f.daemon_log().contains("killed"), "{}", f.daemon_log());
    wait_for(Duration::from_secs(5), "the frozen agent to be gone", || !muster::exec::runner::process_alive(pid));
    assert_eq!(code(&f.run("h1", &[], &["true"])), 0);
}

#[test]
fn the_queue_limit_refuses_busy() {
    let mut f = SshFleet::new(1, "max_concurrent = 1");
    f.start_daemon();
    let mark = f.tmp.path().join("started");
    let slow = f.spawn(&["run", "h1", "--via", "ssh", "--", &format!("touch {}; sleep 3", mark.display())]);
    wait_for(Duration::from_secs(15), "the first command to run", || mark.exists());
    let out = f.run("h1", &["--output", "json"], &["true"]);
    assert_eq!(code(&out), 16, "{}", stderr(&out));
    assert_eq!(ends(&out)["h1"]["reason"], "busy", "{}", ends(&out)["h1"]);
    assert_eq!(code(&slow.wait_with_output().unwrap()), 0);
}

#[test]
fn mtls_agents_through_a_local_and_a_remote_daemon() {
    let mut f = Fleet::new();
    let s = f.script("t", "echo via-daemon");
    f.add("a1", &[], &[("t", &s)]);
    f.add("a2", &[], &[("t", &s)]);
    f.start_all();
    let listen = free_addr().to_string();
    let log = std::fs::File::create(f.path("daemon.err")).unwrap();
    let mut d = std::process::Command::new(BIN)
        .arg("--state-dir")
        .arg(&f.state)
        .args(["daemon", "--listen", &listen])
        .stderr(log)
        .spawn()
        .unwrap();
    let sock = f.state.join("daemon/daemon.sock");
    wait_for(Duration::from_secs(10), "the daemon", || std::os::unix::net::UnixStream::connect(&sock).is_ok());
    wait_for(Duration::from_secs(10), "the TLS door", || std::net::TcpStream::connect(&listen).is_ok());
    let out = f.run("all", &["-v", "--output", "json"], &["t"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("through the daemon"), "{}", stderr(&out));
    let remote = f.run("a1", &["-v", "--daemon", &listen, "--output", "json"], &["t"]);
    assert_eq!(code(&remote), 0, "{}", stderr(&remote));
    assert!(stderr(&remote).contains(&format!("at {listen}")), "{}", stderr(&remote));
    unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
    let _ = d.wait();
    assert!(!sock.exists(), "the socket is removed on stop");
}
