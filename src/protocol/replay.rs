//! Replay and reorder protection for hub commands: a station's sequence
//! numbers must rise. The guard keeps the high-water mark and a bounded
//! window of recently accepted numbers below it, so a command delayed by
//! Redis within the window is still accepted once, while a re-published or
//! older one is refused. The caller persists `high()` across restarts.

use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayGuard {
    high: u64,
    /// Numbers at or below this are refused: what was seen before a
    /// restart is unknown, so nothing up to the persisted mark is accepted.
    floor: u64,
    window: u64,
    seen: BTreeSet<u64>,
}

impl ReplayGuard {
    /// Start from a persisted high-water mark (0 for a new station).
    pub fn new(high: u64, window: u64) -> Self {
        ReplayGuard { high, floor: high, window, seen: BTreeSet::new() }
    }

    pub fn high(&self) -> u64 {
        self.high
    }

    /// Accept `seq` once; false for replays, zero, and numbers older than
    /// the window.
    pub fn accept(&mut self, seq: u64) -> bool {
        if seq <= self.floor {
            return false;
        }
        if seq > self.high {
            self.seen.insert(self.high);
            self.high = seq;
        } else if seq.saturating_add(self.window) <= self.high || seq == self.high || !self.seen.insert(seq) {
            return false;
        }
        let floor = self.high.saturating_sub(self.window);
        self.seen = self.seen.split_off(&floor);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_and_old_numbers_are_refused() {
        let mut g = ReplayGuard::new(0, 4);
        assert!(g.accept(1));
        assert!(!g.accept(1), "replay");
        assert!(g.accept(5));
        assert!(g.accept(3), "late but inside the window");
        assert!(!g.accept(3), "replay of the late one");
        assert!(!g.accept(1), "outside the window");
        assert!(!g.accept(0));
        let mut restarted = ReplayGuard::new(g.high(), 4);
        assert!(!restarted.accept(5), "high-water mark survives a restart");
        assert!(!restarted.accept(4), "below the persisted mark: unknown, refused");
        assert!(restarted.accept(6));
    }
}
