//! Enrolling an agent before pairing exists: issue its certificate from
//! the CA, write a self-contained agent directory (key 0600, certificate,
//! `ca.crt`, trusted-dispatcher map, `agent.toml`, an empty allowlist) and
//! add its registry entry. Used by `muster ca issue-agent`, the demo, the
//! benchmarks and the tests.

use crate::dispatch::registry::{self, AgentEntry};
use crate::{fsutil, pki};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why an agent could not be issued; nothing of an existing agent is
/// changed when the error is about the input or an existing name.
#[derive(Debug, Error)]
pub enum EnrollError {
    #[error("{0}")]
    BadInput(String),
    #[error("agent {name:?} already exists ({}); pass --force to replace its key and certificate", .path.display())]
    Exists { name: String, path: PathBuf },
    #[error("{} already holds an agent key; pass --force to replace it, or choose another --out", .0.display())]
    KeyExists(PathBuf),
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("cannot write {what} in {}: {source}", .dir.display())]
    Write { what: &'static str, dir: PathBuf, source: std::io::Error },
    #[error("cannot read the CA certificate: {0}")]
    CaCert(std::io::Error),
}

/// What [`issue_agent_dir`] did.
#[derive(Debug)]
pub struct Issued {
    pub entry: AgentEntry,
    /// The registry entry this one replaced (only with `force`).
    pub replaced: Option<AgentEntry>,
}

/// Issue `name`, write its files into `out`, register it at `addr`. An
/// existing registry entry of that name, or an agent key already in `out`,
/// is refused unless `force` (then both are replaced; the old certificate
/// stays valid until it expires or is revoked).
pub fn issue_agent_dir(
    state: &Path,
    name: &str,
    addr: &str,
    tags: &[String],
    out: &Path,
    force: bool,
) -> Result<Issued, EnrollError> {
    let bad = |s: String| EnrollError::BadInput(s);
    crate::protocol::check_action_name(name).map_err(|e| bad(e.to_string().replace("action name", "agent name")))?;
    if addr.parse::<std::net::SocketAddr>().is_err() && !addr.contains(':') {
        return Err(bad(format!("--addr {addr:?} must be HOST:PORT")));
    }
    for t in tags {
        crate::protocol::check_action_name(t).map_err(|e| bad(e.to_string().replace("action name", "tag")))?;
    }
    let replaced = match registry::load(state, name) {
        Ok(Some(_)) if !force => {
            return Err(EnrollError::Exists { name: name.into(), path: registry::path(state, name) })
        }
        Ok(old) => old,
        Err(e) if !force => return Err(e.into()),
        Err(_) => None,
    };
    if !force && out.join("agent.key").exists() {
        return Err(EnrollError::KeyExists(out.join("agent.key")));
    }
    let me = pki::load_dispatcher(state)?;
    let cert = pki::issue_agent(state, name, pki::DEFAULT_CERT_DAYS)?;
    let ca = std::fs::read(state.join("ca").join("ca.crt")).map_err(EnrollError::CaCert)?;
    let files = AgentFiles {
        name,
        addr,
        tags,
        key_pem: Some(&cert.key_pem),
        cert_pem: &cert.cert_pem,
        ca_pem: &ca,
        dispatcher_serial: &me.serial,
        dispatcher_id: &me.id,
    };
    write_agent_dir(out, &files)?;
    let entry = AgentEntry {
        name: name.into(),
        addr: addr.into(),
        tags: tags.to_vec(),
        serial: cert.serial,
        not_after: cert.not_after,
        added: now_rfc3339(),
        paired: None,
        revoked: None,
    };
    registry::save(state, &entry)?;
    Ok(Issued { entry, replaced })
}

pub use crate::timefmt::now_rfc3339;

/// What makes an agent directory, however it was obtained (`ca
/// issue-agent` or `agent pair`).
pub struct AgentFiles<'a> {
    pub name: &'a str,
    /// `HOST:PORT` the dispatcher dials; the listen address derives from it.
    pub addr: &'a str,
    pub tags: &'a [String],
    /// A new private key to write; `None` keeps the one already there.
    pub key_pem: Option<&'a str>,
    pub cert_pem: &'a str,
    pub ca_pem: &'a [u8],
    pub dispatcher_serial: &'a str,
    pub dispatcher_id: &'a str,
}

