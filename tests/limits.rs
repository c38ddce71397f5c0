//! Acceptance: timeouts kill the whole process group, the fan-out window,
//! the error budget, SIGHUP reloads, host:action locks and auth hooks.

mod common;
use common::*;
use std::time::Duration;

fn alive(pid: i32) -> bool {
    muster::exec::runner::process_alive(pid)
}

#[test]
fn timeout_leaves_no_process_of_the_group() {
    let mut f = Fleet::new();
    let pidfile = f.path("bg.pid");
    let s = f.script("hang", &format!("sleep 60 & echo $! > {}\ntrap '' TERM\nsleep 60", pidfile.display()));
    let i = f.add("a1", &[], &[("hang", &s)]);
    f.configure(i, "kill_grace = 0.5");
    f.start_all();
    let out = f.run("a1", &["--timeout", "1", "--output", "json"], &["hang"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert_eq!(ends(&out)["a1"]["state"], "timed-out");
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(!alive(pid), "background grandchild {pid} survived");
}

#[test]
fn fanout_two_never_runs_more_than_two() {
    let mut f = Fleet::new();
    let log = f.path("times.log");
    let s = f.script(
        "slow",
        &format!("echo start $(date +%s%N) >> {0}\nsleep 0.3\necho end $(date +%s%N) >> {0}", log.display()),
    );
    for i in 0..10 {
        f.add(&format!("n{i}"), &[], &[("slow", &s)]);
    }
    f.start_all();
    let out = f.run("all", &["--fanout", "2"], &["slow"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 20, "{text}");
    let m = max_overlap(&text);
    assert!(m <= 2, "{m} ran at once:\n{text}");
    assert_eq!(m, 2, "the window should be used");
}

#[test]
fn max_errors_skips_later_targets() {
    let mut f = Fleet::new();
    let s = f.script("bad", "sleep 0.2; exit 3");
    for i in 0..10 {
        f.add(&format!("n{i}"), &[], &[("bad", &s)]);
    }
    f.start_all();
    let out = f.run("n[0-9]", &["--fanout", "2", "--max-errors", "1", "--output", "json"], &["bad"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let e = ends(&out);
    let skipped = e.values().filter(|v| v["state"] == "skipped").count();
    let failed = e.values().filter(|v| v["state"] == "failed").count();
    assert_eq!(e.len(), 10);
    assert!(failed <= 3 && skipped >= 7, "failed {failed}, skipped {skipped}");
    assert_eq!(e["n9"]["state"], "skipped");
    assert!(stderr(&out).contains("skipped"), "{}", stderr(&out));
}

#[test]
fn sighup_reloads_and_a_bad_allowlist_keeps_the_old() {
    let mut f = Fleet::new();
    let a = f.script("a", "echo a");
    let b = f.script("b", "echo b");
    f.add("h1", &[], &[("a", &a)]);
    f.start_all();
    assert_eq!(code(&f.run("h1", &[], &["b"])), 16);
    let conf = f.agents[0].dir.join("scripts.conf");
    std::fs::write(&conf, format!("a = {}\nb = {}\n", a.display(), b.display())).unwrap();
    f.signal(0, libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    let out = f.run("h1", &[], &["b"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    std::fs::write(&conf, "a = /x\nthis line is wrong\n").unwrap();
    f.signal(0, libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(code(&f.run("h1", &[], &["b"])), 0, "old catalog must stay");
    let log = f.log(0);
    assert!(log.contains("reload failed") && log.contains("scripts.conf:2"), "{log}");
}

#[test]
fn concurrent_run_of_one_host_action_is_refused() {
    let mut f = Fleet::new();
    let slow = f.script("slow", "sleep 2");
    let quick = f.script("quick", "echo hi");
    f.add("h1", &[], &[("slow", &slow), ("quick", &quick)]);
    f.start_all();
    let mut first = std::process::Command::new(BIN)
        .arg("--state-dir")
        .arg(&f.state)
        .args(["run", "h1", "--", "slow"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let second = f.run("h1", &[], &["slow"]);
    assert_eq!(code(&second), 16, "{}", stderr(&second));
    assert!(stderr(&second).contains("locked"), "{}", stderr(&second));
    let other = f.run("h1", &[], &["quick"]);
    assert_eq!(code(&other), 0, "{}", stderr(&other));
    assert!(first.wait().unwrap().success());
    assert_eq!(code(&f.run("h1", &[], &["slow"])), 0, "lock released after the first run");
}

fn hook_cases(f: &Fleet, mode: &std::path::Path) {
    let set = |m: &str| std::fs::write(mode, m).unwrap();
    set("0");
    let out = f.run("h1", &[], &["t"]);
    assert_eq!(code(&out), 0, "allow: {}", stderr(&out));
    set("1");
    let out = f.run("h1", &[], &["t"]);
    assert_eq!(code(&out), 16);
    assert!(stderr(&out).contains("denied"), "{}", stderr(&out));
    set("2");
    let out = f.run("h1", &[], &["t"]);
    assert_eq!(code(&out), 16);
    assert!(stderr(&out).contains("not during the freeze"), "{}", stderr(&out));
    set("3");
    let out = f.run("h1", &[], &["t"]);
    assert_eq!(code(&out), 16);
    assert!(stderr(&out).contains("hook"), "{}", stderr(&out));
    set("hang");
    let out = f.run("h1", &[], &["t"]);
    assert_eq!(code(&out), 16);
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
}

const HOOK: &str = "m=$(cat MODE)\ncat > /dev/null\ncase $m in hang) sleep 30;; 2) echo not during the freeze; exit 2;; *) exit $m;; esac";

#[test]
fn agent_hook_exit_codes_and_timeout() {
    let mut f = Fleet::new();
    let mode = f.path("mode");
    let hook = f.script("hook", &HOOK.replace("MODE", &mode.display().to_string()));
    let t = f.script("t", "echo ran");
    let i = f.add("h1", &[], &[("t", &t)]);
    f.configure(i, &format!("hook = {:?}\nhook_timeout = 1", hook.display().to_string()));
    f.start_all();
    hook_cases(&f, &mode);
}

#[test]
fn dispatcher_hook_exit_codes_and_timeout() {
    let mut f = Fleet::new();
    let mode = f.path("mode");
    let hook = f.script("hook", &HOOK.replace("MODE", &mode.display().to_string()));
    let t = f.script("t", "echo ran");
    f.add("h1", &[], &[("t", &t)]);
    std::fs::write(
        f.state.join("dispatcher.toml"),
        format!("hook = {:?}\nhook_timeout = 1\n", hook.display().to_string()),
    )
    .unwrap();
    f.start_all();
    hook_cases(&f, &mode);
}

#[test]
fn the_dispatcher_hook_sees_the_selection_tags_on_mtls_too() {
    let mut f = Fleet::new();
    let ctx = f.path("ctx.json");
    let hook = f.script("hook", &format!("cat > {}; exit 0", ctx.display()));
    let t = f.script("t", "echo ran");
    f.add("h1", &["web"], &[("t", &t)]);
    f.add("h2", &["db"], &[("t", &t)]);
    std::fs::write(f.state.join("dispatcher.toml"), format!("hook = {:?}\n", hook.display().to_string())).unwrap();
    f.start_all();
    let out = f.run("all", &["--tags", "web"], &["t"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&ctx).unwrap()).unwrap();
    assert_eq!(v["tags"], serde_json::json!(["web"]), "{v}");
    assert_eq!(v["targets"], serde_json::json!(["h1"]), "{v}");
    assert_eq!(v["via"], "tls");
}
