//! Acceptance (issue 8, §5): output a person and a script can trust.
//! Grouped output is deterministic when a script writes both streams and
//! folds unreachable hosts on the kind of their reason; every JSON event
//! validates against docs/events.schema.json; usage errors exit 1 with a
//! hint; sessions close cleanly; errors say what is wrong and what to do.

mod common;
use common::*;
use std::time::Duration;

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/events.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

#[test]
fn grouped_output_of_a_mixed_stream_script_is_identical_over_fifty_runs() {
    let mut f = Fleet::new();
    let s = f.script("mixed", "echo out1; echo err1 >&2; echo out2");
    f.add("h1", &[], &[("mixed", &s)]);
    f.add("h2", &[], &[("mixed", &s)]);
    f.start_all();
    let first = stdout(&f.run("h[1-2]", &["--output", "grouped"], &["mixed"]));
    assert!(first.contains("h[1-2] (2): succeeded\n"), "{first}");
    assert!(first.contains("out1\nout2\n--- stderr ---\nerr1\n"), "{first}");
    for i in 0..50 {
        let out = f.run("h[1-2]", &["--output", "grouped"], &["mixed"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(stdout(&out), first, "run {i} differs");
    }
}

#[test]
fn a_thousand_stale_names_fold_into_a_few_lines() {
    let mut f = Fleet::new();
    let s = f.script("t", "echo ok");
    f.add("live1", &[], &[("t", &s)]);
    f.start_all();
    let out = f.run("live1,zz[1-1000]", &["--output", "grouped"], &["t"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(o.contains("zz[1-1000] (1000): unreachable(no registry entry)\n"), "{o}");
    assert!(o.lines().count() <= 8, "{o}");
    assert!(e.contains("zz[1-1000] (1000): unreachable(no registry entry)\n"), "{e}");
    assert!(e.lines().count() <= 4, "{e}");
    // The per-host detail is in the JSON events.
    let out = f.run("live1,zz[1-3]", &["--output", "json"], &["t"]);
    assert_eq!(ends(&out)["zz2"]["detail"], "unreachable(no registry entry for zz2 (see `muster agents list`))");
}

#[test]
fn every_json_event_of_every_state_follows_the_schema() {
    let schema = schema();
    let mut f = Fleet::new();
    let ok = f.script("ok", "echo fine; printf '\\377' >&2");
    let bad = f.script("bad", "echo no; exit 3");
    let slow = f.script("slow", "sleep 5");
    let killed = f.script("killed", "kill -9 $$");
    let allow: Vec<(&str, &std::path::Path)> = vec![("ok", &ok), ("bad", &bad), ("slow", &slow), ("killed", &killed)];
    f.add("a1", &[], &allow);
    f.add("a2", &[], &allow);
    f.add("down", &[], &allow);
    f.start(0);
    f.start(1);
    f.wait_listening(0);
    f.wait_listening(1);
    let runs: Vec<(Vec<&str>, &str)> = vec![
        (vec![], "ok"),
        (vec![], "bad"),
        (vec!["--timeout", "0.5"], "slow"),
        (vec![], "killed"),
        (vec![], "nope"),
        (vec!["--fanout", "1", "--max-errors", "1"], "bad"),
    ];
    let mut states = std::collections::BTreeSet::new();
    for (opts, action) in runs {
        let mut o = vec!["--output", "json"];
        o.extend(opts);
        let out = f.run("a1,a2,down,ghost", &o, &[action]);
        for ev in events(&out) {
            let errors: Vec<String> = schema.iter_errors(&ev).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{ev} does not follow the schema: {errors:?}");
            if ev["event"] == "end" {
                states.insert(ev["state"].as_str().unwrap().to_string());
                assert!(ev.get("exit").is_some() && ev.get("signal").is_some(), "{ev}");
            }
        }
    }
    for s in ["succeeded", "failed", "timed-out", "unreachable", "refused", "skipped"] {
        assert!(states.contains(s), "no {s} end seen: {states:?}");
    }
}

#[test]
fn builtin_output_ends_with_a_newline_in_every_mode() {
    let mut f = Fleet::new();
    let s = f.script("t", "true");
    f.add("a1", &[], &[("t", &s)]);
    f.start_all();
    for mode in ["grouped", "live"] {
        let out = f.run("a1", &["--output", mode], &["info"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert!(stdout(&out).ends_with('\n'), "{mode}: {:?}", stdout(&out));
    }
}

#[test]
fn usage_errors_exit_1_with_a_hint_and_help_exits_0() {
    let f = Fleet::new();
    let cases: &[(&[&str], &str)] = &[
        (&["run", "all", "hello"], "put the action after --: muster run all -- hello"),
        (&["run", "all"], "ACTION"),
        (&["run"], "TARGETS"),
        (&["frobnicate"], "unrecognized subcommand"),
        (&["run", "all", "--bogus", "--", "x"], "--bogus"),
        (&["ping"], "TARGETS"),
        // Numbers: the value and the rule, never "unexpected argument".
        (&["run", "all", "--timeout", "-5", "--", "x"], "\"-5\" must be more than 0 seconds"),
        (&["run", "all", "--timeout", "0", "--", "x"], "\"0\" must be more than 0 seconds"),
        (&["run", "all", "--timeout", "nan", "--", "x"], "\"nan\" is not a finite number of seconds"),
        (&["run", "all", "--timeout", "inf", "--", "x"], "\"inf\" is not a finite number of seconds"),
        (&["run", "all", "--timeout", "ten", "--", "x"], "is not a number of seconds"),
        (&["run", "all", "--hello-wait", "-1", "--", "x"], "\"-1\" must be 0 or more seconds"),
        (&["wait", "abc", "--timeout", "-1"], "must be more than 0 seconds"),
        (&["run", "all", "--fanout", "0", "--", "x"], "\"0\" must be 1 or more"),
        (&["run", "all", "--fanout", "-3", "--", "x"], "\"-3\" must be 1 or more"),
        (&["run", "all", "--max-errors", "0", "--", "x"], "\"0\" must be 1 or more"),
        (&["run", "all", "--expect", "0", "--", "x"], "must be 1 or more"),
        (&["ping", "all", "--fanout", "0"], "must be 1 or more"),
        (&["put", "all", "/etc/hostname", "/tmp/x", "--fanout", "0"], "must be 1 or more"),
        (&["run", "all", "--fanout", "1.5", "--", "x"], "is not a whole number"),
        (&["run", "all", "--via", "hub", "--channel", "a b", "--", "x"], "whitespace and control characters"),
        (&["run", "all", "--via", "hub", "--channel", "", "--", "x"], "must be 1 to 128 characters"),
        (&["run", "all", "--via", "hub", "--agent", "x\ty", "--", "x"], "whitespace and control characters"),
        // --async keeps results on mTLS agents only.
        (&["run", "all", "--via", "hub", "--async", "--", "x"], "--async needs --via tls"),
        (&["run", "all", "--via", "ssh", "--async", "--", "x"], "--async needs --via tls"),
    ];
    for (args, want) in cases {
        let out = f.muster(args);
        assert_eq!(code(&out), 1, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    for args in [&["--help"][..], &["run", "--help"], &["--version"]] {
        let out = f.muster(args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn sessions_close_cleanly() {
    let mut f = Fleet::new();
    let s = f.script("t", "echo hi");
    f.add("a1", &[], &[("t", &s)]);
    f.start_all();
    for _ in 0..3 {
        assert_eq!(code(&f.run("a1", &[], &["t"])), 0);
    }
    assert_eq!(code(&f.muster(&["ping", "a1"])), 0);
    wait_for(Duration::from_secs(5), "three request lines", || f.log(0).matches("outcome=exit 0").count() == 3);
    let log = f.log(0);
    assert!(!log.contains("close_notify") && !log.contains("WARN"), "{log}");
}

#[test]
fn no_registry_says_how_to_make_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .arg("--state-dir")
        .arg(tmp.path().join("nothing"))
        .args(["run", "all", "--", "x"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    let e = stderr(&out);
    assert!(e.contains("no agent registry") && e.contains("muster ca init") && e.contains("issue-agent"), "{e}");
}

/// Re-sign `name`'s certificate (same serial) so that it expired yesterday.
fn expired_cert(f: &Fleet, name: &str, serial: u64, cert: &std::path::Path, key: &std::path::Path, client_only: bool) {
    use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, Issuer, KeyPair, SanType, SerialNumber};
    let ca_pem = std::fs::read_to_string(f.state.join("ca/ca.crt")).unwrap();
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(f.state.join("ca/ca.key")).unwrap()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    if !client_only {
        p.subject_alt_names = vec![SanType::DnsName(name.try_into().unwrap())];
    }
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    p.serial_number = Some(SerialNumber::from(serial));
    p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    p.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let k = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let c = p.signed_by(&k, &issuer).unwrap();
    std::fs::write(cert, c.pem()).unwrap();
    std::fs::write(key, k.serialize_pem()).unwrap();
}

#[test]
fn expired_certificates_are_explained_as_expired_with_the_date() {
    let mut f = Fleet::new();
    let s = f.script("t", "true");
    f.add("a1", &[], &[("t", &s)]);
    let serial =
        u64::from_str_radix(muster::dispatch::registry::load(&f.state, "a1").unwrap().unwrap().serial.as_str(), 16)
            .unwrap();
    let dir = f.agents[0].dir.clone();
    expired_cert(&f, "a1", serial, &dir.join("agent.crt"), &dir.join("agent.key"), false);
    f.start_all();
    let out = f.run("a1", &["--output", "json"], &["t"]);
    assert_eq!(code(&out), 16, "{}", stderr(&out));
    let end = &ends(&out)["a1"];
    assert_eq!(end["reason"], "agent certificate expired", "{end}");
    let yesterday = (time::OffsetDateTime::now_utc() - time::Duration::days(1)).date().to_string();
    assert!(end["detail"].as_str().unwrap().contains(&format!("expired on {yesterday}")), "{end}");
    assert!(!end["detail"].as_str().unwrap().contains("this fleet's CA"), "{end}");

    // The dispatcher's own certificate expired: the agent says so in its log.
    let mut g = Fleet::new();
    g.add("b1", &[], &[("t", &s)]);
    g.start_all();
    let me: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(g.state.join("dispatcher.json")).unwrap()).unwrap();
    let dserial = u64::from_str_radix(me["serial"].as_str().unwrap(), 16).unwrap();
    expired_cert(
        &g,
        "test-dispatcher",
        dserial,
        &g.state.join("dispatcher.crt"),
        &g.state.join("dispatcher.key"),
        true,
    );
    let out = g.run("b1", &["--output", "json"], &["t"]);
    assert_eq!(code(&out), 16, "{}", stderr(&out));
    assert_eq!(ends(&out)["b1"]["reason"], "dispatcher certificate expired", "{}", ends(&out)["b1"]);
    wait_for(Duration::from_secs(5), "the agent's log line", || {
        g.log(0).contains("refused a client certificate that expired on")
    });
}

#[test]
fn an_agent_explains_a_dispatcher_of_another_fleet() {
    let mut f = Fleet::new();
    let s = f.script("t", "true");
    f.add("a1", &[], &[("t", &s)]);
    f.start_all();
    // Another fleet's dispatcher dials our agent.
    let other = Fleet::new();
    let entry = muster::dispatch::registry::load(&f.state, "a1").unwrap().unwrap();
    muster::dispatch::registry::save(&other.state, &entry).unwrap();
    let out = other.run("a1", &["--output", "json"], &["t"]);
    assert_eq!(code(&out), 16, "{}", stderr(&out));
    assert_eq!(ends(&out)["a1"]["reason"], "not from this fleet's CA", "{}", ends(&out)["a1"]);
    wait_for(Duration::from_secs(5), "the agent's log line", || f.log(0).contains("TLS handshake refused"));
    let log = f.log(0);
    assert!(log.contains("does not trust this fleet's CA") || log.contains("not from this fleet's CA"), "{log}");
    assert!(!log.contains("DecryptError\n") && !log.contains("received fatal alert: DecryptError"), "{log}");
}
