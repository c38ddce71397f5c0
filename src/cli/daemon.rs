//! `muster daemon`, and how other commands find and use one: `muster run`
//! (mTLS or SSH) goes through the daemon answering on the state dir's
//! socket unless `--no-daemon`, and says so with `-v`.

use crate::daemon::{self, links::Links, log::Log, Daemon};
use crate::dispatch::DispatcherConfig;
use crate::protocol::daemon::Via;
use crate::transport::daemon::DaemonClient;
use anyhow::{anyhow, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// The local socket (default <state>/daemon/daemon.sock; mode 0600)
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Also serve consoles and daemons of other hosts over mutual TLS (the fleet CA), e.g. 0.0.0.0:9007
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Rotate the JSON log past this many bytes
    #[arg(long, default_value_t = 10 << 20, value_name = "BYTES")]
    pub log_max_bytes: u64,
}

pub fn run(state: &Path, a: DaemonArgs) -> Result<u8> {
    let cfg = DispatcherConfig::load(state).map_err(|e| anyhow!(e))?;
    let socket = a.socket.unwrap_or_else(|| daemon::socket_path(state));
    let log = Arc::new(Log::new(state.join("daemon").join("daemon.log"), a.log_max_bytes, 3));
    let tls = match super::run::tls_carrier(state, &cfg) {
        Ok(c) => Some(Arc::new(c) as Arc<dyn crate::transport::carrier::Dialer>),
        Err(e) => {
            tracing::warn!("no mTLS carrier ({e}); agents are reached over SSH only");
            None
        }
    };
    let ssh = super::ssh::carrier(state, &cfg, true).map(|(c, _)| Arc::new(c)).ok();
    let ssh_no = super::ssh::carrier(state, &cfg, false).map(|(c, _)| Arc::new(c)).ok();
    let links = Arc::new(Links::new(tls, ssh, ssh_no, log.clone()));
    let d = Daemon::new(links, log.clone(), crate::state::hostname());
    let rt = super::run::runtime()?;
    rt.block_on(async move {
        let listener = daemon::bind_socket(&socket).await?;
        log.event("start", serde_json::json!({"socket": socket.display().to_string(), "pid": std::process::id()}));
        eprintln!("muster daemon listening on {} (pid {})", socket.display(), std::process::id());
        let stop = tokio_util::sync::CancellationToken::new();
        if let Some(addr) = &a.listen {
            super::daemon_tls::listen(state, &cfg, addr, d.clone(), stop.clone()).await?;
        }
        let stopper = stop.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            if let (Ok(mut t), Ok(mut i)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
                tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
            }
            stopper.cancel();
        });
        tokio::spawn(daemon::watch_socket(socket.clone(), stop.clone(), log.clone()));
        daemon::serve_socket(d, listener, stop).await;
        daemon::remove_own_socket(&socket);
        log.event("stop", serde_json::json!({}));
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(0)
}

/// A connection to the daemon of `state`, if one answers on its socket.
pub fn connect(state: &Path, socket: Option<&Path>, via: Via, install: bool) -> Option<DaemonClient> {
    let path = socket.map(Path::to_path_buf).unwrap_or_else(|| daemon::socket_path(state));
    if !path.exists() {
        return None;
    }
    let rt = super::run::runtime().ok()?;
    let user = crate::audit::login_name();
    rt.block_on(async {
        let stream = tokio::net::UnixStream::connect(&path).await.ok()?;
        DaemonClient::connect(stream, "muster run", &user, via, install).await.ok()
    })
}
