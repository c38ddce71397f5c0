//! Bytes from a Redis server (the ns8 event subscription): `parse` answers
//! a reply, "incomplete" or an error, never a panic, and never allocates
//! for a length it was only told about. A complete reply parses the same
//! from exactly its own bytes, and a prefix of it is only ever incomplete
//! (what the incremental reader relies on when bytes trickle in).
#![no_main]
use libfuzzer_sys::fuzz_target;
use muster::ns8::resp::{parse, Parsed};

fuzz_target!(|data: &[u8]| {
    let Ok(Parsed::Complete { reply, used }) = parse(data) else { return };
    assert!(used > 0 && used <= data.len());
    let whole = &data[..used];
    assert_eq!(parse(whole), Ok(Parsed::Complete { reply, used }));
    let mut cuts = vec![0, 1, used / 3, used / 2, used - 1];
    cuts.extend((1..8).map(|i| used * i / 8));
    for cut in cuts.into_iter().filter(|c| *c < used) {
        assert_eq!(parse(&whole[..cut]), Ok(Parsed::Incomplete), "prefix of {cut} bytes");
    }
});
