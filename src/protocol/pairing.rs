//! The pairing exchange on port 7444 (ctrl-exec's): an agent that does not
//! yet trust the fleet CA sends its name, address, tags and a CSR; the
//! dispatcher queues it and answers with an id and the 6-digit pairing
//! code; an operator compares the code shown on both sides and approves or
//! denies; the dispatcher then answers with the signed certificate, the CA
//! certificate and its own id and serial (what the agent's trusted map
//! needs), or the reason for the denial. Framed like every muster message.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The default pairing port.
pub const PAIRING_PORT: u16 = 7444;
/// Version of this exchange, in every request.
pub const PAIRING_VERSION: u32 = 1;
/// TLS exporter label for the channel binding the CSR carries.
pub const BINDING_LABEL: &[u8] = b"EXPERIMENTAL muster pairing channel binding";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairRequest {
    pub version: u32,
    /// The agent's name (agent-name rule).
    pub name: String,
    /// `HOST:PORT` the dispatcher will dial.
    pub addr: String,
    pub tags: Vec<String>,
    /// DER PKCS#10 request, carrying the channel binding.
    pub csr: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairGrant {
    pub cert_pem: String,
    pub ca_pem: String,
    pub dispatcher_id: String,
    /// Lowercase hex serial of the dispatcher's certificate.
    pub dispatcher_serial: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PairMessage {
    /// Agent to dispatcher, first and only.
    Request(PairRequest),
    /// Queued: compare `code` on both sides; decided within `expires_in_s`.
    Pending {
        id: String,
        code: String,
        expires_in_s: u64,
    },
    Approved(PairGrant),
    Denied {
        reason: String,
    },
}

/// The pairing code of a CSR: SHA-256 of its DER, the first 4 bytes as a
/// big-endian integer, modulo 1,000,000, as 6 digits (ctrl-exec's rule).
pub fn pairing_code(csr_der: &[u8]) -> String {
    let digest = Sha256::digest(csr_der);
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    format!("{:06}", n % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_follows_the_rule() {
        // SHA-256("abc") = ba7816bf...; 0xba7816bf = 3128432319 -> 432319
        assert_eq!(pairing_code(b"abc"), "432319");
        // SHA-256("") = e3b0c442...; 0xe3b0c442 = 3820012610 -> 012610 (zero-padded)
        assert_eq!(pairing_code(b""), "012610");
    }
}
