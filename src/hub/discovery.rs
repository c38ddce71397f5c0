//! Agents a station has seen answer before, per channel, kept in
//! `<state>/hub/discovery.toml` (written atomically). A run compares who
//! answered with who should have (seen before, tags and names matching):
//! the difference is reported as new and missing agents. The file is
//! checked as it is read: errors name its line and column.

use crate::settings::TomlError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why discovery.toml cannot be read or written.
#[derive(Debug, Error)]
pub enum DiscoveryError {
    #[error("{0}; fix or remove it")]
    Invalid(#[from] TomlError),
    #[error("cannot read {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {}: {why}", .path.display())]
    Write { path: PathBuf, why: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discovery {
    /// channel -> agent identity -> what we know of it
    #[serde(default)]
    pub channel: BTreeMap<String, BTreeMap<String, Seen>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seen {
    pub tags: Vec<String>,
    pub last_seen: String,
}

impl Discovery {
    /// Read `path`; a missing file is an empty record.
    pub fn load(path: &Path) -> Result<Discovery, DiscoveryError> {
        match std::fs::read_to_string(path) {
            Ok(t) => Discovery::parse(&t, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Discovery::default()),
            Err(source) => Err(DiscoveryError::Read { path: path.to_path_buf(), source }),
        }
    }

    /// Parse the text of `path` (named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Discovery, DiscoveryError> {
        Ok(crate::settings::from_toml(text, &path.display().to_string())?)
    }

    /// The file's text, as [`Discovery::save`] writes it.
    pub fn to_text(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// Write atomically.
    pub fn save(&self, path: &Path) -> Result<(), DiscoveryError> {
        let write = |why: String| DiscoveryError::Write { path: path.to_path_buf(), why };
        let text = self.to_text().map_err(|e| write(e.to_string()))?;
        crate::fsutil::write_public(path, text.as_bytes()).map_err(|e| write(e.to_string()))
    }

    /// Agents on `channel` that a run with these tags and names should reach.
    pub fn expected(&self, channel: &str, tags: &[String], names: &[String]) -> Vec<String> {
        self.channel
            .get(channel)
            .map(|m| {
                m.iter()
                    .filter(|(n, s)| tags.iter().all(|t| s.tags.contains(t)) && (names.is_empty() || names.contains(n)))
                    .map(|(n, _)| n.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Record who answered; returns the identities not seen before.
    pub fn record(&mut self, channel: &str, seen: &BTreeMap<String, Vec<String>>) -> Vec<String> {
        let now = crate::timefmt::now_rfc3339();
        let m = self.channel.entry(channel.to_string()).or_default();
        let mut new = Vec::new();
        for (name, tags) in seen {
            if m.insert(name.clone(), Seen { tags: tags.clone(), last_seen: now.clone() }).is_none() {
                new.push(name.clone());
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_new_and_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("discovery.toml");
        let mut disc = Discovery::load(&p).unwrap();
        let seen: BTreeMap<String, Vec<String>> =
            [("a1".to_string(), vec!["web".to_string()]), ("a2".to_string(), vec![])].into_iter().collect();
        assert_eq!(disc.record("c", &seen), vec!["a1", "a2"]);
        assert!(disc.record("c", &seen).is_empty());
        disc.save(&p).unwrap();
        let back = Discovery::load(&p).unwrap();
        assert_eq!(back.expected("c", &[], &[]), vec!["a1", "a2"]);
        assert_eq!(back.expected("c", &["web".into()], &[]), vec!["a1"]);
        assert_eq!(back.expected("c", &[], &["a2".into()]), vec!["a2"]);
        assert!(back.expected("other", &[], &[]).is_empty());
        std::fs::write(&p, "not = [valid").unwrap();
        let e = Discovery::load(&p).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:1:", p.display())) && e.ends_with("fix or remove it"), "{e}");
        std::fs::write(&p, "[channel.c.a1]\ntags = \"web\"\nlast_seen = \"x\"\n").unwrap();
        let e = Discovery::load(&p).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:2:8: tags: invalid type", p.display())), "{e}");
    }
}
