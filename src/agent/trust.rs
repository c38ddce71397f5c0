//! Which dispatchers an agent obeys: the trusted-dispatcher map
//! (`dispatchers`, lines of `<hex-serial> <dispatcher-id>`) and the revoked
//! serials (`revoked-serials`, one hex serial a line). A connecting client
//! certificate must carry a serial that is in the map and not revoked; the
//! matched dispatcher id then attributes the request.

use std::collections::{HashMap, HashSet};
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    dispatchers: HashMap<String, String>,
    revoked: HashSet<String>,
}

/// Canonical serial form: lowercase hex, no `0x`, no leading zeros.
pub fn normalize_serial(s: &str) -> String {
    let s = s.trim().trim_start_matches("0x").to_ascii_lowercase();
    let t = s.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.into()
    }
}

fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split('#').next().unwrap_or("").trim()))
        .filter(|(_, l)| !l.is_empty())
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.trim_start_matches("0x").chars().all(|c| c.is_ascii_hexdigit())
}

impl Trust {
    /// Load both files from `dir`; a missing file is empty. Errors name the
    /// file and line.
    pub fn load(dir: &Path) -> Result<Trust, String> {
        let read = |name: &str| match std::fs::read_to_string(dir.join(name)) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(format!("cannot read {}: {e}", dir.join(name).display())),
        };
        Trust::parse(&read("dispatchers")?, &read("revoked-serials")?)
    }

    pub fn parse(map: &str, revoked: &str) -> Result<Trust, String> {
        let mut t = Trust::default();
        for (n, l) in lines(map) {
            let mut parts = l.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(serial), Some(id), None) if is_hex(serial) => {
                    t.dispatchers.insert(normalize_serial(serial), id.to_string());
                }
                _ => return Err(format!("dispatchers:{n}: expected `<hex-serial> <dispatcher-id>`, got {l:?}")),
            }
        }
        for (n, l) in lines(revoked) {
            if !is_hex(l) {
                return Err(format!("revoked-serials:{n}: expected a hex serial, got {l:?}"));
            }
            t.revoked.insert(normalize_serial(l));
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
        assert!(Trust::parse("zz ops\n", "").unwrap_err().contains("dispatchers:1"));
        assert!(Trust::parse("", "x\n").unwrap_err().contains("revoked-serials:1"));
    }
}
