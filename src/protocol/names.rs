//! The action-name rule: `[A-Za-z0-9][A-Za-z0-9-]*`, 1 to 64 bytes. Every
//! carrier checks a requested name with this before any catalog lookup, so
//! path tricks (`../x`), shell metacharacters and suffixes (`x.sh`) never
//! reach the file system.

use thiserror::Error;

pub const MAX_ACTION_NAME: usize = 64;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error("action name is empty")]
    Empty,
    #[error("action name is {0} bytes; at most {MAX_ACTION_NAME} are allowed")]
    TooLong(usize),
    #[error("action name {0:?} must start with a letter or digit")]
    BadStart(String),
    #[error("action name {name:?} has the character {ch:?}; only letters, digits and '-' are allowed")]
    BadChar { name: String, ch: char },
}

/// Check `name` against the rule; the error says which part broke it.
pub fn check_action_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_ACTION_NAME {
        return Err(NameError::TooLong(name.len()));
    }
    let first = name.chars().next().unwrap_or('-');
    if !first.is_ascii_alphanumeric() {
        return Err(NameError::BadStart(name.to_string()));
    }
    if let Some(ch) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
        return Err(NameError::BadChar { name: name.to_string(), ch });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_the_review_list() {
        for bad in ["../etc/passwd", "foo;bar", "foo$(id)", "a b", "script.sh", "", &"a".repeat(65), "-x", "é"] {
            assert!(check_action_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn accepts_plain_names() {
        for good in ["backup-mysql", "a", "check-disk2", &"a".repeat(64), "0day"] {
            assert_eq!(check_action_name(good), Ok(()));
        }
    }
}