/// Write an agent directory: `agent.key` (0600, when given), `agent.crt`,
/// `ca.crt`, this dispatcher's line in the trusted map `dispatchers`
/// (replacing an older line of the same dispatcher id; other dispatchers'
/// lines stay, so a second dispatcher pairs beside the first), and, when
/// absent, an empty `scripts.conf` and an `agent.toml`.
pub fn write_agent_dir(out: &Path, f: &AgentFiles) -> Result<(), EnrollError> {
    let write = |what: &'static str, bytes: &[u8], secret: bool| {
        let p = out.join(what);
        let r = if secret { fsutil::write_secret(&p, bytes) } else { fsutil::write_public(&p, bytes) };
        r.map_err(|source| EnrollError::Write { what, dir: out.to_path_buf(), source })
    };
    if let Some(key) = f.key_pem {
        write("agent.key", key.as_bytes(), true)?;
    }
    write("agent.crt", f.cert_pem.as_bytes(), false)?;
    write("ca.crt", f.ca_pem, false)?;
    std::fs::create_dir_all(out).map_err(|source| EnrollError::Write {
        what: "dispatchers",
        dir: out.to_path_buf(),
        source,
    })?;
    crate::agent::trust_edit::edit(out, crate::agent::trust::MAP_FILE, |map| {
        (crate::agent::trust_edit::with_dispatcher(map, f.dispatcher_serial, f.dispatcher_id, true), ())
    })
    .map_err(|source| EnrollError::Write { what: "dispatchers", dir: out.to_path_buf(), source })?;
    if !out.join("scripts.conf").exists() {
        write("scripts.conf", b"# name = /absolute/path, one per line; send SIGHUP to reload\n", false)?;
    }
    if !out.join("agent.toml").exists() {
        let port = f.addr.rsplit(':').next().unwrap_or("7443");
        let listen =
            if f.addr.parse::<std::net::SocketAddr>().is_ok() { f.addr.to_string() } else { format!("0.0.0.0:{port}") };
        let toml = format!("name = {:?}\nlisten = {listen:?}\nstate_dir = \".\"\ntags = {:?}\n", f.name, f.tags);
        write("agent.toml", toml.as_bytes(), false)?;
    }
    Ok(())
}

/// Register an agent whose certificate was issued elsewhere (another
/// dispatcher sharing this CA, or an earlier `ca issue-agent` whose entry
/// was removed): read the PEM certificate at `cert`, check that this
/// dispatcher's CA signed it, that it is a client certificate for `name`
/// and not expired, and save an entry at `addr` (`HOST:PORT`) with `tags`
/// and the certificate's serial and expiry. An existing entry of that
/// name is refused unless `force`. Returns the entry saved.
pub fn register_existing(
    state: &Path,
    name: &str,
    addr: &str,
    tags: &[String],
    cert: &Path,
    force: bool,
) -> Result<AgentEntry, EnrollError> {
    use rustls::server::WebPkiClientVerifier;
    let bad = |s: String| EnrollError::BadInput(s);
    crate::protocol::check_action_name(name).map_err(|e| bad(e.to_string().replace("action name", "agent name")))?;
    if !addr.contains(':') {
        return Err(bad(format!("--addr {addr:?} must be HOST:PORT")));
    }
    for t in tags {
        crate::protocol::check_action_name(t).map_err(|e| bad(e.to_string().replace("action name", "tag")))?;
    }
    if !force {
        if let Ok(Some(_)) = registry::load(state, name) {
            return Err(EnrollError::Exists { name: name.into(), path: registry::path(state, name) });
        }
    }
    let certs = pki::load_certs(cert)?;
    let Some(leaf) = certs.first() else {
        return Err(bad(format!("{} holds no PEM certificate", cert.display())));
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in pki::load_certs(&state.join("ca").join("ca.crt"))? {
        roots.add(c).map_err(|e| bad(format!("this dispatcher's CA certificate is unusable: {e}")))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(std::sync::Arc::new(roots), provider)
        .build()
        .map_err(|e| bad(format!("cannot check certificates against this dispatcher's CA: {e}")))?;
    verifier.verify_client_cert(leaf, &certs[1..], rustls_pki_types::UnixTime::now()).map_err(|e| {
        bad(format!(
            "{} is not an agent certificate this dispatcher's CA signed ({e}); issue one with `muster ca issue-agent`",
            cert.display()
        ))
    })?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| bad(format!("{} is not a readable certificate: {e}", cert.display())))?;
    let cn = parsed.subject().iter_common_name().next().and_then(|a| a.as_str().ok()).unwrap_or("");
    if cn != name {
        return Err(bad(format!(
            "{} is the certificate of {cn:?}, not of {name:?}; name the agent {cn:?} or give its own certificate",
            cert.display()
        )));
    }
    let not_after = time::OffsetDateTime::from_unix_timestamp(parsed.validity().not_after.timestamp())
        .map(crate::timefmt::rfc3339)
        .map_err(|e| bad(format!("{}: unreadable expiry: {e}", cert.display())))?;
    let entry = AgentEntry {
        name: name.into(),
        addr: addr.into(),
        tags: tags.to_vec(),
        serial: pki::cert_serial_hex(leaf)?,
        not_after,
        added: now_rfc3339(),
        paired: None,
        revoked: None,
    };
    registry::save(state, &entry)?;
    Ok(entry)
}
