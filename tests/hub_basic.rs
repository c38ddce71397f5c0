//! Hub acceptance: tags and direct messages, the exit bits (+4 failing
//! action, +8 silent agent, +16 unknown action), discovery of new and
//! missing agents.

mod common;
#[path = "common/hub.rs"]
mod hubfleet;
#[path = "common/redis.rs"]
mod redis;

use common::{code, ends, stderr, stdout};
use hubfleet::HubFleet;
use std::time::{Duration, Instant};

#[test]
fn tags_select_a_subset_and_agent_reaches_one() {
    let mut f = HubFleet::new();
    let s = f.script("who", "echo $MUSTER_AGENT");
    for i in 0..20 {
        let tags: &[&str] = match i % 4 {
            0 => &["web", "eu"],
            1 => &["web"],
            2 => &["db", "eu"],
            _ => &[],
        };
        f.add(&format!("n{i:02}"), tags, &[("who", &s)], "");
    }
    f.start_all();
    let all = f.run("all", &["--output", "json", "--no-discovery", "--expect", "20"], &["who"]);
    assert_eq!(code(&all), 0, "{}", stderr(&all));
    assert_eq!(ends(&all).len(), 20);
    let web_eu =
        f.run("all", &["--output", "json", "--no-discovery", "--tags", "web,eu", "--minimum-wait", "1"], &["who"]);
    assert_eq!(code(&web_eu), 0, "{}", stderr(&web_eu));
    let got: Vec<String> = ends(&web_eu).keys().cloned().collect();
    let want: Vec<String> = (0..20).filter(|i| i % 4 == 0).map(|i| format!("n{i:02}")).collect();
    assert_eq!(got, want);
    let one = f.run("all", &["--output", "json", "--no-discovery", "--agent", "n07", "--minimum-wait", "1"], &["who"]);
    assert_eq!(code(&one), 0, "{}", stderr(&one));
    assert_eq!(ends(&one).keys().cloned().collect::<Vec<_>>(), vec!["n07".to_string()]);
    // A node set as TARGETS is a direct message too.
    let two = f.run("n[03-04]", &["--output", "json", "--no-discovery"], &["who"]);
    assert_eq!(ends(&two).keys().cloned().collect::<Vec<_>>(), vec!["n03".to_string(), "n04".to_string()]);
}

