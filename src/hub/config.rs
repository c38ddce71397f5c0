//! Hub settings. Agents read a `[hub]` section in agent.toml; stations read
//! one in `<state>/dispatcher.toml`, overridable by flags. Redis names used
//! on a channel `C`: the command topic `muster/C/requests`, per-command
//! reply lists `muster/C/replies/<random>` and slot sets `<reply list>:slots`.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to reach Redis.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RedisTarget {
    /// `redis://host:port/db` or `rediss://` for TLS.
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl RedisTarget {
    /// A client, with user and password applied; errors name the URL.
    pub fn client(&self) -> Result<redis::Client, String> {
        let mut info: redis::ConnectionInfo = redis::IntoConnectionInfo::into_connection_info(self.url.as_str())
            .map_err(|e| format!("bad Redis URL {:?}: {e}", self.url))?;
        let mut settings = info.redis_settings().clone();
        if let Some(u) = &self.user {
            settings = settings.set_username(u.clone());
        }
        if let Some(p) = &self.password {
            settings = settings.set_password(p.clone());
        }
        info = info.set_redis_settings(settings);
        redis::Client::open(info).map_err(|e| format!("bad Redis URL {:?}: {e}", self.url))
    }
}

/// The `[hub]` section of an agent's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentHub {
    #[serde(flatten)]
    pub redis: RedisTarget,
    /// 1 to 128 characters, no whitespace or control characters.
    #[serde(deserialize_with = "crate::settings::label")]
    pub channel: String,
    /// Defaults to the agent's name.
    #[serde(default, deserialize_with = "crate::settings::opt_label")]
    pub identity: Option<String>,
    /// Defaults to the agent's tags.
    pub tags: Option<Vec<String>>,
    /// The station's public key (`station.pub`).
    pub station_key: PathBuf,
    /// The network secret key (`network.key`).
    pub network_key: PathBuf,
}

/// The `[hub]` section of dispatcher.toml.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StationHub {
    #[serde(default, flatten)]
    pub redis: RedisTarget,
    #[serde(default, deserialize_with = "crate::settings::opt_label")]
    pub channel: Option<String>,
    #[serde(default, deserialize_with = "crate::settings::opt_label")]
    pub identity: Option<String>,
    /// The station's secret key (`station.key`); default `<state>/hub/station.key`.
    pub station_key: Option<PathBuf>,
    /// The network public key (`network.pub`); default `<state>/hub/network.pub`.
    pub network_key: Option<PathBuf>,
}

impl AgentHub {
    /// Resolve relative key paths against `base` (the config's directory).
    pub fn resolve(&mut self, base: &Path) {
        for p in [&mut self.station_key, &mut self.network_key] {
            *p = crate::agent::config::resolve(base, p);
        }
    }
}

pub fn requests_topic(channel: &str) -> String {
    format!("muster/{channel}/requests")
}

pub fn replies_key(channel: &str, nonce_hex: &str) -> String {
    format!("muster/{channel}/replies/{nonce_hex}")
}

pub fn slots_key(reply_to: &str) -> String {
    format!("{reply_to}:slots")
}

/// Largest message taken off the channel or a reply list.
pub const MAX_MESSAGE: usize = 1 << 20;
/// Reply lists and slot sets expire this long after their last write.
pub const REPLY_TTL: Duration = Duration::from_secs(600);

/// `n` random bytes as lowercase hex (see [`crate::hexstr::random`]).
pub fn random_hex(n: usize) -> String {
    crate::hexstr::random(n)
}

#[cfg(test)]
mod tests {
    use crate::agent::AgentConfig;
    use std::path::Path;

    #[test]
    fn hub_sections_check_labels_and_resolve_keys_once() {
        let head = "name = \"a1\"\nstate_dir = \".\"\n[hub]\nurl = \"redis://127.0.0.1:1\"\n";
        let ok = format!(
            "{head}channel = \"prod\"\nstation_key = \"./k/station.pub\"\nnetwork_key = \"/abs/network.key\"\n"
        );
        let c = AgentConfig::parse(&ok, Path::new("/etc/m")).unwrap();
        let h = c.hub.unwrap();
        assert_eq!(h.station_key, Path::new("/etc/m/k/station.pub"));
        assert_eq!(h.network_key, Path::new("/abs/network.key"));
        for (extra, want) in [
            ("channel = \"a b\"\nstation_key = \"s\"\nnetwork_key = \"n\"", "whitespace"),
            ("channel = \"\"\nstation_key = \"s\"\nnetwork_key = \"n\"", "1 to 128 characters"),
            ("channel = \"c\"\nidentity = \"x\\ty\"\nstation_key = \"s\"\nnetwork_key = \"n\"", "whitespace"),
            ("channel = \"c\"\nstation_key = \"s\"", "network_key"),
        ] {
            let e = AgentConfig::parse(&format!("{head}{extra}\n"), Path::new("/")).unwrap_err().to_string();
            assert!(e.starts_with("agent config agent.toml:") && e.contains(want), "{extra}: {e}");
        }
    }
}
