//! `muster pair listen|list|approve|deny` (the dispatcher's side of
//! pairing) and `muster agent pair` (the agent's side).

use crate::pairing::{self, client, server, store};
use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum PairCmd {
    /// Serve pairing requests (port 7444): show each with its code and ask approve/deny on a terminal
    #[command(after_help = super::help::PAIR_LISTEN)]
    Listen {
        /// Address to listen on, ADDR:PORT
        #[arg(long, default_value = "0.0.0.0:7444", value_name = "ADDR:PORT")]
        bind: String,
        /// Whole seconds a request waits for a decision
        #[arg(long, default_value_t = 600, value_name = "SECONDS")]
        expire: u64,
        /// Only queue requests; decide them with `muster pair approve|deny` from any shell
        #[arg(long)]
        no_prompt: bool,
        /// Validity of the certificates issued, whole days
        #[arg(long, default_value_t = crate::pki::DEFAULT_CERT_DAYS)]
        days: u32,
    },
    /// The pending pairing requests: id, agent, address, key, code, age
    #[command(after_help = super::help::PAIR_LIST)]
    List {
        /// Print the pending requests as a JSON array
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending request: sign its certificate and register the agent
    #[command(after_help = super::help::PAIR_APPROVE)]
    Approve {
        /// The request id, as `muster pair list` shows it
        id: String,
        /// Pair again an agent name that is already registered
        #[arg(long)]
        replace: bool,
        /// Validity of the certificate issued, whole days
        #[arg(long, default_value_t = crate::pki::DEFAULT_CERT_DAYS)]
        days: u32,
    },
    /// Deny a pending request
    #[command(after_help = super::help::PAIR_DENY)]
    Deny {
        /// The request id, as `muster pair list` shows it
        id: String,
        /// Told to the agent, as it prints it
        #[arg(long, default_value = "denied by the operator")]
        reason: String,
    },
}

#[derive(Args, Debug)]
pub struct AgentPairArgs {
    /// The dispatcher's pairing listener, HOST[:PORT] (port 7444 by default)
    #[arg(long, value_name = "HOST:PORT")]
    pub dispatcher: String,
    /// This agent's name (letters, digits, '-'; also its certificate name)
    #[arg(long)]
    pub name: String,
    /// Directory to write agent.toml, the key, the certificates and the trusted map into
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Address the dispatcher dials, HOST:PORT (default: this host's address toward the dispatcher, port 7443)
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: Option<String>,
    /// Tags to select this agent by (comma-separated: web,eu)
    #[arg(long, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Whole seconds to wait for the operator's decision
    #[arg(long, default_value_t = 660, value_name = "SECONDS")]
    pub wait: u64,
}

fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    super::run::runtime()
}

pub fn pair(state: &Path, cmd: PairCmd) -> Result<u8> {
    let now = pairing::now();
    match cmd {
        PairCmd::Listen { bind, expire, no_prompt, days } => {
            if expire == 0 {
                return Err(anyhow!("--expire must be at least 1 second"));
            }
            let opts = server::Listen {
                state: state.to_path_buf(),
                expire_s: expire,
                prompt: !no_prompt && std::io::stdin().is_terminal(),
                days,
            };
            runtime()?.block_on(async move {
                let stop = async {
                    let _ = tokio::signal::ctrl_c().await;
                };
                server::listen(opts, &bind, stop).await
            })?;
        }
        PairCmd::List { json } => {
            let list = store::list(state, now)?;
            if json {
                let v: Vec<serde_json::Value> = list
                    .iter()
                    .map(|r| {
                        serde_json::json!({"id": r.id, "name": r.name, "addr": r.addr, "tags": r.tags, "peer": r.peer,
                            "key_type": r.key_type, "code": r.code, "received": crate::timefmt::unix_rfc3339(r.received),
                            "expires_in_s": r.expires.saturating_sub(now), "replaces_serial": r.replaces})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if list.is_empty() {
                println!("no pending pairing requests");
            } else {
                for r in list {
                    let again =
                        r.replaces.as_ref().map(|s| format!(" (already paired, serial {s})")).unwrap_or_default();
                    println!(
                        "{}  {}  {}  tags [{}]  {}  code {}  from {}  expires in {}s{again}",
                        r.id,
                        r.name,
                        r.addr,
                        r.tags.join(","),
                        r.key_type,
                        r.code,
                        r.peer,
                        r.expires.saturating_sub(now)
                    );
                }
            }
        }
        PairCmd::Approve { id, replace, days } => {
            let r = store::approve(state, &id, replace, now, days)?;
            if let store::Decision::Approved { serial, not_after, .. } = &r.decision {
                println!(
                    "approved {} ({id}): certificate serial {serial}, valid until {not_after}; registered at {}",
                    r.name, r.addr
                );
            }
        }
        PairCmd::Deny { id, reason } => {
            let r = store::deny(state, &id, &reason, now)?;
            println!("denied {} ({id})", r.name);
        }
    }
    Ok(0)
}

pub fn agent_pair(a: AgentPairArgs) -> Result<u8> {
    let opts = client::PairOptions {
        dispatcher: a.dispatcher,
        name: a.name,
        out: a.out,
        addr: a.addr,
        tags: a.tags,
        wait: Duration::from_secs(a.wait),
    };
    let paired = runtime()?.block_on(async {
        let pairing = client::pair(&opts, |id, code| {
            println!("pairing request {id} sent to {}; code {code}", opts.dispatcher);
            println!("compare the code with the one the dispatcher shows, then approve it there; waiting...");
        });
        // Ctrl-C drops the connection: the dispatcher withdraws the
        // request; nothing was written here yet.
        tokio::select! {
            r = pairing => r.map_err(anyhow::Error::from),
            _ = tokio::signal::ctrl_c() => Err(anyhow!(
                "interrupted: the pairing request is withdrawn (the dispatcher drops it as the connection closes); \
                 nothing was written to {}",
                opts.out.display()
            )),
        }
    })?;
    println!(
        "paired {} with dispatcher {} (serial {}): certificate serial {}, dialled at {}",
        opts.name, paired.dispatcher_id, paired.dispatcher_serial, paired.serial, paired.addr
    );
    println!("start it with: muster agent serve --config {}", opts.out.join("agent.toml").display());
    Ok(0)
}
