//! Acceptance (issue 8, §2): every target ends in the state that describes
//! it, within a documented bound, whatever its agent does: a port that
//! accepts but never speaks is unreachable, a frozen agent is lost (no
//! --timeout) or timed out (with one) on time, and no duration given on
//! the command line can panic the dispatcher.

mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn a_port_that_accepts_but_never_speaks_is_unreachable() {
    let mut f = Fleet::new();
    let s = f.script("t", "true");
    f.add("live", &[], &[("t", &s)]);
    f.add("frozen", &[], &[("t", &s)]);
    f.start_all();
    // A listener that completes TCP handshakes (the kernel does) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    f.add("mute", &[], &[("t", &s)]);
    assert!(f.muster(&["agents", "edit", "mute", "--addr", &addr]).status.success());
    f.signal(1, libc::SIGSTOP);
    let t0 = Instant::now();
    let out = f.run("live,frozen,mute", &["--output", "json"], &["t"]);
    f.signal(1, libc::SIGCONT);
    assert!(t0.elapsed() < Duration::from_secs(9), "took {:?}", t0.elapsed());
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let e = ends(&out);
    assert_eq!(e["live"]["state"], "succeeded");
    for n in ["frozen", "mute"] {
        assert_eq!(e[n]["state"], "unreachable", "{n}: {}", e[n]);
        assert_eq!(e[n]["reason"], "no TLS answer", "{n}: {}", e[n]);
    }
}

/// Ten agents run a 3 s action; one is frozen (SIGSTOP) once its action started.
fn frozen_run(opts: &[&str], script: &str) -> (std::process::Output, Duration) {
    let mut f = Fleet::new();
    let marks = f.path("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let s = f.script("sleeper", &format!("touch {}/$MUSTER_AGENT\n{script}", marks.display()));
    for i in 0..10 {
        let n = f.add(&format!("agent{i}"), &[], &[("sleeper", &s)]);
        f.configure(n, "kill_grace = 1");
    }
    f.start_all();
    let t0 = Instant::now();
    let mut opts = opts.to_vec();
    opts.extend(["--output", "json"]);
    let child = spawn_run(&f, "all", &opts, &["sleeper"]);
    wait_for(Duration::from_secs(10), "agent3's action to start", || marks.join("agent3").exists());
    f.signal(3, libc::SIGSTOP);
    let out = child.wait_with_output().unwrap();
    let took = t0.elapsed();
    f.signal(3, libc::SIGCONT);
    (out, took)
}

#[test]
fn a_frozen_agent_without_timeout_is_lost_within_the_liveness_bound() {
    let (out, took) = frozen_run(&[], "sleep 3");
    // Liveness: pings after 5 s of silence, lost after 15 s.
    assert!(took < Duration::from_secs(24), "took {took:?}");
    let e = ends(&out);
    assert_eq!(e.len(), 10);
    assert_eq!(e["agent3"]["state"], "lost", "{}", e["agent3"]);
    assert_eq!(e.values().filter(|v| v["state"] == "succeeded").count(), 9, "{}", stderr(&out));
    assert_eq!(code(&out), 8, "{}", stderr(&out));
}

#[test]
fn a_frozen_agent_with_timeout_is_timed_out_at_timeout_plus_grace_plus_slack() {
    let (out, took) = frozen_run(&["--timeout", "2"], "sleep 1");
    // 2 s timeout + 1 s announced kill grace + 3 s slack.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(took >= Duration::from_secs(5), "declared too early: {took:?}");
    let e = ends(&out);
    assert_eq!(e["agent3"]["state"], "timed-out", "{}", e["agent3"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
}

#[test]
fn durations_on_the_command_line_are_checked_not_panicked_on() {
    let f = Fleet::new();
    let cases: &[(&[&str], &str)] = &[
        (&["--timeout", "1e20"], "too long"),
        (&["--timeout", "1e300"], "too long"),
        (&["--timeout", "inf"], "not a finite number"),
        (&["--timeout", "NaN"], "not a finite number"),
        (&["--timeout=-inf"], "not a finite number"),
        (&["--timeout=-1"], "more than 0"),
        (&["--timeout", "0"], "more than 0"),
        (&["--timeout", "soon"], "not a number"),
        (&["--reply-wait", "1e20"], "too long"),
        (&["--hello-wait=-0.5"], "0 or more"),
        (&["--minimum-wait", "1e10"], "too long"),
    ];
    for (opts, why) in cases {
        let out = f.run("all", opts, &["t"]);
        let err = stderr(&out);
        assert_eq!(code(&out), 1, "{opts:?}: {err}");
        assert!(err.contains(why), "{opts:?}: {err}");
        assert!(!err.contains("panicked"), "{opts:?}: {err}");
    }
    // The largest accepted value is fine.
    let out = f.run("nobody", &["--timeout", "1e9"], &["t"]);
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}
