//! Which dispatchers an agent obeys: the trusted-dispatcher map
//! (`dispatchers`, lines of `<hex-serial> <dispatcher-id>`) and the revoked
//! serials (`revoked-serials`, one hex serial a line). A connecting client
//! certificate must carry a serial that is in the map and not revoked; the
//! matched dispatcher id then attributes the request.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The file names inside the agent's state dir.
pub const MAP_FILE: &str = "dispatchers";
pub const REVOKED_FILE: &str = "revoked-serials";
/// Longest serial accepted: 20 bytes (RFC 5280), 40 hex digits.
pub const MAX_SERIAL_DIGITS: usize = 40;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    dispatchers: HashMap<String, String>,
    revoked: HashSet<String>,
}

/// Why the trust files cannot be used; the previous ones stay in force.
#[derive(Debug, Error)]
pub enum TrustError {
    #[error("cannot read {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{file}:{line}: {why}")]
    Line { file: String, line: usize, why: String },
}

/// Trust files that load but leave the agent obeying no one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TrustWarning {
    #[error(
        "trusted-dispatcher map {} does not exist, so every dispatcher is refused; write `<hex-serial> <dispatcher-id>` lines and send SIGHUP",
        .0.display()
    )]
    MissingMap(PathBuf),
    #[error("trusted-dispatcher map {} lists no dispatcher, so every dispatcher is refused", .0.display())]
    EmptyMap(PathBuf),
}

/// Canonical serial form: lowercase hex, no `0x`, no leading zeros. For
/// serials taken from certificates; file content goes through
/// [`parse_serial`].
pub fn normalize_serial(s: &str) -> String {
    let s = s.trim().trim_start_matches("0x").to_ascii_lowercase();
    let t = s.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.into()
    }
}

/// A serial as written in the trust files: an optional `0x`, then 1 to 40
/// hex digits. Returns the canonical form, or why it is not a serial.
pub fn parse_serial(s: &str) -> Result<String, String> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{s:?} is not a hex serial"));
    }
    if digits.len() > MAX_SERIAL_DIGITS {
        return Err(format!("serial of {} digits is longer than {MAX_SERIAL_DIGITS}", digits.len()));
    }
    Ok(normalize_serial(digits))
}

fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split('#').next().unwrap_or("").trim()))
        .filter(|(_, l)| !l.is_empty())
}

impl Trust {
    /// Load both files from `dir`. A missing `revoked-serials` is empty; a
    /// missing or empty `dispatchers` map loads (every dispatcher is then
    /// refused) with a warning. Errors name the file and line.
    pub fn load(dir: &Path) -> Result<(Trust, Vec<TrustWarning>), TrustError> {
        let read = |name: &str| {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(t) => Ok(Some(t)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(TrustError::Read { path, source }),
            }
        };
        let (map_path, revoked_path) = (dir.join(MAP_FILE), dir.join(REVOKED_FILE));
        let map = read(MAP_FILE)?;
        let revoked = read(REVOKED_FILE)?.unwrap_or_default();
        let trust = Trust::parse_named(
            map.as_deref().unwrap_or(""),
            &map_path.display().to_string(),
            &revoked,
            &revoked_path.display().to_string(),
        )?;
        let warnings = match map {
            None => vec![TrustWarning::MissingMap(map_path)],
            Some(_) if trust.dispatchers.is_empty() => vec![TrustWarning::EmptyMap(map_path)],
            Some(_) => vec![],
        };
        Ok((trust, warnings))
    }

    /// Parse the map and revoked-serials text; errors name them
    /// `dispatchers` and `revoked-serials`.
    pub fn parse(map: &str, revoked: &str) -> Result<Trust, TrustError> {
        Trust::parse_named(map, MAP_FILE, revoked, REVOKED_FILE)
    }

