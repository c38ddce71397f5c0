//! The agent's settings from its command line and environment, read the
//! way the original reads them: `--agentid` (or the first positional
//! argument), action roots (positional arguments, then each
//! `--actionsdir`; empty values are ignored, as a systemd unit expanding an
//! unset variable produces them), `--eventsdir` roots, and the variables
//! `REDIS_ADDRESS`, `REDIS_USER`, `REDIS_PASSWORD`, `REDIS_REPLICA_ADDRESS`,
//! `AGENT_POLLING_INTERVAL`, `MAX_CONCURRENCY` and `OVERLOAD_SLEEP`.

use super::link::Settings;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

pub const DEFAULT_ADDRESS: &str = "127.0.0.1:6379";
pub const DEFAULT_POLLING: Duration = Duration::from_millis(5000);
pub const DEFAULT_MAX_CONCURRENCY: usize = 32;

#[derive(Debug, Clone)]
pub struct Config {
    /// The agent id, prefix of every key: `module/mail1`, `node/1`, `cluster`.
    pub id: String,
    pub action_roots: Vec<PathBuf>,
    pub event_roots: Vec<PathBuf>,
    /// Connection for tasks, keys and progress.
    pub tasks: Settings,
    /// Connection for the event subscription.
    pub events: Settings,
    /// Heartbeat and retry interval (the `brpop` timeout is
    /// `queue::POP_TIMEOUT_SECS`, so a drain never waits for this).
    pub polling: Duration,
    /// Tasks running at once before new ones are rejected with exit code 11.
    pub max_concurrency: usize,
    /// Grace period an overloaded agent waits before rejecting a task.
    pub overload_sleep: Duration,
}

/// Startup errors; each is logged as an emergency and the agent exits 1.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("The agent prefix argument is not set")]
    NoAgentId,
    #[error("Action path command arguments are not set")]
    NoActionRoots,
}

/// Build the configuration; `env` looks a variable up.
pub fn build(
    agentid: Option<&str>,
    positional: &[String],
    actionsdir: &[String],
    eventsdir: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut positional: Vec<&String> = positional.iter().filter(|s| !s.is_empty()).collect();
    let id = match agentid.filter(|s| !s.is_empty()) {
        Some(id) => id.to_string(),
        None if !positional.is_empty() => positional.remove(0).clone(),
        None => return Err(ConfigError::NoAgentId),
    };
    let action_roots: Vec<PathBuf> =
        positional.into_iter().chain(actionsdir.iter()).filter(|s| !s.is_empty()).map(PathBuf::from).collect();
    if action_roots.is_empty() {
        return Err(ConfigError::NoActionRoots);
    }
    let event_roots = eventsdir.iter().filter(|s| !s.is_empty()).map(PathBuf::from).collect();
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    let address = set("REDIS_ADDRESS").unwrap_or_else(|| DEFAULT_ADDRESS.to_string());
    // With a password, the user name defaults to the agent id.
    let password = set("REDIS_PASSWORD");
    let username = password.as_ref().map(|_| set("REDIS_USER").unwrap_or_else(|| id.clone()));
    let tasks = Settings { address: address.clone(), username, password, name: id.clone() };
    // Events are read with the default user, from a replica when there is one.
    let events = Settings {
        address: set("REDIS_REPLICA_ADDRESS").unwrap_or(address),
        username: Some("default".into()),
        password: Some(id.clone()),
        name: id.clone(),
    };
    let polling = set("AGENT_POLLING_INTERVAL").and_then(|v| go_duration(&v)).unwrap_or(DEFAULT_POLLING);
    let max_concurrency = set("MAX_CONCURRENCY")
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_MAX_CONCURRENCY);
    let overload_sleep = set("OVERLOAD_SLEEP").and_then(|v| go_duration(&v)).unwrap_or(polling);
    Ok(Config { id, action_roots, event_roots, tasks, events, polling, max_concurrency, overload_sleep })
}

/// A positive duration in Go's `time.ParseDuration` syntax: `75ms`,
/// `1.5s`, `1h30m`. Anything else (including zero or negative) is `None`.
pub fn go_duration(s: &str) -> Option<Duration> {
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() || rest.starts_with('-') {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = tail;
    }
    (total > 0.0 && total < 1e9).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn both_command_line_forms() {
        let none = |_: &str| None;
        let c = build(Some("module/mail1"), &s(&["."]), &s(&["", "/a"]), &s(&["/e"]), none).unwrap();
        assert_eq!((c.id.as_str(), c.action_roots.clone()), ("module/mail1", vec![PathBuf::from("."), "/a".into()]));
        let c = build(None, &s(&["module/mail1", ".", "/b"]), &[], &[], none).unwrap();
        assert_eq!(c.action_roots, vec![PathBuf::from("."), "/b".into()]);
        assert_eq!((c.tasks.username.clone(), c.polling), (None, DEFAULT_POLLING));
        assert_eq!(build(None, &[], &s(&["/a"]), &[], none).unwrap_err(), ConfigError::NoAgentId);
        assert_eq!(build(Some("x"), &[], &s(&[""]), &[], none).unwrap_err(), ConfigError::NoActionRoots);
    }

    #[test]
    fn environment() {
        let env = |k: &str| match k {
            "REDIS_PASSWORD" => Some("pw".to_string()),
            "AGENT_POLLING_INTERVAL" => Some("75ms".to_string()),
            "REDIS_REPLICA_ADDRESS" => Some("10.0.0.2:6379".to_string()),
            _ => None,
        };
        let c = build(Some("module/x"), &[], &s(&["/a"]), &[], env).unwrap();
        assert_eq!(c.tasks.username.as_deref(), Some("module/x"));
        assert_eq!(c.polling, Duration::from_millis(75));
        assert_eq!(c.events.address, "10.0.0.2:6379");
        assert_eq!(go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1500)));
        for bad in ["", "5", "-1s", "1x", "0s"] {
            assert_eq!(go_duration(bad), None, "{bad}");
        }
    }
}
