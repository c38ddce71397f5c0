//! Every "Examples:" line of every `--help` works as written. The lines
//! are read from the real binary's help; each runs through `sh -c` in a
//! scratch directory, against a real test fleet (agents web1, web2 and
//! db1 that allow an action `uptime`) named by $MUSTER_STATE, the way an
//! operator would type it. Two rewrites stand in for a real host:
//! `/etc/muster` and `/srv/` point into the scratch directory, and the
//! word `ID` becomes the id of a run started with `--async`. Commands
//! that serve until stopped are started, must become ready (listen, or
//! open their socket), and are then stopped by pid. The few that need
//! what a test host cannot give (a fixed well-known port, a terminal, an
//! ns8 module, a dispatcher on another host) are listed in `NOT_RUN` with
//! the reason, and the test fails if such a line disappears. Lines with
//! `--via hub` run against a private Redis hub whose station state is
//! $MUSTER_STATE.

mod common;
#[path = "common/hub.rs"]
mod hubfleet;
#[path = "common/redis.rs"]
mod redis;
use common::*;
use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Every subcommand path: [], ["run"], ["agent", "serve"], ...
fn paths(cmd: &clap::Command, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(prefix.clone());
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let mut p = prefix.clone();
        p.push(sub.get_name().to_string());
        paths(sub, p, out);
    }
}

/// The command lines of the Examples block in `muster PATH --help`:
/// every line but the `#` comments.
fn examples(path: &[String]) -> Vec<String> {
    let out = Command::new(BIN).args(path).arg("--help").output().unwrap();
    assert!(out.status.success(), "muster {} --help: {}", path.join(" "), stderr(&out));
    let text = stdout(&out);
    let (_, block) = text.split_once("\nExamples:\n").unwrap_or_else(|| {
        panic!(
            "`muster {} --help` has no Examples block (add `#[command(after_help = help::NAME)]` and the \
                 block in src/cli/help.rs):\n{text}",
            path.join(" ")
        )
    });
    let lines: Vec<String> =
        block.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect();
    for l in &lines {
        assert!(l.contains("muster "), "`muster {} --help`: example {l:?} does not run muster", path.join(" "));
    }
    lines
}

/// The example from its `muster` on (after `VAR=value` or `cd DIR &&`):
/// what the line is classified by.
fn core(line: &str) -> &str {
    &line[line.find("muster ").unwrap()..]
}

/// Lines that are not run here (by prefix), and why.
const NOT_RUN: &[(&str, &str)] = &[
    ("muster agent pair ", "needs a dispatcher at dispatch1.example.com (tests/pairing.rs pairs for real)"),
    ("muster pair listen", "binds the fixed port 7444 (tests/pairing.rs listens on free ports)"),
    ("muster pair approve ", "needs a pending pairing request (tests/pairing.rs)"),
    ("muster pair deny ", "needs a pending pairing request (tests/pairing.rs)"),
    ("muster daemon --listen ", "binds the fixed port 9007 (tests/daemon.rs listens on free ports)"),
    ("muster api --", "binds the fixed port 7445 (tests/api.rs serves on free ports)"),
    ("muster console", "interactive: needs a terminal (tests/console.rs drives it in tmux)"),
    ("muster --state-dir /var/lib/muster-staging console", "interactive: needs a terminal (tests/console.rs)"),
    ("muster hub swarm ", "needs a Redis hub (tests/hub_basic.rs)"),
    ("muster ns8-agent ", "needs Redis and an ns8 module (tests/ns8_*.rs)"),
];

fn not_run(line: &str) -> Option<&'static str> {
    NOT_RUN.iter().find(|(p, _)| core(line).starts_with(p)).map(|(_, why)| *why)
}

/// Lines run against a state dir of their own (they create one).
fn fresh_state(line: &str) -> bool {
    core(line).starts_with("muster demo") || core(line).starts_with("muster ca init")
}

/// Lines that change the fleet, run last in this order (by prefix).
const MUTATING: &[&str] = &[
    "muster agents edit web1 --addr",
    "muster ca issue-agent",
    "muster agents add",
    "muster maintain",
    "muster rotate-cert",
    "muster revoke",
    "muster agents remove",
];

