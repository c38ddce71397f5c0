//! Hub on Redis Sentinel (a real primary, replica and three sentinels on
//! loopback, `redis-server --sentinel`): agents and station find the
//! primary through the sentinels; a run in flight when the primary dies
//! ends `lost(hub lost)` at once and a run after the failover loses no
//! reply; a planned failover moves agents off the old primary while a run
//! in flight there finishes. Bad Sentinel and Cluster settings are clear
//! errors.

mod common;
#[path = "common/hub.rs"]
mod hubfleet;
#[path = "common/redis.rs"]
mod redis;

use common::{code, ends, stderr, stdout};
use hubfleet::{toml_list, wait_subscribed_on, HubFleet, CHANNEL};
use redis::{poll, Redis, SentinelSet, SENTINEL_MASTER};
use std::time::{Duration, Instant};

#[test]
fn sentinel_failover_mid_run_is_reported_and_the_next_run_loses_no_reply() {
    let primary = Redis::start();
    let set = SentinelSet::start(&primary);
    // Agents use the list form; the station the URL form, by flag.
    let conf = format!("sentinels = {}\nmaster = {SENTINEL_MASTER:?}\n", toml_list(&set.addresses()));
    let url = format!("redis+sentinel://{}/{SENTINEL_MASTER}", set.addresses().join(","));
    let mut f = HubFleet::with(primary, conf);
    let marks = f.tmp.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let who = f.script("who", "echo $MUSTER_AGENT");
    let slow = f.script("slow", &format!("touch {}/$MUSTER_AGENT; sleep 5; echo done", marks.display()));
    for i in 0..3 {
        f.add(&format!("s{i}"), &[], &[("who", &who), ("slow", &slow)], "");
    }
    f.start_all();
    let opts = ["--redis", url.as_str(), "--output", "json", "--no-discovery", "--expect", "3"];
    let out = f.run("all", &opts, &["who"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(ends(&out).len(), 3, "{}", stdout(&out));

    // A run in flight when the primary dies (killed by pid).
    // s3 does not exist: a named target not heard from when the hub dies.
    let station = f.spawn_run("s[0-3]", &[&opts[..], &["--reply-wait", "20"]].concat(), &["slow"]);
    poll(Duration::from_secs(10), "every agent starts the slow action", || {
        (0..3).all(|i| marks.join(format!("s{i}")).exists())
    });
    let killed = Instant::now();
    f.redis.kill();
    let out = station.wait_with_output().unwrap();
    let ended = killed.elapsed();
    assert!(ended < Duration::from_secs(5), "the station ended {ended:?} after the primary died");
    assert_ne!(code(&out), 0, "{}", stderr(&out));
    let e = ends(&out);
    assert_eq!(e.len(), 4, "{}", stdout(&out));
    for (name, end) in &e {
        assert_eq!(end["state"], "lost", "{name}: {end}");
        assert_eq!(end["reason"], "hub lost", "{name}: {end}");
        assert!(end["detail"].as_str().unwrap().contains("lost Redis at Sentinel primary"), "{name}: {end}");
    }
    assert!(e["s3"]["detail"].as_str().unwrap().contains("no answer read before the carrier broke"), "{}", e["s3"]);

    // The sentinels promote the replica; the agents follow it, and a run
    // started after the failover gets every agent's reply.
    let t0 = Instant::now();
    set.wait_failed_over(Duration::from_secs(20));
    wait_subscribed_on(&set.replica, "NUMSUB", 3);
    eprintln!("failover and resubscription took {:?} after the kill", t0.elapsed() + ended);
    for _ in 0..3 {
        let out = f.run("all", &opts, &["who"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let e = ends(&out);
        assert_eq!(e.keys().cloned().collect::<Vec<_>>(), ["s0", "s1", "s2"], "{}", stdout(&out));
        assert!(e.values().all(|v| v["state"] == "succeeded"), "{}", stdout(&out));
    }
    // The config file's form (sentinels + master in dispatcher.toml) works too.
    let out = f.run("all", &["--output", "json", "--no-discovery", "--expect", "3"], &["who"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(ends(&out).len(), 3, "{}", stdout(&out));
}

/// `muster agent self-check` of agent `i`: (exit code, stdout).

#[test]
fn sentinel_failover_by_command_moves_agents_to_the_new_primary() {
    let primary = Redis::start();
    let set = SentinelSet::start(&primary);
    // Agents use the URL form; the station sentinels + master.
    let url = format!("redis+sentinel://{}/{SENTINEL_MASTER}", set.addresses().join(","));
    let mut f = HubFleet::with(primary, format!("url = {url:?}\n"));
    let station_conf = format!(
        "[hub]\nsentinels = {}\nmaster = {SENTINEL_MASTER:?}\nchannel = {CHANNEL:?}\n",
        toml_list(&set.addresses())
    );
    std::fs::write(f.state.join("dispatcher.toml"), station_conf).unwrap();
    let who = f.script("who", "echo $MUSTER_AGENT");
    let marks = f.tmp.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let slow = f.script("slow", &format!("touch {}/$MUSTER_AGENT; sleep 3; echo done", marks.display()));
    for i in 0..3 {
        f.add(&format!("g{i}"), &[], &[("who", &who), ("slow", &slow)], "");
    }
    f.start_all();
    let (rc, text) = f.self_check(0);
    assert!(rc == 0 && text.contains(&format!("Sentinel primary {SENTINEL_MASTER:?} via")), "{text}");
    let opts = ["--output", "json", "--no-discovery", "--expect", "3"];
    let out = f.run("all", &opts, &["who"]);
    assert_eq!((code(&out), ends(&out).len()), (0, 3), "{}", stderr(&out));

    // A planned failover leaves the old primary up: agents must leave it
    // and resubscribe on the new one, while a run in flight goes on on the
    // old primary (its replies pushed there) until the sentinels demote it.
    let in_flight = f.spawn_run("all", &opts, &["slow"]);
    poll(Duration::from_secs(10), "every agent starts the slow action", || {
        (0..3).all(|i| marks.join(format!("g{i}")).exists())
    });
    let t0 = Instant::now();
    // Refused (NOGOODSLAVE) until the sentinel has heard from the replica
    // recently enough; never accepted twice, since an accepted one is OK.
    poll(Duration::from_secs(15), "a sentinel accepts SENTINEL FAILOVER", || {
        set.sentinels[0].cli(&["SENTINEL", "FAILOVER", SENTINEL_MASTER]).trim() == "OK"
    });
    set.wait_failed_over(Duration::from_secs(20));
    let promoted = t0.elapsed();
    wait_subscribed_on(&set.replica, "NUMSUB", 3);
    poll(Duration::from_secs(10), "agents leave the demoted primary", || {
        f.redis.cli(&["PUBSUB", "NUMSUB", &format!("muster/{CHANNEL}/requests")]).lines().nth(1) == Some("0")
    });
    eprintln!("SENTINEL FAILOVER: promoted after {promoted:?}, agents moved after {:?}", t0.elapsed());
    // The sentinels demote the old primary only when they next look at it
    // (up to 10 s): agents follow the sentinels' announcement instead.
    let moved = t0.elapsed() - promoted;
    assert!(moved < Duration::from_secs(5), "agents took {moved:?} after the promotion to move");
    assert_eq!(f.redis.cli(&["PING"]).trim(), "PONG", "the old primary stays up");
    let out = in_flight.wait_with_output().unwrap();
    let e = ends(&out);
    assert_eq!(e.len(), 3, "{}", stdout(&out));
    assert!(e.values().all(|v| v["state"] == "succeeded"), "the run in flight: {}", stdout(&out));
    for _ in 0..2 {
        let out = f.run("all", &opts, &["who"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let e = ends(&out);
        assert_eq!(e.keys().cloned().collect::<Vec<_>>(), ["g0", "g1", "g2"], "{}", stdout(&out));
        assert!(e.values().all(|v| v["state"] == "succeeded"), "{}", stdout(&out));
    }
    // A master name no sentinel monitors is named as the mistake.
    let wrong = format!("redis+sentinel://{}/nosuchmaster", set.addresses().join(","));
    let out = f.run("all", &["--redis", wrong.as_str(), "--no-discovery"], &["who"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("no sentinel monitors a master named \"nosuchmaster\""), "{}", stderr(&out));
}

#[test]
fn bad_sentinel_and_cluster_settings_are_clear_errors() {
    let f = HubFleet::new();
    for (url, want) in [
        ("redis+sentinel://127.0.0.1:1", "needs the master name"),
        ("redis+sentinel://127.0.0.1:x/m", "is not HOST:PORT (the port is 1 to 65535)"),
        ("redis+sentinel://u:p@127.0.0.1:1/m", "set user and password in the [hub] section"),
        ("redis+cluster://127.0.0.1:1/3", "a Redis Cluster has only database 0"),
        ("redis+cluster://", "no host"),
        ("memcached://h:1", "unknown scheme memcached://"),
    ] {
        let out = f.run("all", &["--redis", url, "--no-discovery"], &["who"]);
        assert_eq!(code(&out), 1, "{url}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("--redis: {want}")) || stderr(&out).contains(want),
            "{url}: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    for (lines, want) in [
        (
            "url = \"redis://127.0.0.1:1\"\ncluster = [\"127.0.0.1:2\"]",
            "url and sentinels/master/cluster both name Redis",
        ),
        ("sentinels = [\"127.0.0.1:2\"]", "sentinels needs master = \"NAME\""),
        ("master = \"m\"", "master needs sentinels = [\"HOST:PORT\", ...]"),
        ("sentinels = [\"a:1\"]\nmaster = \"m\"\ncluster = [\"b:2\"]", "cannot both be set"),
        ("cluster = [\"[::1\"]", "an IPv6 address needs its closing ]"),
    ] {
        std::fs::write(f.state.join("dispatcher.toml"), format!("[hub]\n{lines}\nchannel = \"test\"\n")).unwrap();
        let out = f.run("all", &["--no-discovery"], &["who"]);
        assert_eq!(code(&out), 1, "{lines}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("dispatcher.toml") && err.contains(want), "{lines}: {err}");
    }
}
