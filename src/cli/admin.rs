//! Administrative commands: the CA, serving an agent, the registry.

use super::{AgentsCmd, CaCmd, ListFormat};
use crate::agent::{server, Agent, AgentConfig};
use crate::dispatch::registry;
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;
use std::sync::Arc;

pub fn ca(state: &Path, cmd: CaCmd) -> Result<u8> {
    match cmd {
        CaCmd::Init { id, ca: None } => {
            let id = id.unwrap_or_else(hostname);
            let me = crate::pki::init_ca(state, &id, crate::pki::DEFAULT_CERT_DAYS)?;
            println!("created CA and dispatcher {:?} (serial {}) in {}", me.id, me.serial, state.display());
        }
        CaCmd::Init { id, ca: Some(ca) } => {
            let id = id.unwrap_or_else(hostname);
            let me = crate::pki::init_from_ca(state, &ca, &id, crate::pki::DEFAULT_CERT_DAYS)?;
            println!(
                "created dispatcher {:?} (serial {}) in {}, sharing the CA in {}; agents trust it once paired with it",
                me.id,
                me.serial,
                state.display(),
                ca.display()
            );
        }
        CaCmd::IssueAgent { name, addr, tags, out, force } => {
            let issued = crate::enroll::issue_agent_dir(state, &name, &addr, &tags, &out, force)?;
            if let Some(old) = &issued.replaced {
                println!("replaced agent {} (old serial {}, at {})", old.name, old.serial, old.addr);
            }
            let e = issued.entry;
            println!(
                "issued {} (serial {}) into {}; registered at {}\nstart it with: muster agent serve --config {}",
                e.name,
                e.serial,
                out.display(),
                e.addr,
                out.join("agent.toml").display()
            );
        }
    }
    Ok(0)
}

pub use crate::state::hostname;

/// `muster agent stdio`.
pub fn agent_stdio(config: Option<&Path>, max_concurrent: Option<u32>) -> Result<u8> {
    let mut cfg = crate::agent::stdio::config(config)?;
    if let Some(n) = max_concurrent {
        if n == 0 {
            anyhow::bail!("--max-concurrent must be at least 1");
        }
        cfg.max_concurrent = n;
    }
    let agent = Arc::new(Agent::new(cfg).map_err(|e| anyhow!(e))?);
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    rt.block_on(crate::agent::stdio::serve(agent));
    Ok(0)
}

pub fn agent_serve(config: &Path) -> Result<u8> {
    let cfg = AgentConfig::load(config)?;
    let agent = Arc::new(Agent::new(cfg).map_err(|e| anyhow!(e))?);
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    rt.block_on(server::run(agent)).map_err(|e| anyhow!(e))?;
    Ok(0)
}

pub fn agents(state: &Path, cmd: AgentsCmd) -> Result<u8> {
    match cmd {
        AgentsCmd::List { output, json } => {
            let (entries, bad) = registry::load_all(state);
            for b in bad {
                eprintln!("muster: {b}");
            }
            if json || output == ListFormat::Json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else {
                print!("{}", table(&entries));
            }
        }
        AgentsCmd::Show { name } => match registry::load_lenient(state, &name)? {
            Some((e, bad)) => {
                println!("{}", serde_json::to_string_pretty(&e)?);
                if let Some(bad) = bad {
                    eprintln!("muster: {bad}");
                    return Ok(1);
                }
            }
            None => bail!("no agent {name:?} in the registry ({})", registry::dir(state).display()),
        },
        AgentsCmd::Add { name, addr, cert, tags, force } => {
            let e = crate::enroll::register_existing(state, &name, &addr, &tags, &cert, force)?;
            println!(
                "registered agent {} at {} (serial {}, certificate valid until {})",
                e.name, e.addr, e.serial, e.not_after
            );
        }
        AgentsCmd::Edit { name, addr, tags } => {
            // Reached even when invalid, so a bad address can be fixed here;
            // what is written is checked.
            let (mut e, _) =
                registry::load_lenient(state, &name)?.ok_or_else(|| anyhow!("no agent {name:?} in the registry"))?;
            if let Some(a) = addr {
                e.addr = a;
            }
            if let Some(t) = tags {
                e.tags = t;
            }
            registry::save(state, &e)?;
        }
        AgentsCmd::Remove { name } => {
            // Say what goes, even when the entry itself is unreadable.
            let what = match registry::load(state, &name) {
                Ok(Some(e)) => format!("{} (addr {}, serial {})", e.name, e.addr, e.serial),
                Ok(None) => name.clone(),
                Err(e) => format!("{name} (its entry was unreadable: {e})"),
            };
            if !registry::remove(state, &name)? {
                bail!(
                    "no agent {name:?} in the registry ({}); see `muster agents list`",
                    registry::dir(state).display()
                );
            }
            println!("removed agent {what} from the registry: {}", registry::path(state, &name).display());
        }
    }
    Ok(0)
}

/// The registry as columns under a header (NAME, ADDRESS, TAGS,
/// CERT EXPIRES), each column as wide as its widest cell; `-` for no
/// tags. A revoked agent says so after its expiry.
fn table(entries: &[registry::AgentEntry]) -> String {
    let mut rows = vec![["NAME".to_string(), "ADDRESS".into(), "TAGS".into(), "CERT EXPIRES".into()]];
    for e in entries {
        let tags = if e.tags.is_empty() { "-".to_string() } else { e.tags.join(",") };
        let until = if e.revoked.is_some() { format!("{} (revoked)", e.not_after) } else { e.not_after.clone() };
        rows.push([e.name.clone(), e.addr.clone(), tags, until]);
    }
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let widths = [width(0), width(1), width(2)];
    let mut out = String::new();
    for r in &rows {
        out.push_str(&format!(
            "{:w0$}  {:w1$}  {:w2$}  {}\n",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        ));
    }
    out
}
