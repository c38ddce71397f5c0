//! The daemon's mutual-TLS door (port 9007 by convention): consoles and
//! daemons of other hosts connect with a certificate of the fleet CA whose
//! serial is this dispatcher's own or listed in `<state>/daemon-clients`
//! (`<hex-serial> <name>` lines); an agent's certificate, though it chains
//! to the same CA, is refused. The daemon presents a certificate issued
//! for its listen name on first start (`<state>/daemon/daemon.{crt,key}`).

use crate::daemon::{self, Daemon};
use crate::dispatch::DispatcherConfig;
use crate::transport::tls::{self, Identity};
use anyhow::{anyhow, Context, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The name the daemon's certificate carries: the listen host, or this
/// host's name for a wildcard address.
fn cert_name(addr: &str) -> String {
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr).trim_matches(['[', ']']);
    if host.is_empty() || host == "0.0.0.0" || host == "::" {
        crate::state::hostname()
    } else {
        host.to_string()
    }
}

/// The daemon's own TLS identity, issued by the CA the first time.
fn identity(state: &Path, name: &str) -> Result<Identity> {
    let dir = state.join("daemon");
    let (crt, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    if !crt.exists() || !key.exists() {
        let issued = crate::pki::issue_agent(state, name, crate::pki::DEFAULT_CERT_DAYS)?;
        crate::fsutil::write_secret(&key, issued.key_pem.as_bytes())?;
        crate::fsutil::write_public(&crt, issued.cert_pem.as_bytes())?;
    }
    Ok(Identity::load(&crt, &key)?)
}

/// The client serials this daemon serves.
fn allowed(state: &Path) -> Result<std::collections::HashSet<String>> {
    let me = crate::pki::load_dispatcher(state)?;
    let mut set = std::collections::HashSet::from([me.serial]);
    if let Ok(text) = std::fs::read_to_string(state.join("daemon-clients")) {
        let (t, _) = (crate::agent::Trust::parse(&text, "").map_err(|e| anyhow!("daemon-clients: {e}"))?, ());
        for line in text.lines() {
            if let Some(s) = line.split('#').next().and_then(|l| l.split_whitespace().next()) {
                if t.check(s).is_ok() {
                    set.insert(crate::agent::trust::normalize_serial(s));
                }
            }
        }
    }
    Ok(set)
}

/// Listen on `addr` until `stop`.
pub async fn listen(
    state: &Path,
    _cfg: &DispatcherConfig,
    addr: &str,
    d: Arc<Daemon>,
    stop: CancellationToken,
) -> Result<()> {
    let name = cert_name(addr);
    let ca = crate::pki::load_certs(&state.join("ca").join("ca.crt"))?;
    let config = tls::server_config(&ca, identity(state, &name)?)?;
    let allowed = Arc::new(allowed(state)?);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    eprintln!("muster daemon serving remote clients on {addr} (certificate for {name})");
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = stop.cancelled() => return,
                a = listener.accept() => match a { Ok(x) => x, Err(_) => continue },
            };
            let (acceptor, allowed, d) = (acceptor.clone(), allowed.clone(), d.clone());
            tokio::spawn(async move {
                let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await else {
                    return;
                };
                let serial = tls::peer_serial(&stream).unwrap_or_default();
                if !allowed.contains(&serial) {
                    d.log.event("refused-client", serde_json::json!({"peer": peer.to_string(), "serial": serial}));
                    return;
                }
                daemon::serve_client(d, stream, peer.to_string()).await;
            });
        }
    });
    Ok(())
}

/// Connect to a remote daemon at `addr` with this dispatcher's certificate.
pub fn connect(
    state: &Path,
    cfg: &DispatcherConfig,
    addr: &str,
    via: crate::protocol::daemon::Via,
    install: bool,
) -> Result<crate::transport::daemon::DaemonClient> {
    let me = crate::pki::load_dispatcher(state)?;
    let ca = crate::pki::load_certs(&state.join("ca").join("ca.crt"))?;
    let id =
        Identity { certs: crate::pki::parse_certs_pem(&me.cert_pem)?, key: crate::pki::parse_key_pem(&me.key_pem)? };
    let config = tls::client_config(&ca, id)?;
    let name = cert_name(addr);
    let limit = Duration::from_secs(cfg.connect_timeout);
    let user = crate::audit::login_name();
    super::run::runtime()?.block_on(async move {
        let stream = tls::connect(addr, &name, config, limit).await?;
        crate::transport::daemon::DaemonClient::connect(stream, "muster run", &user, via, install)
            .await
            .map_err(|e| anyhow!("the daemon at {addr}: {e}"))
    })
}
