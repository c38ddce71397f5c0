//! Where every target ends: exactly one [`State`], the exit-status bitmask
//! of a dispatch, and the summary line printed on stderr.

use crate::protocol::{End, Finished};
use std::fmt;
use std::time::Duration;

pub const EXIT_SETUP: u8 = 1;
pub const BIT_MISSING: u8 = 2;
pub const BIT_COMMAND: u8 = 4;
pub const BIT_WAIT: u8 = 8;
pub const BIT_AGENT: u8 = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Succeeded,
    Failed { exit: Option<i32>, signal: Option<i32>, why: Option<String> },
    TimedOut,
    Unreachable(String),
    Refused(String),
    Cancelled,
    Skipped,
}

impl State {
    pub fn from_finished(f: &Finished) -> State {
        match &f.end {
            End::Exited if f.exit == Some(0) => State::Succeeded,
            End::Exited => State::Failed { exit: f.exit, signal: f.signal, why: None },
            End::TimedOut => State::TimedOut,
            End::Cancelled => State::Cancelled,
            End::SpawnFailed(e) => State::Failed { exit: None, signal: None, why: Some(e.clone()) },
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            State::Succeeded => "succeeded",
            State::Failed { .. } => "failed",
            State::TimedOut => "timed-out",
            State::Unreachable(_) => "unreachable",
            State::Refused(_) => "refused",
            State::Cancelled => "cancelled",
            State::Skipped => "skipped",
        }
    }

    pub fn is_success(&self) -> bool {
        *self == State::Succeeded
    }

    /// The exit-status bit this state contributes.
    pub fn bit(&self) -> u8 {
        match self {
            State::Succeeded | State::Skipped => 0,
            State::Failed { .. } | State::TimedOut | State::Cancelled => BIT_COMMAND,
            State::Unreachable(_) => BIT_MISSING,
            State::Refused(_) => BIT_AGENT,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Failed { exit: Some(c), .. } => write!(f, "failed(exit {c})"),
            State::Failed { signal: Some(s), .. } => write!(f, "failed(signal {s})"),
            State::Failed { why: Some(w), .. } => write!(f, "failed({w})"),
            State::Unreachable(w) => write!(f, "unreachable({w})"),
            State::Refused(w) => write!(f, "refused({w})"),
            s => f.write_str(s.label()),
        }
    }
}

/// One target's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetResult {
    pub name: String,
    pub state: State,
    pub truncated: bool,
}

/// The exit status of a whole dispatch.
pub fn exit_status(results: &[TargetResult]) -> u8 {
    results.iter().fold(0, |acc, r| acc | r.state.bit())
}

/// `N targets: a succeeded, b failed, ... in 1.23s`, then one line per
/// target that did not succeed.
pub fn summary(results: &[TargetResult], wall: Duration) -> String {
    const ORDER: [&str; 7] = ["succeeded", "failed", "timed-out", "unreachable", "refused", "cancelled", "skipped"];
    let counts: Vec<String> = ORDER
        .iter()
        .filter_map(|label| {
            let n = results.iter().filter(|r| r.state.label() == *label).count();
            (n > 0).then(|| format!("{n} {label}"))
        })
        .collect();
    let mut s = format!(
        "muster: {} target{}: {} in {:.2}s\n",
        results.len(),
        if results.len() == 1 { "" } else { "s" },
        if counts.is_empty() { "nothing ran".to_string() } else { counts.join(", ") },
        wall.as_secs_f64()
    );
    for r in results.iter().filter(|r| !r.state.is_success() && r.state != State::Skipped) {
        s.push_str(&format!("  {}: {}\n", r.name, r.state));
    }
    let skipped: Vec<&str> = results.iter().filter(|r| r.state == State::Skipped).map(|r| r.name.as_str()).collect();
    if !skipped.is_empty() {
        s.push_str(&format!("  skipped: {}\n", super::nodeset::fold(&skipped)));
    }
    if let Some(t) = results.iter().filter(|r| r.truncated).map(|r| r.name.as_str()).reduce(|a, _| a) {
        s.push_str(&format!("  output truncated on {t} (and maybe others): raise output_cap on the agent\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, state: State) -> TargetResult {
        TargetResult { name: name.into(), state, truncated: false }
    }

    #[test]
    fn bits_and_summary() {
        let rs = vec![
            r("a1", State::Succeeded),
            r("a2", State::Failed { exit: Some(3), signal: None, why: None }),
            r("a3", State::Unreachable("refused".into())),
            r("a4", State::Skipped),
            r("a5", State::Refused("busy".into())),
        ];
        assert_eq!(exit_status(&rs), 2 + 4 + 16);
        let s = summary(&rs, Duration::from_millis(1500));
        assert!(
            s.starts_with("muster: 5 targets: 1 succeeded, 1 failed, 1 unreachable, 1 refused, 1 skipped in 1.50s"),
            "{s}"
        );
        assert!(s.contains("a2: failed(exit 3)"), "{s}");
        assert!(s.contains("skipped: a4"), "{s}");
        assert_eq!(exit_status(&rs[..1]), 0);
    }
}
