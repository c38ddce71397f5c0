//! The files in examples/ are right: each config parses, and every default
//! its comments state is the program's default; the allowlist parses; the
//! hook scripts allow and deny as they say (also as a real agent's hook);
//! the systemd units name real subcommands, carry the hardening, and pass
//! `systemd-analyze verify` where it exists.

mod common;
use common::*;
use muster::agent::config::AgentConfig;
use muster::dispatch::DispatcherConfig;
use std::path::{Path, PathBuf};
use std::process::Command;

fn example(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(p)
}

fn read(p: &str) -> String {
    std::fs::read_to_string(example(p)).unwrap_or_else(|e| panic!("examples/{p}: {e}"))
}

/// The text with the commented-out `[hub]` section's keys made real.
fn with_hub_uncommented(text: &str) -> String {
    let mut out = String::new();
    let mut in_hub = false;
    for line in text.lines() {
        if line.trim_start_matches("# ") == "[hub]" {
            in_hub = true;
            out.push_str("[hub]\n");
            continue;
        }
        match line.strip_prefix("# ") {
            Some(rest) if in_hub => out.push_str(rest),
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[test]
fn agent_toml_parses_and_states_the_true_defaults() {
    let text = read("agent.toml");
    let ex = AgentConfig::parse(&text, Path::new("/etc/muster")).unwrap_or_else(|e| panic!("agent.toml: {e}"));
    let min = AgentConfig::parse("name = \"web01\"\nstate_dir = \"/etc/muster\"\n", Path::new("/etc/muster")).unwrap();
    assert_eq!(ex.name, "web01");
    assert_eq!(ex.allowlist, min.allowlist, "the allowlist default");
    assert_eq!(ex.listen, min.listen);
    assert_eq!(ex.max_concurrent, min.max_concurrent);
    assert_eq!(ex.output_cap, min.output_cap);
    assert_eq!(ex.default_timeout, min.default_timeout);
    assert_eq!(ex.max_timeout, min.max_timeout);
    assert_eq!(ex.kill_grace, min.kill_grace);
    assert_eq!(ex.allow_shell, min.allow_shell);
    assert_eq!(ex.hook_timeout, min.hook_timeout);
    assert_eq!(ex.handshake_timeout, min.handshake_timeout);
    assert_eq!(ex.idle_timeout, min.idle_timeout);
    assert_eq!(ex.max_frame, min.max_frame);
    assert_eq!(ex.max_sessions, min.max_sessions);
    assert_eq!(ex.max_handshakes, min.max_handshakes);
    assert_eq!(ex.result_retention, min.result_retention);
    assert_eq!(ex.max_file_bytes, min.max_file_bytes);
    assert_eq!(ex.tls, min.tls);
    assert!(ex.hub.is_none());
    // Every key of the config is in the example (set or commented out).
    for key in [
        "name",
        "listen",
        "state_dir",
        "allowlist",
        "run_dirs",
        "action_roots",
        "tags",
        "max_concurrent",
        "output_cap",
        "default_timeout",
        "max_timeout",
        "kill_grace",
        "allow_shell",
        "hook",
        "hook_timeout",
        "handshake_timeout",
        "idle_timeout",
        "max_frame",
        "max_sessions",
        "max_handshakes",
        "result_retention",
        "file_roots",
        "max_file_bytes",
        "tls",
        "[env]",
        "[hub]",
        "url",
        "user",
        "password",
        "channel",
        "identity",
        "station_key",
        "network_key",
    ] {
        assert!(text.lines().any(|l| l.trim_start_matches("# ").starts_with(key)), "agent.toml lacks {key}");
    }
    let hub = AgentConfig::parse(&with_hub_uncommented(&text), Path::new("/etc/muster"))
        .unwrap_or_else(|e| panic!("agent.toml with its [hub] section: {e}"))
        .hub
        .expect("the [hub] section");
    assert_eq!(hub.channel, "prod");
    assert_eq!(hub.station_key, Path::new("/etc/muster/hub/station.pub"));
}

#[test]
fn dispatcher_toml_parses_and_states_the_true_defaults() {
    let text = read("dispatcher.toml");
    let path = Path::new("/var/lib/muster/dispatcher.toml");
    let ex = DispatcherConfig::parse(&text, path).unwrap_or_else(|e| panic!("dispatcher.toml: {e}"));
    let d = DispatcherConfig::default();
    assert_eq!(
        (ex.hook_timeout, ex.connect_timeout, ex.fanout, ex.result_retention, ex.default_timeout),
        (d.hook_timeout, d.connect_timeout, d.fanout, d.result_retention, d.default_timeout)
    );
    assert!(ex.hook.is_none());
    let hub = DispatcherConfig::parse(&with_hub_uncommented(&text), path)
        .unwrap_or_else(|e| panic!("dispatcher.toml with its [hub] keys: {e}"))
        .hub;
    assert_eq!(hub.channel.as_deref(), Some("prod"));
    // The commented hook line is right too.
    let hooked = DispatcherConfig::parse(&text.replace("# hook = ", "hook = "), path).unwrap();
    assert_eq!(hooked.hook.as_deref(), Some(Path::new("/var/lib/muster/hooks/allow-users.sh")));
}

#[test]
fn scripts_conf_parses() {
    let entries = muster::exec::catalog::parse_allowlist(&read("scripts.conf"), "scripts.conf")
        .unwrap_or_else(|e| panic!("scripts.conf: {e}"));
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["uptime", "check-disk", "restart-nginx"]);
}

fn hook(script: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(example(script));
    c.env_clear().env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn hooks_allow_and_deny_with_a_reason() {
    let ok = hook("hooks/allow-users.sh", &[("MUSTER_USERNAME", "alice"), ("MUSTER_ACTION", "uptime")]);
    assert_eq!(code(&ok), 0);
    let no = hook("hooks/allow-users.sh", &[("MUSTER_USERNAME", "eve"), ("MUSTER_ACTION", "uptime")]);
    assert_eq!(code(&no), 2);
    assert!(stdout(&no).starts_with("user eve may not run uptime here"), "{}", stdout(&no));

    let dir = tempfile::tempdir().unwrap();
    let freeze = dir.path().join("freeze");
    let f = freeze.display().to_string();
    let env = |a: &'static str| [("MUSTER_FREEZE_FILE", f.clone()), ("MUSTER_ACTION", a.to_string())];
    let run = |a: &'static str| {
        let e = env(a);
        hook("hooks/deny-during-freeze.sh", &[(e[0].0, &e[0].1), (e[1].0, &e[1].1)])
    };
    assert_eq!(code(&run("restart-nginx")), 0, "no freeze file: allowed");
    std::fs::write(&freeze, "release week\n").unwrap();
    let no = run("restart-nginx");
    assert_eq!(code(&no), 2);
    assert!(stdout(&no).starts_with("change freeze: release week;"), "{}", stdout(&no));
    assert_eq!(code(&run("uptime")), 0, "read-only actions run during a freeze");
}

#[test]
fn the_allow_users_hook_works_in_a_real_agent() {
    let mut f = Fleet::new();
    let act = f.script("act", "echo ran");
    let i = f.add("web1", &[], &[("act", &act)]);
    f.configure(i, &format!("hook = {:?}", example("hooks/allow-users.sh").display().to_string()));
    f.start_all();
    let ok = f.run("web1", &["--username", "alice"], &["act"]);
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    let no = f.run("web1", &["--username", "eve", "--output", "json"], &["act"]);
    assert_eq!(code(&no), 16, "{}", stderr(&no));
    let end = &ends(&no)["web1"];
    assert_eq!(end["state"], "refused");
    assert!(end["detail"].as_str().unwrap().contains("user eve may not run act here"), "{end}");
}

/// The unit files, by name.
fn units() -> Vec<(String, String)> {
    let mut v: Vec<_> = std::fs::read_dir(example("systemd"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn systemd_units_are_hardened_and_name_real_subcommands() {
    let units = units();
    let names: Vec<&str> = units.iter().map(|(n, _)| n.as_str()).collect();
    for want in ["muster-agent.service", "muster-ns8-agent@.service", "muster-daemon.service", "muster-api.service"] {
        assert!(names.contains(&want), "examples/systemd lacks {want}");
    }
    let cli = muster::cli::command();
    for (name, text) in units.iter().filter(|(n, _)| n.ends_with(".service")) {
        for key in ["NoNewPrivileges=yes", "ProtectSystem="] {
            assert!(text.contains(key), "{name} lacks {key}");
        }
        let oneshot = text.contains("Type=oneshot");
        assert!(oneshot || text.contains("Restart=on-failure"), "{name} is not restarted on failure");
        for exec in
            text.lines().filter_map(|l| l.split_once('=').filter(|(k, _)| k.starts_with("Exec")).map(|(_, v)| v))
        {
            let mut words = exec.split_whitespace();
            if words.next() != Some("/usr/bin/muster") {
                continue;
            }
            let mut at = &cli;
            for w in words.take_while(|w| !w.starts_with('-')) {
                match at.find_subcommand(w) {
                    Some(s) => at = s,
                    None => panic!("{name}: `{exec}`: muster has no subcommand {w:?}"),
                }
            }
        }
    }
    let agent = &units.iter().find(|(n, _)| n == "muster-agent.service").unwrap().1;
    assert!(agent.contains("ExecReload=/bin/kill -HUP $MAINPID"), "the agent reloads with SIGHUP");
}

#[test]
fn systemd_analyze_verifies_every_unit() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("systemd-analyze is not installed: units not verified");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, text) in units() {
        // The unit as installed, with this build as /usr/bin/muster, and
        // the template as one instance.
        let name = name.replace("@.service", "@mail1.service");
        let p = dir.path().join(&name);
        std::fs::write(&p, text.replace("/usr/bin/muster", BIN)).unwrap();
        files.push(p);
    }
    let out = Command::new("systemd-analyze").args(["verify", "--man=no"]).args(&files).output().unwrap();
    assert!(out.status.success(), "systemd-analyze verify: {}{}", stdout(&out), stderr(&out));
    assert_eq!(stderr(&out), "", "systemd-analyze warned");
}
