//! ns8 agent life cycle and settings: SIGUSR1 drains (running tasks and
//! event handlers finish, then exit 0), SIGTERM ends the agent at once,
//! startup errors exit 1, the positional command line, Redis ACL login
//! with REDIS_PASSWORD (user defaults to the agent id), and exit code 11
//! for tasks beyond MAX_CONCURRENCY.

mod ns8_harness;
use ns8_harness::{Ns8, BIN, ID};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

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
