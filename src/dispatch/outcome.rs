//! Where every target ends: exactly one [`State`], the exit-status bitmask
//! of a dispatch (the seed's bits, the same for every carrier), and the
//! summary printed on stderr, folded so a thousand hosts failing the same
//! way take one line.

use crate::protocol::{End, Finished, Refusal};
pub use crate::transport::carrier::Reason;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Setup or usage error: nothing was dispatched.
pub const EXIT_SETUP: u8 = 1;
/// Agents missing: unreachable, named but silent, or nobody answered.
pub const BIT_MISSING: u8 = 2;
/// Command errors: non-zero exit, killed, timed out, cancelled.
pub const BIT_COMMAND: u8 = 4;
/// Reply wait expired: an agent went silent while it ran (`lost`).
pub const BIT_WAIT: u8 = 8;
/// Agent errors: unknown action, denied by allowlist or hook, busy, refused.
pub const BIT_AGENT: u8 = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Succeeded,
    Failed {
        exit: Option<i32>,
        signal: Option<i32>,
        why: Option<String>,
    },
    TimedOut,
    /// Started, then went silent past the liveness bound (or the hub's
    /// reply wait): the agent may still be running it.
    Lost(Reason),
    Unreachable(Reason),
    Refused(Reason),
    Cancelled,
    Skipped,
    /// An asynchronous request started on the agent; its result is
    /// collected later (`muster status`, `muster wait`).
    Dispatched,
    /// Not ended yet, as `muster status` finds it: the action runs with
    /// this pid on the agent.
    Running {
        pid: Option<u32>,
    },
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

    /// A target resolution left out: `refused` for a revoked agent (kind
    /// [`REVOKED`](crate::dispatch::REVOKED): never dialled), `unreachable`
    /// otherwise (no registry entry, ...).
    pub fn not_dialled(why: Reason) -> State {
        if why.kind == crate::dispatch::REVOKED {
            State::Refused(why)
        } else {
            State::Unreachable(why)
        }
    }

    /// An agent's refusal; `skipped` (error budget spent) is its own state.
    pub fn from_refusal(r: &Refusal) -> State {
        match r {
            Refusal::Skipped => State::Skipped,
            r => State::Refused(Reason::from_refusal(r)),
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            State::Succeeded => "succeeded",
            State::Failed { .. } => "failed",
            State::TimedOut => "timed-out",
            State::Lost(_) => "lost",
            State::Unreachable(_) => "unreachable",
            State::Refused(_) => "refused",
            State::Cancelled => "cancelled",
            State::Skipped => "skipped",
            State::Dispatched => "dispatched",
            State::Running { .. } => "running",
        }
    }

    pub fn is_success(&self) -> bool {
        *self == State::Succeeded
    }

    /// The reason behind an unreachable, refused or lost end.
    pub fn reason(&self) -> Option<&Reason> {
        match self {
            State::Lost(r) | State::Unreachable(r) | State::Refused(r) => Some(r),
            _ => None,
        }
    }

    /// The action's exit code as recorded: 0 for succeeded, the code of a
    /// failure that has one, else none.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            State::Failed { exit, .. } => *exit,
            State::Succeeded => Some(0),
            _ => None,
        }
    }

    /// The exit-status bit this state contributes.
    pub fn bit(&self) -> u8 {
        match self {
            State::Succeeded | State::Skipped | State::Dispatched | State::Running { .. } => 0,
            State::Failed { .. } | State::TimedOut | State::Cancelled => BIT_COMMAND,
            State::Lost(_) => BIT_WAIT,
            State::Unreachable(_) => BIT_MISSING,
            State::Refused(_) => BIT_AGENT,
        }
    }

    /// The state with its reason's kind instead of its per-host detail:
    /// what grouped output and the summary fold on.
    pub fn folded(&self) -> String {
        match self.reason() {
            Some(r) => format!("{}({})", self.label(), r.kind),
            None => self.to_string(),
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Failed { exit: Some(c), .. } => write!(f, "failed(exit {c})"),
            State::Failed { signal: Some(s), .. } => write!(f, "failed(signal {s})"),
            State::Failed { why: Some(w), .. } => write!(f, "failed({w})"),
            State::Lost(r) | State::Unreachable(r) | State::Refused(r) => write!(f, "{}({})", self.label(), r.detail),
            State::Running { pid: Some(p) } => write!(f, "running(pid {p})"),
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

impl TargetResult {
    pub fn new(name: impl Into<String>, state: State) -> TargetResult {
        TargetResult { name: name.into(), state, truncated: false }
    }
}

/// What a whole dispatch came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// One result per target, every target of the plan included.
    pub results: Vec<TargetResult>,
    /// Set when the dispatcher hook refused the run: nothing was sent.
    pub refused_run: Option<Reason>,
    /// Agents that answered a broadcast, with the tags they reported.
    pub answered: BTreeMap<String, Vec<String>>,
    /// Remarks from the carrier for the operator.
    pub notes: Vec<String>,
}

impl Outcome {
    /// The exit status: the OR of every target's bit; +16 when the hook
    /// refused the run; +2 when no target at all took part (a broadcast
    /// nobody answered), since a run that reached nobody is not a success.
    pub fn exit_status(&self) -> u8 {
        let mut bits = exit_status(&self.results);
        if self.refused_run.is_some() {
            bits |= BIT_AGENT;
        } else if self.results.is_empty() {
            bits |= BIT_MISSING;
        }
        bits
    }
}

/// The exit status of a set of results.
pub fn exit_status(results: &[TargetResult]) -> u8 {
    results.iter().fold(0, |acc, r| acc | r.state.bit())
}

/// `muster: N targets: a succeeded, b failed, ... in 1.23s`, then one line
/// per folded state that is not a success: `web[01-03] (3): failed(exit 3)`,
/// or, for a single host, its full detail (`web04: refused(...)`). A fold
/// of hosts whose reasons differ in detail also shows the first one's, so
/// the summary stays a few lines for any number of hosts and still says
/// what to fix.
pub fn summary(results: &[TargetResult], wall: Duration) -> String {
    const ORDER: [&str; 10] = [
        "succeeded",
        "dispatched",
        "running",
        "failed",
        "timed-out",
        "lost",
        "unreachable",
        "refused",
        "cancelled",
        "skipped",
    ];
    let counts: Vec<String> = ORDER
        .iter()
        .filter_map(|label| {
            let n = results.iter().filter(|r| r.state.label() == *label).count();
            (n > 0).then(|| format!("{n} {label}"))
        })
        .collect();
    let mut s = format!(
        "muster: {}: {} in {:.2}s\n",
        crate::words::plural(results.len(), "target"),
        if counts.is_empty() { "nothing ran".to_string() } else { counts.join(", ") },
        wall.as_secs_f64()
    );
    let mut folds: Vec<(String, Vec<&TargetResult>)> = Vec::new();
    for r in results.iter().filter(|r| !r.state.is_success() && r.state != State::Dispatched) {
        let key = r.state.folded();
        match folds.iter_mut().find(|(k, _)| *k == key) {
            Some((_, rs)) => rs.push(r),
            None => folds.push((key, vec![r])),
        }
    }
    for (state, rs) in folds {
        if let [one] = rs.as_slice() {
            s.push_str(&format!("  {}: {}\n", one.name, one.state));
            continue;
        }
        let names: Vec<&str> = rs.iter().map(|r| r.name.as_str()).collect();
        s.push_str(&format!("  {} ({}): {state}\n", super::nodeset::fold(&names), names.len()));
        if let Some(why) = rs[0].state.reason() {
            s.push_str(&format!("    e.g. {}: {}\n", rs[0].name, why.detail));
        }
    }
    if let Some(t) = results.iter().find(|r| r.truncated) {
        s.push_str(&format!("  output truncated on {} (and maybe others): raise output_cap on the agent\n", t.name));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, state: State) -> TargetResult {
        TargetResult::new(name, state)
    }

    #[test]
    fn bits_and_summary() {
        let rs = vec![
            r("a1", State::Succeeded),
            r("a2", State::Failed { exit: Some(3), signal: None, why: None }),
            r("a3", State::Unreachable(Reason::new("connection refused", "a3: connection refused"))),
            r("a4", State::Skipped),
            r("a5", State::Refused(Reason::new("busy", "busy: 4 requests already running"))),
            r("a6", State::Lost(Reason::new("went silent", "no answer for 15s"))),
        ];
        assert_eq!(exit_status(&rs), 2 + 4 + 8 + 16);
        let s = summary(&rs, Duration::from_millis(1500));
        assert!(
            s.starts_with(
                "muster: 6 targets: 1 succeeded, 1 failed, 1 lost, 1 unreachable, 1 refused, 1 skipped in 1.50s"
            ),
            "{s}"
        );
        assert!(s.contains("  a2: failed(exit 3)\n"), "{s}");
        assert!(s.contains("  a4: skipped\n"), "{s}");
        assert!(s.contains("  a5: refused(busy: 4 requests already running)\n"), "{s}");
        assert_eq!(exit_status(&rs[..1]), 0);
    }

    #[test]
    fn a_thousand_stale_names_fold_into_one_line() {
        let rs: Vec<TargetResult> = (1..=1000)
            .map(|i| {
                let n = format!("zz{i}");
                r(&n, State::Unreachable(Reason::new("no registry entry", format!("no registry entry for {n}"))))
            })
            .collect();
        let s = summary(&rs, Duration::from_secs(1));
        assert_eq!(s.lines().count(), 3, "{s}");
        assert!(
            s.contains("zz[1-1000] (1000): unreachable(no registry entry)\n    e.g. zz1: no registry entry for zz1\n"),
            "{s}"
        );
    }

    #[test]
    fn nobody_at_all_is_not_a_success() {
        assert_eq!(Outcome::default().exit_status(), BIT_MISSING);
        let refused = Outcome { refused_run: Some(Reason::new("denied", "no")), ..Default::default() };
        assert_eq!(refused.exit_status(), BIT_AGENT);
    }
}
