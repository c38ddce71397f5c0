//! The action catalog: names an agent will run and the steps behind each.
//! Sources are the allowlist file (`name = /absolute/path`, one step each)
//! and run directories (each executable file is a one-step action), plus
//! ns8 action roots (`ROOT/<action>/<step>`, see [`super::roots`]) merged
//! with [`Catalog::add_roots`]. Loading is all-or-nothing: a malformed
//! allowlist yields an error naming the file and line, and the caller keeps
//! its previous catalog. What loads but will not work as the operator
//! expects (a missing allowlist or run directory, a listed script that is
//! missing or not executable) comes back as [`CatalogWarning`]s for the
//! log; such a script stays listed and fails when run.

use crate::protocol::check_action_name;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Names served by the agent itself; no source may define them.
pub const BUILTINS: &[&str] = &[
    "ping",
    "info",
    "list-actions",
    "cancel",
    "result",
    "rotate-serial",
    "retire-serial",
    "revoke-serial",
    "renew-csr",
    "install-cert",
    "read-file",
    "write-file",
    "kill",
];

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

/// One `name = /absolute/path` line of an allowlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    pub name: String,
    pub path: PathBuf,
    /// 1-based line in the allowlist file.
    pub line: usize,
}

/// A file the catalog was built from that loads, but not as the operator
/// probably meant. Logged at start and on every reload.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CatalogWarning {
    #[error(
        "allowlist {} does not exist, so no script is allowlisted; create it with `name = /absolute/path` lines and send SIGHUP",
        .0.display()
    )]
    MissingAllowlist(PathBuf),
    #[error("{file}:{line}: action {action:?}: {} does not exist; it stays listed and fails when run until the file is there", .path.display())]
    ScriptMissing { file: String, line: usize, action: String, path: PathBuf },
    #[error("{file}:{line}: action {action:?}: {} is not an executable file; it stays listed and fails when run (chmod +x it?)", .path.display())]
    ScriptNotExecutable { file: String, line: usize, action: String, path: PathBuf },
    #[error("{file}:{line}: action {action:?}: cannot check {}: {why}; it stays listed", .path.display())]
    ScriptUnchecked { file: String, line: usize, action: String, path: PathBuf, why: String },
    #[error("run directory {} does not exist; it adds no action", .0.display())]
    MissingRunDir(PathBuf),
    #[error("action root {} does not exist; it adds no action", .0.display())]
    MissingActionRoot(PathBuf),
}

#[derive(Debug, Error)]
pub enum CatalogError {
    /// Every bad line of an allowlist, each as `file:line: why`.
    #[error("{}", render_lines(.file, .lines))]
    Lines { file: String, lines: Vec<(usize, String)> },
    #[error("cannot read {file}: {why}")]
    Read { file: String, why: String },
}

