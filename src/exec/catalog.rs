//! The action catalog: names an agent will run and the steps behind each.
//! Sources are the allowlist file (`name = /absolute/path`, one step each)
//! and run directories (each executable file is a one-step action), plus
//! ns8 action roots (`ROOT/<action>/<step>`, see [`super::roots`]) merged
//! with [`Catalog::add_roots`]. Loading is all-or-nothing: a malformed
//! allowlist yields an error naming the file and line, and the caller keeps
//! its previous catalog.

use crate::protocol::check_action_name;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Names served by the agent itself; no source may define them.
pub const BUILTINS: &[&str] = &["ping", "info", "list-actions", "cancel"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub name: String,
    /// Executables run in order; the action stops at the first failure.
    pub steps: Vec<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    actions: BTreeMap<String, Action>,
}

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("{file}:{line}: {why}")]
    Line { file: String, line: usize, why: String },
    #[error("cannot read {file}: {why}")]
    Read { file: String, why: String },
}

impl Catalog {
    /// Load from an allowlist file (if any) and run directories. A missing
    /// allowlist file is an empty allowlist; a malformed one is an error.
    pub fn load(allowlist: Option<&Path>, run_dirs: &[PathBuf]) -> Result<Catalog, CatalogError> {
        let mut actions = BTreeMap::new();
        for dir in run_dirs {
            scan_run_dir(dir, &mut actions)?;
        }
        if let Some(path) = allowlist {
            match fs::read_to_string(path) {
                Ok(text) => parse_allowlist(&text, &path.display().to_string(), &mut actions)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(CatalogError::Read { file: path.display().to_string(), why: e.to_string() }),
            }
        }
        Ok(Catalog { actions })
    }

    /// Merge ns8 action roots: each action directory becomes an action whose
    /// steps are its executable files in name order across the roots (a
    /// later root replaces an earlier step of the same name). Names that are
    /// not valid action names or are builtins are skipped; an action defined
    /// by the allowlist or a run directory keeps that definition.
    pub fn add_roots(&mut self, action_roots: &[PathBuf]) {
        for name in super::roots::list(action_roots) {
            if check_action_name(&name).is_err()
                || BUILTINS.contains(&name.as_str())
                || self.actions.contains_key(&name)
            {
                continue;
            }
            let steps: Vec<PathBuf> = super::roots::scan_action(action_roots, &name)
                .steps
                .into_iter()
                .filter(|s| super::roots::is_executable(&s.path))
                .map(|s| s.path)
                .collect();
            if !steps.is_empty() {
                self.actions.insert(name.clone(), Action { name, steps });
            }
        }
    }

    pub fn from_actions(list: Vec<Action>) -> Catalog {
        Catalog { actions: list.into_iter().map(|a| (a.name.clone(), a)).collect() }
    }

    pub fn get(&self, name: &str) -> Option<&Action> {
        self.actions.get(name)
    }

    /// Action names, sorted, without builtins.
    pub fn names(&self) -> Vec<String> {
        self.actions.keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.actions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// Parse `name = /absolute/path` lines; `#` starts a comment. Allowlist
/// entries override run-directory actions of the same name.
fn parse_allowlist(text: &str, file: &str, into: &mut BTreeMap<String, Action>) -> Result<(), CatalogError> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, raw) in text.lines().enumerate() {
        let err = |why: String| CatalogError::Line { file: file.to_string(), line: i + 1, why };
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (name, path) =
            line.split_once('=').ok_or_else(|| err(format!("expected `name = /absolute/path`, got {line:?}")))?;
        let (name, path) = (name.trim(), path.trim());
        check_action_name(name).map_err(|e| err(e.to_string()))?;
        if BUILTINS.contains(&name) {
            return Err(err(format!("{name:?} is a builtin and cannot be redefined")));
        }
        if !path.starts_with('/') {
            return Err(err(format!("path {path:?} must be absolute")));
        }
        if !seen.insert(name.to_string()) {
            return Err(err(format!("{name:?} is defined twice")));
        }
        into.insert(name.to_string(), Action { name: name.to_string(), steps: vec![PathBuf::from(path)] });
    }
    Ok(())
}

fn scan_run_dir(dir: &Path, into: &mut BTreeMap<String, Action>) -> Result<(), CatalogError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CatalogError::Read { file: dir.display().to_string(), why: e.to_string() }),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let path = entry.path();
        let executable =
            fs::metadata(&path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false);
        if executable && check_action_name(&name).is_ok() && !BUILTINS.contains(&name.as_str()) {
            into.insert(name.clone(), Action { name, steps: vec![path] });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_reports_the_bad_line() {
        let mut m = BTreeMap::new();
        parse_allowlist("# c\nbackup = /opt/b.sh\n\ncheck-disk = /opt/c  # x\n", "s.conf", &mut m).unwrap();
        assert_eq!(m.len(), 2);
        for (bad, what) in [
            ("x /a", "expected"),
            ("a.sh = /a", "'.'"),
            ("x = rel", "absolute"),
            ("ping = /a", "builtin"),
            ("x = /a\nx = /b", "twice"),
        ] {
            let e = parse_allowlist(bad, "s.conf", &mut BTreeMap::new()).unwrap_err();
            assert!(e.to_string().contains(what), "{bad}: {e}");
            assert!(e.to_string().starts_with("s.conf:"), "{e}");
        }
    }

    #[test]
    fn roots_merge_in_step_order() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        for (p, mode) in [("a/up/10x", 0o755), ("a/up/20y", 0o755), ("b/up/20y", 0o755), ("b/up/README", 0o644)] {
            let p = d.path().join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }
        let mut c = Catalog::load(None, &[]).unwrap();
        c.add_roots(&[a.clone(), b.clone()]);
        assert_eq!(c.get("up").unwrap().steps, vec![a.join("up/10x"), b.join("up/20y")]);
    }

    #[test]
    fn run_dir_takes_executables_with_valid_names() {
        let d = tempfile::tempdir().unwrap();
        for (n, mode) in [("good", 0o755), ("plain", 0o644), ("x.sh", 0o755)] {
            let p = d.path().join(n);
            fs::write(&p, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }
        let c = Catalog::load(None, &[d.path().to_path_buf()]).unwrap();
        assert_eq!(c.names(), vec!["good".to_string()]);
    }
}
