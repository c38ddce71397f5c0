//! Acceptance (issue 9): trust that lasts. Concurrent signings never share
//! a serial; rotation reaches online agents at once and leaves an offline
//! one on the old serial through the overlap, then `serial-stale`;
//! revocation is refused both ways; async runs survive their dispatcher,
//! are owner-gated between dispatchers, and are pruned; self-check; two
//! dispatcher instances on one state dir.

mod common;
use common::*;
use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::Duration;

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

#[test]
fn twenty_concurrent_signings_give_twenty_serials() {
    let f = Fleet::new();
    let children: Vec<_> = (0..20)
        .map(|i| {
            Command::new(BIN)
                .arg("--state-dir")
                .arg(&f.state)
                .args(["ca", "issue-agent", &format!("n{i}"), "--addr", &format!("127.0.0.1:{}", 20000 + i), "--out"])
                .arg(f.path(&format!("a/n{i}")))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let list = json(&f.muster(&["agents", "list", "--json"]));
    let serials: HashSet<String> =
        list.as_array().unwrap().iter().map(|e| e["serial"].as_str().unwrap().to_string()).collect();
    assert_eq!(serials.len(), 20, "{list}");
    let me: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.state.join("dispatcher.json")).unwrap()).unwrap();
    assert!(!serials.contains(me["serial"].as_str().unwrap()));
}

