//! ns8 agent progress on `progress/<agent-id>/task/<task-id>`: the seed's
//! numbers for 5 steps (3rd step at 73 -> 54 %), a weighted step set with
//! `set-weight` (quoted field included), bad commands logged and ignored,
//! and the status heartbeat every polling interval while a step runs.

mod ns8_harness;
use ns8_harness::{Ns8, ID};

fn statuses(t: &Ns8, id: &str, action: &str, n: usize) -> Vec<String> {
    let progress = t.follow(&["subscribe", &format!("progress/{ID}/task/{id}")]);
    t.task(id, action, "{}");
    assert_eq!(t.exit_code(id), "0");
    t.wait_until("all statuses", || progress.messages().len() >= n);
    progress.messages()
}

fn running(pcts: &[u32]) -> Vec<String> {
    let mut v = vec![r#"{"status":"pending","progress":0}"#.to_string()];
    v.extend(pcts.iter().map(|p| format!(r#"{{"status":"running","progress":{p}}}"#)));
    v.push(r#"{"status":"completed","progress":100}"#.to_string());
    v
}

fn start_slow_heartbeat(t: &mut Ns8) {
    let args = vec![format!("--agentid={ID}"), format!("--actionsdir={}", t.path("a").display())];
    t.start_with(&args, &[("AGENT_POLLING_INTERVAL", "30s")]);
}

#[test]
fn five_steps_with_the_third_at_73_percent_give_54() {
    let mut t = Ns8::new();
    for s in ["10a", "20b", "40d", "50e"] {
        t.script(&format!("a/five/{s}"), "true");
    }
    t.script("a/five/30c", "echo 'set-progress 73' >&$AGENT_COMFD");
    start_slow_heartbeat(&mut t);
    assert_eq!(statuses(&t, "p1", "five", 9), running(&[0, 20, 40, 54, 60, 80, 100]));
}

#[test]
fn a_weighted_step_counts_eight_times() {
    let mut t = Ns8::new();
    t.script(
        "a/weighted/10a",
        "printf 'set-weight \"50update\" 8\\nset-weight BAD 7\\nset-progress 999\\nbogus-command\\n' >&$AGENT_COMFD",
    );
    for s in ["20b", "30c", "40d"] {
        t.script(&format!("a/weighted/{s}"), "true");
    }
    t.script("a/weighted/50update", "echo 'set-progress 50' >&$AGENT_COMFD");
    start_slow_heartbeat(&mut t);
    // 4 steps of weight 1 and one of weight 8: 1200 units in all.
    assert_eq!(statuses(&t, "p2", "weighted", 9), running(&[0, 8, 16, 25, 33, 66, 100]));
    t.wait_log("<3>set-weight command failed: Step BAD not found\n");
    t.wait_log("<3>set-progress command failed: Invalid step progress value: 999\n");
    t.wait_log("<3>Unknown command bogus-command\n");
}

#[test]
fn a_long_step_republishes_its_status_every_polling_interval() {
    let mut t = Ns8::new();
    t.script("a/run-longlasting/10step", "sleep 1");
    let args = vec![format!("--agentid={ID}"), format!("--actionsdir={}", t.path("a").display())];
    t.start_with(&args, &[("AGENT_POLLING_INTERVAL", "75ms")]);
    let progress = t.follow(&["subscribe", &format!("progress/{ID}/task/p3")]);
    t.task("p3", "run-longlasting", "{}");
    assert_eq!(t.exit_code("p3"), "0");
    let beats = progress.messages().iter().filter(|m| *m == r#"{"status":"running","progress":0}"#).count();
    assert!(beats >= 6, "only {beats} heartbeats in 1 s at 75 ms: {:?}", progress.messages());
}
