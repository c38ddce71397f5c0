//! `ssh.toml` (in the config directory): the hosts the SSH carrier knows,
//! their tags and ssh options, and defaults for every host. A target
//! that is not listed is used as written, `[user@]host[:port]`, so the
//! file is optional; `~/.ssh/config` applies as usual since the system
//! `ssh` client does the connecting.
//!
//! ```toml
//! [defaults]
//! ssh_options = ["-o", "StrictHostKeyChecking=accept-new"]
//! install_dir = "~/.local/lib/muster"     # where the agent binary goes
//!
//! [hosts.web01]
//! address = "admin@10.0.0.5:2222"
//! tags = ["web", "eu"]
//! ssh_options = ["-J", "bastion"]
//! ```

use crate::settings::{self, TomlError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The default place of the agent binary on a host, `~` being the login's home.
pub const DEFAULT_INSTALL_DIR: &str = "~/.local/lib/muster";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default)]
    pub ssh_options: Vec<String>,
    pub install_dir: Option<String>,
    /// Commands the agent runs at once on a host; more are refused busy.
    pub max_concurrent: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// `[user@]host[:port]`; default: the host's name.
    pub address: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub ssh_options: Vec<String>,
    pub install_dir: Option<String>,
    pub max_concurrent: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshConfig {
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub hosts: BTreeMap<String, Host>,
}

/// Why ssh.toml cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SshConfigError {
    #[error("cannot read {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("ssh config {0}")]
    Parse(#[from] TomlError),
    #[error("ssh config {}: host {name:?} cannot be named in TARGETS ({why}); use a name of letters, digits and - . _ : @ and put the real destination in its address", .path.display())]
    HostName { path: PathBuf, name: String, why: String },
}

impl SshConfig {
    /// `dir/ssh.toml`, or an empty config when there is none. A host name
    /// must be one node of a node set (`web01`, not `web!1`, `a b` or
    /// `all`), or no TARGETS could name it.
    pub fn load(dir: &Path) -> Result<SshConfig, SshConfigError> {
        let path = dir.join("ssh.toml");
        match std::fs::read_to_string(&path) {
            Ok(t) => {
                let config: SshConfig = settings::from_toml(&t, &path.display().to_string())?;
                for name in config.hosts.keys() {
                    match crate::dispatch::nodeset::expand(name) {
                        Ok(names) if names == [name.as_str()] => {}
                        Ok(names) => {
                            let why = format!("it reads as the node set {:?}", crate::dispatch::nodeset::fold(&names));
                            return Err(SshConfigError::HostName { path, name: name.clone(), why });
                        }
                        Err(e) => {
                            return Err(SshConfigError::HostName { path, name: name.clone(), why: e.to_string() })
                        }
                    }
                }
                Ok(config)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SshConfig::default()),
            Err(source) => Err(SshConfigError::Read { path, source }),
        }
    }

    /// Where `name` is reached: its configured address, else the name.
    pub fn address(&self, name: &str) -> String {
        self.hosts.get(name).and_then(|h| h.address.clone()).unwrap_or_else(|| name.to_string())
    }

    /// The ssh options for `name`: the defaults, then the host's own.
    pub fn options(&self, name: &str) -> Vec<String> {
        let mut o = self.defaults.ssh_options.clone();
        if let Some(h) = self.hosts.get(name) {
            o.extend(h.ssh_options.iter().cloned());
        }
        o
    }

    /// The install directory for `name` (may start with `~`).
    pub fn install_dir(&self, name: &str) -> String {
        self.hosts
            .get(name)
            .and_then(|h| h.install_dir.clone())
            .or_else(|| self.defaults.install_dir.clone())
            .unwrap_or_else(|| DEFAULT_INSTALL_DIR.to_string())
    }

    /// The agent's command queue limit on `name`, if configured.
    pub fn max_concurrent(&self, name: &str) -> Option<u32> {
        self.hosts.get(name).and_then(|h| h.max_concurrent).or(self.defaults.max_concurrent)
    }

    /// Hosts carrying every tag in `tags`, in name order.
    pub fn tagged(&self, tags: &[String]) -> Vec<String> {
        self.hosts.iter().filter(|(_, h)| tags.iter().all(|t| h.tags.contains(t))).map(|(n, _)| n.clone()).collect()
    }
}

/// `[user@]host[:port]` split for ssh: (`user@host`, port).
pub fn split_address(addr: &str) -> (String, Option<u16>) {
    if let Some((host, port)) = addr.rsplit_once(':') {
        if !host.contains(':') {
            if let Ok(p) = port.parse::<u16>() {
                return (host.to_string(), Some(p));
            }
        }
    }
    (addr.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_options_and_tags() {
        let c: SshConfig = toml::from_str(
            "[defaults]\nssh_options = [\"-o\", \"A=1\"]\n[hosts.web01]\naddress = \"u@10.0.0.5:2222\"\ntags = [\"web\"]\nssh_options = [\"-J\", \"b\"]\n[hosts.db1]\ntags = [\"db\"]\n",
        )
        .unwrap();
        assert_eq!(c.address("web01"), "u@10.0.0.5:2222");
        assert_eq!(c.address("other"), "other");
        assert_eq!(c.options("web01"), ["-o", "A=1", "-J", "b"]);
        assert_eq!(c.tagged(&["web".into()]), ["web01"]);
        assert_eq!(c.install_dir("db1"), DEFAULT_INSTALL_DIR);
        assert_eq!(split_address("u@h:22"), ("u@h".to_string(), Some(22)));
        assert_eq!(split_address("h"), ("h".to_string(), None));
        assert_eq!(split_address("fe80::1"), ("fe80::1".to_string(), None));
    }

    #[test]
    fn host_names_must_be_nodes() {
        let d = tempfile::tempdir().unwrap();
        let load = |text: &str| {
            std::fs::write(d.path().join("ssh.toml"), text).unwrap();
            SshConfig::load(d.path()).map(|c| c.hosts.len()).map_err(|e| e.to_string())
        };
        assert_eq!(load("[hosts.web01]\n[hosts.\"db1.example.com\"]\n[hosts.\"fe80::1\"]\n"), Ok(3));
        for (name, want) in [
            ("web!1", "web!1\" cannot be named in TARGETS (it reads as the node set \"web\")"),
            ("a!a", "(it reads as the node set \"\")"),
            ("a b", "(whitespace inside node name"),
            ("all", "(unknown group @all"),
            ("n[1-2]", "(it reads as the node set \"n[1-2]\")"),
            ("-x", "starts with '-'"),
        ] {
            let e = load(&format!("[hosts.\"{name}\"]\n")).unwrap_err();
            assert!(e.contains(want), "{name}: {e}");
        }
    }
}
