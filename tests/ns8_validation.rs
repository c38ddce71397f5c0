//! ns8 agent JSON Schema validation: `validate-input.json` failing (exit 10,
//! the problem list in the output key), `validate-output.json` failing
//! (exit 1, aborted), both passing, and `$ref`s into
//! `$AGENT_INSTALL_DIR/validator-definitions.json`.

mod ns8_harness;
use ns8_harness::{Ns8, ID};

const INPUT: &str = r#"{"$schema":"http://json-schema.org/draft-07/schema#","$id":"urn:uuid:9a7fe320-cf46-4054-968f-0d059f35733c","type":"string","enum":["INPUT-OK","OUTPUT-OK"]}"#;
const OUTPUT: &str = r#"{"$schema":"http://json-schema.org/draft-07/schema#","$id":"urn:uuid:33bede0b-a84b-41b9-ac61-552265802be6","type":"string","const":"OUTPUT-OK"}"#;

/// The original suite's validate-schema action: echo the input back.
fn agent() -> Ns8 {
    let mut t = Ns8::new();
    t.file("a/validate-schema/validate-input.json", INPUT, 0o644);
    t.file("b/validate-schema/validate-output.json", OUTPUT, 0o644);
    t.script("a/validate-schema/10echo", "cat");
    t.start();
    t
}

#[test]
fn input_and_output_pass() {
    let t = agent();
    t.task("ok", "validate-schema", "\"OUTPUT-OK\"");
    assert_eq!(t.exit_code("ok"), "0");
    assert_eq!(t.output("ok"), "\"OUTPUT-OK\"");
}

#[test]
fn input_schema_failure_is_validation_failed_with_exit_10() {
    let t = agent();
    let progress = t.follow(&["subscribe", &format!("progress/{ID}/task/bad-in")]);
    t.task("bad-in", "validate-schema", "\"INVALID-INPUT\"");
    assert_eq!(t.exit_code("bad-in"), "10");
    assert_eq!(
        t.output("bad-in"),
        r#"[{"parameter":"(root)","error":"(root)_enum","value":"INVALID-INPUT","field":"(root)"}]"#
    );
    assert_eq!(
        t.error("bad-in"),
        "Validation errors: [(root): (root) must be one of the following: \"INPUT-OK\", \"OUTPUT-OK\"]\n"
    );
    t.wait_log("<3>Action validate-schema validation-failed at step ");
    t.wait_until("two messages", || progress.messages().len() >= 2);
    // No step ran: pending, then straight to validation-failed.
    assert_eq!(
        progress.messages(),
        [r#"{"status":"pending","progress":0}"#, r#"{"status":"validation-failed","progress":0}"#]
    );
}

#[test]
fn output_schema_failure_aborts_with_exit_1() {
    let t = agent();
    t.task("bad-out", "validate-schema", "\"INPUT-OK\"");
    assert_eq!(t.exit_code("bad-out"), "1");
    assert_eq!(t.output("bad-out"), "\"INPUT-OK\"");
    assert!(t.error("bad-out").starts_with("Validation errors: [(root): (root) does not match: \"OUTPUT-OK\"]"));
    t.wait_log("action \"validate-schema\" status is \"aborted\" (1) at step validate-output.json");
}

#[test]
fn output_that_is_not_json_aborts_the_check() {
    let mut t = Ns8::new();
    t.file("a/noisy/validate-output.json", OUTPUT, 0o644);
    t.script("a/noisy/10talk", "echo not json");
    t.start();
    t.task("n1", "noisy", "{}");
    assert_eq!(t.exit_code("n1"), "1");
    assert!(t.error("n1").starts_with("JSON Schema output validation aborted at step "), "{}", t.error("n1"));
}

#[test]
fn schemas_can_reference_validator_definitions() {
    let mut t = Ns8::new();
    t.file(
        "install/validator-definitions.json",
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","$id":"http://schema.nethserver.org/cluster.json",
            "definitions":{"strict-username-string":{"type":"string","minLength":1,"maxLength":32,"pattern":"^[a-z_][a-z0-9_-]*[$]?$"}}}"#,
        0o644,
    );
    t.file(
        "a/add-user/validate-input.json",
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","required":["user"],
            "properties":{"user":{"$ref":"http://schema.nethserver.org/cluster.json#/definitions/strict-username-string"}}}"#,
        0o644,
    );
    t.script("a/add-user/10add", "echo added");
    let install = t.path("install").display().to_string();
    let args = vec![format!("--agentid={ID}"), format!("--actionsdir={}", t.path("a").display())];
    t.start_with(&args, &[("AGENT_POLLING_INTERVAL", "200ms"), ("AGENT_INSTALL_DIR", &install)]);
    t.task("u1", "add-user", r#"{"user":"alice"}"#);
    assert_eq!(t.exit_code("u1"), "0");
    t.task("u2", "add-user", r#"{"user":"Bad User"}"#);
    assert_eq!(t.exit_code("u2"), "10");
    assert_eq!(t.output("u2"), r#"[{"parameter":"user","error":"user_pattern","value":"Bad User","field":"user"}]"#);
    t.task("u3", "add-user", "{}");
    assert_eq!(t.exit_code("u3"), "10");
    assert!(t.output("u3").contains(r#""error":"(root)_required""#), "{}", t.output("u3"));
}
