//! `muster agent stdio`: the agent protocol on standard input and output,
//! what the SSH carrier starts on a remote host (seed 003's remote agent).
//! The SSH login already authenticated and authorized the caller, so there
//! is no trust map: the one session is the caller. Same executor, limits,
//! queue (`Refused{busy}` beyond `max_concurrent`) and per-command
//! directories as any agent; a shell command line is allowed (the caller
//! holds a shell anyway) and files anywhere the account may write. When
//! standard input closes (the SSH connection is gone) running commands are
//! cancelled and the agent exits. Logs go to standard error.

use super::session::{self, Peer};
use super::{Agent, AgentConfig};
use crate::transport::{FrameReader, FrameWriter};
use std::path::Path;
use std::sync::Arc;

/// The config of a stdio agent: `file` when given, else defaults (state in
/// [`crate::state::stdio_agent_dir`], shell allowed, files under `/`).
pub fn config(file: Option<&Path>) -> Result<AgentConfig, super::config::ConfigError> {
    if let Some(f) = file {
        return AgentConfig::load(f);
    }
    let name: String = crate::state::hostname()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
        .take(64)
        .collect();
    let name = if name.starts_with(|c: char| c.is_ascii_alphanumeric()) { name } else { format!("h{name}") };
    let dir = crate::state::stdio_agent_dir();
    let text = format!(
        "name = {name:?}\nstate_dir = {:?}\ntls = false\nallow_shell = true\nfile_roots = [\"/\"]\n",
        dir.display().to_string()
    );
    AgentConfig::parse(&text, &dir)
}

/// Serve the one session on stdin/stdout, then stop.
pub async fn serve(agent: Arc<Agent>) {
    let max = agent.cfg.max_frame;
    let reader = FrameReader::new(tokio::io::stdin(), max);
    let writer = FrameWriter::new(tokio::io::stdout(), max);
    let who = std::env::var("SSH_CLIENT").ok().and_then(|c| c.split_whitespace().next().map(str::to_string));
    let peer = Peer { dispatcher: "stdio".into(), serial: String::new(), addr: who.unwrap_or_else(|| "stdio".into()) };
    super::server::start_journal(&agent);
    tracing::info!("agent {} serving on stdin/stdout (pid {})", agent.cfg.name, std::process::id());
    session::serve(agent.clone(), reader, writer, peer).await;
    super::server::stop(&agent).await;
}
