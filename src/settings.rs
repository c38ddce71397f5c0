//! Values an operator writes in muster's TOML files (agent.toml,
//! dispatcher.toml, discovery.toml), checked where they are parsed: serde
//! helpers for durations in seconds and for names and counts, and
//! [`from_toml`], which reports any error as `file:line:column: what` so
//! the operator can go straight to the value. A value that passes here can
//! be turned into a `Duration` and added to an `Instant` without a panic.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// The longest duration any setting accepts: 365 days, in seconds.
pub const MAX_SECONDS: u64 = 365 * 24 * 3600;

/// A TOML file that did not parse or holds a value out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TomlError {
    /// The file as the operator named it.
    pub file: String,
    /// 1-based line and column of the offending value, when TOML knows it.
    pub at: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for TomlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Parse `text` (the content of `file`) as `T`. Errors carry the line and
/// column, and the key when the offending line is `key = value`.
pub fn from_toml<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, TomlError> {
    toml::from_str(text).map_err(|e| locate(text, file, &e))
}

fn locate(text: &str, file: &str, e: &toml::de::Error) -> TomlError {
    let mut message = e.message().trim().replace('\n', "; ");
    let at = e.span().and_then(|span| {
        let before = text.get(..span.start)?;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + 1;
        let col = before[line_start..].chars().count() + 1;
        // Name the key of a `key = value` line when the message does not.
        let this_line = text[line_start..].lines().next().unwrap_or("");
        if let Some((key, _)) = this_line.split_once('=') {
            let key = key.trim();
            let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if plain && span.start >= line_start + this_line.find('=').unwrap_or(0) && !message.contains(key) {
                message = format!("{key}: {message}");
            }
        }
        Some((line, col))
    });
    TomlError { file: file.to_string(), at, message }
}

/// A number of seconds as written: integer or float.
struct SecondsVisitor;

impl Visitor<'_> for SecondsVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a number of seconds from 0 to {MAX_SECONDS}")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
}

fn checked_seconds<E: de::Error>(v: f64, min: f64) -> Result<f64, E> {
    if !v.is_finite() {
        return Err(E::custom(format!("{v} is not a number of seconds; write e.g. 5 or 0.5")));
    }
    if v < min {
        let what = if min > 0.0 { format!("at least {min}") } else { "0 or more".into() };
        return Err(E::custom(format!("{v} seconds is too short; it must be {what}")));
    }
    if v > MAX_SECONDS as f64 {
        return Err(E::custom(format!("{v} seconds is more than the largest allowed, {MAX_SECONDS} (365 days)")));
    }
    Ok(v)
}

/// `deserialize_with`: seconds from 0 to [`MAX_SECONDS`], fractions allowed
/// (`kill_grace = 0.5`).
pub fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = checked_seconds(d.deserialize_any(SecondsVisitor)?, 0.0)?;
    Ok(Duration::from_secs_f64(v))
}

/// `deserialize_with`: whole seconds from 1 to [`MAX_SECONDS`], for
/// timeouts kept as integers (`hook_timeout = 10`; `10.0` is accepted,
/// `0.5` is not).
pub fn whole_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = checked_seconds(d.deserialize_any(SecondsVisitor)?, 1.0)?;
    if v.fract() != 0.0 {
        return Err(de::Error::custom(format!("{v} is not a whole number of seconds")));
    }
    Ok(v as u64)
}

/// `deserialize_with`: a count that must be at least 1 (`max_concurrent`,
/// `fanout`).
pub fn at_least_one<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::Deserialize<'de> + PartialOrd + From<u8> + fmt::Display,
{
    let v = T::deserialize(d)?;
    if v < T::from(1u8) {
        return Err(de::Error::custom(format!("{v} is too small; it must be at least 1")));
    }
    Ok(v)
}

/// `deserialize_with`: a name under the action-name rule
/// (`[A-Za-z0-9][A-Za-z0-9-]*`, at most 64 bytes), used for agent names.
pub fn agent_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = String::deserialize(d)?;
    crate::protocol::check_action_name(&name)
        .map_err(|e| de::Error::custom(e.to_string().replace("action name", "agent name")))?;
    Ok(name)
}

