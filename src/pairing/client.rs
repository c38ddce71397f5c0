//! `muster agent pair`: the agent's side of pairing. It connects to the
//! dispatcher's pairing port over TLS, makes (or reuses) its key and a CSR
//! carrying the session's channel binding, sends the request, shows the
//! pairing code, waits for the decision, checks the certificate it gets
//! (its own key, its own name, signed by the CA sent with it), and writes
//! the agent directory exactly as `ca issue-agent` does, adding this
//! dispatcher to the trusted map beside any dispatcher already there.

use super::{channel, PairingError};
use crate::enroll::{write_agent_dir, AgentFiles};
use crate::protocol::pairing::{PairGrant, PairMessage, PairRequest, PAIRING_PORT, PAIRING_VERSION};
use crate::transport::{FrameReader, FrameWriter};
use rcgen::KeyPair;
use rustls::pki_types::ServerName;
use std::path::PathBuf;
use std::time::Duration;
use x509_parser::prelude::FromDer;

const CONNECT_LIMIT: Duration = Duration::from_secs(10);
const MAX_FRAME: usize = 64 * 1024;

/// What `muster agent pair` was asked.
#[derive(Debug, Clone)]
pub struct PairOptions {
    /// `HOST[:PORT]` of the dispatcher's pairing listener (port 7444 by default).
    pub dispatcher: String,
    pub name: String,
    pub out: PathBuf,
    /// `HOST:PORT` the dispatcher should dial; default: this host's address
    /// on the route to the dispatcher, port 7443.
    pub addr: Option<String>,
    pub tags: Vec<String>,
    /// Give up waiting for a decision after this long.
    pub wait: Duration,
}

/// The outcome of an approved pairing.
#[derive(Debug, Clone)]
pub struct Paired {
    pub dispatcher_id: String,
    pub dispatcher_serial: String,
    /// The agent's new certificate serial.
    pub serial: String,
    pub addr: String,
}

fn with_port(hostport: &str) -> String {
    if hostport.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) && !hostport.ends_with(']') {
        hostport.to_string()
    } else {
        format!("{hostport}:{PAIRING_PORT}")
    }
}

fn host_of(hostport: &str) -> &str {
    let h = hostport.rsplit_once(':').map(|(h, _)| h).unwrap_or(hostport);
    h.trim_start_matches('[').trim_end_matches(']')
}

