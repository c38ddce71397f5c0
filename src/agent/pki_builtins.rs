//! Builtins that keep an agent's trust current without re-pairing (seed
//! 002), answered only over mutual TLS (a hub station has no serial):
//!
//! - `rotate-serial CERT` — a dispatcher's new certificate (PEM, signed by
//!   the fleet CA, naming that same dispatcher): its serial joins the
//!   trusted map beside the old one, which stays until retired;
//! - `retire-serial SERIAL` — the caller's previous serial leaves the map
//!   (never another dispatcher's, never the one the caller is using);
//! - `revoke-serial SERIAL` — the serial joins `revoked-serials`;
//! - `renew-csr` — a CSR for the agent's own key (base64 DER), to renew
//!   its certificate without a new key;
//! - `install-cert CERT` — the renewed certificate (PEM), checked against
//!   the agent's key, name and CA, then served at once.
//!
//! Each changes files under the trust lock, then reloads what it changed.

use super::session::Peer;
use super::trust::{self, normalize_serial};
use super::{trust_edit, Agent};
use base64::Engine;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

type Answer = (i32, Vec<u8>);

fn fail(msg: impl std::fmt::Display) -> Answer {
    (2, format!("{msg}\n").into_bytes())
}

fn ok(msg: impl std::fmt::Display) -> Answer {
    (0, format!("{msg}\n").into_bytes())
}

/// A certificate in `pem`, signed by the agent's CA and valid now.
fn checked_cert(agent: &Agent, pem: &str) -> Result<Vec<u8>, String> {
    let der =
        crate::pki::parse_certs_pem(pem).map_err(|e| e.to_string())?.into_iter().next().ok_or("no certificate")?;
    let ca = crate::pki::load_certs(&agent.cfg.path("ca.crt")).map_err(|e| e.to_string())?;
    let ca = ca.first().ok_or("the agent has no CA certificate")?;
    let (_, c) = X509Certificate::from_der(&der).map_err(|e| e.to_string())?;
    let (_, a) = X509Certificate::from_der(ca).map_err(|e| e.to_string())?;
    c.verify_signature(Some(a.public_key())).map_err(|_| "it is not signed by this agent's CA")?;
    if !c.validity().is_valid() {
        return Err("it is not valid now (expired or not yet valid)".into());
    }
    Ok(der.to_vec())
}

fn common_name(der: &[u8]) -> String {
    X509Certificate::from_der(der)
        .ok()
        .and_then(|(_, c)| c.subject().iter_common_name().next().and_then(|x| x.as_str().ok()).map(str::to_string))
        .unwrap_or_default()
}

fn reload_trust(agent: &Agent) -> Result<(), String> {
    agent.reload().map_err(|e| e.to_string())
}

