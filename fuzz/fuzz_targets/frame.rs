//! Arbitrary bytes into the frame decoder, pushed in two pieces: it must
//! never panic, and any message it yields must re-encode.
#![no_main]
use libfuzzer_sys::fuzz_target;
use muster::protocol::{encode, FrameDecoder};

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map(|b| *b as usize % (data.len() + 1)).unwrap_or(0);
    let mut d = FrameDecoder::new(64 * 1024);
    d.push(&data[..cut]);
    d.push(&data[cut..]);
    while let Ok(Some(m)) = d.next_message() {
        let _ = encode(&m, 1 << 20).expect("a decoded message re-encodes");
    }
});