/// `deserialize_with`: a label for Redis names and files (hub channel,
/// identity): 1 to 128 characters, none of them whitespace or control.
pub fn label<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    check_label(&s).map_err(de::Error::custom)?;
    Ok(s)
}

/// `deserialize_with`: an optional [`label`].
pub fn opt_label<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    if let Some(s) = &s {
        check_label(s).map_err(de::Error::custom)?;
    }
    Ok(s)
}

/// Check a label (hub channel, identity): 1 to 128 characters, no
/// whitespace or control characters.
pub fn check_label(s: &str) -> Result<(), String> {
    if s.is_empty() || s.chars().count() > 128 {
        return Err(format!("{s:?} must be 1 to 128 characters long"));
    }
    if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{s:?} holds {c:?}; whitespace and control characters are not allowed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "seconds")]
        grace: Duration,
        #[serde(default, deserialize_with = "whole_seconds")]
        timeout: u64,
        #[serde(default = "one", deserialize_with = "at_least_one")]
        count: u32,
    }

    fn one() -> u32 {
        1
    }

    fn err(text: &str) -> String {
        from_toml::<T>(text, "x.toml").unwrap_err().to_string()
    }

    #[test]
    fn durations_in_range_parse() {
        let t: T = from_toml("grace = 0.25\ntimeout = 10\n", "x.toml").unwrap();
        assert_eq!((t.grace, t.timeout, t.count), (Duration::from_millis(250), 10, 1));
        let t: T = from_toml(&format!("grace = {MAX_SECONDS}\ntimeout = 2.0\n"), "x.toml").unwrap();
        assert_eq!((t.grace.as_secs(), t.timeout), (MAX_SECONDS, 2));
        assert_eq!(from_toml::<T>("grace = 0\n", "x.toml").unwrap().grace, Duration::ZERO);
    }

    #[test]
    fn out_of_range_values_name_file_line_and_key() {
        let cases = [
            ("\n\ngrace = 1e20\n", "x.toml:3:9: grace: 100000000000000000000 seconds is more than the largest"),
            ("grace = -1\n", "x.toml:1:9: grace: -1 seconds is too short; it must be 0 or more"),
            ("grace = nan\n", "x.toml:1:9: grace: NaN is not a number of seconds"),
            ("grace = inf\n", "x.toml:1:9: grace: inf is not a number of seconds"),
            ("grace = -inf\n", "x.toml:1:9: grace: -inf is not"),
            ("grace = \"5\"\n", "x.toml:1:9: grace: invalid type: string \"5\", expected a number of seconds"),
            ("timeout = 0\n", "x.toml:1:11: timeout: 0 seconds is too short; it must be at least 1"),
            ("timeout = 0.5\n", "x.toml:1:11: timeout: 0.5 seconds is too short"),
            ("timeout = 1.5\n", "x.toml:1:11: timeout: 1.5 is not a whole number of seconds"),
            ("timeout = 31536001\n", "x.toml:1:11: timeout: 31536001 seconds is more than"),
            ("timeout = 18446744073709551615\n", "x.toml:1:11:"),
            ("count = 0\n", "x.toml:1:9: count: 0 is too small; it must be at least 1"),
            ("count = -3\n", "x.toml:1:9: count: invalid value"),
        ];
        for (text, want) in cases {
            let e = err(text);
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
        assert!(err("grace = [").starts_with("x.toml:1:"), "{}", err("grace = ["));
    }

    #[test]
    fn labels_refuse_blanks_and_controls() {
        for bad in ["", "a b", "a\u{7}", &"x".repeat(129)] {
            assert!(check_label(bad).is_err(), "{bad:?}");
        }
        for good in ["prod", "ops-station", "a.b/c:d", "é"] {
            assert!(check_label(good).is_ok(), "{good:?}");
        }
    }
}
