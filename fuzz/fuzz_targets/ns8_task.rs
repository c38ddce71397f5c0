//! Anything popped from an ns8 task list is decoded or rejected, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = muster::ns8::task::decode(text);
    }
});
