//! The command line: clap definitions and the dispatch to each role. Each
//! handler returns the process exit status; errors become one clear line on
//! stderr and exit 1.

mod admin;
mod api;
mod daemon;
mod daemon_tls;
mod files;
mod hub;
mod nodeset;
mod pair;
mod requests;
mod run;
mod ssh;
mod trust;
pub use run::{dispatch_plan, request_id, runtime, tls_carrier};
pub use ssh::targets as ssh_targets;

use crate::dispatch::output::Mode;
use crate::lifecycle::rotation;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The longest duration a flag accepts: about 30 years, far beyond any run
/// and far below where deadline arithmetic could overflow.
const MAX_SECONDS: f64 = 1e9;

/// A number of seconds, 0 or more (fractions allowed), at most 1e9.
pub fn seconds(s: &str) -> Result<Duration, String> {
    let v = number_of_seconds(s)?;
    if v < 0.0 {
        return Err(format!("{s:?} must be 0 or more seconds"));
    }
    if v > MAX_SECONDS {
        return Err(format!("{s:?} seconds is too long; the most is {MAX_SECONDS:e} (about 30 years)"));
    }
    Duration::try_from_secs_f64(v).map_err(|e| format!("{s:?}: {e}"))
}

/// A finite number of seconds, any sign.
fn number_of_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number of seconds (e.g. 30 or 0.5)"))?;
    if !v.is_finite() {
        return Err(format!("{s:?} is not a finite number of seconds (e.g. 30 or 0.5)"));
    }
    Ok(v)
}

/// A hub channel or identity (the rule of `settings::check_label`).
pub fn label(s: &str) -> Result<String, String> {
    crate::settings::check_label(s).map(|_| s.to_string())
}

/// A count of 1 or more (`--fanout`, `--max-errors`, `--expect`): 0
/// would run nothing or stop before starting.
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<i128>() {
        Ok(n) if n >= 1 => usize::try_from(n).map_err(|_| format!("{s:?} is too large")),
        Ok(_) => Err(format!("{s:?} must be 1 or more")),
        Err(_) => Err(format!("{s:?} is not a whole number (e.g. 10)")),
    }
}

/// A number of days, 0 or more (fractions allowed), at most 3650.
pub fn days(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number of days (e.g. 30 or 0.5)"))?;
    if !(v.is_finite() && (0.0..=3650.0).contains(&v)) {
        return Err(format!("{s:?} must be between 0 and 3650 days"));
    }
    Ok(v)
}

/// A number of seconds above 0, at most 1e9.
pub fn positive_seconds(s: &str) -> Result<Duration, String> {
    if number_of_seconds(s)? <= 0.0 {
        return Err(format!("{s:?} must be more than 0 seconds"));
    }
    let d = seconds(s)?;
    if d.is_zero() {
        return Err(format!("{s:?} must be more than 0 seconds"));
    }
    Ok(d)
}

