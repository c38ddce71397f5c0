//! ns8 agent builtins: `list-actions` (every action directory across the
//! roots plus the builtins) and `cancel-task` (TERM to the running step's
//! process group; exit 2 for an unknown task id, exit 10 for bad input).
//! Both still answer when `MAX_CONCURRENCY` tasks are running.

mod ns8_harness;
use ns8_harness::{Ns8, ID};

#[test]
fn list_actions_names_every_action_and_the_builtins() {
    let mut t = Ns8::new();
    t.script("a/run-success/10ok", "true");
    t.script("a/fail-validation/10v", "true");
    t.script("b/run-success/20ok", "true");
    t.script("b/run-failure/10f", "exit 1");
    t.start();
    t.task("l1", "list-actions", "{}");
    assert_eq!(t.exit_code("l1"), "0");
    let names: Vec<String> = serde_json::from_str(&t.output("l1")).unwrap();
    assert_eq!(names, ["fail-validation", "run-failure", "run-success", "list-actions", "cancel-task"]);
    assert_eq!(t.error("l1"), "");
}

#[test]
fn cancel_task_sends_term_to_the_running_step_group() {
    let mut t = Ns8::new();
    let pidfile = t.path("state/child.pid").display().to_string();
    // The step starts a child in its group, then waits; TERM must reach both.
    t.script("a/run-longlasting/10step", &format!("sleep 30 & echo $! > {pidfile}; wait"));
    t.script("a/run-longlasting/20never", "echo NEVER");
    t.start();
    let progress = t.follow(&["subscribe", &format!("progress/{ID}/task/long")]);
    t.task("long", "run-longlasting", "{}");
    t.wait_until("the step to start", || std::path::Path::new(&pidfile).exists());
    t.task("c1", "cancel-task", r#"{"task":"long","timeout":2}"#);
    assert_eq!(t.exit_code("c1"), "0");
    assert_eq!(t.exit_code("long"), "-1");
    assert!(!t.output("long").contains("NEVER"));
    t.wait_log(&format!("<4>task/{ID}/long: Sending TERM signal to action \"run-longlasting\" at step 10step\n"));
    t.wait_log(&format!("task/{ID}/c1: cancel-task/task-lookup is starting"));
    t.wait_log("action \"cancel-task\" status is \"completed\" (0) at step cancellation");
    t.wait_log("\"run-longlasting\" status is \"aborted\" (-1) at step 10step");
    t.wait_until("aborted status", || {
        progress.messages().last().map(String::as_str) == Some(r#"{"status":"aborted","progress":0}"#)
    });
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    t.wait_until("the step's child to end", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| s.contains(") Z")).unwrap_or(true)
    });
}

#[test]
fn a_step_that_handles_term_decides_the_exit_code_and_repeated_cancels_are_harmless() {
    let mut t = Ns8::new();
    t.script("a/run-termhandler/10step1", "echo WARNING_MESSAGE >&2");
    t.script(
        "a/run-termhandler/20step2",
        "trap 'echo SIGTERM_CAUGHT >&2; exit 1' TERM; echo started > started; while true; do sleep 0.05; done",
    );
    t.script("a/run-termhandler/30step3", "echo NEVER");
    t.start();
    t.task("th", "run-termhandler", "{}");
    t.wait_until("step 2", || t.path("state/started").exists());
    t.task("c2", "cancel-task", r#"{"task":"th","timeout":2}"#);
    t.task("c3", "cancel-task", r#"{"task":"th","timeout":2}"#);
    assert_eq!(t.exit_code("th"), "1");
    assert!(!t.output("th").contains("NEVER"));
    assert_eq!(t.exit_code("c2"), "0");
    t.wait_log("SIGTERM_CAUGHT");
    assert_eq!(t.log().matches("Sending TERM signal").count(), 1, "{}", t.log());
}

#[test]
fn cancel_task_of_an_unknown_id_aborts_with_2_and_bad_input_with_10() {
    let mut t = Ns8::new();
    t.start();
    let progress = t.follow(&["subscribe", &format!("progress/{ID}/task/c4")]);
    t.task("c4", "cancel-task", r#"{"task":"id-non-existing","timeout":2}"#);
    assert_eq!(t.exit_code("c4"), "2");
    assert_eq!(t.error("c4"), "Action cancel-task validation-failed at step task-lookup: task ID not found");
    t.wait_log("<3>Action cancel-task validation-failed at step task-lookup: task ID not found\n");
    t.wait_until("statuses", || progress.messages().len() >= 3);
    assert_eq!(
        progress.messages(),
        [
            r#"{"status":"pending","progress":0}"#,
            r#"{"status":"running","progress":0}"#,
            r#"{"status":"validation-failed","progress":0}"#
        ]
    );
    t.task("c5", "cancel-task", r#"{"Mask":"Mask is a typo","timeout":2}"#);
    assert_eq!(t.exit_code("c5"), "10");
    t.wait_log("invalid task ID or timeout value");
}

#[test]
fn builtins_answer_and_cancel_at_max_concurrency() {
    let mut t = Ns8::new();
    let pidfile = t.path("state/slow.pid").display().to_string();
    t.script("a/slow/10sleep", &format!("echo $$ > {pidfile}; exec sleep 30"));
    t.script("a/fast/10ok", "echo ok");
    let args = vec![format!("--agentid={ID}"), format!("--actionsdir={}", t.path("a").display())];
    t.start_with(&args, &[("AGENT_POLLING_INTERVAL", "200ms"), ("MAX_CONCURRENCY", "1"), ("OVERLOAD_SLEEP", "100ms")]);
    t.task("s1", "slow", "{}");
    t.wait_until("the slow step to start", || std::path::Path::new(&pidfile).exists());
    // The agent is full: an ordinary task is refused ...
    t.task("o1", "fast", "{}");
    assert_eq!(t.exit_code("o1"), "11");
    // ... but list-actions answers ...
    t.task("l1", "list-actions", "{}");
    assert_eq!(t.exit_code("l1"), "0");
    let names: Vec<String> = serde_json::from_str(&t.output("l1")).unwrap();
    assert_eq!(names, ["fast", "slow", "list-actions", "cancel-task"]);
    // ... and cancel-task stops the running task.
    t.task("c1", "cancel-task", r#"{"task":"s1","timeout":2}"#);
    assert_eq!(t.exit_code("c1"), "0", "{}", t.error("c1"));
    assert_eq!(t.exit_code("s1"), "-1");
    assert!(!t.log().contains("Task c1 rejected") && !t.log().contains("Task l1 rejected"), "{}", t.log());
    // With the slot free again, ordinary tasks run.
    t.task("o2", "fast", "{}");
    assert_eq!(t.exit_code("o2"), "0");
}
