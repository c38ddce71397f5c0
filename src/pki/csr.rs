//! Certificate signing requests for pairing. An agent makes its own key and
//! a CSR naming itself; the CSR also carries, as its PKCS#9
//! `challengePassword` attribute, the hex of a *channel binding*: keying
//! material exported from the TLS session the CSR travels over. The
//! dispatcher refuses a CSR whose binding is not its own session's, so a
//! man in the middle (who holds two different TLS sessions) can neither
//! relay the agent's CSR nor substitute his own without the pairing codes
//! differing. [`check_csr`] verifies the self-signature, the name and the
//! key's strength (P-256 or P-384 ECDSA, Ed25519, or RSA of 2048 bits or
//! more) before anything is queued.

use rcgen::{Attribute, CertificateParams, CertificateSigningRequestParams, DnType, KeyPair};
use rustls_pki_types::CertificateSigningRequestDer;
use thiserror::Error;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

/// PKCS#9 challengePassword: carries the channel binding, hex.
const CHALLENGE_PASSWORD: &[u64] = &[1, 2, 840, 113549, 1, 9, 7];
/// Largest CSR accepted, in bytes (an RSA-8192 CSR is about 2.5 KiB).
pub const MAX_CSR: usize = 16 * 1024;
/// Bytes of channel binding.
pub const BINDING_LEN: usize = 32;

/// Why a CSR is refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CsrError {
    #[error("the CSR is {0} bytes; at most {MAX_CSR} are accepted")]
    TooLarge(usize),
    #[error("the CSR is malformed: {0}")]
    Malformed(String),
    #[error("the CSR's signature does not verify: it was not made with the key it carries")]
    BadSignature,
    #[error("the CSR's key is too weak or not supported ({0}); use P-256, P-384, Ed25519 or RSA of 2048 bits or more")]
    WeakKey(String),
    #[error("the CSR names {csr:?} but the request is for {name:?}")]
    NameMismatch { csr: String, name: String },
    #[error("the CSR carries no channel binding (is the agent an older muster?)")]
    NoBinding,
    #[error(
        "the CSR was made for another TLS session than this one: something between the agent and this \
         dispatcher relays the pairing (a man in the middle?); refused"
    )]
    BindingMismatch,
}

/// A CSR that passed [`check_csr`].
pub struct CheckedCsr {
    /// The public key to certify (the CSR's requested extensions are ignored).
    pub request: CertificateSigningRequestParams,
    /// `ECDSA P-256`, `RSA 4096`, ...
    pub key_type: String,
    pub binding: [u8; BINDING_LEN],
}

/// A CSR for agent `name` from `key`, carrying `binding`.
pub fn make_csr(name: &str, key: &KeyPair, binding: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    let hex = crate::hexstr::encode(binding);
    let len = u8::try_from(hex.len()).map_err(|_| rcgen::Error::CouldNotParseCertificationRequest)?;
    // SET { UTF8String hex }: lengths stay below 128, so short-form DER.
    let mut values = vec![0x31, len + 2, 0x0c, len];
    values.extend_from_slice(hex.as_bytes());
    let attr = Attribute { oid: CHALLENGE_PASSWORD, values };
    Ok(params.serialize_request_with_attributes(key, vec![attr])?.der().to_vec())
}

fn key_type(pk: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Result<String, CsrError> {
    let curve = || pk.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
    match pk.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size();
            if bits < 2048 {
                return Err(CsrError::WeakKey(format!("RSA {bits}")));
            }
            Ok(format!("RSA {bits}"))
        }
        Ok(PublicKey::EC(_)) => match curve().as_deref() {
            Some("1.2.840.10045.3.1.7") => Ok("ECDSA P-256".into()),
            Some("1.3.132.0.34") => Ok("ECDSA P-384".into()),
            other => Err(CsrError::WeakKey(format!("ECDSA on curve {}", other.unwrap_or("unknown")))),
        },
        Ok(PublicKey::Unknown(_)) if pk.algorithm.algorithm.to_id_string() == "1.3.101.112" => Ok("Ed25519".into()),
        Ok(other) => Err(CsrError::WeakKey(format!("{other:?}").chars().take(40).collect())),
        Err(e) => Err(CsrError::Malformed(e.to_string())),
    }
}

/// Check a CSR sent by an agent that asks to be paired as `name`: size,
/// structure, key strength, self-signature, common name, binding present.
pub fn check_csr(der: &[u8], name: &str) -> Result<CheckedCsr, CsrError> {
    if der.len() > MAX_CSR {
        return Err(CsrError::TooLarge(der.len()));
    }
    let (rest, csr) = X509CertificationRequest::from_der(der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed(format!("{} bytes after the request", rest.len())));
    }
    let info = &csr.certification_request_info;
    // Strength first: ring will not even verify a signature by a weak key.
    let key_type = key_type(&info.subject_pki)?;
    csr.verify_signature().map_err(|_| CsrError::BadSignature)?;
    let cn = info.subject.iter_common_name().next().and_then(|c| c.as_str().ok()).unwrap_or_default();
    if cn != name {
        return Err(CsrError::NameMismatch { csr: cn.to_string(), name: name.to_string() });
    }
    let binding = info
        .iter_attributes()
        .find_map(|a| match a.parsed_attribute() {
            ParsedCriAttribute::ChallengePassword(p) => crate::hexstr::decode_fixed::<BINDING_LEN>(&p.0).ok(),
            _ => None,
        })
        .ok_or(CsrError::NoBinding)?;
    // rcgen re-parses (and re-verifies) to hand back the public key to sign.
    let mut request = CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(der.to_vec()))
        .map_err(|e| CsrError::Malformed(e.to_string()))?;
    request.params = CertificateParams::default();
    Ok(CheckedCsr { request, key_type, binding })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_csr_checks_and_carries_its_binding() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let der = make_csr("web01", &key, &[7u8; BINDING_LEN]).unwrap();
        let c = check_csr(&der, "web01").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.key_type, "ECDSA P-256");
        assert_eq!(c.binding, [7u8; BINDING_LEN]);
        assert!(matches!(check_csr(&der, "web02"), Err(CsrError::NameMismatch { .. })));
    }

    #[test]
    fn other_good_keys_pass() {
        for (alg, want) in [(&rcgen::PKCS_ECDSA_P384_SHA384, "ECDSA P-384"), (&rcgen::PKCS_ED25519, "Ed25519")] {
            let key = KeyPair::generate_for(alg).unwrap();
            let der = make_csr("a", &key, &[1; 32]).unwrap();
            assert_eq!(check_csr(&der, "a").unwrap_or_else(|e| panic!("{want}: {e}")).key_type, want);
        }
    }

    #[test]
    fn tampered_truncated_and_garbage_csrs_are_refused() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let der = make_csr("web01", &key, &[7u8; BINDING_LEN]).unwrap();
        let mut bad = der.clone();
        let i = bad.len() / 3;
        bad[i] ^= 0x01;
        assert!(check_csr(&bad, "web01").is_err());
        assert!(matches!(check_csr(&der[..der.len() - 5], "web01"), Err(CsrError::Malformed(_))));
        assert!(matches!(check_csr(b"hello", "web01"), Err(CsrError::Malformed(_))));
        assert!(matches!(check_csr(&vec![0x30; MAX_CSR + 1], "x"), Err(CsrError::TooLarge(_))));
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "web01");
        let plain = params.serialize_request(&key).unwrap().der().to_vec();
        assert_eq!(check_csr(&plain, "web01").err(), Some(CsrError::NoBinding));
    }
}
