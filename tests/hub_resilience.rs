//! Hub acceptance: hub-wide throttling (including a killed slot holder),
//! agents surviving a Redis restart, and a station that cannot reach Redis.

mod common;
#[path = "common/hub.rs"]
mod hubfleet;
#[path = "common/redis.rs"]
mod redis;

use common::{code, ends, max_overlap, stderr};
use hubfleet::HubFleet;
use std::time::{Duration, Instant};

#[test]
fn fanout_three_over_twelve() {
    let mut f = HubFleet::new();
    let log = f.tmp.path().join("times.log");
    let s = f.script(
        "slow",
        &format!("echo start $(date +%s%N) >> {0}\nsleep 0.3\necho end $(date +%s%N) >> {0}", log.display()),
    );
    for i in 0..12 {
        f.add(&format!("n{i:02}"), &[], &[("slow", &s)], "");
    }
    f.start_all();
    let out = f.run("all", &["--fanout", "3", "--no-discovery", "--expect", "12", "--output", "json"], &["slow"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(ends(&out).len(), 12);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 24, "{text}");
    let m = max_overlap(&text);
    assert!(m <= 3, "{m} ran at once:\n{text}");
    assert_eq!(m, 3, "the slots should be used");
}

#[test]
fn a_killed_agent_holding_a_slot_does_not_block_the_run() {
    let mut f = HubFleet::new();
    let d = f.tmp.path().to_path_buf();
    let s = f.script(
        "work",
        &format!(
            "if mkdir {0}/first 2>/dev/null; then echo $MUSTER_AGENT > {0}/holder; echo $$ > {0}/holder.pid; sleep 30; fi\necho done",
            d.display()
        ),
    );
    for i in 0..4 {
        f.add(&format!("k{i}"), &[], &[("work", &s)], "");
    }
    f.start_all();
    let opts = ["--fanout", "1", "--reply-wait", "8", "--no-discovery", "--output", "json"];
    let station = f.spawn_run("all", &opts, &["work"]);
    let t0 = Instant::now();
    while !d.join("holder.pid").exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "nobody took the slot");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let holder = std::fs::read_to_string(d.join("holder")).unwrap().trim().to_string();
    let i = f.agents.iter().position(|a| a.name == holder).unwrap();
    f.stop(i);
    let script_pid: i32 = std::fs::read_to_string(d.join("holder.pid")).unwrap().trim().parse().unwrap();
    unsafe { libc::kill(script_pid, libc::SIGKILL) };
    let out = station.wait_with_output().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(25), "took {:?}", t0.elapsed());
    let e = ends(&out);
    for a in f.agents.iter().filter(|a| a.name != holder) {
        assert_eq!(e[&a.name]["state"], "succeeded", "{}: {}", a.name, stderr(&out));
    }
    assert_eq!(e[&holder]["state"], "lost", "{}", stderr(&out));
    assert_eq!(code(&out), 8, "{}", stderr(&out));
}

#[test]
fn agents_survive_a_redis_restart() {
    let mut f = HubFleet::new();
    let s = f.script("t", "echo fine");
    for n in ["a1", "a2", "a3"] {
        f.add(n, &[], &[("t", &s)], "");
    }
    f.start_all();
    f.redis.restart();
    // The restarted server has no subscriptions until the agents come back.
    f.wait_subscribed(3);
    let out = f.run("all", &["--no-discovery", "--expect", "3", "--output", "json"], &["t"]);
    assert_eq!(code(&out), 0, "{}\n{}", stderr(&out), f.log(0));
    assert_eq!(ends(&out).len(), 3);
}

