//! Hub on a real three-primary Redis Cluster on loopback: agents and
//! station find it through seed nodes; the command goes by sharded pub/sub
//! to the shard owning the topic only, `--fanout` throttles (hash-tagged
//! slot keys), agents follow the topic's slot when it migrates and its
//! shard when it restarts, and a shard lost mid-run is reported.

mod common;
#[path = "common/hub.rs"]
mod hubfleet;
#[path = "common/redis.rs"]
mod redis;

use common::{code, ends, max_overlap, stderr, stdout};
use hubfleet::{toml_list, wait_subscribed_on, HubFleet, CHANNEL};
use redis::{cluster_create, cluster_node, cluster_owner, cluster_stat, poll, Redis};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn cluster_broadcast_uses_sharded_pubsub_and_throttles() {
    let n0 = cluster_node();
    let (n1, n2) = (cluster_node(), cluster_node());
    cluster_create(&[&n0, &n1, &n2]);
    // Agents and the station's dispatcher.toml name two seeds; the third
    // node is found through them.
    let conf = format!("cluster = {}\n", toml_list(&[n0.address(), n1.address()]));
    let mut f = HubFleet::with(n0, conf);
    let log = f.tmp.path().join("times.log");
    let who = f.script("who", "echo $MUSTER_AGENT");
    let slow = f.script(
        "slow",
        &format!("echo start $(date +%s%N) >> {0}\nsleep 0.3\necho end $(date +%s%N) >> {0}", log.display()),
    );
    for i in 0..4 {
        f.add(&format!("c{i}"), &[], &[("who", &who), ("slow", &slow)], "");
    }
    f.start_each();
    // Not started as an agent: its config serves the swarm below.
    let sw = f.add("sw", &[], &[], "");
    let nodes = [&f.redis, &n1, &n2];
    let topic = format!("muster/{CHANNEL}/requests");
    let owner = cluster_owner(&nodes, &topic);
    wait_subscribed_on(owner, "SHARDNUMSUB", 4);
    let (rc, text) = f.self_check(0);
    assert!(rc == 0 && text.contains("Redis Cluster via") && text.contains("answers PING"), "{text}");
    // Subscribed by sharded pub/sub on the owning shard only.
    for n in nodes {
        let shard = n.cli(&["PUBSUB", "SHARDCHANNELS"]);
        assert_eq!(shard.contains(&topic), n.port == owner.port, "node {}: {shard:?}", n.port);
        assert_eq!(n.cli(&["PUBSUB", "CHANNELS"]).trim(), "", "node {} has plain channels", n.port);
    }

    let out = f.run("all", &["--output", "json", "--no-discovery", "--expect", "4"], &["who"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let e = ends(&out);
    assert_eq!(e.keys().cloned().collect::<Vec<_>>(), ["c0", "c1", "c2", "c3"], "{}", stdout(&out));
    // The URL form by flag; hub-wide throttling (slot scripts on hash-tagged keys).
    let url = format!("redis+cluster://{}", n2.address());
    let opts = ["--redis", url.as_str(), "--fanout", "2", "--output", "json", "--no-discovery", "--expect", "4"];
    let out = f.run("all", &opts, &["slow"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(ends(&out).len(), 4, "{}", stdout(&out));
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 8, "{text}");
    let m = max_overlap(&text);
    assert!(m <= 2, "{m} ran at once:\n{text}");
    // SPUBLISH never crossed to another shard (no replicas here, so the
    // cluster bus carried no publish at all), where PUBLISH reaches every node.
    for stat in ["cluster_stats_messages_publish_sent", "cluster_stats_messages_publish_received"] {
        assert_eq!(cluster_stat(&nodes, stat), 0, "{stat}");
    }

    // A swarm of 20 identities under --fanout 3: 20 waiters for 3 slots,
    // woken through the wake list (BLPOP on a connection of their own).
    let mut swarm = Command::new(common::BIN)
        .args(["hub", "swarm", "--count", "20", "--config"])
        .arg(f.agents[sw].dir.join("agent.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_subscribed_on(owner, "SHARDNUMSUB", 5);
    let opts = ["--fanout", "3", "--output", "json", "--no-discovery", "--expect", "24"];
    let out = f.run("all", &opts, &["ping"]);
    let _ = swarm.kill();
    let _ = swarm.wait();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let e = ends(&out);
    assert_eq!(e.len(), 24, "{}", stdout(&out));
    assert!(e.values().all(|v| v["state"] == "succeeded"), "{}", stdout(&out));

    // The topic's slot migrates to another shard (the server drops the
    // shard-channel subscriptions): agents subscribe on the new owner.
    let slot = owner.cli(&["CLUSTER", "KEYSLOT", &topic]).trim().to_string();
    let dest = *nodes.iter().find(|n| n.port != owner.port).unwrap();
    let (from, to) =
        (owner.cli(&["CLUSTER", "MYID"]).trim().to_string(), dest.cli(&["CLUSTER", "MYID"]).trim().to_string());
    assert_eq!(owner.cli(&["CLUSTER", "COUNTKEYSINSLOT", &slot]).trim(), "0", "keys to migrate in slot {slot}");
    assert_eq!(dest.cli(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from]).trim(), "OK");
    assert_eq!(owner.cli(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to]).trim(), "OK");
    for n in [dest, owner] {
        assert_eq!(n.cli(&["CLUSTER", "SETSLOT", &slot, "NODE", &to]).trim(), "OK");
    }
    let t0 = Instant::now();
    poll(Duration::from_secs(10), "every node sees the slot moved", || {
        std::ptr::eq(cluster_owner(&nodes, &topic), dest)
    });
    wait_subscribed_on(dest, "SHARDNUMSUB", 4);
    eprintln!("slot migration to resubscribed: {:?}", t0.elapsed());
    let out = f.run("all", &["--output", "json", "--no-discovery", "--expect", "4"], &["who"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(ends(&out).len(), 4, "{}", stdout(&out));
    let owner = dest;

    // The shard owning the topic restarts (same node id and slots, from
    // its nodes.conf): agents subscribe on it again and a run reaches all.
    let owner_port = owner.port;
    let (mut n1, mut n2) = (n1, n2);
    match owner_port {
        p if p == f.redis.port => f.redis.restart(),
        p if p == n1.port => n1.restart(),
        _ => n2.restart(),
    }
    let t0 = Instant::now();
    let nodes = [&f.redis, &n1, &n2];
    for n in nodes {
        poll(Duration::from_secs(20), "the cluster is ok again", || {
            n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok")
        });
    }
    wait_subscribed_on(cluster_owner(&nodes, &topic), "SHARDNUMSUB", 4);
    eprintln!("shard restart to resubscribed: {:?}", t0.elapsed());
    let out = f.run("all", &["--output", "json", "--no-discovery", "--expect", "4"], &["who"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(ends(&out).len(), 4, "{}", stdout(&out));
}

#[test]
fn cluster_shard_lost_mid_run_is_reported_and_the_next_run_loses_no_reply() {
    let n0 = cluster_node();
    let (mut n1, mut n2) = (cluster_node(), cluster_node());
    cluster_create(&[&n0, &n1, &n2]);
    let conf = format!("url = \"redis+cluster://{}\"\n", n0.address());
    let mut f = HubFleet::with(n0, conf);
    let marks = f.tmp.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let who = f.script("who", "echo $MUSTER_AGENT");
    let slow = f.script("slow", &format!("touch {}/$MUSTER_AGENT; sleep 5; echo done", marks.display()));
    for i in 0..3 {
        f.add(&format!("k{i}"), &[], &[("who", &who), ("slow", &slow)], "");
    }
    f.start_each();
    let topic = format!("muster/{CHANNEL}/requests");
    wait_subscribed_on(cluster_owner(&[&f.redis, &n1, &n2], &topic), "SHARDNUMSUB", 3);

    // With --fanout the running agents hold the command's slot set, so
    // the shard holding the command's keys can be found and killed.
    let opts = ["--fanout", "3", "--reply-wait", "20", "--output", "json", "--no-discovery", "--expect", "3"];
    let station = f.spawn_run("all", &opts, &["slow"]);
    poll(Duration::from_secs(10), "every agent starts the slow action", || {
        (0..3).all(|i| marks.join(format!("k{i}")).exists())
    });
    let pattern = format!("muster/{CHANNEL}/replies/*:slots");
    let holds = |n: &Redis| !n.cli(&["KEYS", &pattern]).trim().is_empty();
    let killed = Instant::now();
    let port = if holds(&f.redis) {
        f.redis.kill();
        f.redis.port
    } else if holds(&n1) {
        n1.kill();
        n1.port
    } else {
        assert!(holds(&n2), "no node holds the command's slot set");
        n2.kill();
        n2.port
    };
    let out = station.wait_with_output().unwrap();
    let ended = killed.elapsed();
    eprintln!("the station ended {ended:?} after the shard {port} died");
    assert!(ended < Duration::from_secs(10), "the station ended {ended:?} after the shard died");
    let e = ends(&out);
    assert_eq!(e.len(), 3, "{}", stdout(&out));
    for (name, end) in &e {
        assert_eq!((&end["state"], &end["reason"]), (&"lost".into(), &"hub lost".into()), "{name}: {end}");
        assert!(end["detail"].as_str().unwrap().contains("lost Redis at Redis Cluster via"), "{name}: {end}");
    }

    // The shard comes back (same node id and slots, from its nodes.conf);
    // agents subscribe on the topic's shard again and a new run gets every reply.
    let t0 = Instant::now();
    match port {
        p if p == f.redis.port => f.redis.restart(),
        p if p == n1.port => n1.restart(),
        _ => n2.restart(),
    }
    let nodes = [&f.redis, &n1, &n2];
    for n in nodes {
        poll(Duration::from_secs(20), "the cluster is ok again", || {
            n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok")
        });
    }
    wait_subscribed_on(cluster_owner(&nodes, &topic), "SHARDNUMSUB", 3);
    eprintln!("shard restart to resubscribed: {:?}", t0.elapsed());
    let out = f.run("all", &["--output", "json", "--no-discovery", "--expect", "3"], &["who"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(ends(&out).keys().cloned().collect::<Vec<_>>(), ["k0", "k1", "k2"], "{}", stdout(&out));
}