/// The agent's key: the one in `out/agent.key` when there is one (pairing
/// with a second dispatcher keeps the agent's identity), else a new P-256
/// key. The flag says whether it is new (and must be written).
fn key(opts: &PairOptions) -> Result<(KeyPair, bool), PairingError> {
    let path = opts.out.join("agent.key");
    match std::fs::read_to_string(&path) {
        Ok(pem) => KeyPair::from_pem(&pem)
            .map(|k| (k, false))
            .map_err(|e| PairingError::BadInput(format!("{} is not a usable key: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map(|k| (k, true))
            .map_err(|e| PairingError::BadInput(format!("cannot make a key: {e}"))),
        Err(e) => Err(PairingError::BadInput(format!("cannot read {}: {e}", path.display()))),
    }
}

/// The certificate must carry our key and name and be signed by the CA.
fn check_grant(grant: &PairGrant, key: &KeyPair, name: &str) -> Result<String, PairingError> {
    let bad = |why: String| PairingError::BadGrant(why);
    let cert =
        crate::pki::parse_certs_pem(&grant.cert_pem)?.into_iter().next().ok_or_else(|| bad("no certificate".into()))?;
    let ca = crate::pki::parse_certs_pem(&grant.ca_pem)?
        .into_iter()
        .next()
        .ok_or_else(|| bad("no CA certificate".into()))?;
    let (_, c) = x509_parser::certificate::X509Certificate::from_der(&cert).map_err(|e| bad(e.to_string()))?;
    let (_, a) = x509_parser::certificate::X509Certificate::from_der(&ca).map_err(|e| bad(e.to_string()))?;
    if c.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(bad("it certifies another key than this agent's".into()));
    }
    let cn = c.subject().iter_common_name().next().and_then(|x| x.as_str().ok()).unwrap_or_default();
    if cn != name {
        return Err(bad(format!("it names {cn:?}, not {name:?}")));
    }
    c.verify_signature(Some(a.public_key())).map_err(|_| bad("it is not signed by the CA sent with it".into()))?;
    Ok(crate::pki::cert_serial_hex(&cert)?)
}

/// Pair with the dispatcher. `on_pending(id, code)` runs once the request
/// is queued, to show the code to the operator.
pub async fn pair(opts: &PairOptions, on_pending: impl FnOnce(&str, &str)) -> Result<Paired, PairingError> {
    crate::protocol::check_action_name(&opts.name)
        .map_err(|e| PairingError::BadInput(e.to_string().replace("action name", "agent name")))?;
    crate::pki::check_agent_name(&opts.name)?;
    let target = with_port(&opts.dispatcher);
    let conn_err = |why: String| PairingError::Connect { addr: target.clone(), why };
    let tcp = tokio::time::timeout(CONNECT_LIMIT, tokio::net::TcpStream::connect(&target))
        .await
        .map_err(|_| conn_err("no answer within 10s".into()))?
        .map_err(|e| conn_err(e.to_string()))?;
    let addr = match &opts.addr {
        Some(a) => a.clone(),
        None => tcp.local_addr().map(|a| format!("{}:7443", a.ip())).map_err(|e| conn_err(e.to_string()))?,
    };
    let tls_err = |why: String| PairingError::Tls { addr: target.clone(), why };
    let server_name =
        ServerName::try_from(host_of(&target).to_string()).map_err(|e| tls_err(format!("bad host name: {e}")))?;
    let config = channel::client_config().map_err(|e| tls_err(e.to_string()))?;
    let stream =
        tokio::time::timeout(CONNECT_LIMIT, tokio_rustls::TlsConnector::from(config).connect(server_name, tcp))
            .await
            .map_err(|_| tls_err("no TLS answer within 10s".into()))?
            .map_err(|e| tls_err(e.to_string()))?;
    let binding = channel::binding(stream.get_ref().1).map_err(|e| tls_err(e.to_string()))?;
    let (key, new_key) = key(opts)?;
    let csr = crate::pki::csr::make_csr(&opts.name, &key, &binding)
        .map_err(|e| PairingError::BadInput(format!("cannot make the CSR: {e}")))?;
    let (r, w) = tokio::io::split(stream);
    let (mut reader, mut writer) = (FrameReader::new(r, MAX_FRAME), FrameWriter::new(w, MAX_FRAME));
    let req = PairRequest {
        version: PAIRING_VERSION,
        name: opts.name.clone(),
        addr: addr.clone(),
        tags: opts.tags.clone(),
        csr,
    };
    writer.write_value(&PairMessage::Request(req)).await?;
    let expires = match reader.read_value::<PairMessage>().await? {
        Some(PairMessage::Pending { id, code, expires_in_s }) => {
            on_pending(&id, &code);
            expires_in_s
        }
        Some(PairMessage::Denied { reason }) => return Err(PairingError::Denied(reason)),
        Some(other) => return Err(PairingError::Protocol(format!("{other:?}").chars().take(80).collect())),
        None => return Err(PairingError::Closed),
    };
    let limit = opts.wait.min(Duration::from_secs(expires.saturating_add(30)));
    let grant = match tokio::time::timeout(limit, reader.read_value::<PairMessage>()).await {
        Err(_) => return Err(PairingError::NoDecision(limit.as_secs())),
        Ok(Ok(Some(PairMessage::Approved(g)))) => g,
        Ok(Ok(Some(PairMessage::Denied { reason }))) => return Err(PairingError::Denied(reason)),
        Ok(Ok(Some(other))) => return Err(PairingError::Protocol(format!("{other:?}").chars().take(80).collect())),
        Ok(Ok(None)) => return Err(PairingError::Closed),
        Ok(Err(e)) => return Err(e.into()),
    };
    let serial = check_grant(&grant, &key, &opts.name)?;
    let key_pem = key.serialize_pem();
    let files = AgentFiles {
        name: &opts.name,
        addr: &addr,
        tags: &opts.tags,
        key_pem: new_key.then_some(key_pem.as_str()),
        cert_pem: &grant.cert_pem,
        ca_pem: grant.ca_pem.as_bytes(),
        dispatcher_serial: &grant.dispatcher_serial,
        dispatcher_id: &grant.dispatcher_id,
    };
    write_agent_dir(&opts.out, &files)?;
    Ok(Paired { dispatcher_id: grant.dispatcher_id, dispatcher_serial: grant.dispatcher_serial, serial, addr })
}
