//! Progress of a live dispatch on a terminal (indicatif): one status line
//! at the bottom of the screen, `3/10 done (1 failed) · 2 running · 5
//! pending · 1s · ETA 2s`, redrawn in place while output lines scroll
//! above it, and one end line per target on stderr (`web03: succeeded in
//! 0.4s`, `web04: failed(exit 3) in 1.2s`), so a target that prints
//! nothing is still seen to end. States are coloured unless `NO_COLOR` is
//! set. Only used when stdout and stderr are terminals and `--quiet` is
//! not given ([`wanted`]); output to a pipe or a file never changes.

use super::outcome::State;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Whether a live dispatch should show progress: stdout and stderr are
/// both terminals and the operator did not ask for quiet.
pub fn wanted(quiet: bool) -> bool {
    !quiet && std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

/// The status line and the per-target end lines of one dispatch of
/// `total` targets.
pub struct Progress {
    bar: ProgressBar,
    total: usize,
    /// When each running target started (its `started` event).
    running: HashMap<String, Instant>,
    ended: usize,
    failed: usize,
    colour: bool,
}

impl Progress {
    /// A status line on stderr for `total` targets, drawn at once and
    /// then every 200 ms (so the elapsed time moves while nothing
    /// happens).
    pub fn new(total: usize) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{bar:20.cyan/blue} {pos}/{len} done{msg} · {elapsed} · ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        let p = Progress {
            bar,
            total,
            running: HashMap::new(),
            ended: 0,
            failed: 0,
            colour: console::colors_enabled_stderr(),
        };
        p.redraw();
        p.bar.enable_steady_tick(Duration::from_millis(200));
        p
    }

    /// Run `f` (which prints) with the status line cleared, then redraw it.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// A target's action started.
    pub fn started(&mut self, target: &str) {
        self.running.insert(target.to_string(), Instant::now());
        self.redraw();
    }

    /// A target ended in `state`: count it and return its end line,
    /// `NAME: STATE[ in 1.2s]` (the time since it started, when it did).
    pub fn ended(&mut self, target: &str, state: &State) -> String {
        let took = self.running.remove(target).map(|t0| t0.elapsed());
        self.ended += 1;
        if !state.is_success() {
            self.failed += 1;
        }
        self.redraw();
        let mut shown = state.to_string();
        if self.colour {
            let s = console::Style::new().for_stderr();
            let s = match state {
                State::Succeeded => s.green(),
                State::Failed { .. } | State::TimedOut | State::Lost(_) => s.red(),
                _ => s.yellow(),
            };
            shown = s.apply_to(shown).to_string();
        }
        match took {
            Some(d) => format!("{target}: {shown} in {}", seconds(d)),
            None => format!("{target}: {shown}"),
        }
    }

    /// Clear the status line for good (before the summary is printed).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn redraw(&self) {
        let running = self.running.len();
        let pending = self.total.saturating_sub(self.ended + running);
        let failed = match (self.failed, self.colour) {
            (0, _) => String::new(),
            (n, true) => format!(" ({})", console::style(format!("{n} failed")).red().for_stderr()),
            (n, false) => format!(" ({n} failed)"),
        };
        if self.ended + running > self.total {
            // A hub run learns of agents as they answer.
            self.bar.set_length((self.ended + running) as u64);
        }
        self.bar.set_position(self.ended as u64);
        self.bar.set_message(format!("{failed} · {running} running · {pending} pending"));
    }
}

/// A duration for an end line: `0.4s` under a minute, else `2m05s`.
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn end_line_durations_read_well() {
        use std::time::Duration;
        assert_eq!(super::seconds(Duration::from_millis(430)), "0.4s");
        assert_eq!(super::seconds(Duration::from_secs(125)), "2m05s");
    }
}
