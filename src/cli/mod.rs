//! The command line: clap definitions and the dispatch to each role. Each
//! handler returns the process exit status; errors become one clear line on
//! stderr and exit 1.

mod admin;
mod api;
mod daemon;
mod daemon_tls;
mod files;
mod generate;
mod help;
mod hub;
mod lean;
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
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
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
#[command(name = "muster", version, about = "Run named actions on many hosts at once, securely", after_help = help::MUSTER)]
pub struct Cli {
    /// Dispatcher state directory: CA, identity, agent registry, run records; every dispatcher
    /// command on a host shares it (default: $MUSTER_STATE; /var/lib/muster as root; else
    /// $XDG_STATE_HOME/muster or ~/.local/state/muster)
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// A throwaway CA and N local agents, one sample run across them, then everything removed
    #[command(after_help = help::DEMO)]
    Demo {
        /// How many local agents to start on loopback, 1 to 250
        #[arg(long, default_value_t = 5, value_name = "N")]
        agents: u16,
    },
    /// Certificate authority: create it, issue agent certificates
    #[command(subcommand, after_help = help::CA)]
    Ca(CaCmd),
    /// Run an agent (these commands read the agent's --config, not the dispatcher state dir)
    #[command(subcommand, after_help = help::AGENT)]
    Agent(AgentCmd),
    /// Run an action on many agents
    #[command(after_help = help::RUN)]
    Run(Box<RunArgs>),
    /// Reachability and round-trip time per agent
    #[command(after_help = help::PING)]
    Ping {
        /// `all`, or agent names and node sets, comma-separated (syntax: `muster run --help`)
        targets: String,
        /// Keep only agents that carry every one of these tags (comma-separated: web,eu)
        #[arg(long, value_delimiter = ',', value_name = "TAG,...")]
        tags: Vec<String>,
        /// Agents pinged at once, 1 or more (default: fanout in dispatcher.toml, else 64)
        #[arg(long, value_name = "N", value_parser = at_least_one, allow_negative_numbers = true)]
        fanout: Option<usize>,
        /// Carrier: tls (a ping on a session to each registered agent), hub (the builtin ping broadcast
        /// on a Redis channel, answered by every matching agent, recorded in discovery) or ssh
        #[arg(long, value_enum, default_value_t = Via::Tls)]
        via: Via,
        /// Hub: channel (default from the [hub] section of dispatcher.toml)
        #[arg(long, value_parser = label)]
        channel: Option<String>,
        /// Hub: Redis URL (redis://HOST:PORT, rediss:// for TLS, redis+sentinel://H:P,H:P/MASTER or
        /// redis+cluster://H:P,H:P), overriding dispatcher.toml
        #[arg(long, value_name = "URL")]
        redis: Option<String>,
        /// SSH: do not copy the agent to hosts that lack it (they end refused)
        #[arg(long)]
        no_install: bool,
    },
    /// The agent registry: the agents this dispatcher knows, their addresses and tags
    #[command(subcommand, after_help = help::AGENTS)]
    Agents(AgentsCmd),
    /// Redis hub: key pairs, load test
    #[command(subcommand, after_help = help::HUB)]
    Hub(HubCmd),
    /// NethServer ns8-compatible agent on Redis
    #[command(name = "ns8-agent", after_help = help::NS8_AGENT)]
    Ns8Agent(crate::ns8::Ns8Args),
    /// HTTP API and web dashboard (default 127.0.0.1:7445), and its tokens
    #[command(after_help = help::API)]
    Api(api::ApiArgs),
    /// The audit log: every run from the CLI, the API or a console, one line each
    #[command(after_help = help::AUDIT)]
    Audit(api::AuditArgs),
    /// Pairing: enrol agents that ask (port 7444) after comparing a 6-digit code
    #[command(subcommand, after_help = help::PAIR)]
    Pair(pair::PairCmd),
    /// Where an asynchronous run stands: each target's state and output so far
    #[command(after_help = help::STATUS)]
    Status(requests::StatusArgs),
    /// Wait for an asynchronous run to end; exit with its bitmask
    #[command(after_help = help::WAIT)]
    Wait(requests::WaitArgs),
    /// Recent runs of this dispatcher, newest first
    #[command(name = "list-requests", after_help = help::LIST_REQUESTS)]
    ListRequests {
        /// Print the run records as JSON (an array, newest first)
        #[arg(long)]
        json: bool,
    },
    /// Give this dispatcher a new certificate and push its serial to every agent (old one trusted for an overlap)
    #[command(name = "rotate-cert", after_help = help::ROTATE_CERT)]
    RotateCert {
        /// Days the old serial stays trusted, 0 to 3650 (fractions allowed: 0.5)
        #[arg(long, default_value_t = rotation::DEFAULT_OVERLAP_DAYS, value_name = "DAYS", value_parser = days, allow_negative_numbers = true)]
        overlap_days: f64,
        /// Validity of the new certificate, whole days
        #[arg(long, default_value_t = crate::pki::DEFAULT_CERT_DAYS, value_name = "DAYS")]
        days: u32,
        /// Rotate even while the previous rotation's overlap is open
        #[arg(long)]
        force: bool,
    },
    /// Housekeeping for a timer: retire old serials, mark stale agents, renew expiring agent certs, prune
    #[command(after_help = help::MAINTAIN)]
    Maintain {
        /// Renew agent certificates that expire within this many whole days
        #[arg(long, default_value_t = 30, value_name = "DAYS")]
        renew_days: u32,
        /// Validity of renewed certificates, whole days
        #[arg(long, default_value_t = crate::pki::DEFAULT_CERT_DAYS, value_name = "DAYS")]
        days: u32,
    },
    /// This dispatcher's serial, the rotation state and each agent's serial status
    #[command(name = "serial-status", after_help = help::SERIAL_STATUS)]
    SerialStatus {
        /// Print as one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Stay resident: keep agent sessions open for consoles and `muster run` (local socket, optional mTLS 9007)
    #[command(after_help = help::DAEMON)]
    Daemon(daemon::DaemonArgs),
    /// Interactive console: select hosts, run commands, jobs, files, through the daemon (started if needed)
    #[command(after_help = help::CONSOLE)]
    Console,
    /// Copy a local file to every target (atomic on each)
    #[command(after_help = help::PUT)]
    Put(files::PutArgs),
    /// Copy a file from every target into LOCALDIR/<target>/
    #[command(after_help = help::GET)]
    Get(files::GetArgs),
    /// Show a node set: its names (-e), folded form (-f, default) or count (-c), groups resolved
    #[command(after_help = help::NODESET)]
    Nodeset(nodeset::NodesetArgs),
    /// Revoke an agent's certificate (by name) or any serial; pushed to every reachable agent
    #[command(after_help = help::REVOKE)]
    Revoke {
        /// A registered agent's name, or a certificate serial in hex (as `muster serial-status` shows)
        #[arg(value_name = "NAME|SERIAL")]
        what: String,
    },
    /// Print a shell completion script for bash, zsh or fish on stdout
    #[command(after_help = help::COMPLETIONS)]
    Completions {
        /// The shell to complete for: bash, zsh or fish
        #[arg(value_enum)]
        shell: generate::Shell,
    },
    /// Write man pages (roff): muster.1 and one page per subcommand
    #[command(after_help = help::MAN)]
    Man {
        /// Directory to write muster.1, muster-run.1, ... into (created if needed); without it,
        /// muster.1 is printed on stdout
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum HubCmd {
    /// Write a station (ed25519) or network (X25519) key pair: KIND.key (0600) and KIND.pub
    #[command(after_help = help::HUB_KEYGEN)]
    Keygen {
        /// station (signs commands) or network (seals them)
        #[arg(value_enum)]
        kind: crate::hub::keys::KeyKind,
        /// Directory to write KIND.key and KIND.pub into (created if needed)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Simulate COUNT agent identities in one process (load test of the hub; answers builtins only)
    #[command(after_help = help::HUB_SWARM)]
    Swarm {
        /// An agent config (TOML) with a [hub] section
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// How many agent identities to simulate
        #[arg(long, default_value_t = 1000, value_name = "N")]
        count: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum CaCmd {
    /// Create the CA and this dispatcher's identity in the state dir
    #[command(after_help = help::CA_INIT)]
    Init {
        /// Dispatcher id: letters, digits and '-' (default: the host name)
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// Join the CA in DIR (another dispatcher's `ca/`, shared) instead of creating one
        #[arg(long, value_name = "DIR")]
        ca: Option<PathBuf>,
    },
    /// Issue an agent's key and certificate into DIR and register it
    #[command(after_help = help::CA_ISSUE_AGENT)]
    IssueAgent {
        /// The agent's name (its certificate's common name and registry entry)
        name: String,
        /// Replace an existing agent of that name (new key and certificate;
        /// the old certificate stays valid until it expires or is revoked)
        #[arg(long)]
        force: bool,
        /// Address the dispatcher dials, HOST:PORT (the agent listens on that port)
        #[arg(long, value_name = "HOST:PORT")]
        addr: String,
        /// Tags to select the agent by with --tags (comma-separated: web,eu)
        #[arg(long, value_delimiter = ',', value_name = "TAG,...")]
        tags: Vec<String>,
        /// Directory to write the agent's files into (created if needed): agent.toml, agent.key,
        /// agent.crt, ca.crt, the trusted map; copy it to the agent's host as /etc/muster
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// `muster agent serve` arguments.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The agent's config file (TOML; see examples/agent.toml)
    #[arg(long, value_name = "FILE", default_value = "/etc/muster/agent.toml")]
    config: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum AgentCmd {
    /// Serve actions over mutual TLS, the Redis hub, or both (as agent.toml says)
    #[command(after_help = help::AGENT_SERVE)]
    Serve(ServeArgs),
    /// Ask a dispatcher for a certificate (pairing on port 7444) and write the agent's directory
    #[command(after_help = help::AGENT_PAIR)]
    Pair(pair::AgentPairArgs),
    /// Serve the agent protocol on stdin/stdout (what `--via ssh` starts on a host)
    #[command(after_help = help::AGENT_STDIO)]
    Stdio {
        /// An agent config, TOML (default: shell allowed, files anywhere, state in ~/.local/state/muster-agent)
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Commands run at once, 1 or more; more are refused busy (default: the config's max_concurrent, else 32)
        #[arg(long, value_name = "N")]
        max_concurrent: Option<u32>,
    },
    /// Check an agent's config, key, certificate, allowlist, trusted map and listen address
    #[command(name = "self-check", after_help = help::AGENT_SELF_CHECK)]
    SelfCheck {
        /// The agent's config file (TOML; see examples/agent.toml)
        #[arg(long, value_name = "FILE", default_value = "/etc/muster/agent.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum AgentsCmd {
    /// One line per registered agent under a header: name, address, tags, certificate expiry
    #[command(after_help = help::AGENTS_LIST)]
    List {
        /// table (default) or json (an array of the registry entries)
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        output: ListFormat,
        /// The same as --output json
        #[arg(long, hide = true)]
        json: bool,
    },
    /// Show one registry entry (JSON)
    #[command(after_help = help::AGENTS_SHOW)]
    Show {
        /// The agent's name, as `muster agents list` shows it
        name: String,
    },
    /// Register an agent whose certificate was made elsewhere; its serial and expiry are read from it
    #[command(after_help = help::AGENTS_ADD)]
    Add {
        /// The agent's name: its certificate's common name
        name: String,
        /// Address the dispatcher dials, HOST:PORT
        #[arg(long, value_name = "HOST:PORT")]
        addr: String,
        /// The agent's certificate (PEM), signed by this dispatcher's CA
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// Tags to select the agent by with --tags (comma-separated: web,eu)
        #[arg(long, value_delimiter = ',', value_name = "TAG,...")]
        tags: Vec<String>,
        /// Replace an existing entry of that name
        #[arg(long)]
        force: bool,
    },
    /// Change an entry's address or tags
    #[command(after_help = help::AGENTS_EDIT)]
    Edit {
        /// The agent's name, as `muster agents list` shows it
        name: String,
        /// New address the dispatcher dials, HOST:PORT
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<String>,
        /// New tags, replacing the old ones (comma-separated: web,eu; an empty value clears them)
        #[arg(long, value_delimiter = ',', value_name = "TAG,...")]
        tags: Option<Vec<String>>,
    },
    /// Remove an entry, saying what was removed (the certificate stays valid: see `muster revoke`)
    #[command(after_help = help::AGENTS_REMOVE)]
    Remove {
        /// The agent's name, as `muster agents list` shows it
        name: String,
    },
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Where to run, comma-separated: `all` (every registered agent), agent names, and node sets
    /// with ranges in brackets: `web[01-20]` is web01 to web20, `web[1,3,5-7]` picks some, and
    /// `web[1-4],db1` mixes them (quote brackets from the shell: 'web[1-4]')
    pub targets: String,
    /// Keep only agents that carry every one of these tags (comma-separated: web,eu)
    #[arg(long, value_delimiter = ',', value_name = "TAG,...")]
    pub tags: Vec<String>,
    /// Agents running at once, 1 or more (a sliding window; default: fanout in dispatcher.toml, else 64)
    #[arg(long, value_name = "N", value_parser = at_least_one, allow_negative_numbers = true)]
    pub fanout: Option<usize>,
    /// Stop starting new targets after this many have failed (1 or more; default: never stop)
    #[arg(long, value_name = "N", value_parser = at_least_one, allow_negative_numbers = true)]
    pub max_errors: Option<usize>,
    /// Seconds each target may run (default: default_timeout in dispatcher.toml, 300)
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds, allow_negative_numbers = true)]
    pub timeout: Option<Duration>,
    /// live: lines as they come, prefixed by target (default on a terminal); grouped: each
    /// target's output together at its end (default otherwise); json: one event per line
    #[arg(long, value_enum)]
    pub output: Option<Mode>,
    /// Hub only: also exit with +2 when an agent that answered an earlier run on this channel does
    /// not answer this one (without it, only agents named in TARGETS or with --agent count as
    /// missing). Over mTLS and SSH every target is named, so this changes nothing there
    #[arg(long)]
    pub fail_missing: bool,
    /// The user name this run is made as: hooks decide on it, logs record it and the action sees it
    /// as MUSTER_USERNAME (default: $USER)
    #[arg(long, value_name = "NAME")]
    pub username: Option<String>,
    /// Passed to hooks and scripts (masked in logs); default $MUSTER_TOKEN
    #[arg(long)]
    pub token: Option<String>,
    /// Carrier: tls (mutual TLS to each registered agent), hub (a Redis channel) or ssh
    #[arg(long, value_enum, default_value_t = Via::Tls)]
    pub via: Via,
    /// Hub: channel (default from the [hub] section of dispatcher.toml)
    #[arg(long, value_parser = label)]
    pub channel: Option<String>,
    /// Hub: Redis URL (redis://HOST:PORT, rediss:// for TLS, redis+sentinel://H:P,H:P/MASTER or
    /// redis+cluster://H:P,H:P), overriding dispatcher.toml
    #[arg(long, value_name = "URL")]
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
    /// Hub: return as soon as N agents have finished (1 or more)
    #[arg(long, value_name = "N", value_parser = at_least_one, allow_negative_numbers = true)]
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
    /// On a terminal, show no status line and no per-target end lines: only the output (and
    /// failures). Output to a pipe or file never has them
    #[arg(short, long)]
    pub quiet: bool,
    /// The action, then its arguments (over SSH: a shell command line)
    #[arg(last = true, num_args = 1.., value_name = "ACTION [ARGS]")]
    pub command: Vec<String>,
}

/// How `muster agents list` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// Columns under a header
    Table,
    /// A JSON array of the registry entries
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    Tls,
    Hub,
    Ssh,
}

/// The whole command line as clap sees it: the derive definitions, with
/// the global `--state-dir` hidden under `agent`, `ns8-agent` and `hub`
/// (they read their own config, never the dispatcher's state dir; the
/// flag is still accepted there). `muster completions` and `muster man`
/// are generated from this.
pub fn command() -> clap::Command {
    let ignored = || {
        clap::Arg::new("state_dir")
            .long("state-dir")
            .value_name("DIR")
            .value_parser(clap::value_parser!(PathBuf))
            .global(true)
            .hide(true)
    };
    Cli::command()
        .mut_subcommand("agent", |c| c.arg(ignored()))
        .mut_subcommand("ns8-agent", |c| c.arg(ignored()))
        .mut_subcommand("hub", |c| c.arg(ignored()))
}

/// The `muster run` arguments of a ping over the hub or SSH: the builtin
/// `ping` action on TARGETS, with `muster run`'s defaults for the rest.
fn ping_args(
    targets: &str,
    tags: &[String],
    fanout: Option<usize>,
    via: Via,
    channel: Option<String>,
    redis: Option<String>,
    no_install: bool,
) -> anyhow::Result<RunArgs> {
    let via = if via == Via::Hub { "hub" } else { "ssh" };
    let mut argv: Vec<String> = ["ping", targets, "--via", via, "--action", "ping"].map(String::from).to_vec();
    if !tags.is_empty() {
        argv.extend(["--tags".into(), tags.join(",")]);
    }
    if let Some(n) = fanout {
        argv.extend(["--fanout".into(), n.to_string()]);
    }
    if let Some(c) = channel {
        argv.extend(["--channel".into(), c]);
    }
    if let Some(r) = redis {
        argv.extend(["--redis".into(), r]);
    }
    if no_install {
        argv.push("--no-install".into());
    }
    let m = RunArgs::augment_args(clap::Command::new("ping")).try_get_matches_from(argv)?;
    Ok(RunArgs::from_arg_matches(&m)?)
}

/// Parse the command line, run it, return the exit status. Usage errors
/// exit 1 like every setup error (2 is the "agents missing" bit).
pub fn main() -> ExitCode {
    if let Some(code) = lean::start() {
        return code;
    }
    let cli = match command().try_get_matches().and_then(|m| Cli::from_arg_matches(&m)) {
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
    // Commands that only print: `| head` ends them quietly, as it does any
    // Unix filter, instead of a write error (serving commands keep SIGPIPE
    // ignored, so a closed socket or pipe is an error they handle).
    if matches!(
        cli.command,
        Command::Completions { .. }
            | Command::Man { .. }
            | Command::Nodeset(_)
            | Command::Audit(_)
            | Command::ListRequests { .. }
            | Command::SerialStatus { .. }
    ) {
        // SAFETY: restoring the default disposition of one signal before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let state = crate::state::dispatcher_dir(cli.state_dir.clone());
    let result = match cli.command {
        Command::Demo { agents } => crate::demo::run(agents),
        Command::Ca(c) => admin::ca(&state, c),
        Command::Agent(AgentCmd::Serve(a)) => admin::agent_serve(&a.config),
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
        Command::Completions { shell } => generate::completions(shell),
        Command::Man { out } => generate::man(out.as_deref()),
        Command::Put(a) => files::put(&state, a),
        Command::Daemon(a) => daemon::run(&state, a),
        Command::Console => crate::console::main(&state).map(|_| 0).map_err(|e| anyhow::anyhow!(e)),
        Command::Get(a) => files::get(&state, a),
        Command::Agent(AgentCmd::SelfCheck { config }) => trust::self_check(&config),
        Command::Run(args) => run::run(&state, *args),
        Command::Ping { targets, tags, fanout, via: Via::Tls, .. } => run::ping(&state, &targets, &tags, fanout),
        Command::Ping { targets, tags, fanout, via, channel, redis, no_install } => {
            ping_args(&targets, &tags, fanout, via, channel, redis, no_install).and_then(|a| {
                let cfg = crate::dispatch::DispatcherConfig::load(&state).map_err(|e| anyhow::anyhow!(e))?;
                match via {
                    Via::Hub => hub::ping(&state, &cfg, a),
                    _ => ssh::ping(&state, &cfg, a),
                }
            })
        }
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
    finish(result)
}

/// A command's exit status: its own, or 1 after printing its error.
fn finish(result: anyhow::Result<u8>) -> ExitCode {
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
    // A log line that cannot be written (stderr closed: a dead log pipe)
    // is dropped; the default would report it with `eprintln!`, which
    // panics the task that logged, so requests would never end.
    let _ = tracing_subscriber::fmt()
        .log_internal_errors(false)
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
