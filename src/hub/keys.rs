//! Hub key pairs, written by `muster hub keygen station|network --out DIR`.
//! The station key (ed25519) signs commands; agents hold its public part.
//! The network key (X25519) is shared by all agents; the station seals
//! commands to its public part. Secrets are hex in `<kind>.key` (0600),
//! public parts in `<kind>.pub`; existing files are never overwritten.

use crate::fsutil;
use std::path::{Path, PathBuf};

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

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(text: &str, path: &Path) -> Result<[u8; 32], String> {
    let t = text.trim();
    let bad = || format!("{} must hold 64 hex digits (a 32-byte key)", path.display());
    if t.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Generate a key pair into `dir`; returns (secret path, public path).
pub fn generate(kind: KeyKind, dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let (sk_path, pk_path) = (dir.join(format!("{}.key", kind.stem())), dir.join(format!("{}.pub", kind.stem())));
    for p in [&sk_path, &pk_path] {
        if p.exists() {
            return Err(format!("{} already exists; refusing to overwrite a key", p.display()));
        }
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| format!("no randomness from the OS: {e}"))?;
    let public = match kind {
        KeyKind::Station => ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes(),
        KeyKind::Network => *crypto_box::SecretKey::from(seed).public_key().as_bytes(),
    };
    let io = |p: &Path, e: std::io::Error| format!("cannot write {}: {e}", p.display());
    fsutil::write_secret(&sk_path, format!("{}\n", hex(&seed)).as_bytes()).map_err(|e| io(&sk_path, e))?;
    fsutil::write_public(&pk_path, format!("{}\n", hex(&public)).as_bytes()).map_err(|e| io(&pk_path, e))?;
    Ok((sk_path, pk_path))
}

fn read32(path: &Path) -> Result<[u8; 32], String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    unhex32(&text, path)
}

pub fn load_station_secret(path: &Path) -> Result<ed25519_dalek::SigningKey, String> {
    Ok(ed25519_dalek::SigningKey::from_bytes(&read32(path)?))
}

pub fn load_station_public(path: &Path) -> Result<ed25519_dalek::VerifyingKey, String> {
    ed25519_dalek::VerifyingKey::from_bytes(&read32(path)?)
        .map_err(|_| format!("{} is not a valid ed25519 public key", path.display()))
}

pub fn load_network_secret(path: &Path) -> Result<crypto_box::SecretKey, String> {
    Ok(crypto_box::SecretKey::from(read32(path)?))
}

pub fn load_network_public(path: &Path) -> Result<crypto_box::PublicKey, String> {
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
        assert!(generate(KeyKind::Network, d.path()).unwrap_err().contains("refusing to overwrite"));
        std::fs::write(&npk, "zz\n").unwrap();
        assert!(load_network_public(&npk).unwrap_err().contains("64 hex digits"));
    }
}