#[derive(Parser, Debug)]
#[command(name = "muster", version, about = "Run named actions on many hosts at once, securely")]
pub struct Cli {
    /// Dispatcher state directory: CA, identity, agent registry, run records (default: $MUSTER_STATE;
    /// /var/lib/muster as root; else $XDG_STATE_HOME/muster or ~/.local/state/muster). `agent`
    /// commands do not use it: they read their --config
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// A throwaway CA and N local agents, one sample run across them, then everything removed
    Demo {
        /// How many local agents to start
        #[arg(long, default_value_t = 5)]
        agents: u16,
    },
    /// Certificate authority
    #[command(subcommand)]
    Ca(CaCmd),
    /// Run an agent
    #[command(subcommand)]
    Agent(AgentCmd),
    /// Run an action on many agents
    Run(Box<RunArgs>),
    /// Reachability and round-trip time per agent
    Ping {
        /// `all`, or names and node sets: web[01-20],db1
        targets: String,
        /// Keep agents that carry every one of these tags (comma-separated)
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        /// Agents pinged at once (default: fanout in dispatcher.toml, 64)
        #[arg(long, value_parser = at_least_one, allow_negative_numbers = true)]
        fanout: Option<usize>,
    },
    /// The agent registry
    #[command(subcommand)]
    Agents(AgentsCmd),
    /// Redis hub
    #[command(subcommand)]
    Hub(HubCmd),
    /// NethServer ns8-compatible agent on Redis
    #[command(name = "ns8-agent")]
    Ns8Agent(crate::ns8::Ns8Args),
    /// HTTP API and web dashboard (default 127.0.0.1:7445), and its tokens
    Api(api::ApiArgs),
    /// The audit log: every run from the CLI, the API or a console, one line each
    Audit(api::AuditArgs),
    /// Pairing: enrol agents that ask (port 7444) after comparing a 6-digit code
    #[command(subcommand)]
    Pair(pair::PairCmd),
    /// Where an asynchronous run stands: each target's state and output so far
    Status(requests::StatusArgs),
    /// Wait for an asynchronous run to end; exit with its bitmask
    Wait(requests::WaitArgs),
    /// Recent runs of this dispatcher, newest first
    #[command(name = "list-requests")]
    ListRequests {
        /// Print the run records as JSON (an array, newest first)
        #[arg(long)]
        json: bool,
    },
    /// Give this dispatcher a new certificate and push its serial to every agent (old one trusted for an overlap)
    #[command(name = "rotate-cert")]
    RotateCert {
        /// Days the old serial stays trusted (fractions allowed)
        #[arg(long, default_value_t = rotation::DEFAULT_OVERLAP_DAYS, value_name = "DAYS", value_parser = days, allow_negative_numbers = true)]
        overlap_days: f64,
        /// Validity of the new certificate, days
        #[arg(long, default_value_t = crate::pki::DEFAULT_CERT_DAYS, value_name = "DAYS")]
        days: u32,
        /// Rotate even while the previous rotation's overlap is open
        #[arg(long)]
        force: bool,
    },
    /// Housekeeping for a timer: retire old serials, mark stale agents, renew expiring agent certs, prune
    Maintain {
        /// Renew agent certificates that expire within this many days
        #[arg(long, default_value_t = 30, value_name = "DAYS")]
        renew_days: u32,
        /// Validity of renewed certificates, days
        #[arg(long, default_value_t = crate::pki::DEFAULT_CERT_DAYS, value_name = "DAYS")]
        days: u32,
    },
    /// This dispatcher's serial, the rotation state and each agent's serial status
    #[command(name = "serial-status")]
    SerialStatus {
        /// Print as one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Stay resident: keep agent sessions open for consoles and `muster run` (local socket, optional mTLS 9007)
    Daemon(daemon::DaemonArgs),
    /// Interactive console: select hosts, run commands, jobs, files, through the daemon (started if needed)
    Console,
    /// Copy a local file to every target (atomic on each)
    Put(files::PutArgs),
    /// Copy a file from every target into LOCALDIR/<target>/
    Get(files::GetArgs),
    /// Show a node set: its names (-e), folded form (-f, default) or count (-c), groups resolved
    Nodeset(nodeset::NodesetArgs),
    /// Revoke an agent's certificate (by name) or any serial; pushed to every reachable agent
    Revoke {
        /// A registered agent's name, or a hex serial
        what: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum HubCmd {
    /// Write a station (ed25519) or network (X25519) key pair: KIND.key (0600) and KIND.pub
    Keygen {
        /// station (signs commands) or network (seals them)
        #[arg(value_enum)]
        kind: crate::hub::keys::KeyKind,
        /// Directory to write KIND.key and KIND.pub into (created if needed)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Simulate COUNT agent identities in one process (load test of the hub; answers builtins only)
    Swarm {
        /// An agent config with a [hub] section
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// How many agent identities to simulate
        #[arg(long, default_value_t = 1000)]
        count: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum CaCmd {
    /// Create the CA and this dispatcher's identity in the state dir
    Init {
        /// Dispatcher id (default: the host name)
        #[arg(long)]
        id: Option<String>,
        /// Join the CA in DIR (another dispatcher's `ca/`, shared) instead of creating one
        #[arg(long, value_name = "DIR")]
        ca: Option<PathBuf>,
    },
    /// Issue an agent's key and certificate into DIR and register it
    IssueAgent {
        /// The agent's name (its certificate's common name and registry entry)
        name: String,
        /// Replace an existing agent of that name (new key and certificate;
        /// the old certificate stays valid until it expires or is revoked)
        #[arg(long)]
        force: bool,
        /// Address the dispatcher dials: HOST:PORT
        #[arg(long)]
        addr: String,
        /// Tags to select it by (comma-separated)
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        /// Directory to write the agent's files into: agent.toml, agent.key, agent.crt, ca.crt,
        /// the trusted map; copy it to the agent's host
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum AgentCmd {
    /// Serve actions over mutual TLS
    Serve {
        /// The agent's config file
        #[arg(long, value_name = "FILE", default_value = "/etc/muster/agent.toml")]
        config: PathBuf,
    },
    /// Ask a dispatcher for a certificate (pairing on port 7444) and write the agent's directory
    Pair(pair::AgentPairArgs),
    /// Serve the agent protocol on stdin/stdout (what `--via ssh` starts on a host)
    Stdio {
        /// An agent config (default: shell allowed, files anywhere, state in ~/.local/state/muster-agent)
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Commands run at once; more are refused busy (default 32, or the config's)
        #[arg(long, value_name = "N")]
        max_concurrent: Option<u32>,
    },
    /// Check an agent's config, key, certificate, allowlist, trusted map and listen address
    #[command(name = "self-check")]
    SelfCheck {
        /// The agent's config file
        #[arg(long, value_name = "FILE", default_value = "/etc/muster/agent.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum AgentsCmd {
    /// One line per registered agent
    List {
        /// Print the entries as a JSON array
        #[arg(long)]
        json: bool,
    },
    /// Show one registry entry
    Show { name: String },
    /// Change an entry's address or tags
    Edit {
        name: String,
        /// New address the dispatcher dials: HOST:PORT
        #[arg(long)]
        addr: Option<String>,
        /// New tags, replacing the old ones (comma-separated; empty clears them)
        #[arg(long, value_delimiter = ',')]
        tags: Option<Vec<String>>,
    },
    /// Remove an entry
    Remove { name: String },
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// `all`, or names and node sets: web[01-20],db1
    pub targets: String,
    /// Keep agents that carry every one of these tags
    #[arg(long, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Agents running at once (sliding window); default 64
    #[arg(long, value_parser = at_least_one, allow_negative_numbers = true)]
    pub fanout: Option<usize>,
    /// Stop starting new targets after this many failures
    #[arg(long, value_parser = at_least_one, allow_negative_numbers = true)]
    pub max_errors: Option<usize>,
    /// Seconds each target may run (default: default_timeout in dispatcher.toml, 300)
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds, allow_negative_numbers = true)]
    pub timeout: Option<Duration>,
    /// live (default on a terminal), grouped (default otherwise) or json
    #[arg(long, value_enum)]
    pub output: Option<Mode>,
    /// Hub: agents that answered earlier runs (discovery) must answer this one too, or +2; a target
    /// named in TARGETS or with --agent always must; over mTLS every target is named, so this changes nothing
    #[arg(long)]
    pub fail_missing: bool,
    /// Who runs this, as hooks, logs and the action's context see it (default $USER)
    #[arg(long)]
    pub username: Option<String>,
    /// Passed to hooks and scripts (masked in logs); default $MUSTER_TOKEN
    #[arg(long)]
    pub token: Option<String>,
    /// Carrier: mutual TLS to each agent, or the Redis hub
    #[arg(long, value_enum, default_value_t = Via::Tls)]
    pub via: Via,
    /// Hub: channel (default from the [hub] section of dispatcher.toml)
    #[arg(long, value_parser = label)]
    pub channel: Option<String>,
    /// Hub: Redis URL (redis:// or rediss://), overriding dispatcher.toml
    #[arg(long)]
    pub redis: Option<String>,
    /// Hub: seconds to wait for a first reply (0 = forever)
    #[arg(long, value_name = "SECONDS", default_value = "2", value_parser = seconds, allow_negative_numbers = true)]
    pub hello_wait: Duration,
    /// Hub: seconds of silence tolerated while agents run (0 = forever); a silent agent ends lost (+8)
    #[arg(long, value_name = "SECONDS", default_value = "120", value_parser = seconds, allow_negative_numbers = true)]
    pub reply_wait: Duration,
    /// Hub: seconds to stay after sending, once nothing runs (0 = 1)
    #[arg(long, value_name = "SECONDS", default_value = "4", value_parser = seconds, allow_negative_numbers = true)]
    pub minimum_wait: Duration,
    /// Hub: run on this agent identity only (repeatable)
    #[arg(long = "agent", value_name = "NAME", value_parser = label)]
    pub agents: Vec<String>,
    /// Hub: do not read or update discovery.toml
    #[arg(long)]
    pub no_discovery: bool,
    /// Hub: return as soon as N agents have finished
    #[arg(long, value_parser = at_least_one, allow_negative_numbers = true)]
    pub expect: Option<usize>,
    /// Start the run and return at once with its request id; agents keep running it and keep
    /// the result (collect it with `muster status ID` or `muster wait ID`)
    #[arg(long = "async")]
    pub detach: bool,
    /// Run this catalog action; the words after -- are then its arguments (over SSH the words
    /// after -- are otherwise one shell command line)
    #[arg(long, value_name = "NAME")]
    pub action: Option<String>,
    /// SSH: do not copy the agent to hosts that lack it (they end refused)
    #[arg(long)]
    pub no_install: bool,
    /// Dial agents directly even when a daemon answers on this state dir's socket
    #[arg(long)]
    pub no_daemon: bool,
    /// Use the daemon at HOST:PORT (mutual TLS) instead of the local one
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "no_daemon")]
    pub daemon: Option<String>,
    /// Say which way agents are reached (daemon or direct)
    #[arg(short, long)]
    pub verbose: bool,
    /// The action, then its arguments (over SSH: a shell command line)
    #[arg(last = true, num_args = 1..)]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    Tls,
    Hub,
    Ssh,
}

/// Parse the command line, run it, return the exit status. Usage errors
/// exit 1 like every setup error (2 is the "agents missing" bit).
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let quiet = matches!(
        cli.command,
        Command::Run(_)
            | Command::Ping { .. }
            | Command::Demo { .. }
            | Command::Put(_)
            | Command::Get(_)
            | Command::Status(_)
            | Command::Wait(_)
            | Command::Nodeset(_)
    );
    init_logging(if quiet { tracing::Level::WARN } else { tracing::Level::INFO });
    let state = crate::state::dispatcher_dir(cli.state_dir.clone());
    let result = match cli.command {
        Command::Demo { agents } => crate::demo::run(agents),
        Command::Ca(c) => admin::ca(&state, c),
        Command::Agent(AgentCmd::Serve { config }) => admin::agent_serve(&config),
        Command::Agent(AgentCmd::Pair(a)) => pair::agent_pair(a),
        Command::Agent(AgentCmd::Stdio { config, max_concurrent }) => {
            admin::agent_stdio(config.as_deref(), max_concurrent)
        }
        Command::Pair(c) => pair::pair(&state, c),
        Command::Api(a) => api::api(&state, a),
        Command::Audit(a) => api::audit(&state, a),
        Command::Status(a) => requests::status(&state, a),
        Command::Wait(a) => requests::wait(&state, a),
        Command::ListRequests { json } => requests::list(&state, json),
        Command::RotateCert { overlap_days, days, force } => trust::rotate(&state, overlap_days, days, force),
        Command::Maintain { renew_days, days } => trust::maintain(&state, renew_days, days),
        Command::SerialStatus { json } => trust::serial_status(&state, json),
        Command::Revoke { what } => trust::revoke(&state, &what),
        Command::Nodeset(a) => nodeset::run(&state, a),
        Command::Put(a) => files::put(&state, a),
        Command::Daemon(a) => daemon::run(&state, a),
        Command::Console => crate::console::main(&state).map(|_| 0).map_err(|e| anyhow::anyhow!(e)),
        Command::Get(a) => files::get(&state, a),
        Command::Agent(AgentCmd::SelfCheck { config }) => trust::self_check(&config),
        Command::Run(args) => run::run(&state, *args),
        Command::Ping { targets, tags, fanout } => run::ping(&state, &targets, &tags, fanout),
        Command::Agents(c) => admin::agents(&state, c),
        Command::Ns8Agent(a) => crate::ns8::main(a),
        Command::Hub(HubCmd::Swarm { config, count }) => hub::swarm(&config, count),
        Command::Hub(HubCmd::Keygen { kind, out }) => crate::hub::keys::generate(kind, &out)
            .map(|(sk, pk)| {
                println!("wrote {} (secret, 0600) and {}", sk.display(), pk.display());
                0
            })
            .map_err(|e| anyhow::anyhow!(e)),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("muster: {}", error_text(&e));
            ExitCode::from(crate::dispatch::outcome::EXIT_SETUP)
        }
    }
}

/// An error and its causes on one line, `a: b: c`, in an operator's
/// words ([`plain_io`](crate::transport::tls::plain_io)), leaving out a
/// cause whose text the line already holds (a message often quotes its
/// source).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let t = crate::transport::tls::plain_io(&cause.to_string());
        if t.is_empty() || line.contains(&t) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&t);
    }
    line
}

fn init_logging(default: tracing::Level) {
    let level = std::env::var("MUSTER_LOG").ok().and_then(|v| v.parse::<tracing::Level>().ok()).unwrap_or(default);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false)
        .try_init();
}

