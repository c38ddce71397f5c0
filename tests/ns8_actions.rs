//! ns8 agent actions against a real redis-server: step order across two
//! roots with an override, exit codes 8, 9 and 10, `validation-failed` set
//! by a step, skipped steps, what a step receives (stdin, variables, fd 3)
//! and the exact Redis command sequence of a successful task.

mod ns8_harness;
use ns8_harness::{Ns8, ID};

#[test]
fn steps_run_in_name_order_across_roots_and_the_later_root_wins() {
    let mut t = Ns8::new();
    for (rel, word) in [("a/first/step1", "a1"), ("a/first/step2", "a2"), ("a/first/step3", "a3-overridden")] {
        t.script(rel, &format!("echo {word}"));
    }
    t.script("b/first/step3", "echo b3");
    t.script("b/first/step4", "echo b4");
    t.start();
    t.task("t1", "first", "{}");
    assert_eq!(t.exit_code("t1"), "0");
    assert_eq!(t.output("t1"), "a1\na2\nb3\nb4\n");
    for step in ["step1", "step2", "step3", "step4"] {
        t.wait_log(&format!("task/{ID}/t1: first/{step} is starting"));
    }
    t.wait_log(&format!("task/{ID}/t1: action \"first\" status is \"completed\" (0) at step step4"));
}