#[test]
fn station_without_redis_exits_1_naming_the_url() {
    let mut f = HubFleet::new();
    let url = f.redis.url();
    f.redis.kill();
    let out = f.run("all", &["--no-discovery"], &["t"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains(&url), "{}", stderr(&out));
}

#[test]
fn a_waiter_starts_promptly_when_the_slot_is_released() {
    let mut f = HubFleet::new();
    let d = f.tmp.path().to_path_buf();
    // The first to take the slot holds it until `go` exists, then notes
    // when it ends; the other notes when it starts.
    let s = f.script(
        "hold",
        &format!(
            "if mkdir {0}/first 2>/dev/null; then touch {0}/holding; while [ ! -e {0}/go ]; do sleep 0.01; done; \
             date +%s%N > {0}/released; else date +%s%N > {0}/started; fi",
            d.display()
        ),
    );
    for n in ["w1", "w2"] {
        f.add(n, &[], &[("hold", &s)], "");
    }
    f.start_all();
    let opts = ["--fanout", "1", "--reply-wait", "20", "--no-discovery", "--expect", "2", "--output", "json"];
    let station = f.spawn_run("all", &opts, &["hold"]);
    // Wait (with a deadline) until one holds the slot and the other is
    // blocked on the wake list rather than polling.
    let t0 = Instant::now();
    let blocked = || f.redis.cli(&["client", "list"]).contains("cmd=blpop");
    while !(d.join("holding").exists() && blocked()) {
        assert!(t0.elapsed() < Duration::from_secs(15), "no holder and blocked waiter: {}", f.log(0));
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(d.join("go"), "").unwrap();
    let out = station.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let at = |name: &str| -> u128 { std::fs::read_to_string(d.join(name)).unwrap().trim().parse().unwrap() };
    let gap_ms = at("started").saturating_sub(at("released")) / 1_000_000;
    // A wake-up, not the 2 s safety net: well under a second.
    assert!(gap_ms < 700, "the waiter started {gap_ms} ms after the release");
}

/// A reply pushed while Redis stalls (a pause longer than the Redis
/// client's default 500 ms answer timeout) and while the agent's command
/// connection is killed is delivered once Redis is back, not lost.
#[test]
fn replies_survive_a_stalled_redis_and_a_dropped_connection() {
    let mut f = HubFleet::new();
    let d = f.tmp.path().to_path_buf();
    let s = f.script("t", &format!("touch {}/started; sleep 1; echo fine", d.display()));
    f.add("a1", &[], &[("t", &s)], "");
    f.start_all();
    let opts = ["--reply-wait", "30", "--no-discovery", "--expect", "1", "--output", "json"];
    let station = f.spawn_run("all", &opts, &["t"]);
    let t0 = Instant::now();
    while !d.join("started").exists() {
        assert!(t0.elapsed() < Duration::from_secs(15), "the action never started: {}", f.log(0));
        std::thread::sleep(Duration::from_millis(10));
    }
    // Writes wait 4 s: the action's last reply is pushed meanwhile.
    assert!(f.redis.cli(&["CLIENT", "PAUSE", "4000", "WRITE"]).contains("OK"));
    // Once that push is waiting, drop the agent's command connection (the
    // only client with a postponed `rpush`; the station waits in `blpop`).
    let t1 = Instant::now();
    let pushing = loop {
        let ids: Vec<String> = f
            .redis
            .cli(&["CLIENT", "LIST"])
            .lines()
            .filter(|l| l.contains("cmd=rpush"))
            .filter_map(|l| l.split(' ').find_map(|kv| kv.strip_prefix("id=")).map(str::to_string))
            .collect();
        if !ids.is_empty() {
            break ids;
        }
        assert!(t1.elapsed() < Duration::from_secs(3), "no push waited: {}", f.redis.cli(&["CLIENT", "LIST"]));
        std::thread::sleep(Duration::from_millis(20));
    };
    for id in pushing {
        f.redis.cli(&["CLIENT", "KILL", "ID", &id]);
    }
    let out = station.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}\n{}", stderr(&out), f.log(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("fine"), "{text}");
    assert_eq!(ends(&out).len(), 1);
    assert!(f.log(0).contains("trying again"), "the dropped push was not retried: {}", f.log(0));
}

/// A run published while no agent is subscribed (agents coming back after
/// a failover or a Redis restart) is published again until one is, for up
/// to 2 s, so it reaches agents that subscribe a moment later.
#[test]
fn a_run_nobody_was_subscribed_to_is_published_again() {
    let mut f = HubFleet::new();
    let s = f.script("t", "echo fine");
    f.add("a1", &[], &[("t", &s)], "");
    let station = f.spawn_run("all", &["--no-discovery", "--expect", "1", "--output", "json"], &["t"]);
    // Start the agent only once the station has published to nobody.
    let t0 = Instant::now();
    while !f.redis.cli(&["INFO", "commandstats"]).contains("cmdstat_publish:calls=") {
        assert!(t0.elapsed() < Duration::from_secs(10), "the station never published");
        std::thread::sleep(Duration::from_millis(5));
    }
    f.start(0);
    let out = station.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}\n{}", stderr(&out), f.log(0));
    let e = ends(&out);
    assert_eq!(e.len(), 1, "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(e["a1"]["state"], "succeeded");
}
