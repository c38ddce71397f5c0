//! Acceptance for the files an operator writes: the agent directory that
//! `ca issue-agent` prints works from a relative path, warnings about
//! missing or unusable files reach the agent's log at start and on SIGHUP,
//! and out-of-range values stop the agent or dispatcher with file and line.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Poll `f` until it returns true or `secs` pass.
fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn the_printed_relative_config_path_serves_its_actions() {
    let f = Fleet::new();
    let script = f.script("hello", "echo hello-from-relative");
    let addr = free_addr().to_string();
    let out = Command::new(BIN)
        .current_dir(f.tmp.path())
        .arg("--state-dir")
        .arg(&f.state)
        .args(["ca", "issue-agent", "rel1", "--addr", &addr, "--out", "./agent1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let config = printed.split("--config ").nth(1).expect("a --config hint").trim().to_string();
    assert_eq!(config, "./agent1/agent.toml");
    std::fs::write(f.path("agent1/scripts.conf"), format!("hello = {}\n", script.display())).unwrap();
    let log = std::fs::File::create(f.path("agent1.log")).unwrap();
    // Killed on drop too, so a failed assertion leaves no agent behind.
    struct Reaped(std::process::Child);
    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Reaped(
        Command::new(BIN)
            .current_dir(f.tmp.path())
            .args(["agent", "serve", "--config", &config])
            .env("MUSTER_LOG", "info")
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let read_log = || std::fs::read_to_string(f.path("agent1.log")).unwrap_or_default();
    wait_for(15, "the agent to listen", || read_log().contains("listening on"));
    assert!(read_log().contains("(1 action, 1 trusted dispatcher)"), "{}", read_log());
    assert!(!read_log().contains("WARN"), "{}", read_log());
    let run = f.run("rel1", &["--output", "json"], &["hello"]);
    let _ = child.0.kill();
    let _ = child.0.wait();
    assert_eq!(code(&run), 0, "{}\n{}", stderr(&run), read_log());
    assert!(stdout(&run).contains("hello-from-relative"), "{}", stdout(&run));
    let left: Vec<_> = std::fs::read_dir(f.state.join("locks")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "lock files left after the run: {left:?}");
}

#[test]
fn issuing_an_existing_name_needs_force_and_remove_says_what_it_did() {
    let f = Fleet::new();
    let out_dir = f.path("a1").display().to_string();
    let issue = |extra: &[&str]| {
        let mut args = vec!["ca", "issue-agent", "a1", "--addr", "127.0.0.9:7443", "--out", &out_dir];
        args.extend_from_slice(extra);
        f.muster(&args)
    };
    assert!(issue(&[]).status.success());
    let key = std::fs::read(f.path("a1/agent.key")).unwrap();
    let entry = std::fs::read_to_string(f.state.join("agents/a1.json")).unwrap();
    let again = issue(&[]);
    assert_eq!(code(&again), 1, "{}", stderr(&again));
    assert!(
        stderr(&again).contains("agent \"a1\" already exists") && stderr(&again).contains("--force"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read(f.path("a1/agent.key")).unwrap(), key, "the key is untouched");
    assert_eq!(std::fs::read_to_string(f.state.join("agents/a1.json")).unwrap(), entry);
    // Another name into a directory that already holds a key: refused too.
    let other = f.muster(&["ca", "issue-agent", "b1", "--addr", "127.0.0.9:7444", "--out", &out_dir]);
    assert_eq!(code(&other), 1, "{}", stderr(&other));
    assert!(stderr(&other).contains("already holds an agent key"), "{}", stderr(&other));
    assert!(!f.state.join("agents/b1.json").exists());
    let forced = issue(&["--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(stdout(&forced).starts_with("replaced agent a1 (old serial "), "{}", stdout(&forced));
    assert_ne!(std::fs::read(f.path("a1/agent.key")).unwrap(), key, "--force replaces the key");
    let removed = f.muster(&["agents", "remove", "a1"]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert!(stdout(&removed).starts_with("removed agent a1 (addr 127.0.0.9:7443, serial "), "{}", stdout(&removed));
    for name in ["a1", "never-was"] {
        let gone = f.muster(&["agents", "remove", name]);
        assert_eq!(code(&gone), 1, "{}", stderr(&gone));
        assert!(stderr(&gone).contains(&format!("no agent \"{name}\" in the registry")), "{}", stderr(&gone));
    }
    let bad = f.muster(&["agents", "remove", "../ca/ca"]);
    assert_eq!(code(&bad), 1);
    assert!(stderr(&bad).contains("cannot name a registry entry"), "{}", stderr(&bad));
}

#[test]
fn missing_and_unusable_files_are_warned_at_start_and_on_reload() {
    let mut f = Fleet::new();
    let plain = f.path("scripts/plain.sh");
    std::fs::create_dir_all(plain.parent().unwrap()).unwrap();
    std::fs::write(&plain, "#!/bin/sh\necho hi\n").unwrap();
    let gone = f.path("scripts/gone.sh");
    let i = f.add("w1", &[], &[("plain", &plain), ("gone", &gone)]);
    let dir = f.agents[i].dir.clone();
    let trusted = std::fs::read_to_string(dir.join("dispatchers")).unwrap();
    std::fs::remove_file(dir.join("dispatchers")).unwrap();
    f.configure(i, &format!("hook = {:?}", f.path("no-hook").display().to_string()));
    f.start(i);
    f.wait_listening(i);
    let allow = dir.join("scripts.conf").display().to_string();
    let want_start = [
        format!("{allow}:1: action \"plain\": {} is not an executable file", plain.display()),
        format!("{allow}:2: action \"gone\": {} does not exist", gone.display()),
        format!("trusted-dispatcher map {} does not exist", dir.join("dispatchers").display()),
        format!("hook {} does not exist or is not an executable file", f.path("no-hook").display()),
    ];
    wait_for(10, "start-up warnings", || want_start.iter().all(|w| f.log(i).contains(w)));
    for w in &want_start {
        let line = f.log(i).lines().find(|l| l.contains(w.as_str())).unwrap().to_string();
        assert!(line.contains("WARN"), "{line}");
    }
    // Both scripts stay listed (running one fails at run time, not as unknown).
    std::fs::write(dir.join("dispatchers"), &trusted).unwrap();
    f.signal(i, libc::SIGHUP);
    wait_for(10, "the reload", || f.log(i).contains("reloaded: 2 actions, 1 trusted dispatcher"));
    std::fs::write(dir.join("dispatchers"), "1 nobody\n").unwrap();
    std::fs::remove_file(dir.join("scripts.conf")).unwrap();
    f.signal(i, libc::SIGHUP);
    let missing = format!("allowlist {allow} does not exist, so no script is allowlisted");
    wait_for(10, "reload warnings", || f.log(i).contains(&missing));
    let empty = "lists no dispatcher";
    assert!(!f.log(i).contains(empty), "a map with an entry is not empty");
    std::fs::write(dir.join("dispatchers"), "# none\n").unwrap();
    f.signal(i, libc::SIGHUP);
    wait_for(10, "the empty-map warning", || f.log(i).contains(empty));
    assert_eq!(f.log(i).matches("does not exist or is not an executable file").count(), 4, "{}", f.log(i));
}

fn serve_exits_with(dir: &Path, want: &str) {
    let out = Command::new(BIN)
        .args(["agent", "serve", "--config"])
        .arg(dir.join("agent.toml"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains(want), "want {want:?} in {}", stderr(&out));
}

#[test]
fn out_of_range_values_stop_with_file_and_line() {
    let mut f = Fleet::new();
    let s = f.script("t", "true");
    let i = f.add("v1", &[], &[("t", &s)]);
    let dir = f.agents[i].dir.clone();
    let toml = dir.join("agent.toml");
    let lines = std::fs::read_to_string(&toml).unwrap().lines().count() + 1;
    f.configure(i, "kill_grace = 1e20");
    let want = format!("{}:{lines}:14: kill_grace: 100000000000000000000 seconds is more than", toml.display());
    serve_exits_with(&dir, &want);
    let body: String = std::fs::read_to_string(&toml).unwrap().replace("kill_grace = 1e20", "idle_timeout = -1");
    std::fs::write(&toml, body).unwrap();
    serve_exits_with(&dir, &format!("{}:{lines}:16: idle_timeout: -1 seconds is too short", toml.display()));
    std::fs::write(f.state.join("dispatcher.toml"), "fanout = 4\nconnect_timeout = 1e300\n").unwrap();
    let out = f.run("v1", &[], &["t"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let want = format!("{}:2:19: connect_timeout: ", f.state.join("dispatcher.toml").display());
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
}
