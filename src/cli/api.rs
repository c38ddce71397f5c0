//! `muster api` (serve the HTTP API and dashboard), `muster api token
//! add|list|remove` (bearer tokens), and `muster audit` (read the audit
//! log).

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::Path;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ApiArgs {
    #[command(subcommand)]
    pub command: Option<ApiCmd>,
    /// Address and port to serve on, ADDR:PORT (port 0: any free port, printed at start)
    #[arg(long, default_value = crate::api::DEFAULT_LISTEN, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Serve without tokens: anyone who reaches the port may run any action (for a lab only)
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Serve HTTPS with a certificate from the muster CA, and accept user client certificates
    /// (`token add NAME --cert`) beside bearer tokens
    #[arg(long)]
    pub tls: bool,
    /// The host name or IP clients use to reach the API, written in its certificate (with --tls)
    #[arg(long, default_value = "localhost", value_name = "NAME", requires = "tls")]
    pub tls_name: String,
}

#[derive(Subcommand, Debug)]
pub enum ApiCmd {
    /// API bearer tokens and certificate users
    #[command(subcommand, after_help = super::help::API_TOKEN)]
    Token(TokenCmd),
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Make a token and print it once (only its SHA-256 is kept), or a certificate user
    #[command(after_help = super::help::API_TOKEN_ADD)]
    Add {
        /// The token's name: what the audit log and the dispatcher hook see as the user
        name: String,
        /// Actions it may run, comma-separated (default: any)
        #[arg(long, value_delimiter = ',', value_name = "A,B")]
        actions: Option<Vec<String>>,
        /// Node set of the targets it may reach, e.g. web[01-20] (default: any)
        #[arg(long, value_name = "NODESET")]
        targets: Option<String>,
        /// A certificate user instead of a token: issue a client certificate from the CA for NAME into
        /// --out DIR (NAME.crt, NAME.key, ca.crt), for `muster api --tls`
        #[arg(long, requires = "out")]
        cert: bool,
        /// Where to write the client certificate (with --cert)
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
    },
    /// The tokens' names and limits
    #[command(after_help = super::help::API_TOKEN_LIST)]
    List,
    /// Remove a token: clients using it get 401 from the next request on
    #[command(after_help = super::help::API_TOKEN_REMOVE)]
    Remove {
        /// The token's name
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Only runs that ended in the last this many seconds
    #[arg(long, value_name = "SECONDS", value_parser = super::positive_seconds)]
    pub since: Option<std::time::Duration>,
    /// Print the entries as JSON lines, as stored
    #[arg(long)]
    pub json: bool,
}

pub fn api(state: &Path, a: ApiArgs) -> Result<u8> {
    match a.command {
        Some(ApiCmd::Token(t)) => token(state, t),
        None => {
            let rt = super::run::runtime()?;
            let tls = a.tls.then(|| a.tls_name.clone());
            let scheme = if a.tls { "https" } else { "http" };
            rt.block_on(crate::api::serve(state.to_path_buf(), a.listen, a.insecure_no_auth, tls, |addr| {
                eprintln!("muster api listening on {scheme}://{addr} (state {})", state.display());
                if a.insecure_no_auth {
                    eprintln!("muster: WARNING: --insecure-no-auth: anyone who reaches {addr} may run any action");
                }
            }))
            .map_err(|e| anyhow!(e))?;
            Ok(0)
        }
    }
}

fn token(state: &Path, t: TokenCmd) -> Result<u8> {
    use crate::api::tokens;
    match t {
        TokenCmd::Add { name, actions, targets, cert, out } => {
            if let Some(spec) = &targets {
                crate::api::token_targets(state, spec).map_err(|e| anyhow!("bad --targets: {e}"))?;
            }
            match out.filter(|_| cert) {
                Some(dir) => {
                    // Issue first: a name the CA refuses adds no entry.
                    let issued = crate::pki::issue_dispatcher(state, &name, crate::pki::DEFAULT_CERT_DAYS)?;
                    let ca = std::fs::read(state.join("ca").join("ca.crt"))?;
                    tokens::add(state, &name, actions, targets, true)?;
                    crate::fsutil::write_secret(&dir.join(format!("{name}.key")), issued.key_pem.as_bytes())?;
                    crate::fsutil::write_public(&dir.join(format!("{name}.crt")), issued.cert_pem.as_bytes())?;
                    crate::fsutil::write_public(&dir.join("ca.crt"), &ca)?;
                    println!(
                        "certificate user {name} added; wrote {0}/{name}.crt, {0}/{name}.key and {0}/ca.crt (serial {1})",
                        dir.display(),
                        issued.serial
                    );
                }
                None => {
                    let token = tokens::add(state, &name, actions, targets, false)?;
                    println!("{token}");
                    eprintln!(
                        "muster: token {name} added to {}; this is the only time it is shown: keep it now",
                        tokens::path(state).display()
                    );
                }
            }
        }
        TokenCmd::List => {
            let all = tokens::load(state)?.unwrap_or_default();
            if all.is_empty() {
                eprintln!("muster: no API tokens (add one with `muster api token add NAME`)");
            }
            for (name, e) in all {
                let actions = e.actions.map(|a| a.join(",")).unwrap_or_else(|| "any".into());
                let targets = e.targets.unwrap_or_else(|| "any".into());
                let kind = if e.cert { "certificate" } else { "token" };
                println!("{name}\t{kind}\tactions: {actions}\ttargets: {targets}\tcreated {}", e.created);
            }
        }
        TokenCmd::Remove { name } => {
            tokens::remove(state, &name)?;
            println!("removed token {name}");
        }
    }
    Ok(0)
}

pub fn audit(state: &Path, a: AuditArgs) -> Result<u8> {
    let since = a.since.map(|d| crate::pairing::now().saturating_sub(d.as_secs())).unwrap_or(0);
    let (entries, bad) = crate::audit::read(state, since)?;
    for b in &bad {
        eprintln!("muster: {b}");
    }
    for e in &entries {
        if a.json {
            println!("{}", serde_json::to_string(e)?);
        } else {
            let states: Vec<String> = e.states.iter().map(|(k, v)| format!("{v} {k}")).collect();
            println!(
                "{} {} {} by {} from {} via {}: {} on {} ({}), exit {}, {:.1}s",
                e.time,
                e.request_id,
                e.origin,
                e.user,
                e.from,
                e.via,
                std::iter::once(&e.action).chain(&e.args).cloned().collect::<Vec<_>>().join(" "),
                crate::dispatch::nodeset::fold(&e.targets),
                states.join(", "),
                e.exit,
                e.duration_s
            );
        }
    }
    if entries.is_empty() {
        eprintln!("muster: no audit entries{}", if since > 0 { " in that time" } else { "" });
    }
    Ok(0)
}
