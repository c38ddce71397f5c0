//! `muster ping` over every carrier, with round-trip times in a precision
//! that suits them (µs on loopback): mTLS to registered agents, the hub's
//! builtin ping broadcast (recorded in discovery), and SSH.

mod common;
#[path = "common/hub.rs"]
mod hubfleet;
#[path = "common/redis.rs"]
mod redis;
#[path = "common/ssh.rs"]
mod ssh;

use common::*;
use std::process::{Command, Stdio};

/// `NAME: ok TIME` lines, each TIME a number and a unit (µs, ms or s),
/// never `0.0 ms`; returns the names, sorted.
fn ok_lines(out: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in out.lines() {
        let (name, rest) = line.split_once(": ok ").unwrap_or_else(|| panic!("not an ok line: {line:?}\n{out}"));
        let (num, unit) = rest.split_once(' ').unwrap();
        assert!(["µs", "ms", "s"].contains(&unit), "{line}");
        let v: f64 = num.parse().unwrap_or_else(|_| panic!("{line}"));
        assert!(v > 0.0 || unit == "µs", "{line}");
        assert_ne!(rest, "0.0 ms", "{line}");
        names.push(name.to_string());
    }
    names.sort();
    names
}

#[test]
fn ping_over_mtls_shows_microseconds_on_loopback() {
    let mut f = Fleet::new();
    for n in ["a1", "a2"] {
        f.add(n, &[], &[]);
    }
    f.start_all();
    let out = f.muster(&["ping", "all"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(ok_lines(&stdout(&out)), ["a1", "a2"]);
    assert!(stdout(&out).contains(" µs") || stdout(&out).contains(" ms"), "{}", stdout(&out));
}

#[test]
fn ping_over_the_hub_answers_with_discovery() {
    let mut h = hubfleet::HubFleet::new();
    for n in ["h1", "h2", "h3"] {
        h.add(n, &[if n == "h3" { "db" } else { "web" }], &[], "");
    }
    h.start_all();
    let state = h.state.clone();
    let ping = |args: &[&str]| {
        Command::new(BIN)
            .arg("--state-dir")
            .arg(&state)
            .args(["ping"])
            .args(args)
            .args(["--via", "hub"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = ping(&["all"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(ok_lines(&stdout(&out)), ["h1", "h2", "h3"]);
    let disc = std::fs::read_to_string(h.state.join("hub/discovery.toml")).unwrap();
    assert!(["h1", "h2", "h3"].iter().all(|n| disc.contains(n)), "discovery: {disc}");
    for n in ["h1", "h2", "h3"] {
        assert!(stderr(&out).contains(&format!("new agent on {}: {n}", hubfleet::CHANNEL)), "{}", stderr(&out));
    }
    let web = ping(&["all", "--tags", "web"]);
    assert_eq!(code(&web), 0, "{}", stderr(&web));
    assert_eq!(ok_lines(&stdout(&web)), ["h1", "h2"]);
    // A named agent that is not there is missing (+2).
    h.stop(2);
    let named = ping(&["h[1-3]"]);
    assert_eq!(code(&named), 2, "{}\n{}", stdout(&named), stderr(&named));
    assert!(stdout(&named).contains("h1: ok ") && stdout(&named).contains("h3: unreachable("), "{}", stdout(&named));
    // Without a hub configured: a clear error.
    let f = Fleet::new();
    let none = f.muster(&["ping", "all", "--via", "hub"]);
    assert_eq!(code(&none), 1);
    assert!(stderr(&none).contains("no hub channel: pass --channel"), "{}", stderr(&none));
}

#[test]
fn ping_over_ssh() {
    let f = ssh::SshFleet::new(2, "");
    let out = f.muster(&["ping", "all", "--via", "ssh"]);
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(ok_lines(&stdout(&out)), ["h1", "h2"]);
    let refused = f.muster(&["ping", "h1", "--via", "ssh", "--no-install", "--state-dir"]);
    assert_eq!(code(&refused), 1, "--state-dir needs a value");
}