#[test]
fn a_step_gets_the_data_the_variables_and_its_stderr_is_copied() {
    let mut t = Ns8::new();
    t.script(
        "a/show/10show",
        r#"cat; echo; echo "$AGENT_TASK_ID|$AGENT_TASK_ACTION|$AGENT_TASK_USER|$AGENT_COMFD|$VAR1"; echo to-stderr-1 >&2"#,
    );
    t.script("b/show/20more", "echo to-stderr-2 >&2");
    t.start();
    t.task("t2", "show", r#"{"b":[1.0,"<x>"],"a":1}"#);
    assert_eq!(t.exit_code("t2"), "0");
    assert_eq!(t.output("t2"), "{\"a\":1,\"b\":[1,\"\\u003cx\\u003e\"]}\nt2|show|admin|3|VAL1\n");
    assert_eq!(t.error("t2"), "to-stderr-1\nto-stderr-2\n");
    t.wait_log("to-stderr-1\n");
    t.wait_log("to-stderr-2\n");
}

#[test]
fn exit_code_8_for_an_undefined_or_empty_action() {
    let mut t = Ns8::new();
    std::fs::create_dir_all(t.path("a/empty")).unwrap();
    t.start();
    for (id, action) in [("t3", "non-existent"), ("t4", "empty")] {
        t.task(id, action, "null");
        assert_eq!(t.exit_code(id), "8");
        assert_eq!(t.error(id), format!("Action {action} is not defined\n"));
        t.wait_log(&format!("<3>Action {action} is not defined\n"));
        t.wait_log(&format!("action \"{action}\" status is \"aborted\" (8) at step {{unknown}}"));
    }
}

#[test]
fn exit_code_9_when_the_os_cannot_exec_a_step() {
    let mut t = Ns8::new();
    t.file("a/broken/10interp", "#!/nonexistent/interpreter\necho never\n", 0o755);
    t.script("a/broken/20after", "echo NEVER REACHED");
    t.start();
    t.task("t5", "broken", "{}");
    assert_eq!(t.exit_code("t5"), "9");
    assert!(!t.output("t5").contains("NEVER"));
    assert!(t.error("t5").contains("failed at step 10interp: fork/exec"), "{}", t.error("t5"));
    t.wait_log("action \"broken\" status is \"aborted\" (9) at step 10interp");
}

#[test]
fn a_missing_or_non_executable_step_is_skipped_like_the_original() {
    let mut t = Ns8::new();
    // The first step removes the second and the exec bit of the third.
    let dir = t.path("a/simulate-update");
    t.script(
        "a/simulate-update/10controller",
        &format!("rm -f {0}/20skipped_step; chmod -x {0}/30skipped_step", dir.display()),
    );
    t.script("a/simulate-update/20skipped_step", "echo NEVER REACH THIS POINT1");
    t.script("a/simulate-update/30skipped_step", "echo NEVER REACH THIS POINT2");
    t.script("a/simulate-update/40last", "echo last");
    t.start();
    t.task("t6", "simulate-update", "{}");
    assert_eq!(t.exit_code("t6"), "0");
    assert_eq!(t.output("t6"), "last\n");
    t.wait_log("<4>Action simulate-update skipped step 20skipped_step: fork/exec");
    t.wait_log("<4>Action simulate-update skipped step 30skipped_step: fork/exec");
}

#[test]
fn exit_code_10_when_a_step_sets_validation_failed_and_exits_0() {
    let mut t = Ns8::new();
    t.script("a/check/10check", "echo 'set-status validation-failed' >&$AGENT_COMFD; echo checked");
    t.script("a/check/20never", "echo NEVER");
    t.start();
    let progress = t.follow(&["subscribe", &format!("progress/{ID}/task/t7")]);
    t.task("t7", "check", "{}");
    assert_eq!(t.exit_code("t7"), "10");
    assert_eq!(t.output("t7"), "checked\n");
    t.wait_log("<4>Action \"check\" validation-failed at step");
    t.wait_log("Exit code is not set! Forced to 10");
    t.wait_until("final status", || {
        progress.messages().last().map(String::as_str) == Some(r#"{"status":"validation-failed","progress":0}"#)
    });
}

#[test]
fn validation_failed_set_by_a_step_keeps_the_steps_own_exit_code() {
    let mut t = Ns8::new();
    // The original suite's fail-validation action.
    t.script(
        "a/fail-validation/10validation",
        r#"input=$(cat); echo "set-status validation-failed" >&$AGENT_COMFD; echo "This is the offending input: ${input}"; exit 2"#,
    );
    t.start();
    let progress = t.follow(&["subscribe", &format!("progress/{ID}/task/t8")]);
    t.task("t8", "fail-validation", "\"FAILVALUE\"");
    assert_eq!(t.exit_code("t8"), "2");
    assert!(t.output("t8").contains("FAILVALUE"));
    t.wait_until("status messages", || progress.messages().len() >= 3);
    assert_eq!(
        progress.messages(),
        [
            r#"{"status":"pending","progress":0}"#,
            r#"{"status":"running","progress":0}"#,
            r#"{"status":"validation-failed","progress":0}"#
        ]
    );
    t.wait_log("action \"fail-validation\" status is \"validation-failed\" (2) at step 10validation");
}

#[test]
fn a_failing_step_aborts_with_its_exit_code() {
    let mut t = Ns8::new();
    t.script("a/run-failure/10fail", "exit 3");
    t.script("a/run-failure/20never", "echo NEVER REACH THIS POINT");
    t.start();
    t.task("t9", "run-failure", "{}");
    assert_eq!(t.exit_code("t9"), "3");
    assert_eq!(t.output("t9"), "");
    t.wait_log("action \"run-failure\" status is \"aborted\" (3) at step 10fail");
}

#[test]
fn redis_commands_of_a_successful_task_in_order() {
    let mut t = Ns8::new();
    t.script("a/run-success/10ok", "echo ok");
    t.start();
    let monitor = t.follow(&["monitor"]);
    t.task("t10", "run-success", "{}");
    assert_eq!(t.exit_code("t10"), "0");
    let ctx = format!("task/{ID}/t10/context");
    t.wait_until("exec in monitor", || monitor.lines().iter().any(|l| l.ends_with("\"exec\"")));
    let cmds: Vec<String> = monitor
        .lines()
        .iter()
        .filter_map(|l| l.split_once("] ").map(|(_, c)| c.to_string()))
        .filter(|c| !c.starts_with("\"brpop\"") && !c.starts_with("\"lpush\"") && !c.starts_with("\"exists\""))
        .filter(|c| !c.starts_with("\"client\"") && !c.starts_with("\"ping\"") && !c.starts_with("\"get\""))
        .collect();
    let ch = format!("progress/{ID}/task/t10");
    let want = [
        format!(
            r#""set" "{ctx}" "{{\"action\":\"run-success\",\"data\":{{}},\"id\":\"t10\",\"user\":\"admin\"}}" "ex" "28800""#
        ),
        format!(r#""publish" "{ch}" "{{\"status\":\"pending\",\"progress\":0}}""#),
        format!(r#""publish" "{ch}" "{{\"status\":\"running\",\"progress\":0}}""#),
        format!(r#""publish" "{ch}" "{{\"status\":\"running\",\"progress\":100}}""#),
        r#""multi""#.to_string(),
        format!(r#""del" "{ID}/environment""#),
        format!(r#""hset" "{ID}/environment" "VAR1" "VAL1""#),
        format!(r#""set" "task/{ID}/t10/output" "ok\n" "ex" "28800""#),
        format!(r#""set" "task/{ID}/t10/error" "" "ex" "28800""#),
        format!(r#""set" "task/{ID}/t10/exit_code" "0" "ex" "28800""#),
        format!(r#""publish" "{ch}" "{{\"status\":\"completed\",\"progress\":100}}""#),
        r#""exec""#.to_string(),
    ];
    assert_eq!(cmds, want);
    let ttl: i64 = t.redis.cli(&["ttl", &Ns8::key("t10", "output")]).trim().parse().unwrap();
    assert!((28790..=28800).contains(&ttl), "ttl {ttl}");
}
