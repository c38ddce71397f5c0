//! The ns8 agent under ns8's module ACL (every command but `@admin` and
//! `@dangerous`): SIGUSR1 drains without any admin command, so an idle
//! agent exits well under its 5 s polling interval and a busy one still
//! lets its task finish; Redis' `ACL LOG` shows nothing was refused. A
//! command the ACL does refuse is logged with the server's reason.

mod ns8_harness;
use ns8_harness::{Ns8, ID};
use std::time::{Duration, Instant};

/// Commands Redis refused since the server started (`ACL LOG`), as text.
fn acl_denials(t: &Ns8) -> String {
    t.redis.cli(&["acl", "log"]).trim().to_string()
}

#[test]
fn sigusr1_drains_an_idle_agent_well_under_5s_without_admin_commands() {
    let mut t = Ns8::new();
    t.module_acl(&[]);
    t.start_as_module(&[]);
    t.wait_until("subscription", || t.redis.cli(&["pubsub", "numpat"]).trim() == "1");
    let t0 = Instant::now();
    t.signal(libc::SIGUSR1);
    let status = t.wait_exit(Duration::from_secs(6)).expect("agent still running 6 s after SIGUSR1");
    let took = t0.elapsed();
    assert_eq!(status.code(), Some(0), "{}", t.log());
    assert!(took < Duration::from_millis(2500), "drain took {took:?}; log:\n{}", t.log());
    assert_eq!(acl_denials(&t), "", "a command was refused; log:\n{}", t.log());
    assert!(!t.log().contains("NOPERM"), "{}", t.log());
}

#[test]
fn sigusr1_on_a_busy_agent_under_the_module_acl_lets_the_task_finish() {
    let mut t = Ns8::new();
    t.script("a/run-longlasting/10step", "sleep 2; echo done");
    t.module_acl(&[]);
    t.start_as_module(&[]);
    t.task("b1", "run-longlasting", "{}");
    t.wait_log("run-longlasting/10step is starting");
    t.signal(libc::SIGUSR1);
    t.wait_queue_released();
    t.task("b2", "run-longlasting", "{}");
    let status = t.wait_exit(Duration::from_secs(10)).expect("agent did not exit");
    assert_eq!(status.code(), Some(0), "{}", t.log());
    assert!(t.exists(&Ns8::key("b1", "exit_code")), "exited before its task ended:\n{}", t.log());
    assert_eq!(t.get(&Ns8::key("b1", "exit_code")), "0");
    assert_eq!(t.output("b1"), "done\n");
    assert_eq!(t.redis.cli(&["llen", &format!("{ID}/tasks")]).trim(), "1");
    assert_eq!(acl_denials(&t), "", "a command was refused; log:\n{}", t.log());
}

#[test]
fn a_command_the_acl_refuses_is_logged_with_its_reason() {
    let mut t = Ns8::new();
    t.script("a/hello/10a", "echo hi");
    // This module user may not publish: every status publish is refused.
    t.module_acl(&["-publish"]);
    t.start_as_module(&[("AGENT_POLLING_INTERVAL", "200ms")]);
    t.task("r1", "hello", "{}");
    t.wait_log("<3>Redis refused \"publish\": NOPERM");
    let line = t.log().lines().find(|l| l.starts_with("<3>Redis refused \"publish\"")).map(str::to_string);
    assert!(line.as_deref().is_some_and(|l| l.contains("'publish' command")), "{line:?}");
    // The final transaction holds a publish too: refused as a whole, logged.
    t.wait_log("<3>Redis refused a command of a transaction: ");
    assert!(acl_denials(&t).contains("publish"), "{}", acl_denials(&t));
}

#[test]
fn a_refused_event_subscription_is_logged_with_its_reason() {
    let mut t = Ns8::new();
    t.module_acl(&[]);
    // `default`, which reads events, may use no channel at all.
    t.redis.cli(&["acl", "setuser", "default", "resetchannels"]);
    t.start_as_module(&[("AGENT_POLLING_INTERVAL", "200ms")]);
    t.wait_log("<3>redis: discarding bad PubSub connection: NOPERM");
    // Logged once, however often the subscription is retried.
    // ACL LOG merges identical denials into one entry with a count.
    let denials = || {
        let log = t.redis.cli(&["acl", "log"]);
        let lines: Vec<&str> = log.lines().collect();
        let count = lines.iter().position(|l| *l == "count").and_then(|i| lines.get(i + 1)?.parse::<u32>().ok());
        count.unwrap_or(0)
    };
    t.wait_until("a second subscription attempt", || denials() >= 2);
    assert_eq!(t.log().matches("discarding bad PubSub connection").count(), 1, "{}", t.log());
}
