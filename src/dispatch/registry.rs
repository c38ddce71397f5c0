//! The agent registry: one JSON file per agent under `<state>/agents/`,
//! written atomically, read whole on every command (the dispatcher keeps no
//! runtime state, so several instances can share the directory). Entries are
//! checked as they are read ([`parse`]): the name follows the name rule and
//! matches the file, the address is `HOST:PORT`, the serial is hex; a name
//! given on the command line is checked before it becomes a path.

use crate::fsutil;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentEntry {
    pub name: String,
    /// `host:port` the dispatcher dials.
    pub addr: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Serial of the agent's certificate (lowercase hex).
    #[serde(default)]
    pub serial: String,
    /// Certificate expiry, RFC 3339.
    #[serde(default)]
    pub not_after: String,
    /// When the entry was added, RFC 3339.
    #[serde(default)]
    pub added: String,
    /// When the agent was paired (`muster pair`), RFC 3339; absent for
    /// agents enrolled with `ca issue-agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired: Option<String>,
    /// When its certificate was revoked (`muster revoke`), RFC 3339: the
    /// dispatcher refuses it and never dials it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

/// Why a registry entry cannot be read, written or named.
#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("{name:?} cannot name a registry entry: {why}")]
    BadName { name: String, why: String },
    #[error("registry entry {file}{}: {why}; fix it or remove it with `muster agents remove`", .line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid { file: String, line: Option<usize>, why: String },
    #[error("agent {name}: {why}; nothing was changed")]
    Refused { name: String, why: String },
    #[error("cannot read {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {}: {source}", .path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

pub fn dir(state: &Path) -> PathBuf {
    state.join("agents")
}

pub fn path(state: &Path, name: &str) -> PathBuf {
    dir(state).join(format!("{name}.json"))
}

fn check_name(name: &str) -> Result<(), RegistryError> {
    crate::protocol::check_action_name(name).map_err(|e| RegistryError::BadName {
        name: name.to_string(),
        why: e.to_string().replace("action name", "agent name"),
    })
}

/// Check an entry's fields: the name rule, `HOST:PORT` with a port that
/// fits 16 bits, a hex serial of at most 40 digits, at most 64 tags each
/// following the name rule. On failure, the field at fault and why.
pub fn check(e: &AgentEntry) -> Result<(), (&'static str, String)> {
    crate::protocol::check_action_name(&e.name)
        .map_err(|why| ("name", why.to_string().replace("action name", "agent name")))?;
    let port_ok = e.addr.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains(char::is_whitespace) && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    if !port_ok {
        return Err(("addr", format!("addr {:?} is not HOST:PORT (a port from 1 to 65535)", e.addr)));
    }
    if !e.serial.bytes().all(|b| b.is_ascii_hexdigit()) || e.serial.len() > 40 {
        return Err(("serial", format!("serial {:?} is not a hex serial", e.serial)));
    }
    if e.tags.len() > 64 {
        return Err(("tags", format!("{} tags; at most 64", e.tags.len())));
    }
    for t in &e.tags {
        crate::protocol::check_action_name(t).map_err(|why| ("tags", why.to_string().replace("action name", "tag")))?;
    }
    Ok(())
}

/// Parse registry file `file` without checking its fields (for `agents
/// edit` and `agents show`, which must reach an entry in order to fix it).
fn parse_raw(text: &[u8], file: &str) -> Result<AgentEntry, RegistryError> {
    serde_json::from_slice(text).map_err(|e| RegistryError::Invalid {
        file: file.to_string(),
        line: (e.line() > 0).then_some(e.line()),
        why: e.to_string(),
    })
}

/// Parse and check the text of registry file `file`; `stem` is the name
/// the file is stored under (the entry must carry the same name).
pub fn parse(text: &[u8], file: &str, stem: &str) -> Result<AgentEntry, RegistryError> {
    let e = parse_raw(text, file)?;
    // Point at the field's line when we can find it.
    let line_of = |field: &str| {
        let key = format!("\"{field}\"");
        let text = String::from_utf8_lossy(text);
        text.find(&key).map(|i| text[..i].matches('\n').count() + 1)
    };
    let invalid =
        |field: &str, why: String| RegistryError::Invalid { file: file.to_string(), line: line_of(field), why };
    check(&e).map_err(|(field, why)| invalid(field, why))?;
    if e.name != stem {
        return Err(invalid("name", format!("names {:?} but is stored as {stem:?}", e.name)));
    }
    Ok(e)
}

/// Write (or replace) an entry atomically.
/// Refused (nothing written) when a field does not check ([`check`]).
pub fn save(state: &Path, e: &AgentEntry) -> Result<(), RegistryError> {
    check_name(&e.name)?;
    check(e).map_err(|(_, why)| RegistryError::Refused { name: e.name.clone(), why })?;
    let p = path(state, &e.name);
    let mut body =
        serde_json::to_vec_pretty(e).map_err(|e| RegistryError::Write { path: p.clone(), source: e.into() })?;
    body.push(b'\n');
    fsutil::write_public(&p, &body).map_err(|source| RegistryError::Write { path: p, source })
}

/// The entry for `name`, `None` when there is none.
pub fn load(state: &Path, name: &str) -> Result<Option<AgentEntry>, RegistryError> {
    check_name(name)?;
    let p = path(state, name);
    match std::fs::read(&p) {
        Ok(b) => parse(&b, &p.display().to_string(), name).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RegistryError::Read { path: p, source }),
    }
}