    /// Parse with the files named as given in errors. Map lines are
    /// `<hex-serial> <dispatcher-id>`; revoked lines a hex serial; `#`
    /// starts a comment. A serial listed twice in the map is an error.
    pub fn parse_named(map: &str, map_file: &str, revoked: &str, revoked_file: &str) -> Result<Trust, TrustError> {
        let mut t = Trust::default();
        for (n, l) in lines(map) {
            let err = |why: String| TrustError::Line { file: map_file.to_string(), line: n, why };
            let mut parts = l.split_whitespace();
            let (Some(serial), Some(id), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(err(format!("expected `<hex-serial> <dispatcher-id>`, got {l:?}")));
            };
            let serial =
                parse_serial(serial).map_err(|why| err(format!("{why}; expected `<hex-serial> <dispatcher-id>`")))?;
            if let Some(old) = t.dispatchers.insert(serial.clone(), id.to_string()) {
                return Err(err(format!("serial {serial} is listed twice (already for {old:?})")));
            }
        }
        for (n, l) in lines(revoked) {
            let serial =
                parse_serial(l).map_err(|why| TrustError::Line { file: revoked_file.to_string(), line: n, why })?;
            t.revoked.insert(serial);
        }
        Ok(t)
    }

    /// The dispatcher id for a client serial, or why it is refused.
    pub fn check(&self, serial: &str) -> Result<&str, String> {
        let s = normalize_serial(serial);
        if self.revoked.contains(&s) {
            return Err(format!("certificate serial {s} is revoked"));
        }
        if self.dispatchers.is_empty() {
            return Err("this agent trusts no dispatcher yet (its dispatchers map is empty)".into());
        }
        self.dispatchers
            .get(&s)
            .map(String::as_str)
            .ok_or_else(|| format!("dispatcher serial {s} is not in this agent's trusted-dispatcher map"))
    }

    pub fn dispatcher_count(&self) -> usize {
        self.dispatchers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_revocation_and_errors() {
        let t = Trust::parse("# d\n1000 ops\n0x0A1b alt\n", "a1b\n").unwrap();
        assert_eq!(t.check("01000"), Ok("ops"));
        assert!(t.check("a1b").unwrap_err().contains("revoked"));
        assert!(t.check("99").unwrap_err().contains("not in"));
        assert!(Trust::default().check("1").unwrap_err().contains("empty"));
        assert!(Trust::parse("zz ops\n", "").unwrap_err().to_string().contains("dispatchers:1"));
        assert!(Trust::parse("", "x\n").unwrap_err().to_string().contains("revoked-serials:1"));
    }

    #[test]
    fn serials_are_bounded_hex_and_never_panic() {
        let bad = ["0x", "0X", "0x0x1", "+1", "-1", "1_0", "\u{e9}", "0\u{e9}", "g", &"f".repeat(41)];
        for s in bad {
            assert!(parse_serial(s).is_err(), "{s:?}");
            let e = Trust::parse(&format!("# c\n{s} ops\n"), "").unwrap_err().to_string();
            assert!(e.starts_with("dispatchers:2: "), "{s:?}: {e}");
            let e = Trust::parse("", &format!("\n\n{s}\n")).unwrap_err().to_string();
            assert!(e.starts_with("revoked-serials:3: "), "{s:?}: {e}");
        }
        assert_eq!(parse_serial(&"F".repeat(40)).unwrap(), "f".repeat(40));
        assert_eq!(parse_serial("0X00AB").unwrap(), "ab");
        assert_eq!(parse_serial("000").unwrap(), "0");
        let e = Trust::parse("10 a\n0x010 b\n", "").unwrap_err().to_string();
        assert_eq!(e, "dispatchers:2: serial 10 is listed twice (already for \"a\")");
        assert!(Trust::parse("10 a b\n", "").unwrap_err().to_string().contains("expected `<hex-serial>"));
    }

    #[test]
    fn missing_or_empty_map_warns() {
        let d = tempfile::tempdir().unwrap();
        let (t, w) = Trust::load(d.path()).unwrap();
        assert_eq!(t.dispatcher_count(), 0);
        assert_eq!(w, vec![TrustWarning::MissingMap(d.path().join("dispatchers"))]);
        assert!(w[0].to_string().contains("does not exist, so every dispatcher is refused"));
        std::fs::write(d.path().join("dispatchers"), "# nobody yet\n").unwrap();
        assert_eq!(Trust::load(d.path()).unwrap().1, vec![TrustWarning::EmptyMap(d.path().join("dispatchers"))]);
        std::fs::write(d.path().join("dispatchers"), "1000 ops\n").unwrap();
        assert_eq!(Trust::load(d.path()).unwrap().1, vec![]);
        std::fs::write(d.path().join("revoked-serials"), "zz\n").unwrap();
        let e = Trust::load(d.path()).unwrap_err().to_string();
        assert_eq!(e, format!("{}:1: \"zz\" is not a hex serial", d.path().join("revoked-serials").display()));
    }
}
