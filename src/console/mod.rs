//! `muster console` (seed 003): a readline console (rustyline: history,
//! completion of commands, hosts and tags) that connects to the local
//! daemon — starting one when none answers — and runs commands on a
//! selection of hosts through it. Commands: `select NODESET`, `tags a,b`,
//! `via ssh|tls`, `output live|grouped|json`, a command line (or `run
//! CMD`) runs in the foreground, `bg CMD` as a job whose result is printed
//! when it ends (jobs end in any order), `jobs`, `kill N` (cancel job N),
//! `ping`, `info`, `put LOCAL REMOTE`, `get REMOTE DIR`, `status` (the
//! daemon's links), `help`, `quit`. With `ask_identity = true` in
//! `console.toml` a shared account asks who is typing, and every request
//! and the daemon's log carry that name.

pub mod complete;
mod jobs;

use crate::dispatch::outcome::{self, Outcome};
use crate::dispatch::output::{spawn_printer, Mode};
use crate::dispatch::plan::{Plan, Request};
use crate::dispatch::DispatcherConfig;
use crate::protocol::daemon::Via;
use crate::transport::carrier::{Carrier, Target};
use crate::transport::daemon::DaemonClient;
use complete::ConsoleHelper;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::Editor;
use serde::Deserialize;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// `console.toml` in the config directory.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Ask who is typing before the first prompt (shared accounts).
    #[serde(default)]
    pub ask_identity: bool,
    /// The carrier to start with: `ssh` or `tls`.
    pub via: Option<String>,
}

/// Why the console cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("{0}")]
    Setup(String),
    #[error("no daemon answers on {} and none could be started: {why}", .socket.display())]
    NoDaemon { socket: PathBuf, why: String },
    #[error("the terminal: {0}")]
    Readline(#[from] ReadlineError),
}

/// Targets, and names that cannot be reached with why.
type Selected = (Vec<Target>, Vec<(String, outcome::Reason)>);

/// The console's state between commands.
struct Console {
    state: PathBuf,
    cfg: DispatcherConfig,
    rt: &'static Runtime,
    user: String,
    select: String,
    tags: Vec<String>,
    via: Via,
    mode: Mode,
    clients: Vec<(Via, Arc<DaemonClient>)>,
    jobs: jobs::Jobs,
}

/// Connect to the daemon of `state`, starting one when none answers.
fn daemon(state: &Path, rt: &Runtime, user: &str, via: Via) -> Result<DaemonClient, ConsoleError> {
    let socket = crate::daemon::socket_path(state);
    let try_connect = || {
        rt.block_on(async {
            let s = tokio::net::UnixStream::connect(&socket).await.ok()?;
            DaemonClient::connect(s, "muster console", user, via, true).await.ok()
        })
    };
    if let Some(c) = try_connect() {
        return Ok(c);
    }
    let exe =
        std::env::current_exe().map_err(|e| ConsoleError::NoDaemon { socket: socket.clone(), why: e.to_string() })?;
    let child = std::process::Command::new(exe)
        .arg("--state-dir")
        .arg(state)
        .arg("daemon")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| ConsoleError::NoDaemon { socket: socket.clone(), why: e.to_string() })?;
    println!("started a daemon (pid {}) on {}", child.id(), socket.display());
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if let Some(c) = try_connect() {
            return Ok(c);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(ConsoleError::NoDaemon { socket, why: "it did not answer within 10s".into() })
}

/// Host names and tags for completion: ssh.toml and the registry.
fn names(state: &Path) -> (Vec<String>, Vec<String>) {
    let mut hosts = Vec::new();
    let mut tags = Vec::new();
    if let Ok(c) = crate::transport::ssh::config::SshConfig::load(&crate::state::config_dir()) {
        for (n, h) in &c.hosts {
            hosts.push(n.clone());
            tags.extend(h.tags.iter().cloned());
        }
    }
    for e in crate::dispatch::registry::load_all(state).0 {
        tags.extend(e.tags.iter().cloned());
        hosts.push(e.name);
    }
    hosts.sort();
    hosts.dedup();
    tags.sort();
    tags.dedup();
    (hosts, tags)
}

