//! Acceptance (issue 8, §4): processes never outlive what owns them. A
//! SIGTERM to an agent cancels its running actions, reports them
//! `cancelled` and leaves no process of their groups; a second signal
//! exits at once; a dispatcher that dies mid-run gets its actions
//! cancelled; actions see a minimal, documented environment.

mod common;
use common::*;
use std::process::Child;
use std::time::{Duration, Instant};

fn exited_within(child: &mut Child, limit: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// An agent `agent3` whose `sleeper` action records its pid (= its process
/// group) in `pid` and runs `body`; returns (fleet, pid file).
fn sleeper_fleet(body: &str, extra: &str) -> (Fleet, std::path::PathBuf) {
    let mut f = Fleet::new();
    let pidfile = f.path("sleeper.pid");
    let s = f.script("sleeper", &format!("echo $$ > {}\n{body}", pidfile.display()));
    let i = f.add("agent3", &[], &[("sleeper", &s)]);
    f.configure(i, extra);
    f.start_all();
    (f, pidfile)
}

fn read_pid(p: &std::path::Path) -> i32 {
    wait_for(Duration::from_secs(10), "the action to start", || {
        std::fs::read_to_string(p).is_ok_and(|t| t.ends_with('\n'))
    });
    std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
}

#[test]
fn sigterm_cancels_running_actions_reports_them_and_leaves_no_process() {
    let (mut f, pidfile) = sleeper_fleet("sleep 10\necho never", "kill_grace = 1");
    let run = spawn_run(&f, "agent3", &["--output", "json"], &["sleeper", "10"]);
    let pgid = read_pid(&pidfile);
    assert!(!group_members(pgid).is_empty());
    f.signal(0, libc::SIGTERM);
    let out = run.wait_with_output().unwrap();
    assert_eq!(ends(&out)["agent3"]["state"], "cancelled", "{}", stderr(&out));
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let agent = f.agents[0].child.as_mut().unwrap();
    assert!(exited_within(agent, Duration::from_secs(5)), "the agent did not exit:\n{}", f.log(0));
    wait_for(Duration::from_secs(3), "no process of the action's group", || group_members(pgid).is_empty());
    assert!(f.log(0).contains("cancelling"), "{}", f.log(0));
}

#[test]
fn a_second_sigterm_exits_at_once_and_kills_the_groups() {
    // The action ignores TERM and the grace is long: only the second signal ends it quickly.
    let (mut f, pidfile) = sleeper_fleet("trap '' TERM\nsleep 60 & wait; sleep 60", "kill_grace = 60");
    let run = spawn_run(&f, "agent3", &["--output", "json"], &["sleeper"]);
    let pgid = read_pid(&pidfile);
    f.signal(0, libc::SIGTERM);
    wait_for(Duration::from_secs(5), "the agent to start stopping", || f.log(0).contains("stopping"));
    let t0 = Instant::now();
    f.signal(0, libc::SIGTERM);
    let agent = f.agents[0].child.as_mut().unwrap();
    assert!(exited_within(agent, Duration::from_secs(3)), "the agent did not exit at once:\n{}", f.log(0));
    assert!(t0.elapsed() < Duration::from_secs(3));
    wait_for(Duration::from_secs(3), "no process of the action's group", || group_members(pgid).is_empty());
    let out = run.wait_with_output().unwrap();
    assert_ne!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn a_dispatcher_that_dies_mid_run_gets_its_action_cancelled() {
    let (f, pidfile) = sleeper_fleet("sleep 30", "kill_grace = 1");
    let mut run = spawn_run(&f, "agent3", &["--output", "json"], &["sleeper"]);
    let pgid = read_pid(&pidfile);
    run.kill().unwrap();
    let _ = run.wait();
    wait_for(Duration::from_secs(5), "the orphaned action to be cancelled", || group_members(pgid).is_empty());
    wait_for(Duration::from_secs(3), "the agent to log the cancel", || {
        f.log(0).contains("session ended while the request ran")
    });
    // The outcome is logged once the group is reaped, after the line above.
    wait_for(Duration::from_secs(3), "the agent to log the outcome", || f.log(0).contains("outcome=cancelled"));
}

#[test]
fn actions_see_a_minimal_environment_plus_what_the_config_adds() {
    let mut f = Fleet::new();
    let s = f.script("env", "env | sort");
    let i = f.add("a1", &[], &[("env", &s)]);
    f.configure(i, "[env]\nFLEET_ROLE = \"web\"\nPATH = \"/opt/tools/bin:/usr/bin:/bin\"");
    f.start_all();
    let out = f.run("a1", &["--output", "json"], &["env"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text: String = events(&out).iter().filter_map(|e| e["text"].as_str().map(String::from)).collect();
    let names: Vec<&str> = text.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
    for must in
        ["PATH", "HOME", "LANG", "FLEET_ROLE", "MUSTER_AGENT", "MUSTER_REQUEST_ID", "MUSTER_ACTION", "AGENT_TASK_ID"]
    {
        assert!(names.contains(&must), "{must} missing:\n{text}");
    }
    assert!(text.contains("PATH=/opt/tools/bin:/usr/bin:/bin\n"), "the config overrides PATH:\n{text}");
    assert!(!names.contains(&"MUSTER_LOG"), "the agent's own environment leaked:\n{text}");
    let allowed = ["PATH", "HOME", "LANG", "FLEET_ROLE", "PWD", "SHLVL", "_", "OLDPWD"];
    for n in names {
        assert!(
            allowed.contains(&n) || n.starts_with("MUSTER_") || n.starts_with("AGENT_TASK_"),
            "unexpected {n}:\n{text}"
        );
    }
}

#[test]
fn a_killed_agent_is_reported_lost_and_its_restart_kills_what_it_left() {
    let mut f = Fleet::new();
    let (pidfile, async_pidfile) = (f.path("sleeper.pid"), f.path("other.pid"));
    let s = f.script("sleeper", &format!("echo $$ > {}\nsleep 60", pidfile.display()));
    let o = f.script("other", &format!("echo $$ > {}\necho begun\nsleep 60", async_pidfile.display()));
    let i = f.add("agent3", &[], &[("sleeper", &s), ("other", &o)]);
    f.configure(i, "kill_grace = 1\nresult_retention = 600");
    f.start_all();
    // One run waits for its result, the other was started --async.
    let run = spawn_run(&f, "agent3", &["--output", "json"], &["sleeper"]);
    let pgid = read_pid(&pidfile);
    let out = f.run("agent3", &["--async"], &["other"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let id =
        stdout(&out).lines().find_map(|l| l.strip_prefix("request ")).unwrap().split(' ').next().unwrap().to_string();
    let async_pgid = read_pid(&async_pidfile);
    wait_for(Duration::from_secs(10), "the async output to be stored", || {
        std::fs::read_dir(f.agents[0].dir.join("runs"))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
            .any(|r| std::fs::read_to_string(r.path()).is_ok_and(|t| t.contains("begun")))
    });

    f.signal(0, libc::SIGKILL);
    let out = run.wait_with_output().unwrap();
    let end = &ends(&out)["agent3"];
    assert_eq!(end["state"], "lost", "{}", stdout(&out));
    assert!(end["detail"].as_str().unwrap_or_default().contains("after the action started"), "{end}");
    assert_eq!(code(&out) & 8, 8, "the lost bit: {}", stderr(&out));
    let _ = f.agents[0].child.as_mut().unwrap().wait();
    assert!(!group_members(pgid).is_empty(), "killing the agent outright left the action running");

    f.start(0);
    f.wait_listening(0);
    for g in [pgid, async_pgid] {
        wait_for(Duration::from_secs(10), "the leftover group to be killed", || group_members(g).is_empty());
    }
    assert!(f.log(0).contains("left running by agent"), "{}", f.log(0));
    let st = f.muster(&["status", &id, "--output", "json"]);
    assert_eq!(ends(&st)["agent3"]["state"], "lost", "{}", stdout(&st));
    let text: String = events(&st).iter().filter_map(|e| e["text"].as_str().map(String::from)).collect();
    assert_eq!(text, "begun\n", "the output seen before the agent died is kept");
}

/// An agent whose log pipe is gone (stderr closed: a log collector that
/// died) keeps finishing requests and still stops on SIGTERM: a log line
/// that cannot be written is dropped, not a panic in the task that logged.
#[test]
fn an_agent_with_a_dead_log_pipe_finishes_requests_and_stops_on_sigterm() {
    let mut f = Fleet::new();
    let s = f.script("hello", "echo hello");
    let i = f.add("agent4", &[], &[("hello", &s)]);
    let mut child = std::process::Command::new(BIN)
        .args(["agent", "serve", "--config"])
        .arg(f.agents[i].dir.join("agent.toml"))
        .env("MUSTER_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read the first log line, then close the pipe for good.
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stderr.take().unwrap()), &mut first).unwrap();
    assert!(first.contains("listening"), "{first}");
    f.agents[i].child = Some(child);
    for _ in 0..2 {
        let t0 = Instant::now();
        let out = f.run("agent4", &["--output", "json", "--timeout", "20"], &["hello"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert!(t0.elapsed() < Duration::from_secs(10), "the run took {:?}", t0.elapsed());
        assert!(stdout(&out).contains("hello"), "{}", stdout(&out));
    }
    f.signal(i, libc::SIGTERM);
    let child = f.agents[i].child.as_mut().unwrap();
    assert!(exited_within(child, Duration::from_secs(10)), "the agent ignored SIGTERM");
}
