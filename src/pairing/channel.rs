//! The TLS ends of a pairing connection. The dispatcher serves with its own
//! certificate; the agent, which trusts no CA yet, accepts whatever
//! certificate the server shows (still checking the handshake signature)
//! and relies instead on the channel binding: both ends export keying
//! material from their TLS session ([`binding`]); the agent puts it in its
//! CSR, and the dispatcher refuses a CSR whose binding is not its own. A
//! relay in the middle holds two sessions with two different bindings, so
//! it can only pass a CSR the dispatcher refuses, or make its own, whose
//! pairing code the operator will not see on the agent.

use crate::pki::csr::BINDING_LEN;
use crate::protocol::pairing::BINDING_LABEL;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};
use std::sync::Arc;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts any server certificate; see the module doc for why that is safe
/// here and nowhere else.
#[derive(Debug)]
struct BoundByCsr(Arc<CryptoProvider>);

impl ServerCertVerifier for BoundByCsr {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The agent's end: TLS 1.3, any server certificate, no client certificate.
pub fn client_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    let p = provider();
    let cfg = ClientConfig::builder_with_provider(p.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(BoundByCsr(p)))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The dispatcher's end: TLS 1.3 with its own certificate, no client
/// certificate (the agent has none yet).
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(cfg))
}

/// The channel binding of an established TLS session (either end).
pub fn binding<D>(conn: &rustls::ConnectionCommon<D>) -> Result<[u8; BINDING_LEN], rustls::Error> {
    conn.export_keying_material([0u8; BINDING_LEN], BINDING_LABEL, None)
}
