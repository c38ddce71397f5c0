//! The hub replay guard against a plain model, with numbers from the whole
//! u64 range (start, window, then sequence numbers, 8 bytes each): no
//! overflow, no replay accepted, nothing at or below the floor accepted.
#![no_main]
use libfuzzer_sys::fuzz_target;
use muster::protocol::replay::ReplayGuard;
use std::collections::BTreeSet;

fuzz_target!(|data: &[u8]| {
    let mut words = data.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")));
    let (Some(start), Some(window)) = (words.next(), words.next()) else { return };
    let window = window >> (window % 64);
    let mut g = ReplayGuard::new(start, window);
    let mut high = start;
    let mut accepted = BTreeSet::new();
    for seq in words {
        let want = seq > start && !accepted.contains(&seq) && (seq > high || high - seq < window);
        assert_eq!(g.accept(seq), want, "seq {seq} high {high} window {window}");
        if want {
            accepted.insert(seq);
            high = high.max(seq);
        }
        assert_eq!(g.high(), high);
    }
});
