//! The ns8 `./environment` file: every line with `=` becomes a pair, split
//! at the first `=`, never a panic; what reaches a child has no NUL.
#![no_main]
use libfuzzer_sys::fuzz_target;
use muster::ns8::envfile::{for_child, parse};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pairs = parse(&text);
    for (k, v) in &pairs {
        assert!(!k.contains('=') && !k.contains('\n') && !v.contains('\n'));
    }
    for (k, v) in for_child(&pairs) {
        assert!(!k.is_empty() && !k.contains('\0') && !v.contains('\0'));
    }
});