/// Print a usage error (or the help or version asked for) and pick the
/// exit status: 0 for help and version, 1 for every mistake, with a hint
/// where a common one is recognised.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let _ = e.print();
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        return ExitCode::SUCCESS;
    }
    if let Some(hint) = hint(&std::env::args().collect::<Vec<_>>()) {
        eprintln!("hint: {hint}");
    }
    ExitCode::from(crate::dispatch::outcome::EXIT_SETUP)
}

/// A hint for a usage mistake operators make often.
fn hint(args: &[String]) -> Option<String> {
    let run_at = args.iter().position(|a| a == "run")?;
    if args.iter().any(|a| a == "--") {
        return None;
    }
    let words: Vec<&str> = args[run_at + 1..].iter().map(String::as_str).filter(|a| !a.starts_with('-')).collect();
    match words.as_slice() {
        [targets, rest @ ..] if !rest.is_empty() => {
            Some(format!("put the action after --: muster run {targets} -- {}", rest.join(" ")))
        }
        _ => Some("name the targets, then the action after --: muster run TARGETS -- ACTION [ARGS...]".into()),
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("cannot read /x: {0}")]
    struct Quotes(#[source] std::io::Error);

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(Quotes(io()));
        assert_eq!(super::error_text(&e), "cannot read /x: no such file");
        let e = anyhow::Error::new(io()).context("loading the catalog");
        assert_eq!(super::error_text(&e), "loading the catalog: no such file");
        let e = anyhow::Error::new(Quotes(io())).context("starting");
        assert_eq!(super::error_text(&e), "starting: cannot read /x: no such file");
    }
}
