//! Replay guards for hub commands, one per station: every station host
//! numbers its commands with its own clock (microseconds), so each keeps
//! its own high-water mark and window, and a second station whose clock is
//! behind is not refused for it. The set is bounded: beyond `max`
//! stations, the one with the lowest mark is forgotten and its mark becomes
//! a floor every new station must pass, so forgetting never reopens a
//! replay. Persisted as a small JSON map `{station: high}`; a bare number
//! (the older one-guard-per-channel file) is read as that floor.

use super::replay::ReplayGuard;
use std::collections::BTreeMap;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("replay marks are not valid: {0}; expected a JSON map of station to number")]
pub struct MarksError(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationGuards {
    guards: BTreeMap<String, ReplayGuard>,
    /// Numbers at or below this are refused for stations not tracked.
    floor: u64,
    window: u64,
    max: usize,
}

impl StationGuards {
    /// Empty guards with a `window` (in sequence units) and at most `max` stations.
    pub fn new(window: u64, max: usize) -> StationGuards {
        StationGuards { guards: BTreeMap::new(), floor: 0, window, max: max.max(1) }
    }

    /// Read persisted marks (see the module doc); empty text is no marks.
    pub fn parse(text: &str, window: u64, max: usize) -> Result<StationGuards, MarksError> {
        let mut g = StationGuards::new(window, max);
        let t = text.trim();
        if t.is_empty() {
            return Ok(g);
        }
        if let Ok(n) = t.parse::<u64>() {
            g.floor = n;
            return Ok(g);
        }
        let marks: BTreeMap<String, u64> = serde_json::from_str(t).map_err(|e| MarksError(e.to_string()))?;
        if let Some(floor) = marks.get("") {
            g.floor = *floor;
        }
        for (station, high) in marks.into_iter().filter(|(s, _)| !s.is_empty()) {
            g.guards.insert(station, ReplayGuard::new(high, window));
        }
        Ok(g)
    }

    /// The marks to persist: each station's high-water mark, and the floor
    /// under the empty name.
    pub fn render(&self) -> String {
        let mut marks: BTreeMap<&str, u64> = self.guards.iter().map(|(s, g)| (s.as_str(), g.high())).collect();
        if self.floor > 0 {
            marks.insert("", self.floor);
        }
        serde_json::to_string(&marks).unwrap_or_default()
    }

    /// Accept command `seq` from `station` once; false for replays, numbers
    /// older than that station's window, and (for an unknown station)
    /// numbers at or below the floor.
    pub fn accept(&mut self, station: &str, seq: u64) -> bool {
        if !self.guards.contains_key(station) {
            if seq <= self.floor {
                return false;
            }
            if self.guards.len() >= self.max {
                let lowest = self.guards.iter().min_by_key(|(_, g)| g.high()).map(|(s, g)| (s.clone(), g.high()));
                if let Some((s, high)) = lowest {
                    self.guards.remove(&s);
                    self.floor = self.floor.max(high);
                }
            }
            let mut g = ReplayGuard::new(self.floor, self.window);
            let ok = g.accept(seq);
            self.guards.insert(station.to_string(), g);
            return ok;
        }
        self.guards.get_mut(station).is_some_and(|g| g.accept(seq))
    }

    pub fn stations(&self) -> usize {
        self.guards.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000;

    #[test]
    fn a_station_a_second_behind_is_not_refused() {
        let mut g = StationGuards::new(SECOND, 16);
        let now = 1_700_000_000 * SECOND;
        assert!(g.accept("st1", now));
        assert!(g.accept("st2", now - SECOND - 5), "another station's clock is behind");
        assert!(!g.accept("st2", now - SECOND - 5), "but its own replay is refused");
        assert!(!g.accept("st1", now), "replay");
        assert!(g.accept("st1", now - 10), "late within its own window");
        assert!(!g.accept("st1", now - SECOND - 1), "older than its own window");
    }

    #[test]
    fn marks_survive_a_restart_and_the_legacy_file_is_a_floor() {
        let mut g = StationGuards::new(SECOND, 16);
        assert!(g.accept("st1", 5 * SECOND));
        assert!(g.accept("st2", 9 * SECOND));
        let again = StationGuards::parse(&g.render(), SECOND, 16).unwrap();
        let mut again2 = again.clone();
        assert!(!again2.accept("st1", 5 * SECOND));
        assert!(!again2.accept("st1", 5 * SECOND - 1), "below the persisted mark");
        assert!(again2.accept("st1", 5 * SECOND + 1));
        let mut legacy = StationGuards::parse("12345\n", SECOND, 16).unwrap();
        assert!(!legacy.accept("any", 12345));
        assert!(legacy.accept("any", 12346));
        assert!(StationGuards::parse("{not json", SECOND, 16).is_err());
        assert!(StationGuards::parse("", SECOND, 16).unwrap().stations() == 0);
    }

    #[test]
    fn forgetting_a_station_never_reopens_its_replays() {
        let mut g = StationGuards::new(10, 2);
        assert!(g.accept("a", 100));
        assert!(g.accept("b", 200));
        assert!(g.accept("c", 300), "a is forgotten, its mark becomes the floor");
        assert_eq!(g.stations(), 2);
        assert!(!g.accept("a", 100), "a's old command is still refused");
        assert!(!g.accept("d", 50));
        assert!(!g.accept("a", 101), "b is forgotten now, its mark 200 is the floor");
        assert!(g.accept("a", 301));
    }

    #[test]
    fn near_max_numbers_do_not_overflow() {
        let mut g = StationGuards::new(SECOND, 4);
        assert!(g.accept("s", u64::MAX - 1));
        assert!(g.accept("s", u64::MAX));
        assert!(!g.accept("s", u64::MAX));
        assert!(!g.accept("s", 3));
    }
}
