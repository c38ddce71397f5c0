//! API bearer tokens: `<state>/api/tokens.json` holds, per token name, the
//! SHA-256 of the token (never the token), the actions it may run and the
//! node set of targets it may reach (absent: any). `muster api token add`
//! prints a new token once; the API hashes what a client presents and
//! looks the hash up. Tokens are 32 random bytes, so a plain SHA-256 is
//! enough: nothing is guessable to brute-force.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The prefix of every token, so a leaked one is recognisable.
pub const PREFIX: &str = "mst_";

/// What one token may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Lowercase hex SHA-256 of the whole token.
    pub sha256: String,
    /// Actions it may run; `None`: any.
    #[serde(default)]
    pub actions: Option<Vec<String>>,
    /// A node set of the targets it may reach; `None`: any.
    #[serde(default)]
    pub targets: Option<String>,
    /// RFC 3339.
    pub created: String,
    /// A certificate user: this entry admits a client certificate from
    /// the CA whose common name is the entry's name (its `sha256` is
    /// empty and matches no bearer token).
    #[serde(default)]
    pub cert: bool,
}

/// Errors of the token file.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the API token file {path}: {why}; fix or remove it")]
    Read { path: PathBuf, why: String },
    #[error("cannot write the API token file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("a token named {0:?} exists already; remove it first with `muster api token remove {0}`")]
    Exists(String),
    #[error("no token named {0:?} (see `muster api token list`)")]
    Unknown(String),
    #[error(
        "token name {0:?} is not valid: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    )]
    BadName(String),
}

/// `<state>/api/tokens.json`.
pub fn path(state: &Path) -> PathBuf {
    state.join("api").join("tokens.json")
}

/// Lowercase hex SHA-256 of `token`.
pub fn hash(token: &str) -> String {
    crate::hexstr::encode(&Sha256::digest(token.as_bytes()))
}

/// All tokens by name; `Ok(None)` when there is no token file.
pub fn load(state: &Path) -> Result<Option<BTreeMap<String, TokenEntry>>, TokenError> {
    let p = path(state);
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| TokenError::Read { path: p, why: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TokenError::Read { path: p, why: e.to_string() }),
    }
}

fn save(state: &Path, all: &BTreeMap<String, TokenEntry>) -> Result<(), TokenError> {
    let p = path(state);
    let err = |source| TokenError::Write { path: p.clone(), source };
    std::fs::create_dir_all(p.parent().unwrap_or(state)).map_err(err)?;
    let mut body = serde_json::to_vec_pretty(all).map_err(|e| err(std::io::Error::other(e)))?;
    body.push(b'\n');
    crate::fsutil::write_secret(&p, &body).map_err(err)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Add a token named `name`; returns the token itself (shown once). With
/// `cert`, add a certificate user instead and return an empty string.
pub fn add(
    state: &Path,
    name: &str,
    actions: Option<Vec<String>>,
    targets: Option<String>,
    cert: bool,
) -> Result<String, TokenError> {
    if !valid_name(name) {
        return Err(TokenError::BadName(name.to_string()));
    }
    let _lock = crate::fsutil::lock_file(&state.join("api").join(".tokens.lock"))
        .map_err(|source| TokenError::Write { path: path(state), source })?;
    let mut all = load(state)?.unwrap_or_default();
    if all.contains_key(name) {
        return Err(TokenError::Exists(name.to_string()));
    }
    let token = if cert { String::new() } else { format!("{PREFIX}{}", crate::hexstr::random(32)) };
    let sha256 = if cert { String::new() } else { hash(&token) };
    all.insert(name.to_string(), TokenEntry { sha256, actions, targets, created: crate::timefmt::now_rfc3339(), cert });
    save(state, &all)?;
    Ok(token)
}

/// Remove the token named `name`.
pub fn remove(state: &Path, name: &str) -> Result<(), TokenError> {
    let _lock = crate::fsutil::lock_file(&state.join("api").join(".tokens.lock"))
        .map_err(|source| TokenError::Write { path: path(state), source })?;
    let mut all = load(state)?.unwrap_or_default();
    if all.remove(name).is_none() {
        return Err(TokenError::Unknown(name.to_string()));
    }
    save(state, &all)
}

/// The name and entry of the token whose hash is `sha256`.
pub fn find<'a>(all: &'a BTreeMap<String, TokenEntry>, token: &str) -> Option<(&'a String, &'a TokenEntry)> {
    let h = hash(token);
    all.iter().find(|(_, e)| !e.cert && e.sha256 == h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_shown_once_and_found_by_its_hash() {
        let d = tempfile::tempdir().unwrap();
        let t = add(d.path(), "ci", Some(vec!["deploy".into()]), None, false).unwrap();
        assert!(t.starts_with(PREFIX) && t.len() == PREFIX.len() + 64);
        let text = std::fs::read_to_string(path(d.path())).unwrap();
        assert!(!text.contains(&t), "the token itself is never stored");
        let all = load(d.path()).unwrap().unwrap();
        assert_eq!(find(&all, &t).unwrap().0, "ci");
        assert!(find(&all, "mst_nope").is_none());
        assert!(matches!(add(d.path(), "ci", None, None, false), Err(TokenError::Exists(_))));
        assert!(matches!(add(d.path(), "bad name", None, None, false), Err(TokenError::BadName(_))));
        remove(d.path(), "ci").unwrap();
        assert!(matches!(remove(d.path(), "ci"), Err(TokenError::Unknown(_))));
    }
}