const HELP: &str = "\
select NODESET      choose hosts (node sets: web[01-20],db1, @tag, a!b; `all`)
tags a,b            keep hosts with every tag (no argument: any)
via ssh|tls         reach hosts over SSH (command lines) or mTLS (actions)
output MODE         live, grouped or json
CMD... | run CMD    run on the selection now (over tls the first word is the action)
bg CMD              run as a job; its result is printed when it ends
jobs                the jobs and where they stand
kill N              cancel job N (TERM, then KILL after the agent's grace)
ping | info         ask every selected agent
put LOCAL REMOTE    copy a file to the selection
get REMOTE DIR      copy a file from the selection into DIR/<host>/
status              the sessions the daemon holds
help | quit";

impl Console {
    fn client(&mut self) -> Result<Arc<DaemonClient>, ConsoleError> {
        if let Some((_, c)) = self.clients.iter().find(|(v, _)| *v == self.via) {
            return Ok(c.clone());
        }
        let c = Arc::new(daemon(&self.state, self.rt, &self.user, self.via)?);
        self.clients.push((self.via, c.clone()));
        Ok(c)
    }

    fn prompt(&self) -> String {
        let tags = if self.tags.is_empty() { String::new() } else { format!(" tags {}", self.tags.join(",")) };
        let via = if self.via == Via::Ssh { "ssh" } else { "tls" };
        format!("muster [{}{tags} via {via}]> ", self.select)
    }

    /// The selection as targets for the current carrier, and the names
    /// that cannot be reached.
    fn targets(&self) -> Result<Selected, String> {
        match self.via {
            Via::Ssh => {
                let c = crate::transport::ssh::config::SshConfig::load(&crate::state::config_dir())
                    .map_err(|e| e.to_string())?;
                crate::cli::ssh_targets(&c, &self.select, &self.tags)
                    .map(|t| (t, Vec::new()))
                    .map_err(|e| e.to_string())
            }
            Via::Tls => {
                let r = crate::dispatch::resolve(&self.state, &self.select, &self.tags).map_err(|e| e.to_string())?;
                Ok((r.targets, r.missing))
            }
        }
    }

    /// A plan for `words` on the selection.
    fn plan(&self, words: &[String]) -> Result<Plan, String> {
        let (action, args) = match (self.via, words) {
            (_, []) => return Err("what should run? type a command".into()),
            (Via::Ssh, w) if !matches!(w[0].as_str(), "ping" | "info") => ("shell".to_string(), vec![w.join(" ")]),
            (_, [first, rest @ ..]) => (first.clone(), rest.to_vec()),
        };
        let (targets, missing) = self.targets()?;
        if targets.is_empty() && missing.is_empty() {
            return Err(format!("no host matches {:?}", self.select));
        }
        Ok(Plan {
            request: Request {
                request_id: crate::hexstr::random(8),
                action,
                args,
                username: self.user.clone(),
                token: None,
                timeout: Duration::from_secs(self.cfg.default_timeout),
                detach: false,
            },
            dispatcher: format!("console:{}", self.user),
            via: format!("{:?}", self.via).to_lowercase(),
            targets,
            missing,
            tags: Vec::new(),
            fanout: self.cfg.fanout,
            max_errors: None,
            lock_dir: None,
            hook: self.cfg.hook.clone().map(|path| crate::dispatch::plan::HookSpec {
                path,
                timeout: Duration::from_secs(self.cfg.hook_timeout),
            }),
            liveness: Default::default(),
            broadcast: Default::default(),
        })
    }

    /// Run in the foreground; Ctrl-C cancels.
    fn run(&mut self, words: &[String]) -> Result<(), String> {
        let plan = self.plan(words)?;
        let audited = plan.clone();
        let carrier = Carrier::Dial(self.client().map_err(|e| e.to_string())?);
        let mode = self.mode;
        let t0 = Instant::now();
        let out: Result<Outcome, _> = self.rt.block_on(async move {
            let (tx, printer) = spawn_printer(mode);
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let ctrl_c = tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    let _ = stop_tx.send(true);
                }
            });
            let r = crate::dispatch::run(&carrier, plan, tx, stop_rx).await;
            ctrl_c.abort();
            let _ = printer.await;
            r
        });
        let out = out.map_err(|e| e.to_string())?;
        print!("{}", outcome::summary(&out.results, t0.elapsed()));
        let from = crate::audit::local_origin();
        let entry = crate::audit::AuditEntry::of(&audited, &out, "console", &from, t0.elapsed().as_secs_f64());
        if let Err(e) = crate::audit::append(&self.state, &entry) {
            eprintln!("muster: {e}");
        }
        Ok(())
    }

    fn files(&mut self, what: crate::dispatch::files::Copy) -> Result<(), String> {
        let (targets, _) = self.targets()?;
        let dialer = self.client().map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let limit = Duration::from_secs(self.cfg.connect_timeout.max(30));
        let results = self.rt.block_on(crate::dispatch::files::copy_all(dialer, targets, what, self.cfg.fanout, limit));
        for r in &results {
            println!("{}: {}", r.name, r.state);
        }
        print!("{}", outcome::summary(&results, t0.elapsed()));
        Ok(())
    }

    /// Do one line; `false` to quit.
    fn line(&mut self, line: &str, printer: &jobs::Printer) -> bool {
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        let Some(first) = words.first() else { return true };
        let rest = &words[1..];
        let result = match first.as_str() {
            "quit" | "exit" => return false,
            "help" | "?" => {
                println!("{HELP}");
                Ok(())
            }
            "select" | "hosts" => match rest {
                [spec] => {
                    self.select = spec.clone();
                    self.targets()
                        .map(|(t, m)| println!("{} selected", crate::words::plural(t.len() + m.len(), "host")))
                }
                _ => Err("usage: select NODESET".into()),
            },
            "tags" => {
                self.tags =
                    rest.iter().flat_map(|t| t.split(',')).filter(|t| !t.is_empty()).map(str::to_string).collect();
                Ok(())
            }
            "via" => match rest.first().map(String::as_str) {
                Some("ssh") => {
                    self.via = Via::Ssh;
                    Ok(())
                }
                Some("tls") => {
                    self.via = Via::Tls;
                    Ok(())
                }
                _ => Err("usage: via ssh|tls".into()),
            },
            "output" => {
                let mode = match rest.first().map(String::as_str) {
                    Some("live") => Some(Mode::Live),
                    Some("grouped") => Some(Mode::Grouped),
                    Some("json") => Some(Mode::Json),
                    _ => None,
                };
                match mode {
                    Some(m) => {
                        self.mode = m;
                        Ok(())
                    }
                    None => Err("usage: output live|grouped|json".into()),
                }
            }
            "run" => self.run(rest),
            "ping" | "info" => self.run(&words[..1]),
            "bg" => match self.plan(rest) {
                Ok(plan) => match self.client() {
                    Ok(c) => {
                        self.jobs.start(self.rt, Carrier::Dial(c), plan, rest.join(" "), printer.clone(), &self.state);
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e),
            },
            "jobs" => {
                self.jobs.list();
                Ok(())
            }
            "kill" => match rest.first().and_then(|n| n.parse::<u32>().ok()) {
                Some(n) => self.jobs.cancel(n),
                None => Err("usage: kill JOB-NUMBER (see `jobs`)".into()),
            },
            "put" => match rest {
                [l, r] => {
                    self.files(crate::dispatch::files::Copy::Put { local: l.into(), remote: r.clone(), mode: None })
                }
                _ => Err("usage: put LOCAL REMOTE".into()),
            },
            "get" => match rest {
                [r, d] => self.files(crate::dispatch::files::Copy::Get { remote: r.clone(), dir: d.into() }),
                _ => Err("usage: get REMOTE LOCALDIR".into()),
            },
            "status" => match self.client().ok().and_then(|c| self.rt.block_on(c.status())) {
                Some(links) if links.is_empty() => {
                    println!("the daemon holds no session yet");
                    Ok(())
                }
                Some(links) => {
                    for l in links {
                        println!(
                            "{} ({:?}): {} in flight, silent {} ms, {} restarts",
                            l.name, l.via, l.inflight, l.silent_ms, l.restarts
                        );
                    }
                    Ok(())
                }
                None => Err("the daemon did not answer".into()),
            },
            _ => self.run(&words),
        };
        if let Err(e) = result {
            println!("{e}");
        }
        true
    }
}