impl Catalog {
    /// Load from an allowlist file (if any) and run directories. A missing
    /// allowlist file is an empty allowlist (with a warning); a malformed one
    /// is an error. Listed scripts that are missing or not executable are
    /// kept, with a warning each.
    pub fn load(
        allowlist: Option<&Path>,
        run_dirs: &[PathBuf],
    ) -> Result<(Catalog, Vec<CatalogWarning>), CatalogError> {
        let mut actions = BTreeMap::new();
        let mut warnings = Vec::new();
        for dir in run_dirs {
            if !scan_run_dir(dir, &mut actions)? {
                warnings.push(CatalogWarning::MissingRunDir(dir.clone()));
            }
        }
        if let Some(path) = allowlist {
            match fs::read_to_string(path) {
                Ok(text) => {
                    let file = path.display().to_string();
                    for entry in parse_allowlist(&text, &file)? {
                        warnings.extend(check_script(&entry, &file));
                        let action = Action { name: entry.name.clone(), steps: vec![entry.path] };
                        actions.insert(entry.name, action);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    warnings.push(CatalogWarning::MissingAllowlist(path.to_path_buf()))
                }
                Err(e) => return Err(CatalogError::Read { file: path.display().to_string(), why: e.to_string() }),
            }
        }
        Ok((Catalog { actions }, warnings))
    }

    /// Merge ns8 action roots: each action directory becomes an action whose
    /// steps are its executable files in name order across the roots (a
    /// later root replaces an earlier step of the same name). Names that are
    /// not valid action names or are builtins are skipped; an action defined
    /// by the allowlist or a run directory keeps that definition. Returns a
    /// warning for each root that does not exist.
    pub fn add_roots(&mut self, action_roots: &[PathBuf]) -> Vec<CatalogWarning> {
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
        let missing = action_roots
            .iter()
            .filter(|r| matches!(fs::metadata(r), Err(e) if e.kind() == std::io::ErrorKind::NotFound));
        missing.map(|r| CatalogWarning::MissingActionRoot(r.clone())).collect()
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

fn render_lines(file: &str, lines: &[(usize, String)]) -> String {
    let each: Vec<String> = lines.iter().map(|(n, why)| format!("{file}:{n}: {why}")).collect();
    match each.as_slice() {
        [one] => one.clone(),
        _ => format!("{} bad lines in {file}:\n  {}", each.len(), each.join("\n  ")),
    }
}

/// Parse allowlist text (`name = /absolute/path` lines; `#` starts a
/// comment); `file` names it in errors. Pure: nothing is read from disk.
/// Errors, all of them at once: a line without `=`, a bad action name, a
/// builtin, a relative path, a name defined twice.
pub fn parse_allowlist(text: &str, file: &str) -> Result<Vec<AllowEntry>, CatalogError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match allow_line(line, &mut seen) {
            Ok((name, path)) => out.push(AllowEntry { name, path, line: i + 1 }),
            Err(why) => bad.push((i + 1, why)),
        }
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        Err(CatalogError::Lines { file: file.to_string(), lines: bad })
    }
}

/// One non-empty allowlist line, checked; `seen` holds the names so far.
fn allow_line(line: &str, seen: &mut std::collections::BTreeSet<String>) -> Result<(String, PathBuf), String> {
    let (name, path) = line.split_once('=').ok_or_else(|| format!("expected `name = /absolute/path`, got {line:?}"))?;
    let (name, path) = (name.trim(), path.trim());
    check_action_name(name).map_err(|e| e.to_string())?;
    if BUILTINS.contains(&name) {
        return Err(format!("{name:?} is a builtin and cannot be redefined"));
    }
    if !path.starts_with('/') {
        return Err(format!("path {path:?} must be absolute"));
    }
    if !seen.insert(name.to_string()) {
        return Err(format!("{name:?} is defined twice"));
    }
    Ok((name.to_string(), PathBuf::from(path)))
}

/// A warning when an allowlisted script is not there or cannot be run.
fn check_script(e: &AllowEntry, file: &str) -> Option<CatalogWarning> {
    let (file, line, action, path) = (file.to_string(), e.line, e.name.clone(), e.path.clone());
    match fs::metadata(&e.path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => None,
        Ok(_) => Some(CatalogWarning::ScriptNotExecutable { file, line, action, path }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Some(CatalogWarning::ScriptMissing { file, line, action, path })
        }
        Err(err) => Some(CatalogWarning::ScriptUnchecked { file, line, action, path, why: err.to_string() }),
    }
}

/// Add the executables of `dir`; false when `dir` does not exist.
fn scan_run_dir(dir: &Path, into: &mut BTreeMap<String, Action>) -> Result<bool, CatalogError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
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
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_reports_the_bad_line() {
        let m = parse_allowlist("# c\nbackup = /opt/b.sh\n\ncheck-disk = /opt/c  # x\n", "s.conf").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1], AllowEntry { name: "check-disk".into(), path: "/opt/c".into(), line: 4 });
        for (bad, what) in [
            ("x /a", "expected"),
            ("a.sh = /a", "'.'"),
            ("x = rel", "absolute"),
            ("ping = /a", "builtin"),
            ("x = /a\nx = /b", "twice"),
        ] {
            let e = parse_allowlist(bad, "s.conf").unwrap_err();
            assert!(e.to_string().contains(what), "{bad}: {e}");
            assert!(e.to_string().starts_with("s.conf:"), "{e}");
        }
        // Every bad line at once, each with its number; good lines do not hide them.
        let e = parse_allowlist("a = /a\nx /b\nok = /ok\nping = /p\nc = rel\n", "s.conf").unwrap_err().to_string();
        assert!(e.starts_with("3 bad lines in s.conf:"), "{e}");
        for want in ["s.conf:2: expected", "s.conf:4: \"ping\" is a builtin", "s.conf:5: path \"rel\" must be absolute"]
        {
            assert!(e.contains(want), "{want}: {e}");
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
        let (mut c, _) = Catalog::load(None, &[]).unwrap();
        assert_eq!(c.add_roots(&[a.clone(), b.clone()]), vec![]);
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
        let (c, warnings) = Catalog::load(None, &[d.path().to_path_buf()]).unwrap();
        assert_eq!(c.names(), vec!["good".to_string()]);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn missing_files_and_unrunnable_scripts_warn_but_stay_listed() {
        let d = tempfile::tempdir().unwrap();
        let (ok, plain) = (d.path().join("ok.sh"), d.path().join("plain.sh"));
        for (p, mode) in [(&ok, 0o755), (&plain, 0o644)] {
            fs::write(p, "#!/bin/sh\n").unwrap();
            fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
        }
        let allow = d.path().join("scripts.conf");
        let gone = d.path().join("gone.sh");
        let text = format!(
            "ok = {}\n\nplain = {}\ngone = {}\ndir = {}\n",
            ok.display(),
            plain.display(),
            gone.display(),
            d.path().display()
        );
        fs::write(&allow, text).unwrap();
        let (no_dir, no_root) = (d.path().join("no-run-dir"), d.path().join("no-root"));
        let (mut c, mut w) = Catalog::load(Some(&allow), std::slice::from_ref(&no_dir)).unwrap();
        w.extend(c.add_roots(std::slice::from_ref(&no_root)));
        assert_eq!(c.names(), ["dir", "gone", "ok", "plain"], "every listed script stays listed");
        let text: Vec<String> = w.iter().map(|w| w.to_string()).collect();
        let f = allow.display().to_string();
        assert_eq!(text.len(), 5, "{text:#?}");
        assert_eq!(text[0], format!("run directory {} does not exist; it adds no action", no_dir.display()));
        assert!(
            text[1].starts_with(&format!("{f}:3: action \"plain\": {} is not an executable file", plain.display())),
            "{}",
            text[1]
        );
        assert!(
            text[2].starts_with(&format!("{f}:4: action \"gone\": {} does not exist", gone.display())),
            "{}",
            text[2]
        );
        assert!(
            text[3].starts_with(&format!("{f}:5: action \"dir\": ")) && text[3].contains("not an executable file"),
            "{}",
            text[3]
        );
        assert_eq!(text[4], format!("action root {} does not exist; it adds no action", no_root.display()));
        let missing = d.path().join("none.conf");
        let (c, w) = Catalog::load(Some(&missing), &[]).unwrap();
        assert!(c.is_empty());
        assert_eq!(w, vec![CatalogWarning::MissingAllowlist(missing.clone())]);
        assert!(w[0].to_string().contains("does not exist, so no script is allowlisted"), "{}", w[0]);
    }
}