/// A session opened with the dispatcher identity in `crt`/`key` answers a ping.
fn ping_as(f: &Fleet, i: usize, crt: &str, key: &str) -> Result<(), String> {
    use muster::transport::carrier::{Dialer, Target};
    let cfg = muster::dispatch::DispatcherConfig::default();
    let carrier = muster::lifecycle::rotation::carrier_for(&f.state, &cfg, "test-dispatcher", crt, key).unwrap();
    let t = Target { name: f.agents[i].name.clone(), addr: f.agents[i].addr.to_string() };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut s = carrier.open(&t).await.map_err(|e| e.to_string())?;
        s.writer.write(&muster::protocol::Message::Ping { id: 7 }).await.map_err(|e| e.to_string())?;
        match s.reader.read().await {
            Ok(Some(muster::protocol::Message::Pong { id: 7 })) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
}

#[test]
fn rotation_reaches_online_agents_and_leaves_an_offline_one_stale_after_the_overlap() {
    let mut f = Fleet::new();
    let s = f.script("t", "echo ok");
    for n in ["r1", "r2", "r3"] {
        f.add(n, &[], &[("t", &s)]);
    }
    f.start_all();
    f.stop(2);
    let old_crt = std::fs::read_to_string(f.state.join("dispatcher.crt")).unwrap();
    let old_key = std::fs::read_to_string(f.state.join("dispatcher.key")).unwrap();
    let rot = f.muster(&["rotate-cert", "--overlap-days", "0.00005"]);
    assert_eq!(code(&rot), 0, "{}", stderr(&rot));
    assert!(stdout(&rot).contains("r3: not reached"), "{}", stdout(&rot));
    // Online agents accept the new certificate at once.
    let out = f.run("r1,r2", &["--output", "json"], &["t"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // The offline one comes back: it still accepts the old certificate inside the window, not the new one.
    f.start(2);
    f.wait_listening(2);
    ping_as(&f, 2, &old_crt, &old_key).expect("the old certificate inside the overlap");
    let out = f.run("r3", &["--output", "json"], &["t"]);
    assert_eq!(ends(&out)["r3"]["state"], "refused", "{}", stderr(&out));
    let st = json(&f.muster(&["serial-status", "--json"]));
    let status = |n: &str| st["agents"].as_array().unwrap().iter().find(|a| a["name"] == n).unwrap()["status"].clone();
    assert_eq!(status("r1"), "updated");
    assert_eq!(status("r3"), "pending");
    // After the overlap: maintain retires the old serial from the updated agents and marks r3 stale.
    std::thread::sleep(Duration::from_secs(5));
    let m = f.muster(&["maintain"]);
    assert_eq!(code(&m), 0, "{}", stderr(&m));
    assert!(stdout(&m).contains("r3: serial-stale"), "{}", stdout(&m));
    let st = json(&f.muster(&["serial-status", "--json"]));
    let status = |n: &str| st["agents"].as_array().unwrap().iter().find(|a| a["name"] == n).unwrap()["status"].clone();
    assert_eq!(status("r1"), "retired");
    assert_eq!(status("r3"), "serial-stale");
    assert!(ping_as(&f, 0, &old_crt, &old_key).is_err(), "the retired serial is refused");
    assert_eq!(code(&f.run("r1,r2", &[], &["t"])), 0, "the new certificate still works");
    assert!(f.log(0).contains("serial-retire"), "{}", f.log(0));
}

#[test]
fn async_runs_survive_their_dispatcher_and_are_owner_gated() {
    let mut f = Fleet::new();
    let s = f.script("slow", "echo begun; sleep 2; echo finished; exit 5");
    let i = f.add("a1", &[], &[("slow", &s)]);
    f.configure(i, "result_retention = 60");
    f.start_all();
    // Start it; the dispatcher process is gone as soon as the run started.
    let out = f.run("a1", &["--async"], &["slow"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let id =
        stdout(&out).lines().find_map(|l| l.strip_prefix("request ")).unwrap().split(' ').next().unwrap().to_string();
    let st = f.muster(&["status", &id, "--output", "json"]);
    assert_eq!(ends(&st)["a1"]["state"], "running", "{}", stdout(&st));
    let w = f.muster(&["wait", &id, "--output", "json", "--timeout", "30"]);
    assert_eq!(code(&w), 4, "{}", stderr(&w));
    assert_eq!(ends(&w)["a1"]["exit"], 5);
    let text: String = events(&w).iter().filter_map(|e| e["text"].as_str().map(String::from)).collect();
    assert_eq!(text, "begun\nfinished\n");
    assert!(stdout(&f.muster(&["list-requests"])).contains(&id));

    // A second dispatcher of the same CA, paired to the same agent, gets not-found.
    let d2 = f.path("d2");
    let init = Command::new(BIN)
        .arg("--state-dir")
        .arg(&d2)
        .args(["ca", "init", "--id", "second"])
        .arg("--ca")
        .arg(f.state.join("ca"))
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", stderr(&init));
    let entry = muster::dispatch::registry::load(&f.state, "a1").unwrap().unwrap();
    muster::dispatch::registry::save(&d2, &entry).unwrap();
    let me2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d2.join("dispatcher.json")).unwrap()).unwrap();
    let map = f.agents[0].dir.join("dispatchers");
    let mut text = std::fs::read_to_string(&map).unwrap();
    text.push_str(&format!("{} second\n", me2["serial"].as_str().unwrap()));
    std::fs::write(&map, text).unwrap();
    f.signal(0, libc::SIGHUP);
    wait_for(Duration::from_secs(5), "the reload", || f.log(0).contains("2 trusted dispatchers"));
    std::fs::create_dir_all(d2.join("runs")).unwrap();
    std::fs::copy(f.state.join(format!("runs/{id}.json")), d2.join(format!("runs/{id}.json"))).unwrap();
    let other =
        Command::new(BIN).arg("--state-dir").arg(&d2).args(["status", &id, "--output", "json"]).output().unwrap();
    assert_eq!(code(&other), 16, "{}", stderr(&other));
    let e = &ends(&other)["a1"];
    assert_eq!(e["reason"], "not found", "{e}");
    assert!(!stdout(&other).contains("finished"), "never the data");
    assert_eq!(code(&f.muster(&["status", &id])), 4, "the owner still sees it");
}

#[test]
fn results_and_run_records_are_pruned_after_their_retention() {
    let mut f = Fleet::new();
    let s = f.script("t", "true");
    let i = f.add("a1", &[], &[("t", &s)]);
    f.configure(i, "result_retention = 1");
    f.start_all();
    std::fs::write(f.state.join("dispatcher.toml"), "result_retention = 1\n").unwrap();
    let out = f.run("a1", &["--async"], &["t"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let runs = f.agents[0].dir.join("runs");
    wait_for(Duration::from_secs(10), "the agent to prune its result", || {
        std::fs::read_dir(&runs)
            .map(|d| d.flatten().all(|sub| std::fs::read_dir(sub.path()).map(|x| x.count()).unwrap_or(0) == 0))
            .unwrap_or(false)
    });
    wait_for(Duration::from_secs(5), "the record to age", || {
        code(&f.muster(&["maintain"])) == 0 && std::fs::read_dir(f.state.join("runs")).unwrap().count() == 0
    });
}

#[test]
fn revoked_serials_are_refused_both_ways() {
    let mut f = Fleet::new();
    let s = f.script("t", "true");
    f.add("a1", &[], &[("t", &s)]);
    f.add("a2", &[], &[("t", &s)]);
    f.start_all();
    // The dispatcher refuses a revoked agent.
    let r = f.muster(&["revoke", "a1"]);
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    // Its registry entry is marked: it is not even dialled (with the agent
    // stopped, a dial would end unreachable).
    f.stop(0);
    let out = f.run("a1", &["--output", "json"], &["t"]);
    assert_eq!(ends(&out)["a1"]["state"], "refused", "{}", ends(&out)["a1"]);
    assert_eq!(ends(&out)["a1"]["reason"], "revoked", "{}", ends(&out)["a1"]);
    assert!(ends(&out)["a1"]["detail"].as_str().unwrap().contains("pair it again"), "{}", ends(&out)["a1"]);
    f.start(0);
    f.wait_listening(0);
    // With the mark removed by hand, the dialled agent's revoked serial is refused.
    let entry = f.state.join("agents/a1.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&entry).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("revoked");
    std::fs::write(&entry, v.to_string()).unwrap();
    let out = f.run("a1", &["--output", "json"], &["t"]);
    assert_eq!(ends(&out)["a1"]["reason"], "agent certificate revoked", "{}", ends(&out)["a1"]);
    // Agents refuse a revoked dispatcher: a second dispatcher, trusted, then revoked.
    let d2 = f.path("d2");
    assert!(Command::new(BIN)
        .arg("--state-dir")
        .arg(&d2)
        .args(["ca", "init", "--id", "second", "--ca"])
        .arg(f.state.join("ca"))
        .status()
        .unwrap()
        .success());
    let me2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d2.join("dispatcher.json")).unwrap()).unwrap();
    let serial2 = me2["serial"].as_str().unwrap().to_string();
    let map = f.agents[1].dir.join("dispatchers");
    let text = std::fs::read_to_string(&map).unwrap();
    std::fs::write(&map, format!("{text}{serial2} second\n")).unwrap();
    f.signal(1, libc::SIGHUP);
    wait_for(Duration::from_secs(5), "the reload", || f.log(1).contains("2 trusted dispatchers"));
    let entry = muster::dispatch::registry::load(&f.state, "a2").unwrap().unwrap();
    muster::dispatch::registry::save(&d2, &entry).unwrap();
    let as2 = || {
        Command::new(BIN)
            .arg("--state-dir")
            .arg(&d2)
            .args(["run", "a2", "--output", "json", "--", "t"])
            .output()
            .unwrap()
    };
    assert_eq!(code(&as2()), 0, "trusted before the revocation");
    assert_eq!(code(&f.muster(&["revoke", "a1"])), 0, "revoking again marks the entry again");
    let r = f.muster(&["revoke", &serial2]);
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    assert!(stdout(&r).contains("a2: refuses it"), "{}", stdout(&r));
    assert!(stdout(&r).contains("not told: revoked agent a1"), "{}", stdout(&r));
    assert!(!stdout(&r).contains("a1: "), "a revoked agent is not dialled: {}", stdout(&r));
    let out = as2();
    assert_eq!(code(&out), 16, "{}", stderr(&out));
    assert!(ends(&out)["a2"]["detail"].as_str().unwrap().contains("revoked"), "{}", ends(&out)["a2"]);
    assert_eq!(code(&f.run("a2", &[], &["t"])), 0, "the first dispatcher is still trusted");
    // Its own serial is not revocable.
    let me: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.state.join("dispatcher.json")).unwrap()).unwrap();
    assert_eq!(code(&f.muster(&["revoke", me["serial"].as_str().unwrap()])), 1);
}

#[test]
fn maintain_renews_expiring_agent_certificates_without_pairing() {
    let mut f = Fleet::new();
    let s = f.script("t", "true");
    f.add("a1", &[], &[("t", &s)]);
    f.start_all();
    let before = muster::dispatch::registry::load(&f.state, "a1").unwrap().unwrap();
    let m = f.muster(&["maintain", "--renew-days", "400"]);
    assert_eq!(code(&m), 0, "{}", stderr(&m));
    assert!(stdout(&m).contains("a1: renewed"), "{}", stdout(&m));
    let after = muster::dispatch::registry::load(&f.state, "a1").unwrap().unwrap();
    assert_ne!(before.serial, after.serial);
    let crt = std::fs::read_to_string(f.agents[0].dir.join("agent.crt")).unwrap();
    let der = muster::pki::parse_certs_pem(&crt).unwrap();
    assert_eq!(muster::pki::cert_serial_hex(&der[0]).unwrap(), after.serial, "the agent installed it");
    assert_eq!(code(&f.run("a1", &[], &["t"])), 0, "and serves with it");
}

#[test]
fn self_check_names_each_failure() {
    let mut f = Fleet::new();
    let s = f.script("t", "true");
    f.add("a1", &[], &[("t", &s)]);
    let conf = f.agents[0].dir.join("agent.toml");
    let check = || Command::new(BIN).args(["agent", "self-check", "--config"]).arg(&conf).output().unwrap();
    let ok = check();
    assert_eq!(code(&ok), 0, "{}", stdout(&ok));
    assert!(!stdout(&ok).contains("FAIL"), "{}", stdout(&ok));
    std::fs::write(f.agents[0].dir.join("scripts.conf"), "t = /nonexistent/script\n").unwrap();
    std::fs::write(f.agents[0].dir.join("dispatchers"), "").unwrap();
    let other = f.path("other");
    assert!(f
        .muster(&["ca", "issue-agent", "b1", "--addr", "127.0.0.1:1", "--out", other.to_str().unwrap()])
        .status
        .success());
    std::fs::copy(other.join("agent.key"), f.agents[0].dir.join("agent.key")).unwrap();
    let bad = check();
    assert_eq!(code(&bad), 1);
    let text = stdout(&bad);
    for want in ["FAIL key", "FAIL allowlist", "FAIL trusted map"] {
        assert!(text.contains(want), "{want}:\n{text}");
    }
}

#[test]
fn two_dispatcher_instances_on_one_state_dir_interleave_safely() {
    let mut f = Fleet::new();
    let s = f.script("t", "sleep 0.2");
    for n in ["h1", "h2", "h3"] {
        f.add(n, &[], &[("t", &s), ("u", &s)]);
    }
    f.start_all();
    let spawn = |args: &[&str]| {
        Command::new(BIN)
            .arg("--state-dir")
            .arg(&f.state)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Runs, enrolments and rotations from two instances at once.
    let mut jobs = Vec::new();
    for (i, action) in ["t", "u"].iter().enumerate() {
        // (The same action on the same host twice would be refused: the lock files are shared too.
        // The hosts are named: `all` could pick up an agent enrolled meanwhile, at no address.)
        jobs.push(spawn(&["run", "h[1-3]", "--output", "json", "--", action]));
        jobs.push(spawn(&[
            "ca",
            "issue-agent",
            &format!("x{i}"),
            "--addr",
            "127.0.0.1:1",
            "--out",
            f.path(&format!("x{i}")).to_str().unwrap(),
        ]));
        jobs.push(spawn(&["rotate-cert", "--overlap-days", "1"]));
    }
    let outs: Vec<_> = jobs.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let rotations = outs.iter().filter(|o| stdout(o).starts_with("rotated")).count();
    assert_eq!(rotations, 1, "exactly one rotation; the other is refused while the overlap is open");
    assert!(outs.iter().any(|o| stderr(o).contains("overlap is still open")));
    for o in outs.iter().filter(|o| !stderr(o).contains("overlap is still open")) {
        assert_eq!(code(o), 0, "{}", stderr(o));
    }
    // Every file is whole and every serial distinct.
    let list = json(&f.muster(&["agents", "list", "--json"]));
    let mut serials: Vec<String> =
        list.as_array().unwrap().iter().map(|e| e["serial"].as_str().unwrap().to_string()).collect();
    let me: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.state.join("dispatcher.json")).unwrap()).unwrap();
    serials.push(me["serial"].as_str().unwrap().to_string());
    let rot: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.state.join("rotation.json")).unwrap()).unwrap();
    serials.push(rot["previous"].as_str().unwrap().to_string());
    let unique: HashSet<&String> = serials.iter().collect();
    assert_eq!(unique.len(), serials.len(), "{serials:?}");
    assert_eq!(code(&f.run("h[1-3]", &[], &["t"])), 0, "the rotated instance still reaches everyone");
}

