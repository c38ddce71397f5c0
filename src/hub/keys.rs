//! Hub key pairs, written by `muster hub keygen station|network --out DIR`.
//! The station key (ed25519) signs commands; agents hold its public part.
//! The network key (X25519) is shared by all agents; the station seals
//! commands to its public part. Secrets are hex in `<kind>.key` (0600),
//! public parts in `<kind>.pub`; existing files are never overwritten.

use crate::fsutil;
use crate::hexstr::{self, HexError};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyKind {
    Station,
    Network,
}

impl KeyKind {
    fn stem(self) -> &'static str {
        match self {
            KeyKind::Station => "station",
            KeyKind::Network => "network",
        }
    }
}

/// Why a key file cannot be written or used. Messages name the file (and
/// the line for content errors) and never echo a key's digits.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("{} already exists; refusing to overwrite a key (move it away first)", .0.display())]
    Exists(PathBuf),
    #[error("no randomness from the OS: {0}")]
    Random(String),
    #[error("cannot write {}: {source}", .path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}: {why}; the file must hold one line of 64 hex digits (a 32-byte key)", .path.display())]
    Content { path: PathBuf, line: usize, why: HexError },
    #[error("{}:{line}: the key file holds more than one line; expected one line of 64 hex digits", .path.display())]
    Lines { path: PathBuf, line: usize },
    #[error("{}:{line}: not a valid ed25519 public key; copy station.pub from the station again", .path.display())]
    NotEd25519 { path: PathBuf, line: usize },
}

/// Callers that still report errors as text (the hub subscriber) keep
/// working with `?`.
impl From<KeyError> for String {
    fn from(e: KeyError) -> String {
        e.to_string()
    }
}

/// The 32 bytes held by a key file's text (`path` only names it in errors):
/// one line of 64 hex digits, whitespace around it ignored. The line in an
/// error is where the key text starts.
pub fn parse32(text: &str, path: &Path) -> Result<[u8; 32], KeyError> {
    let lead = &text[..text.len() - text.trim_start().len()];
    let line = 1 + lead.matches('\n').count();
    if text.trim().contains('\n') {
        return Err(KeyError::Lines { path: path.to_path_buf(), line });
    }
    hexstr::decode_fixed::<32>(text).map_err(|why| KeyError::Content { path: path.to_path_buf(), line, why })
}

/// Generate a key pair into `dir`; returns (secret path, public path).
pub fn generate(kind: KeyKind, dir: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
    let (sk_path, pk_path) = (dir.join(format!("{}.key", kind.stem())), dir.join(format!("{}.pub", kind.stem())));
    for p in [&sk_path, &pk_path] {
        if p.exists() {
            return Err(KeyError::Exists(p.clone()));
        }
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    let public = match kind {
        KeyKind::Station => ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes(),
        KeyKind::Network => *crypto_box::SecretKey::from(seed).public_key().as_bytes(),
    };
    let write = |p: &Path, text: String, secret: bool| {
        let r =
            if secret { fsutil::write_secret(p, text.as_bytes()) } else { fsutil::write_public(p, text.as_bytes()) };
        r.map_err(|source| KeyError::Write { path: p.to_path_buf(), source })
    };
    write(&sk_path, format!("{}\n", hexstr::encode(&seed)), true)?;
    write(&pk_path, format!("{}\n", hexstr::encode(&public)), false)?;
    Ok((sk_path, pk_path))
}

fn read32(path: &Path) -> Result<[u8; 32], KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read { path: path.to_path_buf(), source })?;
    parse32(&text, path)
}

pub fn load_station_secret(path: &Path) -> Result<ed25519_dalek::SigningKey, KeyError> {
    Ok(ed25519_dalek::SigningKey::from_bytes(&read32(path)?))
}

pub fn load_station_public(path: &Path) -> Result<ed25519_dalek::VerifyingKey, KeyError> {
    ed25519_dalek::VerifyingKey::from_bytes(&read32(path)?)
        .map_err(|_| KeyError::NotEd25519 { path: path.to_path_buf(), line: 1 })
}

pub fn load_network_secret(path: &Path) -> Result<crypto_box::SecretKey, KeyError> {
    Ok(crypto_box::SecretKey::from(read32(path)?))
}

pub fn load_network_public(path: &Path) -> Result<crypto_box::PublicKey, KeyError> {
    Ok(crypto_box::PublicKey::from(read32(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keygen_writes_pairs_that_load_and_match() {
        let d = tempfile::tempdir().unwrap();
        let (sk, pk) = generate(KeyKind::Station, d.path()).unwrap();
        assert_eq!(std::fs::metadata(&sk).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load_station_secret(&sk).unwrap().verifying_key(), load_station_public(&pk).unwrap());
        let (nsk, npk) = generate(KeyKind::Network, d.path()).unwrap();
        assert_eq!(load_network_secret(&nsk).unwrap().public_key(), load_network_public(&npk).unwrap());
        assert!(generate(KeyKind::Network, d.path()).unwrap_err().to_string().contains("refusing to overwrite"));
        std::fs::write(&npk, "zz\n").unwrap();
        assert!(load_network_public(&npk).unwrap_err().to_string().contains("64 hex digits"));
    }

    #[test]
    fn bad_key_files_are_errors_with_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("network.key");
        let cases = [
            // The review's panic: a two-byte character inside 64 bytes.
            (format!("0\u{e9}{}", "0".repeat(61)), ":1: character 2 is not a hex digit"),
            (format!("\n\n{}x\n", "a".repeat(63)), ":3: character 64 is not a hex digit"),
            ("a".repeat(63), ":1: expected 64 hex digits (a 32-byte key), found 63 characters"),
            ("a".repeat(66), "found 66 characters"),
            (String::new(), "found 0 characters"),
            (format!("{}\n{}", "a".repeat(64), "b".repeat(64)), ":1: the key file holds more than one line"),
            ("\u{e9}".repeat(32), "character 1 is not"),
        ];
        for (text, want) in cases {
            std::fs::write(&p, &text).unwrap();
            let e = load_network_secret(&p).unwrap_err().to_string();
            assert!(e.starts_with(&p.display().to_string()) && e.contains(want), "{text:?}: {e}");
            assert!(!e.contains("aaaa"), "a key's digits must not be echoed: {e}");
        }
        // Surrounding whitespace and uppercase are fine.
        std::fs::write(&p, format!("\n  {}  \n\n", "AB".repeat(32))).unwrap();
        assert_eq!(load_network_secret(&p).unwrap().to_bytes(), [0xab; 32]);
        // 32 bytes that are not a point on the curve (y = 2 has no x).
        std::fs::write(&p, format!("02{}", "00".repeat(31))).unwrap();
        assert!(load_station_public(&p).unwrap_err().to_string().contains("not a valid ed25519 public key"));
    }
}
