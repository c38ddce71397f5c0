//! Changing the trust files in place: adding a dispatcher's serial to the
//! trusted map (pairing, rotation), retiring one (after the rotation
//! overlap) and adding a serial to `revoked-serials` (revocation). The
//! transforms are pure and keep comments and the other lines; [`edit`]
//! applies one to a file under an exclusive lock on `<dir>/.trust.lock`
//! and writes it atomically, so concurrent sessions never lose an edit.

use super::trust::{normalize_serial, parse_serial};
use std::fs::File;
use std::path::Path;

/// The serial a map or revoked line names, if it names one.
fn line_serial(line: &str) -> Option<String> {
    let content = line.split('#').next().unwrap_or("").trim();
    let first = content.split_whitespace().next()?;
    parse_serial(first).ok()
}

fn line_id(line: &str) -> Option<&str> {
    line.split('#').next().unwrap_or("").split_whitespace().nth(1)
}

fn join(lines: Vec<String>) -> String {
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// `map` with `serial id` present. With `only`, every other line of the
/// same dispatcher id is dropped (a fresh pairing); without, they stay
/// (a rotation adds beside the previous serial).
pub fn with_dispatcher(map: &str, serial: &str, id: &str, only: bool) -> String {
    let serial = normalize_serial(serial);
    let mut lines: Vec<String> = map
        .lines()
        .filter(|l| line_serial(l).as_deref() != Some(serial.as_str()))
        .filter(|l| !(only && line_id(l) == Some(id)))
        .map(str::to_string)
        .collect();
    lines.push(format!("{serial} {id}"));
    join(lines)
}

/// `map` without the line of `serial` for dispatcher `id`; other
/// dispatchers' lines are never touched. Returns the new text and whether
/// a line was removed.
pub fn without_serial(map: &str, serial: &str, id: &str) -> (String, bool) {
    let serial = normalize_serial(serial);
    let mut removed = false;
    let lines = map
        .lines()
        .filter(|l| {
            let hit = line_serial(l).as_deref() == Some(serial.as_str()) && line_id(l) == Some(id);
            removed |= hit;
            !hit
        })
        .map(str::to_string)
        .collect();
    (join(lines), removed)
}

/// `revoked` with `serial` listed (once).
pub fn with_revoked(revoked: &str, serial: &str) -> String {
    let serial = normalize_serial(serial);
    let mut lines: Vec<String> = revoked.lines().map(str::to_string).collect();
    if !lines.iter().any(|l| line_serial(l).as_deref() == Some(serial.as_str())) {
        lines.push(serial);
    }
    join(lines)
}

/// Apply `f` to the text of `dir/file` (empty when missing) under the
/// trust lock and write the result atomically (0644). Returns what `f`
/// returned beside the text.
pub fn edit<T>(dir: &Path, file: &str, f: impl FnOnce(&str) -> (String, T)) -> std::io::Result<T> {
    let lock = File::options().create(true).truncate(false).write(true).open(dir.join(".trust.lock"))?;
    lock.lock()?;
    let path = dir.join(file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let (new, out) = f(&text);
    if new != text {
        crate::fsutil::write_public(&path, new.as_bytes())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Trust;

    #[test]
    fn adding_rotating_and_retiring_keep_other_lines() {
        let map = "# trusted\n1000 ops\n2000 audit\n";
        let rotated = with_dispatcher(map, "0x1A00", "ops", false);
        assert_eq!(rotated, "# trusted\n1000 ops\n2000 audit\n1a00 ops\n");
        let t = Trust::parse(&rotated, "").unwrap();
        assert_eq!(t.check("1000"), Ok("ops"));
        assert_eq!(t.check("1a00"), Ok("ops"));
        let (retired, hit) = without_serial(&rotated, "1000", "ops");
        assert!(hit);
        assert_eq!(retired, "# trusted\n2000 audit\n1a00 ops\n");
        let (same, hit) = without_serial(&retired, "2000", "ops");
        assert!(!hit, "another dispatcher's serial is not ops's to retire");
        assert_eq!(same, retired);
        assert_eq!(with_dispatcher(map, "3000", "ops", true), "# trusted\n2000 audit\n3000 ops\n");
        assert_eq!(with_dispatcher("", "1000", "ops", false), "1000 ops\n");
        assert_eq!(with_dispatcher(map, "1000", "ops", false), "# trusted\n2000 audit\n1000 ops\n", "no duplicate");
    }

    #[test]
    fn revoking_twice_lists_once() {
        let r = with_revoked("", "0x00ab");
        assert_eq!(r, "ab\n");
        assert_eq!(with_revoked(&r, "AB"), "ab\n");
        assert!(Trust::parse("1 a\n", &r).unwrap().check("ab").unwrap_err().contains("revoked"));
    }

    #[test]
    fn edits_apply_to_the_file() {
        let d = tempfile::tempdir().unwrap();
        edit(d.path(), "dispatchers", |t| (with_dispatcher(t, "1000", "ops", true), ())).unwrap();
        let hit = edit(d.path(), "dispatchers", |t| without_serial(t, "1000", "ops")).unwrap();
        assert!(hit);
        assert_eq!(std::fs::read_to_string(d.path().join("dispatchers")).unwrap(), "");
    }
}
