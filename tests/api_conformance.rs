//! The API as outside tools see it: schemathesis checks every endpoint
//! against the OpenAPI document the binary serves, and headless Chromium
//! (selenium) uses the dashboard to start a run on five agents and sees
//! all five succeed live. Both tools come from the venv `bash .ci/run`
//! makes (`target/ci-venv`); without it these tests fail and say how to
//! make it.

#[path = "common/api.rs"]
mod api;
mod common;

use api::*;
use common::*;
use std::path::PathBuf;
use std::process::Command;

fn venv_tool(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ci-venv/bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run `python3 -m venv target/ci-venv && target/ci-venv/bin/pip install schemathesis==4.32.5 \
         selenium==4.51.0` (bash .ci/run does this)",
        p.display()
    );
    p
}

fn fleet(n: usize) -> Fleet {
    let mut f = Fleet::new();
    let hello = f.script("hello", "echo \"hello $1\"");
    for i in 1..=n {
        f.add(&format!("web{i}"), &[], &[("hello", &hello)]);
    }
    f.start_all();
    f
}

#[test]
fn schemathesis_finds_no_failure_against_the_served_openapi_document() {
    let st = venv_tool("schemathesis");
    let f = fleet(2);
    let token = add_token(&f, "ops", &[]);
    let api = start_api(&f, &[]);
    // Every check but positive_data_acceptance: node sets and tags have a
    // grammar JSON Schema cannot state, so a schema-valid string may still
    // be a bad node set (answered 400, naming the field).
    let out = Command::new(st)
        .arg("run")
        .arg(format!("{}/openapi.json", api.base))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        .args(["--max-time", "45", "--workers", "2", "--seed", "1"])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(f.tmp.path())
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "schemathesis found failures:\n{text}");
    assert!(text.contains("passed"), "{text}");
}

#[test]
fn chromium_starts_a_run_on_five_agents_from_the_dashboard_and_sees_them_succeed() {
    let python = venv_tool("python3");
    let f = fleet(5);
    let token = add_token(&f, "web-user", &[]);
    let api = start_api(&f, &[]);
    let shot = f.path("dashboard.png");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.py");
    let out = Command::new(python)
        .arg(&script)
        .args([&api.base, &token, "hello", "5"])
        .arg(&shot)
        .env("HOME", f.tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    // The run went through the API as the token's user.
    let audit = f.muster(&["audit", "--json"]);
    let line: serde_json::Value = serde_json::from_str(stdout(&audit).lines().next().unwrap()).unwrap();
    assert_eq!(line["user"], "web-user");
    assert_eq!(line["states"]["succeeded"], 5);
}