/// Lines that serve until stopped, and where they are ready.
enum Ready {
    Listens(SocketAddr),
    Socket(PathBuf),
}

struct Scene {
    fleet: Fleet,
    work: PathBuf,
    spare: SocketAddr,
    request: String,
}

impl Scene {
    fn rewrite(&self, line: &str) -> String {
        let root = self.fleet.tmp.path().display().to_string();
        let words: Vec<String> = line
            .replace("/etc/muster", &format!("{root}/etc/muster"))
            .replace("/srv/", &format!("{root}/srv/"))
            .split(' ')
            .map(|w| if w == "ID" { self.request.clone() } else { w.to_string() })
            .collect();
        words.join(" ")
    }

    fn command(&self, line: &str, state: &Path) -> Command {
        let bindir = Path::new(BIN).parent().unwrap();
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(self.rewrite(line))
            .current_dir(&self.work)
            .env("MUSTER_STATE", state)
            .env("HOME", self.fleet.path("home"))
            .env("PATH", format!("{}:{}", bindir.display(), std::env::var("PATH").unwrap_or_default()))
            .stdin(Stdio::null());
        c
    }

    fn ready(&self, line: &str) -> Option<Ready> {
        if core(line).starts_with("muster agent serve ") {
            Some(Ready::Listens(self.spare))
        } else if core(line) == "muster daemon" {
            Some(Ready::Socket(self.fleet.state.join("daemon").join("daemon.sock")))
        } else {
            None
        }
    }
}

fn run_once(scene: &Scene, line: &str, state: &Path) {
    eprintln!("example: {line}");
    let out = scene.command(line, state).output().unwrap();
    assert_eq!(
        code(&out),
        0,
        "example `{line}` (run as `{}`) failed:\nstdout:\n{}\nstderr:\n{}",
        scene.rewrite(line),
        stdout(&out),
        stderr(&out)
    );
}

