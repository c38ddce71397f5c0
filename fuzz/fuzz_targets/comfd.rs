//! Lines a step writes to AGENT_COMFD: parsed or reported, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use muster::ns8::comfd::Parser;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut p = Parser::default();
    for line in text.split_inclusive('\n') {
        let _ = p.feed(line);
    }
    let _ = p.finish();
});
