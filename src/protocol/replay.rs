//! Replay and reorder protection for hub commands: a station's sequence
//! numbers must rise. The guard keeps the high-water mark and a bounded
//! window of recently accepted numbers below it, so a command delayed by
//! Redis within the window is still accepted once, while a re-published or
//! older one is refused. The caller persists `high()` across restarts.
//! No arithmetic can overflow: a signed station may send any `u64`,
//! including numbers next to `u64::MAX` (distances are taken as `high -
//! seq` with `seq <= high`, the floor of the window saturates at 0), and a
//! window of any size is accepted.

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
    /// Start from a persisted high-water mark (0 for a new station);
    /// numbers up to `window` below the newest are still accepted once.
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
        } else if self.high - seq >= self.window || seq == self.high || !self.seen.insert(seq) {
            // (`seq <= high` here, so the difference cannot overflow.)
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

    #[test]
    fn numbers_next_to_the_maximum_never_overflow() {
        let mut g = ReplayGuard::new(0, 1_000_000);
        assert!(g.accept(u64::MAX - 5));
        assert!(g.accept(u64::MAX - 7), "late, inside the window");
        assert!(!g.accept(u64::MAX - 7), "replay");
        assert!(g.accept(u64::MAX));
        assert!(!g.accept(u64::MAX), "replay of the largest number");
        assert!(g.accept(u64::MAX - 1));
        assert!(!g.accept(1), "far below the window");
        let mut g = ReplayGuard::new(u64::MAX - 1, u64::MAX);
        assert!(!g.accept(u64::MAX - 1), "at the persisted mark");
        assert!(g.accept(u64::MAX));
        let mut g = ReplayGuard::new(5, u64::MAX);
        assert!(g.accept(u64::MAX));
        assert!(g.accept(6), "a window of u64::MAX keeps everything above the floor");
        assert!(!g.accept(6));
        let mut g = ReplayGuard::new(0, 0);
        assert!(g.accept(10));
        assert!(!g.accept(9), "a zero window accepts only rising numbers");
    }

    proptest::proptest! {
        #[test]
        fn matches_a_plain_model(start in 0u64..50, window in 0u64..40, seqs in proptest::collection::vec(0u64..120, 0..60), near_max in proptest::bool::ANY) {
            let shift = if near_max { u64::MAX - 130 } else { 0 };
            let mut g = ReplayGuard::new(start + shift, window);
            let (floor, mut high) = (start + shift, start + shift);
            let mut accepted = std::collections::BTreeSet::new();
            for s in seqs {
                let s = s + shift;
                let want = s > floor && !accepted.contains(&s) && (s > high || high - s < window);
                proptest::prop_assert_eq!(g.accept(s), want, "seq {}", s);
                if want {
                    accepted.insert(s);
                    high = high.max(s);
                }
            }
        }
    }
}
