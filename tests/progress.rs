//! The status line and end lines of a live run on a terminal: they appear
//! under a pty (`script`), coloured unless NO_COLOR is set, and never
//! with --quiet or when stdout is a pipe.

mod common;
use common::*;
use std::process::{Command, Output, Stdio};

/// web1 and web2 succeed, db1 fails with exit 3; each says one line.
fn fleet() -> Fleet {
    let mut f = Fleet::new();
    let act = f.script("act", "echo \"hello from $MUSTER_AGENT\"\n[ \"$MUSTER_AGENT\" = db1 ] && exit 3\nexit 0");
    for n in ["web1", "web2", "db1"] {
        f.add(n, &[], &[("act", &act)]);
    }
    f.start_all();
    f
}

/// `muster run all [extra] -- act` on a pseudo-terminal; what the
/// terminal received.
fn on_pty(f: &Fleet, extra: &str, no_color: bool) -> Output {
    let line = format!("{BIN} --state-dir {} run all {extra} -- act", f.state.display());
    let mut c = Command::new("script");
    c.args(["-q", "-e", "-c", &line, "/dev/null"]).env("SHELL", "/bin/sh").env("TERM", "xterm").stdin(Stdio::null());
    if no_color {
        c.env("NO_COLOR", "1");
    } else {
        c.env_remove("NO_COLOR");
    }
    c.output().unwrap_or_else(|e| panic!("cannot run script ({e}): install bsdutils"))
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";

#[test]
fn a_terminal_gets_a_status_line_and_an_end_line_per_target() {
    let f = fleet();
    let out = on_pty(&f, "", false);
    let tty = stdout(&out);
    assert_eq!(code(&out), 4, "{tty}");
    assert!(tty.contains("3 pending"), "no status line before the start:\n{tty:?}");
    assert!(tty.contains("3/3 done"), "no status line at the end:\n{tty:?}");
    assert!(tty.contains("running"), "{tty:?}");
    for n in ["web1", "web2"] {
        assert!(tty.contains(&format!("{n}: hello from {n}")), "{tty:?}");
        assert!(tty.contains(&format!("{n}: {GREEN}succeeded\x1b[0m in ")), "no end line for {n}:\n{tty:?}");
    }
    assert!(tty.contains(&format!("db1: {RED}failed(exit 3)\x1b[0m in ")), "{tty:?}");
    assert!(tty.contains("1 failed"), "{tty:?}");

    let plain = on_pty(&f, "", true);
    let tty = stdout(&plain);
    assert!(tty.contains("3/3 done"), "{tty:?}");
    assert!(tty.contains("web1: succeeded in "), "{tty:?}");
    assert!(tty.contains("db1: failed(exit 3) in "), "{tty:?}");
    assert!(
        !tty.contains(RED) && !tty.contains(GREEN) && !tty.contains("\x1b[36m"),
        "colour despite NO_COLOR:\n{tty:?}"
    );
}

#[test]
fn quiet_or_piped_output_has_no_progress() {
    let f = fleet();
    for (how, text) in [
        ("--quiet on a terminal", stdout(&on_pty(&f, "--quiet", false))),
        ("-q on a terminal", stdout(&on_pty(&f, "-q --output live", false))),
    ] {
        assert!(text.contains("web1: hello from web1"), "{how}: {text:?}");
        assert!(text.contains("db1: failed(exit 3)"), "{how}: {text:?}");
        assert!(!text.contains("pending") && !text.contains("succeeded in"), "{how} shows progress:\n{text:?}");
    }
    let piped = f.run("all", &["--output", "live"], &["act"]);
    let (o, e) = (stdout(&piped), stderr(&piped));
    assert_eq!(code(&piped), 4);
    let mut lines: Vec<&str> = o.lines().collect();
    lines.sort();
    assert_eq!(lines, ["db1: hello from db1", "web1: hello from web1", "web2: hello from web2"]);
    assert!(e.starts_with("db1: failed(exit 3)\n"), "{e}");
    assert!(!e.contains("pending") && !e.contains("succeeded in") && !e.contains('\x1b'), "{e:?}");
}
