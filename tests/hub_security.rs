//! Hub acceptance: Redis sees only sealed bytes; replays and commands from
//! a foreign station or for a foreign network run nowhere; garbage and
//! oversized messages leave every agent running.

mod common;
#[path = "common/hub.rs"]
mod hubfleet;
#[path = "common/redis.rs"]
mod redis;

use common::{code, ends, stderr, stdout};
use hubfleet::{keygen, HubFleet, CHANNEL};
use std::process::{Command, Stdio};
use std::time::Duration;

fn count_lines(p: &std::path::Path) -> usize {
    std::fs::read_to_string(p).map(|t| t.lines().count()).unwrap_or(0)
}

#[test]
fn redis_sees_no_action_args_or_output() {
    let mut f = HubFleet::new();
    let s = f.script("secret-action-xyz", "echo out-classified-$1");
    f.add("a1", &[], &[("secret-action-xyz", &s)], "");
    f.start_all();
    let port = f.redis.port.to_string();
    let monitor_log = f.tmp.path().join("monitor.log");
    let sub_log = f.tmp.path().join("sub.log");
    let spawn = |args: &[&str], log: &std::path::Path| {
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port])
            .args(args)
            .stdout(std::fs::File::create(log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut monitor = spawn(&["MONITOR"], &monitor_log);
    let mut sub = spawn(&["PSUBSCRIBE", "*"], &sub_log);
    std::thread::sleep(Duration::from_millis(300));
    let out = f.run("all", &["--no-discovery", "--expect", "1"], &["secret-action-xyz", "arg-sekrit"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("out-classified-arg-sekrit"), "{}", stdout(&out));
    std::thread::sleep(Duration::from_millis(300));
    let _ = monitor.kill();
    let _ = sub.kill();
    let _ = monitor.wait();
    let _ = sub.wait();
    let mut raw = std::fs::read(&monitor_log).unwrap();
    raw.extend(std::fs::read(&sub_log).unwrap());
    let captured = String::from_utf8_lossy(&raw);
    assert!(captured.contains("PUBLISH") && captured.contains("RPUSH"), "capture looks empty:\n{captured}");
    for secret in ["secret-action-xyz", "arg-sekrit", "out-classified"] {
        assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} crossed Redis in clear");
    }
}

#[test]
fn replays_and_foreign_keys_run_nowhere() {
    let mut f = HubFleet::new();
    let counter = f.tmp.path().join("runs");
    let s = f.script("count", &format!("echo $MUSTER_AGENT >> {}", counter.display()));
    f.add("a1", &[], &[("count", &s)], "");
    f.add("a2", &[], &[("count", &s)], "");
    f.start_all();
    // Capture the published command with a plain subscriber.
    let client = ::redis::Client::open(f.redis.url()).unwrap();
    let mut sub_conn = client.get_connection().unwrap();
    let mut pubsub = sub_conn.as_pubsub();
    pubsub.subscribe(format!("muster/{CHANNEL}/requests")).unwrap();
    let out = f.run("all", &["--no-discovery", "--expect", "2"], &["count"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    pubsub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let captured: Vec<u8> = pubsub.get_message().unwrap().get_payload_bytes().to_vec();
    drop(pubsub);
    assert_eq!(count_lines(&counter), 2);
    let mut conn = client.get_connection().unwrap();
    let _: i64 =
        ::redis::cmd("PUBLISH").arg(format!("muster/{CHANNEL}/requests")).arg(&captured).query(&mut conn).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(count_lines(&counter), 2, "a replayed command ran again");
    assert!(f.log(0).contains("replayed or too old"), "{}", f.log(0));

    // Another station key: agents verify and refuse.
    let other = f.tmp.path().join("other-station");
    keygen("station", &other);
    std::fs::copy(other.join("station.key"), f.state.join("hub/station.key")).unwrap();
    let out = f.run("all", &["--no-discovery", "--hello-wait", "1"], &["count"]);
    assert_eq!(code(&out), 2, "nobody answered: {}", stderr(&out));
    assert!(ends(&out).is_empty());
    assert!(f.log(0).contains("bad station signature"), "{}", f.log(0));

    // Right station key, sealed to another network key: nobody can open it.
    std::fs::copy(f.keys.join("station.key"), f.state.join("hub/station.key")).unwrap();
    keygen("network", &other);
    std::fs::copy(other.join("network.pub"), f.state.join("hub/network.pub")).unwrap();
    let out = f.run("all", &["--no-discovery", "--hello-wait", "1"], &["count"]);
    assert_eq!(code(&out), 2, "nobody answered: {}", stderr(&out));
    assert!(ends(&out).is_empty());
    assert!(f.log(1).contains("cannot decrypt"), "{}", f.log(1));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count_lines(&counter), 2, "a foreign command ran");
}

#[test]
fn garbage_and_oversized_messages_leave_agents_running() {
    let mut f = HubFleet::new();
    let s = f.script("t", "echo fine");
    for n in ["a1", "a2", "a3"] {
        f.add(n, &[], &[("t", &s)], "");
    }
    f.start_all();
    let client = ::redis::Client::open(f.redis.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let topic = format!("muster/{CHANNEL}/requests");
    let junk: Vec<Vec<u8>> = vec![b"not a muster message".to_vec(), vec![], vec![0xff; 97], vec![1u8; 3 << 20], {
        let mut v = vec![1u8]; // right version byte, nonsense after
        v.extend_from_slice(&[0u8; 200]);
        v
    }];
    for j in &junk {
        let _: i64 = ::redis::cmd("PUBLISH").arg(&topic).arg(j).query(&mut conn).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..3 {
        assert!(f.alive(i), "agent {i} died:\n{}", f.log(i));
    }
    let out = f.run("all", &["--no-discovery", "--expect", "3", "--output", "json"], &["t"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(ends(&out).len(), 3);
    assert!(f.log(0).contains("ignored a"), "{}", f.log(0));
}
