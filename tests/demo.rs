//! Acceptance: `muster demo` runs from nothing and exits 0.

mod common;

#[test]
fn demo_exits_zero() {
    let out = std::process::Command::new(common::BIN).args(["demo", "--agents", "3"]).output().unwrap();
    let text = common::stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", common::stderr(&out));
    assert!(text.contains("agent[01-03] (3): succeeded"), "{text}");
}