/// Answer a PKI builtin, or `None` when `name` is not one.
pub fn run(agent: &Agent, name: &str, args: &[String], peer: &Peer) -> Option<Answer> {
    if !matches!(name, "rotate-serial" | "retire-serial" | "revoke-serial" | "renew-csr" | "install-cert") {
        return None;
    }
    if peer.serial.is_empty() {
        return Some(fail(format!("{name} is answered over mutual TLS only")));
    }
    let dir = &agent.cfg.state_dir;
    Some(match (name, args) {
        ("rotate-serial", [pem]) => match checked_cert(agent, pem) {
            Err(why) => fail(format!("refused the new certificate: {why}")),
            Ok(der) if common_name(&der) != peer.dispatcher => fail(format!(
                "refused the new certificate: it names {:?}, not the calling dispatcher {:?}",
                common_name(&der),
                peer.dispatcher
            )),
            Ok(der) => {
                let serial = crate::pki::cert_serial_hex(&der).unwrap_or_default();
                let edit = trust_edit::edit(dir, trust::MAP_FILE, |m| {
                    (trust_edit::with_dispatcher(m, &serial, &peer.dispatcher, false), ())
                });
                match edit.map_err(|e| e.to_string()).and_then(|_| reload_trust(agent)) {
                    Ok(()) => {
                        tracing::info!(dispatcher = %peer.dispatcher, "rotate-serial: now trusting serial {serial}");
                        ok(format!("trusting serial {serial} for {}", peer.dispatcher))
                    }
                    Err(e) => (1, format!("cannot update the trusted map: {e}\n").into_bytes()),
                }
            }
        },
        ("retire-serial", [serial]) => {
            let Ok(serial) = trust::parse_serial(serial) else {
                return Some(fail(format!("{serial:?} is not a hex serial")));
            };
            if serial == normalize_serial(&peer.serial) {
                return Some(fail("refused: that is the serial this session uses; retire it from the new certificate"));
            }
            let edit =
                trust_edit::edit(dir, trust::MAP_FILE, |m| trust_edit::without_serial(m, &serial, &peer.dispatcher));
            match edit.map_err(|e| e.to_string()) {
                Ok(true) => match reload_trust(agent) {
                    Ok(()) => {
                        tracing::info!(dispatcher = %peer.dispatcher, "serial-retire: no longer trusting serial {serial}");
                        ok(format!("retired serial {serial} of {}", peer.dispatcher))
                    }
                    Err(e) => (1, format!("{e}\n").into_bytes()),
                },
                Ok(false) => ok(format!("serial {serial} of {} was not trusted", peer.dispatcher)),
                Err(e) => (1, format!("cannot update the trusted map: {e}\n").into_bytes()),
            }
        }
        ("revoke-serial", [serial]) => {
            let Ok(serial) = trust::parse_serial(serial) else {
                return Some(fail(format!("{serial:?} is not a hex serial")));
            };
            if serial == normalize_serial(&peer.serial) {
                return Some(fail("refused: a dispatcher cannot revoke the certificate it is using"));
            }
            let edit = trust_edit::edit(dir, trust::REVOKED_FILE, |r| (trust_edit::with_revoked(r, &serial), ()));
            match edit.map_err(|e| e.to_string()).and_then(|_| reload_trust(agent)) {
                Ok(()) => {
                    tracing::info!(dispatcher = %peer.dispatcher, "revoke-serial: serial {serial} is revoked");
                    ok(format!("revoked serial {serial}"))
                }
                Err(e) => (1, format!("cannot update revoked-serials: {e}\n").into_bytes()),
            }
        }
        ("renew-csr", []) => {
            let key = std::fs::read_to_string(agent.cfg.path("agent.key"))
                .map_err(|e| e.to_string())
                .and_then(|pem| rcgen::KeyPair::from_pem(&pem).map_err(|e| e.to_string()));
            match key.and_then(|k| {
                crate::pki::csr::make_csr(&agent.cfg.name, &k, &[0; crate::pki::csr::BINDING_LEN])
                    .map_err(|e| e.to_string())
            }) {
                Ok(der) => ok(base64::engine::general_purpose::STANDARD.encode(der)),
                Err(e) => (1, format!("cannot make a CSR: {e}\n").into_bytes()),
            }
        }
        ("install-cert", [pem]) => install(agent, pem),
        _ => fail(format!("usage: {name} {}", if name == "renew-csr" { "" } else { "ARG" })),
    })
}

fn install(agent: &Agent, pem: &str) -> Answer {
    let der = match checked_cert(agent, pem) {
        Ok(d) => d,
        Err(why) => return fail(format!("refused the certificate: {why}")),
    };
    let key =
        std::fs::read_to_string(agent.cfg.path("agent.key")).ok().and_then(|pem| rcgen::KeyPair::from_pem(&pem).ok());
    let same_key = key.is_some_and(|k| {
        X509Certificate::from_der(&der)
            .is_ok_and(|(_, c)| c.public_key().subject_public_key.data.as_ref() == k.public_key_raw())
    });
    if !same_key {
        return fail("refused the certificate: it does not certify this agent's key");
    }
    if common_name(&der) != agent.cfg.name {
        return fail(format!("refused the certificate: it names {:?}, not {:?}", common_name(&der), agent.cfg.name));
    }
    if let Err(e) = crate::fsutil::write_public(&agent.cfg.path("agent.crt"), pem.as_bytes()) {
        return (1, format!("cannot write agent.crt: {e}\n").into_bytes());
    }
    match agent.reload_tls() {
        Ok(()) => {
            let serial = crate::pki::cert_serial_hex(&der).unwrap_or_default();
            tracing::info!("install-cert: now serving certificate serial {serial}");
            ok(format!("installed certificate serial {serial}"))
        }
        Err(e) => (1, format!("wrote agent.crt but cannot use it: {e}\n").into_bytes()),
    }
}
