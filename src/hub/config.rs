//! Hub settings. Agents read a `[hub]` section in agent.toml; stations read
//! one in `<state>/dispatcher.toml`, overridable by flags. Redis names used
//! on a channel `C`: the command topic `muster/C/requests`, per-command
//! reply lists `muster/C/replies/{<random>}` and slot sets `<reply list>:slots`
//! (the braces are a Redis Cluster hash tag: one slot for all three keys).

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use super::target::RedisTarget;

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
    /// The station's secret key (`station.key`); default
    /// `<state>/hub/station.key`; a relative path is relative to `<state>`.
    pub station_key: Option<PathBuf>,
    /// The network public key (`network.pub`); default
    /// `<state>/hub/network.pub`; a relative path is relative to `<state>`.
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

/// The reply list of one command. The random part is a hash tag, so the
/// list, its slot set and wake list share one Redis Cluster hash slot (the
/// throttle's scripts touch two of them at once).
pub fn replies_key(channel: &str, nonce_hex: &str) -> String {
    format!("muster/{channel}/replies/{{{nonce_hex}}}")
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

    use super::{replies_key, slots_key};

    #[test]
    fn conflicting_hub_settings_fail_as_the_file_is_read() {
        let head =
            "name = \"a1\"\nstate_dir = \".\"\n[hub]\nchannel = \"c\"\nstation_key = \"s\"\nnetwork_key = \"n\"\n";
        for (extra, want) in [
            ("url = \"redis://h:1\"\nsentinels = [\"h:2\"]\nmaster = \"m\"", "keep one"),
            ("sentinels = [\"h:2\"]", "sentinels needs master = \"NAME\""),
            ("master = \"m\"", "master needs sentinels"),
            ("master = \"a b\"\nsentinels = [\"h:2\"]", "without spaces"),
            ("cluster = [\"h:2\"]\nmaster = \"m\"\nsentinels = [\"h:3\"]", "cannot both be set"),
            ("cluster = []\nurl = \"nope://x\"", "unknown scheme nope://"),
            ("clusters = [\"h\"]", "unknown field `clusters`"),
        ] {
            let e = AgentConfig::parse(&format!("{head}{extra}\n"), Path::new("/")).unwrap_err().to_string();
            assert!(e.starts_with("agent config agent.toml:") && e.contains(want), "{extra}: {e}");
        }
        let ok = AgentConfig::parse(&format!("{head}cluster = [\"h:7000\", \"h2\"]\n"), Path::new("/")).unwrap();
        assert_eq!(ok.hub.unwrap().redis.cluster, ["h:7000", "h2"]);
        // Nothing set reads fine (a station may take --redis) but names no deployment.
        let none = AgentConfig::parse(head, Path::new("/")).unwrap();
        assert!(none.hub.unwrap().redis.deployment().unwrap_err().contains("no Redis set"));
    }

    #[test]
    fn a_commands_keys_share_one_cluster_slot() {
        let r = replies_key("prod", "00ff");
        assert_eq!(r, "muster/prod/replies/{00ff}");
        assert_eq!(slots_key(&r), "muster/prod/replies/{00ff}:slots");
        assert_eq!(crate::hub::throttle::wake_key(&slots_key(&r)), "muster/prod/replies/{00ff}:slots:wake");
    }
}