#[test]
fn failing_silent_and_unknown() {
    let mut f = HubFleet::new();
    let marker = f.tmp.path().join("started");
    let bad = f.script("bad", "echo no; exit 5");
    let slow = f.script("slow", &format!("echo started; touch {}; sleep 1; echo done", marker.display()));
    f.add("a1", &[], &[("bad", &bad), ("slow", &slow)], "");
    f.start_all();
    let out = f.run("all", &["--output", "json", "--no-discovery", "--expect", "1"], &["bad"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert_eq!(ends(&out)["a1"]["exit"], 5);
    let out = f.run("all", &["--output", "json", "--no-discovery", "--expect", "1"], &["nope"]);
    assert_eq!(code(&out), 16, "{}", stderr(&out));
    assert!(stderr(&out).contains("unknown action"), "{}", stderr(&out));

    // The agent goes silent mid-run (stopped): +8 after the reply wait.
    let pid = f.agents[0].child.as_ref().unwrap().id() as i32;
    let station = std::process::Command::new(common::BIN)
        .arg("--state-dir")
        .arg(&f.state)
        .args(["run", "all", "--via", "hub", "--no-discovery", "--reply-wait", "2", "--output", "json", "--", "slow"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !marker.exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "the action never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let out = station.wait_with_output().unwrap();
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert_eq!(code(&out) & 8, 8, "{}", stderr(&out));
    assert!(stderr(&out).contains("went silent past the reply wait"), "{}", stderr(&out));
    assert!(stderr(&out).contains("not even a heartbeat"), "{}", stderr(&out));
}

#[test]
fn heartbeats_tell_a_quiet_action_from_a_silent_agent() {
    let mut f = HubFleet::new();
    let marker = f.tmp.path().join("talker-started");
    let quiet_marker = f.tmp.path().join("quiet-started");
    // Quiet for three reply waits; succeeds: heartbeats are not silence.
    let quiet = f.script("quiet", &format!("touch {}; sleep 5; echo done", quiet_marker.display()));
    let talk =
        f.script("talk", &format!("touch {}; for i in $(seq 20); do echo tick; sleep 0.25; done", marker.display()));
    f.add("q1", &[], &[("quiet", &quiet)], "");
    f.add("t1", &[], &[("quiet", &talk)], "");
    f.start_all();
    // t1 keeps talking for 10 s; q1 is stopped after it starts: q1 alone
    // ends lost, about one reply wait later, while t1 goes on.
    let pid = f.agents[0].child.as_ref().unwrap().id() as i32;
    let station = std::process::Command::new(common::BIN)
        .arg("--state-dir")
        .arg(&f.state)
        .args(["run", "all", "--via", "hub", "--no-discovery", "--reply-wait", "2", "--expect", "2"])
        .args(["--output", "json", "--", "quiet"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_for(Duration::from_secs(10), "the talker to start", || marker.exists());
    // q1 must hold the request before it is stopped, or it never answers.
    common::wait_for(Duration::from_secs(10), "the quiet agent to start", || quiet_marker.exists());
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let out = station.wait_with_output().unwrap();
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let ev = common::events(&out);
    let end_of = |who: &str| ev.iter().position(|e| e["event"] == "end" && e["target"] == who).unwrap();
    assert_eq!(ev[end_of("q1")]["state"], "lost", "{}", stdout(&out));
    assert_eq!(ev[end_of("t1")]["state"], "succeeded", "{}", stdout(&out));
    assert!(end_of("q1") < end_of("t1"), "the silent agent ends while the other still runs");

    let out = f.run("q1", &["--output", "json", "--no-discovery", "--reply-wait", "2"], &["quiet"]);
    assert_eq!(code(&out), 0, "a 5 s quiet action outlives a 2 s reply wait: {}", stderr(&out));
    assert_eq!(ends(&out)["q1"]["state"], "succeeded");
}

#[test]
fn discovery_reports_new_and_missing() {
    let mut f = HubFleet::new();
    let s = f.script("t", "true");
    for n in ["a1", "a2", "a3"] {
        f.add(n, &[], &[("t", &s)], "");
    }
    f.start_all();
    let first = f.run("all", &["--minimum-wait", "1", "--expect", "3"], &["t"]);
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    for n in ["a1", "a2", "a3"] {
        assert!(stderr(&first).contains(&format!("new agent on test: {n}")), "{}", stderr(&first));
    }
    // All known agents answered: returns at once, well before the minimum wait.
    let t0 = Instant::now();
    let again = f.run("all", &["--minimum-wait", "10"], &["t"]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert!(t0.elapsed() < Duration::from_secs(5), "waited {:?}", t0.elapsed());
    assert!(!stderr(&again).contains("new agent"), "{}", stderr(&again));

    f.stop(1);
    let missing = f.run("all", &["--minimum-wait", "1"], &["t"]);
    assert_eq!(code(&missing), 0, "{}", stderr(&missing));
    assert!(stderr(&missing).contains("missing agent on test: a2"), "{}", stderr(&missing));
    let strict = f.run("all", &["--minimum-wait", "1", "--fail-missing"], &["t"]);
    assert_eq!(code(&strict), 2, "{}", stderr(&strict));

    let i = f.add("a4", &[], &[("t", &s)], "");
    f.start(i);
    f.wait_subscribed(3);
    let newer = f.run("all", &["--minimum-wait", "1"], &["t"]);
    assert!(stderr(&newer).contains("new agent on test: a4"), "{}", stderr(&newer));
}

#[test]
fn self_check_of_a_hub_only_agent_checks_keys_and_redis_not_certificates() {
    let mut f = HubFleet::new();
    let s = f.script("t", "true");
    f.add("a1", &[], &[("t", &s)], "");
    f.add("a2", &[], &[], "");
    let check = |dir: &std::path::Path| {
        std::process::Command::new(common::BIN)
            .args(["agent", "self-check", "--config"])
            .arg(dir.join("agent.toml"))
            .output()
            .unwrap()
    };
    let out = check(&f.agents[0].dir);
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}{}", stderr(&out));
    assert!(text.contains("answers PING") && text.contains("load"), "{text}");
    assert!(!text.contains("certificate") && !text.contains("trusted map"), "{text}");
    let empty = stdout(&check(&f.agents[1].dir));
    assert!(empty.contains("warning: no actions"), "{empty}");
    // Redis gone: the check names the URL.
    let conf = f.agents[0].dir.join("agent.toml");
    let text = std::fs::read_to_string(&conf).unwrap();
    let port = f.redis.port.to_string();
    std::fs::write(&conf, text.replace(&port, &common::free_addr().port().to_string())).unwrap();
    let out = check(&f.agents[0].dir);
    assert_ne!(code(&out), 0);
    assert!(stdout(&out).contains("does not answer"), "{}", stdout(&out));
}

/// Relative key paths in dispatcher.toml are relative to the state dir,
/// not to wherever muster is started; a missing key's hint names the
/// directory the configured path points into.
#[test]
fn relative_station_key_paths_follow_the_state_dir() {
    let mut f = HubFleet::new();
    let s = f.script("t", "echo fine");
    f.add("a1", &[], &[("t", &s)], "");
    f.start_all();
    let conf = f.state.join("dispatcher.toml");
    let text = std::fs::read_to_string(&conf).unwrap();
    let with_keys = format!("{text}station_key = \"hub/station.key\"\nnetwork_key = \"hub/network.pub\"\n");
    std::fs::write(&conf, &with_keys).unwrap();
    // The test runs from the crate's directory, not from the state dir.
    assert_ne!(std::env::current_dir().unwrap(), f.state);
    let out = f.run("all", &["--no-discovery", "--expect", "1", "--output", "json"], &["t"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(ends(&out).len(), 1);
    std::fs::write(&conf, with_keys.replace("hub/station.key", "keys2/station.key")).unwrap();
    let out = f.run("all", &["--no-discovery"], &["t"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let want = format!("muster hub keygen station --out {}", f.state.join("keys2").display());
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
}
