//! Acceptance (issue 8, §1-2): a hub run takes the one dispatch path. The
//! dispatcher hook refuses it before anything is published; a named target
//! that never answers adds +2; the error budget keeps queued agents from
//! starting; Ctrl-C cancels what runs on every agent.

mod common;
#[path = "common/hub.rs"]
mod hubfleet;
#[path = "common/redis.rs"]
mod redis;

use common::{code, ends, stderr, wait_for, BIN};
use hubfleet::HubFleet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn with_hook(f: &HubFleet, body: &str) {
    let hook = f.script("dispatcher-hook", body);
    let conf = f.state.join("dispatcher.toml");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, format!("hook = {:?}\n{text}", hook.display().to_string())).unwrap();
}

#[test]
fn a_denying_dispatcher_hook_stops_a_hub_run_before_any_publish() {
    let mut f = HubFleet::new();
    let marker = f.tmp.path().join("ran");
    let s = f.script("t", &format!("touch {}", marker.display()));
    f.add("a1", &[], &[("t", &s)], "");
    f.start_all();
    let mode = f.tmp.path().join("hook-mode");
    std::fs::write(&mode, "deny").unwrap();
    with_hook(&f, &format!("[ \"$(cat {})\" = allow ] && exit 0\necho not on the hub today; exit 2", mode.display()));
    let monitor_log = f.tmp.path().join("monitor.log");
    let mut monitor = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &f.redis.port.to_string(), "MONITOR"])
        .stdout(std::fs::File::create(&monitor_log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(5), "MONITOR to start", || {
        f.redis.cli(&["PING"]);
        std::fs::read_to_string(&monitor_log).unwrap_or_default().contains("PING")
    });
    for targets in ["all", "a1", "a1,ghost"] {
        let out = f.run(targets, &["--no-discovery", "--output", "json"], &["t"]);
        assert_eq!(code(&out) & 16, 16, "{targets}: {}", stderr(&out));
        assert!(stderr(&out).contains("not on the hub today"), "{targets}: {}", stderr(&out));
    }
    // A positive control: once allowed, MONITOR does see the PUBLISH.
    std::fs::write(&mode, "allow").unwrap();
    let out = f.run("a1", &["--no-discovery"], &["t"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    wait_for(Duration::from_secs(5), "the allowed PUBLISH in MONITOR", || {
        std::fs::read_to_string(&monitor_log).unwrap_or_default().contains("\"PUBLISH\"")
    });
    let _ = monitor.kill();
    let _ = monitor.wait();
    let log = std::fs::read_to_string(&monitor_log).unwrap();
    assert_eq!(log.matches("\"PUBLISH\"").count(), 1, "only the allowed run published:\n{log}");
    assert!(marker.exists());

    // With discovery on, a1 is learnt by an allowed run; a refused run
    // asked nobody, so it names nobody missing and learns nothing.
    let learn = f.run("all", &["--expect", "1"], &["t"]);
    assert!(stderr(&learn).contains("new agent on"), "{}", stderr(&learn));
    std::fs::write(&mode, "deny").unwrap();
    let denied = f.run("all", &[], &["t"]);
    assert_eq!(code(&denied) & 16, 16, "{}", stderr(&denied));
    assert!(!stderr(&denied).contains("missing agent"), "{}", stderr(&denied));
    assert!(!stderr(&denied).contains("no agent answered"), "{}", stderr(&denied));
}

#[test]
fn a_named_target_that_never_answers_adds_two() {
    let mut f = HubFleet::new();
    let s = f.script("t", "true");
    f.add("a1", &[], &[("t", &s)], "");
    f.start_all();
    for (targets, opts) in [("ghost", vec![]), ("a1,ghost", vec![]), ("all", vec!["--agent", "ghost"])] {
        let mut o = vec!["--no-discovery", "--output", "json", "--hello-wait", "1", "--minimum-wait", "1"];
        o.extend(opts);
        let out = f.run(targets, &o, &["t"]);
        assert_eq!(code(&out), 2, "{targets}: {}", stderr(&out));
        assert_eq!(ends(&out)["ghost"]["state"], "unreachable", "{targets}");
        assert_eq!(ends(&out)["ghost"]["reason"], "did not answer", "{targets}");
    }
}

#[test]
fn the_error_budget_keeps_queued_agents_from_starting() {
    let mut f = HubFleet::new();
    let s = f.script("bad", "sleep 0.5; exit 3");
    for i in 0..5 {
        f.add(&format!("b{i}"), &[], &[("bad", &s)], "");
    }
    f.start_all();
    let out = f.run(
        "all",
        &["--fanout", "1", "--max-errors", "1", "--no-discovery", "--expect", "5", "--output", "json"],
        &["bad"],
    );
    let e = ends(&out);
    assert_eq!(e.len(), 5, "{}", stderr(&out));
    let failed = e.values().filter(|v| v["state"] == "failed").count();
    let skipped = e.values().filter(|v| v["state"] == "skipped").count();
    assert_eq!(failed + skipped, 5, "{}", stderr(&out));
    assert!(skipped >= 3, "{failed} failed, {skipped} skipped: {}", stderr(&out));
    assert_eq!(code(&out), 4, "{}", stderr(&out));
}

#[test]
fn ctrl_c_cancels_a_hub_run_on_every_agent() {
    let mut f = HubFleet::new();
    let marks = f.tmp.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let s = f.script("sleeper", &format!("echo $$ > {}/$MUSTER_AGENT\nsleep 60", marks.display()));
    for i in 0..3 {
        f.add(&format!("c{i}"), &[], &[("sleeper", &s)], "kill_grace = 0.5");
    }
    f.start_all();
    let t0 = Instant::now();
    let mut child = Command::new(BIN)
        .arg("--state-dir")
        .arg(&f.state)
        .args(["run", "all", "--via", "hub", "--no-discovery", "--output", "json", "--", "sleeper"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the station has seen all three start (over `all`
    // with no discovery, an agent it has not heard from is no target yet).
    let stdout_pipe = child.stdout.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(stdout_pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(l);
            }
        })
    };
    wait_for(Duration::from_secs(10), "the station to see three actions start", || {
        lines.lock().unwrap().iter().filter(|l| l.contains("\"event\":\"started\"")).count() == 3
    });
    assert_eq!(std::fs::read_dir(&marks).map(|d| d.count()).unwrap_or(0), 3);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut out = child.wait_with_output().unwrap();
    reader.join().unwrap();
    out.stdout = lines.lock().unwrap().iter().map(|l| format!("{l}\n")).collect::<String>().into_bytes();
    assert!(t0.elapsed() < Duration::from_secs(20), "took {:?}", t0.elapsed());
    let e = ends(&out);
    for i in 0..3 {
        assert_eq!(e[&format!("c{i}")]["state"], "cancelled", "{}", stderr(&out));
        let pid: i32 = std::fs::read_to_string(marks.join(format!("c{i}"))).unwrap().trim().parse().unwrap();
        wait_for(Duration::from_secs(5), "the cancelled action's group to be gone", || {
            common::group_members(pid).is_empty()
        });
    }
    assert_eq!(code(&out), 4, "{}", stderr(&out));
}

#[test]
fn sigterm_to_a_hub_agent_cancels_its_action_and_reports_it() {
    let mut f = HubFleet::new();
    let pidfile = f.tmp.path().join("pid");
    let s = f.script("sleeper", &format!("echo $$ > {}\nsleep 60", pidfile.display()));
    f.add("h1", &[], &[("sleeper", &s)], "kill_grace = 0.5");
    f.start_all();
    let child = Command::new(BIN)
        .arg("--state-dir")
        .arg(&f.state)
        .args(["run", "h1", "--via", "hub", "--no-discovery", "--output", "json", "--", "sleeper"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(10), "the action to start", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|t| t.ends_with('\n'))
    });
    let pgid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let agent_pid = f.agents[0].child.as_ref().unwrap().id() as i32;
    unsafe { libc::kill(agent_pid, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(ends(&out)["h1"]["state"], "cancelled", "{}", stderr(&out));
    wait_for(Duration::from_secs(3), "no process of the action's group", || common::group_members(pgid).is_empty());
    wait_for(Duration::from_secs(5), "the agent to exit", || !f.alive(0));
}
