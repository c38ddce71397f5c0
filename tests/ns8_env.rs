//! ns8 agent environment: the `./environment` state file is given to every
//! step (read again before each one), and mirrored into the
//! `<agent-id>/environment` hash after a completed action only; a failed
//! action leaves the hash as it was.

mod ns8_harness;
use ns8_harness::{Ns8, ID};

fn hash(t: &Ns8) -> Vec<String> {
    let out = t.redis.cli(&["hgetall", &format!("{ID}/environment")]);
    let mut pairs: Vec<String> = out.lines().collect::<Vec<_>>().chunks(2).map(|c| c.join("=")).collect();
    pairs.sort();
    pairs
}

#[test]
fn environment_hash_after_success_and_untouched_after_failure() {
    let mut t = Ns8::new();
    let env = t.path("state/environment").display().to_string();
    // A step that writes the state file (as ns8's agent library does), then
    // a step that reads the new value from its environment.
    t.script("a/set-environment/10setenv", &format!("echo \"VAR2=$(tr -d '\\\"')\" >> {env}"));
    t.script("a/set-environment/20printvar", "echo -n \"$VAR1,$VAR2\"");
    t.script("a/fail-after-set/10setenv", &format!("echo VAR3=lost >> {env}"));
    t.script("a/fail-after-set/20fail", "exit 1");
    t.start();

    t.task("e1", "set-environment", "\"VAL2\"");
    assert_eq!(t.exit_code("e1"), "0");
    assert_eq!(t.output("e1"), "VAL1,VAL2");
    assert_eq!(hash(&t), ["VAR1=VAL1", "VAR2=VAL2"]);

    t.task("e2", "fail-after-set", "{}");
    assert_eq!(t.exit_code("e2"), "1");
    // The file changed, the hash did not.
    assert!(std::fs::read_to_string(t.path("state/environment")).unwrap().contains("VAR3=lost"));
    assert_eq!(hash(&t), ["VAR1=VAL1", "VAR2=VAL2"]);
}

#[test]
fn a_missing_environment_file_is_logged_and_steps_still_run() {
    let mut t = Ns8::new();
    std::fs::remove_file(t.path("state/environment")).unwrap();
    t.script("a/read-environment/30printvar", "echo -n \"[$VAR1]\"");
    t.start();
    t.task("e3", "read-environment", "{}");
    assert_eq!(t.exit_code("e3"), "0");
    assert_eq!(t.output("e3"), "[]");
    t.wait_log("<3>Cannot read ./environment file: open ./environment: no such file or directory\n");
}
