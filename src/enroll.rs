//! Enrolling an agent before pairing exists: issue its certificate from
//! the CA, write a self-contained agent directory (key 0600, certificate,
//! `ca.crt`, trusted-dispatcher map, `agent.toml`, an empty allowlist) and
//! add its registry entry. Used by `muster ca issue-agent`, the demo, the
//! benchmarks and the tests.

use crate::dispatch::registry::{self, AgentEntry};
use crate::{fsutil, pki};
use std::path::Path;

/// Issue `name`, write its files into `out`, register it at `addr`.
pub fn issue_agent_dir(
    state: &Path,
    name: &str,
    addr: &str,
    tags: &[String],
    out: &Path,
) -> Result<AgentEntry, String> {
    crate::protocol::check_action_name(name).map_err(|e| e.to_string().replace("action name", "agent name"))?;
    if addr.parse::<std::net::SocketAddr>().is_err() && !addr.contains(':') {
        return Err(format!("--addr {addr:?} must be HOST:PORT"));
    }
    for t in tags {
        crate::protocol::check_action_name(t).map_err(|e| e.to_string().replace("action name", "tag"))?;
    }
    let me = pki::load_dispatcher(state).map_err(|e| e.to_string())?;
    let cert = pki::issue_agent(state, name, pki::DEFAULT_CERT_DAYS).map_err(|e| e.to_string())?;
    let ca =
        std::fs::read(state.join("ca").join("ca.crt")).map_err(|e| format!("cannot read the CA certificate: {e}"))?;
    let io = |what: &str, e: std::io::Error| format!("cannot write {what} in {}: {e}", out.display());
    fsutil::write_secret(&out.join("agent.key"), cert.key_pem.as_bytes()).map_err(|e| io("agent.key", e))?;
    fsutil::write_public(&out.join("agent.crt"), cert.cert_pem.as_bytes()).map_err(|e| io("agent.crt", e))?;
    fsutil::write_public(&out.join("ca.crt"), &ca).map_err(|e| io("ca.crt", e))?;
    let map = format!("{} {}\n", me.serial, me.id);
    fsutil::write_public(&out.join("dispatchers"), map.as_bytes()).map_err(|e| io("dispatchers", e))?;
    if !out.join("scripts.conf").exists() {
        let body = "# name = /absolute/path, one per line; send SIGHUP to reload\n";
        fsutil::write_public(&out.join("scripts.conf"), body.as_bytes()).map_err(|e| io("scripts.conf", e))?;
    }
    if !out.join("agent.toml").exists() {
        let port = addr.rsplit(':').next().unwrap_or("7443");
        let listen =
            if addr.parse::<std::net::SocketAddr>().is_ok() { addr.to_string() } else { format!("0.0.0.0:{port}") };
        let toml = format!("name = {name:?}\nlisten = {listen:?}\nstate_dir = \".\"\ntags = {tags:?}\n",);
        fsutil::write_public(&out.join("agent.toml"), toml.as_bytes()).map_err(|e| io("agent.toml", e))?;
    }
    let entry = AgentEntry {
        name: name.into(),
        addr: addr.into(),
        tags: tags.to_vec(),
        serial: cert.serial,
        not_after: cert.not_after,
        added: now_rfc3339(),
    };
    registry::save(state, &entry).map_err(|e| format!("cannot write the registry entry: {e}"))?;
    Ok(entry)
}

pub use crate::timefmt::now_rfc3339;
