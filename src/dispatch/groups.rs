//! Node groups for `@NAME` in TARGETS: the groups file `groups.toml` in the
//! config directory (named node sets, for hosts that are not registered,
//! which the SSH carrier needs), and [`Inventory`], the resolver that
//! [`super::nodeset::expand_with`] asks, combining that file with a
//! carrier's own tags and its `@all`.
//!
//! ```toml
//! # groups.toml: NAME = "node set"
//! web = "web[01-20]"
//! db = "db[1-3],db-backup"
//! ```
//!
//! A name the file defines wins over a tag of the same name. The file is
//! read only when a spec names a group that is not `all`, so a broken file
//! does not stop runs that do not use it.

use super::nodeset::{self, Groups, NodeSetError};
use crate::settings::{self, TomlError};
use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The groups file's name in the config directory.
pub const FILE: &str = "groups.toml";

/// Why `groups.toml` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GroupsError {
    #[error("cannot read {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("groups file {0}; write NAME = \"node set\", as in web = \"web[01-20]\"")]
    Parse(#[from] TomlError),
    #[error("groups file {file}:{line}: group name {name:?} {why}")]
    BadName { file: String, line: usize, name: String, why: &'static str },
    #[error("groups file {file}:{line}: group {name}: {why}")]
    BadSet { file: String, line: usize, name: String, why: String },
}

/// The groups of `groups.toml`: name -> members, each set expanded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupsFile {
    pub groups: BTreeMap<String, Vec<String>>,
}

impl GroupsFile {
    /// `dir/groups.toml`, or no groups when there is no such file.
    ///
    /// Errors: unreadable file, TOML that is not `NAME = "string"` lines
    /// (with line and column), a group name that is not letters, digits and
    /// `- _ . :` or is `all` (reserved for every node), a node set that does
    /// not expand (the [`NodeSetError`] message) or that names a group: the
    /// members of a file group are node names, not other groups.
    pub fn load(dir: &Path) -> Result<GroupsFile, GroupsError> {
        let path = dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => GroupsFile::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(GroupsFile::default()),
            Err(source) => Err(GroupsError::Read { path, source }),
        }
    }

    /// Parse the text of a groups file named `file` (for messages); see [`Self::load`].
    pub fn parse(text: &str, file: &str) -> Result<GroupsFile, GroupsError> {
        let raw: BTreeMap<String, String> = settings::from_toml(text, file)?;
        let line_of = |name: &str| {
            text.lines()
                .position(|l| {
                    let l = l.trim_start().trim_start_matches('"');
                    l.strip_prefix(name).is_some_and(|r| r.trim_start_matches('"').trim_start().starts_with('='))
                })
                .map_or(1, |i| i + 1)
        };
        let mut groups = BTreeMap::new();
        for (name, spec) in raw {
            let line = line_of(&name);
            let bad_name = |why| GroupsError::BadName { file: file.into(), line, name: name.clone(), why };
            if name == "all" {
                return Err(bad_name("is reserved: @all is every node of the carrier"));
            }
            if !nodeset::is_group_name(&name) {
                return Err(bad_name("is not letters, digits and - _ . : starting with a letter or digit"));
            }
            let members = nodeset::expand(&spec).map_err(|e| {
                let why = match e {
                    NodeSetError::UnknownGroup { group, .. } => format!(
                        "{spec:?} names the group @{group}; a group in {FILE} lists node names, not other groups"
                    ),
                    e => e.to_string(),
                };
                GroupsError::BadSet { file: file.into(), line, name: name.clone(), why }
            })?;
            groups.insert(name, members);
        }
        Ok(GroupsFile { groups })
    }
}

/// The resolver for one carrier: `@all` (when the carrier has such a
/// list), the groups of `groups.toml` (read from `config_dir` on first
/// use), then the carrier's tags (tag -> nodes carrying it).
pub struct Inventory {
    all: Option<Vec<String>>,
    tags: BTreeMap<String, Vec<String>>,
    config_dir: PathBuf,
    file: OnceCell<Result<GroupsFile, String>>,
}

