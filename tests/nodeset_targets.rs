//! TARGETS as node sets through the real binary: set operators never dial a
//! host named after an operator, `@TAG` and `@all` are registry groups,
//! `all` alone keeps its meaning and is `@all` in a list, `groups.toml`
//! adds named groups, an unknown group is an error naming it; and
//! `muster nodeset -e/-f/-c` shows what a spec names.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `muster --state-dir STATE ARGS` with the config dir `config`.
fn muster(f: &Fleet, config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--state-dir")
        .arg(&f.state)
        .args(args)
        .env("MUSTER_CONFIG", config)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn targets_of(o: &Output) -> Vec<String> {
    ends(o).into_keys().collect()
}

#[test]
fn operators_groups_and_all_in_runs() {
    let mut f = Fleet::new();
    let s = f.script("hello", "echo hi $MUSTER_AGENT");
    f.add("web01", &["web", "eu"], &[("hello", &s)]);
    f.add("web02", &["web"], &[("hello", &s)]);
    f.add("web03", &["web"], &[("hello", &s)]);
    f.add("db1", &["db", "eu"], &[("hello", &s)]);
    f.start_all();
    let config = f.path("config");
    std::fs::create_dir_all(&config).unwrap();
    let run = |spec: &str| muster(&f, &config, &["run", spec, "--output", "json", "--", "hello"]);

    // The operator is applied; nothing named "web01!web02" is dialled.
    let out = run("web[01-03]!web02");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(targets_of(&out), ["web01", "web03"]);
    let out = run("web[01-03/2]");
    assert_eq!(targets_of(&out), ["web01", "web03"]);
    let out = run("@web&@eu");
    assert_eq!((code(&out), targets_of(&out)), (0, vec!["web01".to_string()]), "{}", stderr(&out));
    let out = run("@all!@web");
    assert_eq!(targets_of(&out), ["db1"]);
    let out = run("@web ^ @eu");
    assert_eq!(targets_of(&out), ["db1", "web02", "web03"]);
    // `all` alone: every registered agent; in a list it is @all.
    let out = run("all");
    assert_eq!(targets_of(&out), ["db1", "web01", "web02", "web03"]);
    let out = run("all,ghost");
    assert_eq!(code(&out), 2, "a named host that is not registered is missing: {}", stderr(&out));
    assert_eq!(targets_of(&out), ["db1", "ghost", "web01", "web02", "web03"]);
    let out = run("all!web0[1-2]");
    assert_eq!(targets_of(&out), ["db1", "web03"]);

    // groups.toml adds named groups; a file group wins over a tag.
    std::fs::write(config.join("groups.toml"), "pair = \"web[01-02]\"\ndb = \"web03\"\n").unwrap();
    let out = run("@pair,@db");
    assert_eq!(targets_of(&out), ["web01", "web02", "web03"]);

    // Errors name the piece at fault; nothing runs.
    for (spec, want) in [
        ("@nope", "bad TARGETS: unknown group @nope; known groups: @all @db @eu @pair @web"),
        ("web[01-03]!", "bad TARGETS: missing node set after '!' in \"web[01-03]!\""),
        ("web[9-010]", "has bounds padded differently"),
        ("web[1-4/0]", "steps are written a-b/step"),
    ] {
        let out = run(spec);
        assert_eq!(code(&out), 1, "{spec}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{spec}: {}", stderr(&out));
        assert!(targets_of(&out).is_empty(), "{spec}");
    }
    // A broken groups file is reported when a group needs it, with its line.
    std::fs::write(config.join("groups.toml"), "ok = \"web01\"\npair = \"web[01-2]\"\n").unwrap();
    let out = run("@eu");
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("groups.toml:2: group pair: range \"01-2\""), "{}", stderr(&out));
    let out = run("all!db1");
    assert_eq!((code(&out), targets_of(&out).len()), (0, 3), "{}", stderr(&out));
}

#[test]
fn nodeset_command_shows_a_spec() {
    let mut f = Fleet::new();
    f.add("r1n01", &["rack1"], &[]);
    f.add("r1n02", &["rack1"], &[]);
    f.add("r2n01", &["rack2"], &[]);
    f.add("r2n02", &["rack2"], &[]);
    let config = f.path("config");
    std::fs::create_dir_all(&config).unwrap();
    let ok = |args: &[&str]| {
        let o = muster(&f, &config, args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    assert_eq!(ok(&["nodeset", "-e", "n[1-10/4]"]), "n1\nn5\nn9\n");
    assert_eq!(ok(&["nodeset", "-f", "n1,n03,n05,n2"]), "n[1-2,03,05]\n");
    assert_eq!(ok(&["nodeset", "r[1-2]n[01-03]"]), "r[1-2]n[01-03]\n");
    assert_eq!(ok(&["nodeset", "-c", "r[1-2]n[01-03]!r2n02"]), "5\n");
    assert_eq!(ok(&["nodeset", "-f", "artcore[3-999]-ib0"]), "artcore[3-999]-ib0\n");
    assert_eq!(ok(&["nodeset", "all"]), "r[1-2]n[01-02]\n");
    assert_eq!(ok(&["nodeset", "@rack1,@rack2!r2n01"]), "r1n[01-02],r2n02\n");
    assert_eq!(ok(&["nodeset", "-c", "all,x1"]), "5\n");
    assert_eq!(ok(&["nodeset", "-e", "a!a"]), "");

    // Over SSH the groups are ssh.toml's hosts and tags, plus groups.toml.
    std::fs::write(config.join("ssh.toml"), "[hosts.h1]\ntags = [\"web\"]\n[hosts.h2]\n").unwrap();
    std::fs::write(config.join("groups.toml"), "lab = \"lab[1-3]\"\n").unwrap();
    assert_eq!(ok(&["nodeset", "--via", "ssh", "all"]), "h[1-2]\n");
    assert_eq!(ok(&["nodeset", "--via", "ssh", "@web,@lab"]), "h1,lab[1-3]\n");
    assert_eq!(ok(&["nodeset", "--via", "hub", "-c", "@lab"]), "3\n");

    for (args, want) in [
        (vec!["nodeset", "n[1-3"], "muster: unclosed '[' in \"n[1-3\"; write ranges as name[01-20]"),
        (vec!["nodeset", "--via", "hub", "all"], "found when a run starts"),
        (vec!["nodeset", "@rack3"], "muster: unknown group @rack3; known groups: @all @lab @rack1 @rack2"),
        (vec!["nodeset", "n[1, 5] x"], "whitespace inside node name \"n[1, 5] x\""),
        (vec!["nodeset", "-e", "-c", "n1"], "cannot be used with"),
    ] {
        let o = muster(&f, &config, &args);
        assert_eq!(code(&o), 1, "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn over_the_hub_all_and_tags_say_how_agents_are_found() {
    let f = Fleet::new();
    let out = f.muster(&["nodeset", "--via", "hub", "all"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("found when a run starts"), "{}", stderr(&out));
    let out = f.muster(&["nodeset", "--via", "hub", "@web"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("select them with --tags"), "{}", stderr(&out));
    let out = f.muster(&["nodeset", "--via", "hub", "web[1-3]!web2"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "web[1,3]");
}
