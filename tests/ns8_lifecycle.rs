//! ns8 agent life cycle and settings: SIGUSR1 drains (running tasks and
//! event handlers finish, then exit 0), SIGTERM ends the agent at once,
//! startup errors exit 1, the positional command line, Redis ACL login
//! with REDIS_PASSWORD (user defaults to the agent id), and exit code 11
//! for tasks beyond MAX_CONCURRENCY. Under ns8's module ACL (every
//! command but `@admin` and `@dangerous`) SIGUSR1 drains without any admin
//! command, so an idle agent exits well under its 5 s polling interval and
//! a busy one still lets its task finish, with Redis' `ACL LOG` empty; a
//! command the ACL does refuse is logged with the server's reason.

mod ns8_harness;
use ns8_harness::{Ns8, BIN, ID};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

#[test]
fn sigusr1_on_an_idle_agent_exits_0_at_once() {
    let mut t = Ns8::new();
    let args = vec![format!("--agentid={ID}"), format!("--actionsdir={}", t.path("a").display())];
    // Even with the default 5 s polling the drain does not wait for it.
    t.start_with(&args, &[]);
    t.signal(libc::SIGUSR1);
    let status = t.wait_exit(Duration::from_secs(2)).expect("agent still running 2 s after SIGUSR1");
    assert_eq!(status.code(), Some(0), "{}", t.log());
    assert!(t.log().contains("<4>Signal \"user defined signal 1\" caught: shutdown started.\n"));
}

#[test]
fn sigusr1_on_a_busy_agent_lets_the_task_and_the_event_handler_finish() {
    let mut t = Ns8::new();
    t.script("a/run-longlasting/10step", "sleep 1; echo done");
    t.script("events/long-run/10h", "sleep 1; echo handler-done");
    t.start();
    t.wait_until("subscription", || t.redis.cli(&["pubsub", "numpat"]).trim() == "1");
    t.task("b1", "run-longlasting", "{}");
    t.wait_log("run-longlasting/10step is starting");
    t.redis.cli(&["publish", "source/event/long-run", "x"]);
    t.wait_log("is starting step 10h");
    t.signal(libc::SIGUSR1);
    // Tasks pushed once the agent has stopped reading the queue are left
    // there for the next agent.
    t.wait_queue_released();
    t.task("b2", "run-longlasting", "{}");
    let status = t.wait_exit(Duration::from_secs(5)).expect("agent did not exit");
    assert_eq!(status.code(), Some(0), "{}", t.log());
    // Both had finished when the agent exited: nothing to wait for here.
    assert!(t.exists(&Ns8::key("b1", "exit_code")), "exited before its task ended");
    assert_eq!(t.output("b1"), "done\n");
    assert!(t.log().contains("Handler of source/event/long-run exited with status \"completed\" (0)"));
    assert_eq!(t.redis.cli(&["llen", &format!("{ID}/tasks")]).trim(), "1");
    assert!(!t.exists(&Ns8::key("b2", "context")));
}

#[test]
fn sigterm_ends_a_busy_agent_at_once() {
    let mut t = Ns8::new();
    t.script("a/run-longlasting/10step", "sleep 5");
    t.start();
    t.task("k1", "run-longlasting", "{}");
    t.wait_log("is starting");
    t.signal(libc::SIGTERM);
    let status = t.wait_exit(Duration::from_secs(1)).expect("agent still running 1 s after SIGTERM");
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert!(!t.log().contains("status is"));
}

#[test]
fn startup_errors_exit_1() {
    for (args, line) in [
        (vec!["--actionsdir=/tmp"], "<0>The agent prefix argument is not set\n"),
        (vec!["--agentid=module/x", "--actionsdir="], "<0>Action path command arguments are not set\n"),
    ] {
        let out = std::process::Command::new(BIN).arg("ns8-agent").args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), line);
    }
}

#[test]
fn the_positional_command_line_form_works() {
    let mut t = Ns8::new();
    t.script("a/hello/10a", "echo from-a");
    t.script("b/hello/10a", "echo from-b");
    let args = vec![ID.to_string(), t.path("a").display().to_string(), t.path("b").display().to_string()];
    t.start_with(&args, &[("AGENT_POLLING_INTERVAL", "200ms")]);
    t.task("p1", "hello", "{}");
    assert_eq!(t.exit_code("p1"), "0");
    assert_eq!(t.output("p1"), "from-b\n");
}

#[test]
fn redis_password_logs_in_as_the_agent_id() {
    let mut t = Ns8::new();
    t.script("a/hello/10a", "echo secure");
    t.redis.cli(&["acl", "setuser", ID, "on", ">s3cret", "~*", "&*", "+@all"]);
    t.redis.cli(&["acl", "setuser", "default", "on", "nopass", "~*", "&*", "+@all"]);
    let args = vec![format!("--agentid={ID}"), format!("--actionsdir={}", t.path("a").display())];
    t.start_with(&args, &[("AGENT_POLLING_INTERVAL", "200ms"), ("REDIS_PASSWORD", "s3cret")]);
    assert!(t.redis.cli(&["client", "list"]).contains(&format!("user={ID}")));
    t.task("s1", "hello", "{}");
    assert_eq!(t.exit_code("s1"), "0");
    assert_eq!(t.output("s1"), "secure\n");
}

#[test]
fn tasks_beyond_max_concurrency_exit_11() {
    let mut t = Ns8::new();
    t.script("a/slow/10sleep", "sleep 2");
    t.script("a/fast/10ok", "echo ok");
    let args = vec![format!("--agentid={ID}"), format!("--actionsdir={}", t.path("a").display())];
    t.start_with(&args, &[("AGENT_POLLING_INTERVAL", "200ms"), ("MAX_CONCURRENCY", "1"), ("OVERLOAD_SLEEP", "100ms")]);
    t.task("o1", "slow", "{}");
    t.wait_log("slow/10sleep is starting");
    t.task("o2", "fast", "{}");
    assert_eq!(t.exit_code("o2"), "11");
    assert!(t.error("o2").contains("overloaded"), "{}", t.error("o2"));
    assert_eq!(t.exit_code("o1"), "0");
    t.task("o3", "fast", "{}");
    assert_eq!(t.exit_code("o3"), "0");
}

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