#[test]
fn status_of_a_run_without_async_shows_its_recorded_ends_and_list_says_where_async_runs_started() {
    let mut f = Fleet::new();
    let ok = f.script("ok", "echo fine");
    let bad = f.script("bad", "exit 3");
    f.add("a1", &[], &[("ok", &ok), ("bad", &bad)]);
    f.add("a2", &[], &[("ok", &ok), ("bad", &bad)]);
    f.start_all();
    let out = f.run("a1,a2", &[], &["bad"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let list = f.muster(&["list-requests", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&list)).unwrap();
    let id = v[0]["request_id"].as_str().unwrap().to_string();
    for verb in ["status", "wait"] {
        let st = f.muster(&[verb, &id]);
        assert_eq!(code(&st), 4, "{verb}: the recorded exit status: {}", stderr(&st));
        assert!(stdout(&st).contains("ran without --async"), "{}", stdout(&st));
        assert!(stdout(&st).contains("a1: failed(exit 3)") || stdout(&st).contains("a1: failed"), "{}", stdout(&st));
    }
    let out = f.run("a1", &["--async"], &["ok"]);
    assert!(stdout(&out).contains("started on 1 of 1 target\n"), "{}", stdout(&out));
    // In JSON mode every stdout line is JSON; the last names the request.
    let out = f.run("a2", &["--async", "--output", "json"], &["ok"]);
    let lines: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"))).collect();
    let last = lines.last().unwrap();
    assert_eq!((last["event"].as_str(), last["started"].as_u64()), (Some("request"), Some(1)), "{last}");
    assert_eq!(last["request_id"].as_str().unwrap().len(), 16, "{last}");
    let text = stdout(&f.muster(&["list-requests"]));
    assert!(text.contains("async") && text.contains("started on 1; see `muster status"), "{text}");
    assert!(text.contains("sync") && text.contains("exit 4"), "{text}");
    assert!(text.contains("on 1 target ") && text.contains("on 2 targets"), "{text}");
}

#[test]
fn a_forced_rotation_during_an_overlap_retires_every_older_serial() {
    let mut f = Fleet::new();
    let s = f.script("t", "echo ok");
    f.add("r1", &[], &[("t", &s)]);
    f.start_all();
    let read = |f: &Fleet| {
        (
            std::fs::read_to_string(f.state.join("dispatcher.crt")).unwrap(),
            std::fs::read_to_string(f.state.join("dispatcher.key")).unwrap(),
        )
    };
    let a = read(&f);
    assert_eq!(code(&f.muster(&["rotate-cert", "--overlap-days", "1"])), 0);
    let b = read(&f);
    let again = f.muster(&["rotate-cert", "--overlap-days", "1"]);
    assert_ne!(code(&again), 0);
    assert!(stderr(&again).contains("overlap is still open"), "{}", stderr(&again));
    let forced = f.muster(&["rotate-cert", "--force", "--overlap-days", "0.00002"]);
    assert_eq!(code(&forced), 0, "{}", stderr(&forced));
    ping_as(&f, 0, &a.0, &a.1).expect("the first serial, inside its overlap");
    ping_as(&f, 0, &b.0, &b.1).expect("the second serial, inside its overlap");
    wait_for(Duration::from_secs(20), "maintain to retire both older serials", || {
        let m = f.muster(&["maintain"]);
        assert_eq!(code(&m), 0, "{}", stderr(&m));
        ping_as(&f, 0, &a.0, &a.1).is_err() && ping_as(&f, 0, &b.0, &b.1).is_err()
    });
    assert_eq!(code(&f.run("r1", &[], &["t"])), 0, "the current certificate still works");
    let st = json(&f.muster(&["serial-status", "--json"]));
    assert_eq!(st["agents"][0]["status"], "retired", "{st}");
}
