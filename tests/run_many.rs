//! Acceptance: many agents, failures named with their codes, unreachable
//! targets, refused names, binary-safe JSON output and truncation.

mod common;
use common::*;

#[test]
fn fifty_agents_then_three_failing() {
    let mut f = Fleet::new();
    let marks = f.path("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let s = f.script("check", &format!("[ -e {}/fail-$MUSTER_AGENT ] && exit 7\necho ok", marks.display()));
    for i in 1..=50 {
        f.add(&format!("web{i:02}"), &[], &[("check", &s)]);
    }
    f.start_all();
    let out = f.run("web[01-50]", &["--output", "json"], &["check"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let outputs: std::collections::BTreeMap<String, String> = events(&out)
        .into_iter()
        .filter(|e| e["event"] == "output")
        .map(|e| (e["target"].as_str().unwrap().to_string(), e["text"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(outputs.len(), 50, "{outputs:?}");
    assert!(outputs.values().all(|t| t == "ok\n"), "{outputs:?}");

    for n in ["web03", "web20", "web44"] {
        std::fs::write(marks.join(format!("fail-{n}")), "").unwrap();
    }
    let out = f.run("all", &["--output", "grouped"], &["check"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("47 succeeded, 3 failed"), "{err}");
    assert!(err.contains("web[03,20,44] (3): failed(exit 7)"), "{err}");
    assert!(stdout(&out).contains("web[01-02,04-19,21-43,45-50] (47): succeeded"), "{}", stdout(&out));
}

#[test]
fn named_target_that_does_not_answer_is_unreachable() {
    let mut f = Fleet::new();
    let s = f.script("t", "true");
    f.add("up1", &[], &[("t", &s)]);
    f.add("down1", &[], &[("t", &s)]);
    f.start(0);
    f.wait_listening(0);
    let out = f.run("up1,down1,ghost", &["--output", "json"], &["t"]);
    assert_eq!(code(&out) & 2, 2, "{}", stderr(&out));
    let e = ends(&out);
    assert_eq!(e["up1"]["state"], "succeeded");
    assert_eq!(e["down1"]["state"], "unreachable");
    assert_eq!(e["ghost"]["state"], "unreachable");
    assert!(stderr(&out).contains("down1: unreachable"), "{}", stderr(&out));
}

#[test]
fn bad_action_names_are_refused_and_nothing_runs() {
    let mut f = Fleet::new();
    let marker = f.path("ran");
    let s = f.script("mark", &format!("touch {}", marker.display()));
    let run_dir = f.path("rundir");
    write_script(&run_dir.join("script.sh"), &format!("touch {}", marker.display()));
    let hook = f.script("hook", &format!("touch {}; exit 0", marker.display()));
    let i = f.add("a1", &[], &[("mark", &s)]);
    f.configure(
        i,
        &format!("run_dirs = [{:?}]\nhook = {:?}", run_dir.display().to_string(), hook.display().to_string()),
    );
    f.start_all();
    let long = "a".repeat(65);
    for bad in ["../etc/passwd", "foo;bar", "foo$(id)", "a b", "script.sh", "", long.as_str()] {
        let out = f.run("a1", &["--output", "json"], &[bad]);
        assert_eq!(code(&out), 16, "{bad:?}: {}", stderr(&out));
        assert_eq!(ends(&out)["a1"]["state"], "refused", "{bad:?}");
        assert!(!marker.exists(), "{bad:?} ran something");
    }
    // The agent enforces the rule itself too, whatever the dispatcher sends.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use muster::protocol::{Message, Refusal, Run};
        use muster::transport::carrier::{Dialer, Target};
        let carrier = muster::cli::tls_carrier(&f.state, &Default::default()).unwrap();
        let target = Target { name: "a1".into(), addr: f.agents[0].addr.to_string() };
        let mut s = carrier.open(&target).await.unwrap();
        for (id, bad) in
            ["../etc/passwd", "foo;bar", "foo$(id)", "a b", "script.sh", "", long.as_str()].iter().enumerate()
        {
            let run = Run {
                id: id as u64,
                request_id: format!("r{id}"),
                action: bad.to_string(),
                args: vec![],
                username: "t".into(),
                token: None,
                timeout_ms: None,
                detach: false,
            };
            s.writer.write(&Message::Run(run)).await.unwrap();
            match s.reader.read().await.unwrap() {
                Some(Message::Refused { reason: Refusal::BadName(_), .. }) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    });
    assert!(!marker.exists(), "something ran");
    let out = f.run("a1", &[], &["mark"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(marker.exists(), "the valid action should run");
}

#[test]
fn json_keeps_binary_output_and_flags_truncation() {
    let mut f = Fleet::new();
    let bin = f.script("bin", "printf '\\377\\376abc\\n'");
    let big = f.script("big", "head -c 1000 /dev/zero | tr '\\0' x");
    let i = f.add("a1", &[], &[("bin", &bin), ("big", &big)]);
    f.configure(i, "output_cap = 100");
    f.start_all();
    let out = f.run("a1", &["--output", "json"], &["bin"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let ev = events(&out);
    let o = ev.iter().find(|e| e["event"] == "output").unwrap();
    assert_eq!(o["base64"], "//5hYmMK", "{o}");
    let out = f.run("a1", &["--output", "json"], &["big"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text: String = events(&out).iter().filter_map(|e| e["text"].as_str().map(String::from)).collect();
    assert_eq!(text, "x".repeat(100));
    assert_eq!(ends(&out)["a1"]["truncated"], true);
}