/// The entry for `name` even when a field does not check, with what is
/// wrong with it; `None` when there is none. Only a file that is not an
/// entry at all is an error.
pub fn load_lenient(state: &Path, name: &str) -> Result<Option<(AgentEntry, Option<RegistryError>)>, RegistryError> {
    check_name(name)?;
    let p = path(state, name);
    let file = p.display().to_string();
    match std::fs::read(&p) {
        Ok(b) => {
            let e = parse_raw(&b, &file)?;
            Ok(Some((e, parse(&b, &file, name).err())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RegistryError::Read { path: p, source }),
    }
}

/// Every entry, sorted by name. Unreadable entries are reported, not fatal.
pub fn load_all(state: &Path) -> (Vec<AgentEntry>, Vec<RegistryError>) {
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    let Ok(rd) = std::fs::read_dir(dir(state)) else {
        return (ok, bad);
    };
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(".json") else { continue };
        if stem.starts_with('.') {
            continue;
        }
        match load(state, stem) {
            Ok(Some(e)) => ok.push(e),
            Ok(None) => {}
            Err(e) => bad.push(e),
        }
    }
    ok.sort_by(|a, b| a.name.cmp(&b.name));
    (ok, bad)
}

/// Remove `name`'s entry; false when there was none.
pub fn remove(state: &Path, name: &str) -> Result<bool, RegistryError> {
    check_name(name)?;
    let p = path(state, name);
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(RegistryError::Write { path: p, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> AgentEntry {
        AgentEntry {
            name: name.into(),
            addr: "127.0.0.2:7443".into(),
            tags: vec!["web".into()],
            serial: "1001".into(),
            not_after: String::new(),
            added: String::new(),
            paired: None,
            revoked: None,
        }
    }

    #[test]
    fn round_trip_and_names_become_paths_only_when_valid() {
        let d = tempfile::tempdir().unwrap();
        save(d.path(), &entry("web01")).unwrap();
        assert_eq!(load(d.path(), "web01").unwrap(), Some(entry("web01")));
        assert_eq!(load(d.path(), "web02").unwrap(), None);
        for bad in ["../x", "a/b", "", ".hidden", "x.json"] {
            assert!(matches!(load(d.path(), bad), Err(RegistryError::BadName { .. })), "{bad:?}");
            assert!(matches!(remove(d.path(), bad), Err(RegistryError::BadName { .. })), "{bad:?}");
        }
        assert!(remove(d.path(), "web01").unwrap());
        assert!(!remove(d.path(), "web01").unwrap());
    }

    #[test]
    fn bad_entries_name_file_and_line() {
        let ok = serde_json::to_string_pretty(&entry("w1")).unwrap();
        let cases = [
            ("{\n  \"name\": \"w1\",\n  \"addr\": 5\n}".to_string(), "f.json:3: invalid type"),
            ("{".to_string(), "f.json:1: EOF"),
            (ok.replace("\"w1\"", "\"../w1\""), "f.json:2: agent name \"../w1\""),
            (ok.replace("127.0.0.2:7443", "nowhere"), "f.json:3: addr \"nowhere\" is not HOST:PORT"),
            (ok.replace("127.0.0.2:7443", "h:99999"), "is not HOST:PORT"),
            (ok.replace("1001", "zz"), "f.json:7: serial \"zz\" is not a hex serial"),
        ];
        for (text, want) in cases {
            let e = parse(text.as_bytes(), "f.json", "w1").unwrap_err().to_string();
            assert!(e.starts_with("registry entry ") && e.contains(want), "{text}: {e}");
        }
        assert_eq!(parse(ok.as_bytes(), "f.json", "w1").unwrap(), entry("w1"));
        let e = parse(ok.as_bytes(), "f.json", "other").unwrap_err().to_string();
        assert!(e.contains("f.json:2: names \"w1\" but is stored as \"other\""), "{e}");
    }

    #[test]
    fn what_is_written_is_checked_and_a_bad_entry_can_still_be_fixed() {
        let d = tempfile::tempdir().unwrap();
        let bad_addrs = ["nowhere", "h:99999", "h:0", ":7443", "h:-1", "h: 1", "two words:7443", "h:7443x"];
        for addr in bad_addrs {
            let e = AgentEntry { addr: addr.into(), ..entry("w1") };
            let err = save(d.path(), &e).unwrap_err().to_string();
            assert!(err.contains("is not HOST:PORT") && err.contains("nothing was changed"), "{addr}: {err}");
        }
        for tags in [vec!["bad tag".to_string()], vec!["".into()], (0..65).map(|i| format!("t{i}")).collect()] {
            assert!(save(d.path(), &AgentEntry { tags, ..entry("w1") }).is_err());
        }
        assert_eq!(load(d.path(), "w1").unwrap(), None, "nothing written");
        for addr in ["h:1", "[::1]:7443", "web01.example:65535"] {
            save(d.path(), &AgentEntry { addr: addr.into(), ..entry("w1") }).unwrap();
        }
        // An entry broken by hand: load refuses it, load_lenient reaches it.
        let p = path(d.path(), "w1");
        let text = std::fs::read_to_string(&p).unwrap().replace("web01.example:65535", "nowhere");
        std::fs::write(&p, text).unwrap();
        assert!(load(d.path(), "w1").is_err());
        let (mut e, why) = load_lenient(d.path(), "w1").unwrap().unwrap();
        assert!(why.unwrap().to_string().contains("nowhere"));
        e.addr = "10.0.0.1:7443".into();
        save(d.path(), &e).unwrap();
        assert_eq!(load(d.path(), "w1").unwrap().unwrap().addr, "10.0.0.1:7443");
    }
}