/// Run the console until `quit` or end of input.
pub fn main(state: &Path) -> Result<(), ConsoleError> {
    let cfg = DispatcherConfig::load(state).map_err(|e| ConsoleError::Setup(e.to_string()))?;
    let cc: ConsoleConfig = match std::fs::read_to_string(crate::state::config_dir().join("console.toml")) {
        Ok(t) => crate::settings::from_toml(&t, "console.toml").map_err(|e| ConsoleError::Setup(e.to_string()))?,
        Err(_) => ConsoleConfig::default(),
    };
    let rt = crate::cli::runtime().map_err(|e| ConsoleError::Setup(e.to_string()))?;
    let (hosts, tags) = names(state);
    let mut rl: Editor<ConsoleHelper, DefaultHistory> = Editor::new()?;
    rl.set_helper(Some(ConsoleHelper { hosts, tags }));
    let history = state.join("console_history");
    let _ = rl.load_history(&history);
    let mut user = crate::audit::login_name();
    if cc.ask_identity {
        loop {
            let who = rl.readline("who are you? ")?;
            if !who.trim().is_empty() {
                user = who.trim().to_string();
                break;
            }
        }
    }
    let via = match cc.via.as_deref() {
        Some("tls") => Via::Tls,
        Some(_) => Via::Ssh,
        None if crate::dispatch::registry::load_all(state).0.is_empty() => Via::Ssh,
        None => Via::Tls,
    };
    let printer = jobs::Printer::new(&mut rl)?;
    let mut c = Console {
        state: state.to_path_buf(),
        cfg,
        rt,
        user,
        select: "all".into(),
        tags: Vec::new(),
        via,
        mode: Mode::Grouped,
        clients: Vec::new(),
        jobs: jobs::Jobs::default(),
    };
    let first = c.client()?;
    println!("connected to the daemon {} (pid {}); type `help`", first.daemon, first.pid);
    loop {
        match rl.readline(&c.prompt()) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = rl.add_history_entry(line.as_str());
                }
                if !c.line(&line, &printer) {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let _ = rl.save_history(&history);
    Ok(())
}
