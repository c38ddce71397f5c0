//! Agents a station has seen answer before, per channel, kept in
//! `<state>/hub/discovery.toml` (written atomically). A run compares who
//! answered with who should have (seen before, tags and names matching):
//! the difference is reported as new and missing agents.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Discovery {
    /// channel -> agent identity -> what we know of it
    #[serde(default)]
    pub channel: BTreeMap<String, BTreeMap<String, Seen>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub tags: Vec<String>,
    pub last_seen: String,
}

impl Discovery {
    pub fn load(path: &Path) -> Result<Discovery, String> {
        match std::fs::read_to_string(path) {
            Ok(t) => toml::from_str(&t).map_err(|e| format!("{} is not valid ({e}); fix or remove it", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Discovery::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = toml::to_string(self).map_err(|e| e.to_string())?;
        crate::fsutil::write_public(path, text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))
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
        assert!(Discovery::load(&p).unwrap_err().contains("fix or remove"));
    }
}