impl Inventory {
    /// `all`: every node (None: `@all` is unknown, as over the hub);
    /// `tagged`: (node, its tags) pairs; `config_dir`: where `groups.toml` is.
    pub fn new<'a>(
        all: Option<Vec<String>>,
        tagged: impl IntoIterator<Item = (&'a str, &'a [String])>,
        config_dir: &Path,
    ) -> Inventory {
        let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (node, node_tags) in tagged {
            for tag in node_tags {
                tags.entry(tag.clone()).or_default().push(node.to_string());
            }
        }
        Inventory { all, tags, config_dir: config_dir.to_path_buf(), file: OnceCell::new() }
    }

    fn file(&self) -> Result<&GroupsFile, String> {
        self.file
            .get_or_init(|| GroupsFile::load(&self.config_dir).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl Groups for Inventory {
    fn members(&self, name: &str) -> Result<Option<Vec<String>>, String> {
        if name == "all" {
            return Ok(self.all.clone());
        }
        if let Some(members) = self.file()?.groups.get(name) {
            return Ok(Some(members.clone()));
        }
        Ok(self.tags.get(name).cloned())
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.all.iter().map(|_| "all".to_string()).collect();
        if let Ok(file) = self.file() {
            names.extend(file.groups.keys().cloned());
        }
        names.extend(self.tags.keys().cloned());
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::nodeset::{expand_with, Bounds};

    fn tagged() -> Vec<(&'static str, Vec<String>)> {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        vec![("w1", t(&["web", "eu"])), ("w2", t(&["web"])), ("d1", t(&["db", "eu"]))]
    }

    fn inventory(dir: &Path, all: bool) -> Inventory {
        let tagged = tagged();
        let all = all.then(|| tagged.iter().map(|(n, _)| n.to_string()).collect());
        Inventory::new(all, tagged.iter().map(|(n, t)| (*n, t.as_slice())), dir)
    }

    #[test]
    fn tags_all_and_file_groups() {
        let d = tempfile::tempdir().unwrap();
        let inv = inventory(d.path(), true);
        let x = |spec: &str| expand_with(spec, &inv, Bounds::DEFAULT).map_err(|e| e.to_string());
        assert_eq!(x("@web&@eu").unwrap(), ["w1"]);
        assert_eq!(x("@all!@web").unwrap(), ["d1"]);
        assert_eq!(x("all,x9").unwrap(), ["w1", "w2", "d1", "x9"]);
        let e = x("@nope").unwrap_err();
        assert_eq!(e, "unknown group @nope; known groups: @all @db @eu @web");
        // A file group is read when first needed and wins over a tag.
        std::fs::write(d.path().join(FILE), "web = \"web[01-03]\"\nracks = \"r[1-2]n[1-2]\"\n").unwrap();
        let inv = inventory(d.path(), true);
        let x = |spec: &str| expand_with(spec, &inv, Bounds::DEFAULT).map_err(|e| e.to_string());
        assert_eq!(x("@web").unwrap(), ["web01", "web02", "web03"]);
        assert_eq!(x("@racks!r1n2").unwrap(), ["r1n1", "r2n1", "r2n2"]);
        assert_eq!(x("@eu").unwrap(), ["w1", "d1"]);
        assert!(x("@nope").unwrap_err().contains("known groups: @all @db @eu @racks @web"));
        // No @all where the carrier has none.
        let inv = inventory(d.path(), false);
        let e = expand_with("all,w1", &inv, Bounds::DEFAULT).unwrap_err().to_string();
        assert!(e.starts_with("unknown group @all; known groups: @db"), "{e}");
    }

    #[test]
    fn a_broken_file_is_reported_only_when_used() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(FILE), "web = \"web[01-3]\"\n").unwrap();
        let inv = inventory(d.path(), true);
        assert_eq!(expand_with("all!w2", &inv, Bounds::DEFAULT).unwrap(), ["w1", "d1"]);
        let e = expand_with("@eu", &inv, Bounds::DEFAULT).unwrap_err().to_string();
        assert!(e.starts_with("group @eu: groups file "), "{e}");
        assert!(
            e.contains("groups.toml:1: group web: range \"01-3\" in \"web[01-3]\" has bounds padded differently"),
            "{e}"
        );
    }

    #[test]
    fn file_errors_name_the_line_and_rule() {
        let bad = |text: &str, want: &str| {
            let e = GroupsFile::parse(text, "g.toml").unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        };
        bad("a = \"x\"\nall = \"web1\"", "groups file g.toml:2: group name \"all\" is reserved");
        bad("\"a b\" = \"x\"", "group name \"a b\" is not letters");
        bad("web = 3", "groups file g.toml:1:7:");
        bad("web = [\"a\"]", "write NAME = \"node set\"");
        bad(
            "a = \"x\"\nweb = \"@db,x\"",
            "g.toml:2: group web: \"@db,x\" names the group @db; a group in groups.toml lists node names",
        );
        bad("web = \"all,x\"", "names the group @all");
        bad("web = \"w!\"", "g.toml:1: group web: missing node set after '!'");
        let ok = GroupsFile::parse("web = \"w[1-2]\"\n\"db\" = \"d1 , d2\"\n", "g.toml").unwrap();
        assert_eq!(ok.groups["web"], ["w1", "w2"]);
        assert_eq!(ok.groups["db"], ["d1", "d2"]);
        let d = tempfile::tempdir().unwrap();
        assert_eq!(GroupsFile::load(d.path()).unwrap(), GroupsFile::default());
    }
}