fn serve(scene: &Scene, line: &str, ready: Ready) {
    eprintln!("example (serves): {line}");
    let log = scene.fleet.path("server.log");
    // The example runs under `sh -c`, which may fork it rather than exec
    // it: give it a process group of its own and stop the whole group.
    let mut child = std::os::unix::process::CommandExt::process_group(
        scene.command(line, &scene.fleet.state).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()),
        0,
    )
    .spawn()
    .unwrap();
    let group = child.id() as i32;
    let mut ended = None;
    wait_for(Duration::from_secs(20), &format!("`{line}` to be ready"), || {
        if let Ok(Some(s)) = child.try_wait() {
            ended = Some(s);
            return true;
        }
        match &ready {
            Ready::Listens(a) => TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok(),
            Ready::Socket(p) => std::os::unix::net::UnixStream::connect(p).is_ok(),
        }
    });
    // SAFETY: signalling the process group this test created.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let _ = child.wait();
    assert!(
        ended.is_none(),
        "example `{line}` ended ({:?}) instead of serving:\n{}",
        ended,
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[test]
fn every_example_in_help_works_as_written() {
    let mut all = Vec::new();
    paths(&muster::cli::command(), Vec::new(), &mut all);
    let mut lines = Vec::new();
    let mut seen = BTreeSet::new();
    for p in &all {
        let ex = examples(p);
        assert!(
            (2..=4).contains(&ex.len()),
            "`muster {} --help` shows {} example commands, not 2 to 4: give the subcommand \
             `#[command(after_help = help::NAME)]` with an Examples block in src/cli/help.rs",
            p.join(" "),
            ex.len()
        );
        for l in ex {
            if seen.insert(l.clone()) {
                lines.push(l);
            }
        }
    }

    // The fleet: web1, web2 (tagged web), db1 (tagged db), all allowing
    // `uptime`, with files allowed under <tmp>/srv.
    let mut fleet = Fleet::new();
    let up = fleet.script("uptime", "echo up");
    for (name, tag) in [("web1", "web"), ("web2", "web"), ("db1", "db")] {
        let i = fleet.add(name, &[tag], &[("uptime", &up)]);
        let srv = fleet.path("srv");
        fleet.configure(i, &format!("file_roots = [{:?}]", srv.display().to_string()));
    }
    fleet.start_all();
    let work = fleet.path("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(fleet.path("srv/app")).unwrap();
    std::fs::create_dir_all(fleet.path("home")).unwrap();
    std::fs::write(work.join("app.conf"), "listen = 8080\n").unwrap();

    // /etc/muster: an agent of another CA, not registered here (self-check
    // and serve only read its own files).
    let other = fleet.path("other-ca");
    let spare = free_addr();
    let ok = |o: std::process::Output, what: &str| assert!(o.status.success(), "{what}: {}", stderr(&o));
    let m = |state: &Path, args: &[&str]| Command::new(BIN).arg("--state-dir").arg(state).args(args).output().unwrap();
    ok(m(&other, &["ca", "init", "--id", "other"]), "ca init (other)");
    let etc = fleet.path("etc/muster").display().to_string();
    ok(m(&other, &["ca", "issue-agent", "spare", "--addr", &spare.to_string(), "--out", &etc]), "issue spare");
    // ./web5/agent.crt: issued by this fleet's CA, its entry then removed,
    // for `muster agents add`.
    let web5 = work.join("web5").display().to_string();
    ok(fleet.muster(&["ca", "issue-agent", "web5", "--addr", "127.0.0.1:9", "--out", &web5]), "issue web5");
    ok(fleet.muster(&["agents", "remove", "web5"]), "remove web5");
    // The request ID stands for.
    let started = fleet.run("all", &["--async"], &["uptime"]);
    ok(started.clone(), "run --async");
    let said = stdout(&started);
    let request = said
        .lines()
        .find_map(|l| l.strip_prefix("request "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no request id in {said:?}"))
        .trim_end_matches(':')
        .to_string();
    let scene = Scene { fleet, work, spare, request };

    let mut skipped = Vec::new();
    let mut hub = Vec::new();
    let mut fresh = Vec::new();
    let mut plain = Vec::new();
    let mut servers = Vec::new();
    let mut late = vec![Vec::new(); MUTATING.len()];
    for l in lines {
        if let Some(why) = not_run(&l) {
            skipped.push((l, why));
        } else if l.contains("--via hub") {
            hub.push(l);
        } else if fresh_state(&l) {
            fresh.push(l);
        } else if let Some(r) = scene.ready(&l) {
            servers.push((l, r));
        } else if let Some(i) = MUTATING.iter().position(|p| core(&l).starts_with(p)) {
            late[i].push(l);
        } else {
            plain.push(l);
        }
    }
    // Every exemption still matches a line (none is stale).
    for (p, _) in NOT_RUN {
        assert!(skipped.iter().any(|(l, _)| core(l).starts_with(p)), "no example starts with {p:?} any more");
    }

    for (n, l) in fresh.iter().enumerate() {
        let state = scene.fleet.path(&format!("fresh-{n}"));
        run_once(&scene, l, &state);
    }
    for l in &plain {
        run_once(&scene, l, &scene.fleet.state);
    }
    for (l, r) in servers {
        serve(&scene, &l, r);
    }
    for l in late.iter().flatten() {
        run_once(&scene, l, &scene.fleet.state);
    }
    assert!(!hub.is_empty(), "no example uses the hub");
    let mut h = hubfleet::HubFleet::new();
    h.add("web1", &["web"], &[], "");
    h.start_all();
    for l in &hub {
        run_once(&scene, l, &h.state);
    }
}

#[test]
fn every_option_and_argument_is_described() {
    let mut all = Vec::new();
    let root = muster::cli::command();
    paths(&root, Vec::new(), &mut all);
    let mut bare = Vec::new();
    for p in &all {
        let mut at = &root;
        for w in p {
            at = at.find_subcommand(w).unwrap();
        }
        for arg in at.get_arguments().filter(|a| !a.is_hide_set()) {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let said = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            if said.trim().len() < 10 {
                bare.push(format!("muster {} {id}: {said:?}", p.join(" ")));
            }
        }
    }
    assert!(bare.is_empty(), "options without a description:\n{}", bare.join("\n"));
}
