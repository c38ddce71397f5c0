//! Action roots, the NethServer ns8 layout: `ROOT/<action>/<step>`. An
//! action is every directory of that name across the roots; its steps are
//! the plain (non-directory) entries, sorted by file name (byte order), and
//! when two roots hold a step of the same name the later root wins.
//! `validate-input.json` and `validate-output.json` are not steps but JSON
//! Schemas (the later root wins too). Scans read the disk each time, so a
//! step added or removed between two tasks is seen by the second one.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

pub const VALIDATE_INPUT: &str = "validate-input.json";
pub const VALIDATE_OUTPUT: &str = "validate-output.json";

/// One step file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootStep {
    /// File name, used in logs and by `set-weight`.
    pub name: String,
    pub path: PathBuf,
}

/// An action (or event handler) gathered from all roots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootAction {
    pub steps: Vec<RootStep>,
    pub validate_input: Option<PathBuf>,
    pub validate_output: Option<PathBuf>,
}

/// True for names that address a directory directly below a root: not
/// empty, no `/`, no NUL, not `.` or `..`.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// Gather action `name`, treating the two schema files specially. A name
/// that is not a plain directory name yields no steps.
pub fn scan_action(roots: &[PathBuf], name: &str) -> RootAction {
    scan(roots, name, true)
}

/// Gather event handler `name`: every plain file is a step.
pub fn scan_handler(roots: &[PathBuf], name: &str) -> Vec<RootStep> {
    scan(roots, name, false).steps
}

fn scan(roots: &[PathBuf], name: &str, schemas: bool) -> RootAction {
    let mut out = RootAction::default();
    if !is_plain_name(name) {
        return out;
    }
    let mut steps: BTreeMap<OsString, PathBuf> = BTreeMap::new();
    for root in roots {
        let dir = root.join(name);
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            // Like the original, a symlink counts as a file even when it
            // points at a directory.
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let file = entry.file_name();
            let path = dir.join(&file);
            match file.to_str() {
                Some(VALIDATE_INPUT) if schemas => out.validate_input = Some(path),
                Some(VALIDATE_OUTPUT) if schemas => out.validate_output = Some(path),
                _ => {
                    steps.insert(file, path);
                }
            }
        }
    }
    out.steps = steps.into_iter().map(|(n, path)| RootStep { name: n.to_string_lossy().into_owned(), path }).collect();
    out
}

/// Names of the directories directly below the roots, sorted, each once.
pub fn list(roots: &[PathBuf]) -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    for root in roots {
        let Ok(entries) = fs::read_dir(root) else { continue };
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                names.insert(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    names.into_iter().collect()
}

/// True when `path` is a regular file (after symlinks) with an exec bit.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, "#!/bin/sh\n").unwrap();
    }

    #[test]
    fn later_root_wins_and_steps_sort_by_name() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        for p in ["x/step1", "x/step2", "x/step3", "x/validate-input.json", "y/only"] {
            touch(&a.join(p));
        }
        for p in ["x/step3", "x/step4", "x/validate-output.json"] {
            touch(&b.join(p));
        }
        fs::create_dir_all(b.join("x/subdir")).unwrap();
        let got = scan_action(&[a.clone(), b.clone()], "x");
        let names: Vec<_> = got.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["step1", "step2", "step3", "step4"]);
        assert_eq!(got.steps[2].path, b.join("x/step3"));
        assert_eq!(got.validate_input, Some(a.join("x/validate-input.json")));
        assert_eq!(got.validate_output, Some(b.join("x/validate-output.json")));
        assert_eq!(list(&[a.clone(), b.clone()]), ["x", "y"]);
        assert_eq!(scan_handler(&[a.clone(), b], "x").len(), 6);
        assert!(scan_action(&[a], "../a/x").steps.is_empty());
    }
}
