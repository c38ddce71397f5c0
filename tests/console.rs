//! Acceptance (issue 10, console): driven through tmux like a person. A
//! console started with no daemon starts one; `date` on every host shows
//! grouped output; a background job reports when it ends; `jobs`, `status`
//! and `quit` work.

mod common;
#[path = "common/ssh.rs"]
mod ssh;
#[path = "common/tmux.rs"]
mod tmux;

use common::*;
use ssh::*;
use std::time::Duration;
use tmux::Tmux;

fn console(f: &SshFleet) -> Tmux {
    Tmux::start(&format!("env MUSTER_CONFIG={} {} --state-dir {} console", f.config.display(), BIN, f.state.display()))
}

#[test]
fn a_console_starts_its_daemon_and_runs_date_on_every_host() {
    let f = SshFleet::shared(3, "");
    let sock = f.state.join("daemon/daemon.sock");
    assert!(!sock.exists());
    let t = console(&f);
    t.wait("started a daemon", Duration::from_secs(20));
    t.wait("muster [all via ssh]>", Duration::from_secs(20));
    t.send("date +%F");
    t.wait("h[1-3] (3): succeeded", Duration::from_secs(60));
    t.wait("3 targets: 3 succeeded", Duration::from_secs(5));
    t.send("select h[1-2]");
    t.wait("2 hosts selected", Duration::from_secs(5));
    t.send("bg sleep 1; echo job-output");
    t.wait("[job 1] started", Duration::from_secs(5));
    t.send("jobs");
    t.wait("[job 1] `sleep 1; echo job-output` ended", Duration::from_secs(30));
    assert!(t.screen().contains("job-output"), "{}", t.screen());
    t.send("status");
    t.wait("h1 (Ssh)", Duration::from_secs(5));
    t.send("quit");
    wait_for(Duration::from_secs(5), "the console to end", || !t.alive());
    // The daemon it started stays resident.
    assert!(std::os::unix::net::UnixStream::connect(&sock).is_ok());
    // Both runs, foreground and job, are in the audit log as console runs.
    let audit = std::fs::read_to_string(f.state.join("audit/audit.log")).unwrap_or_default();
    let lines: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{audit}");
    assert!(lines.iter().all(|l| l["origin"] == "console" && l["via"] == "ssh"), "{audit}");
    assert!(lines.iter().any(|l| l["states"]["succeeded"] == 3), "{audit}");
    let daemon_pid = f
        .daemon_log()
        .lines()
        .find(|l| l.contains("\"event\":\"start\""))
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["pid"].as_i64()));
    if let Some(pid) = daemon_pid {
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
}
