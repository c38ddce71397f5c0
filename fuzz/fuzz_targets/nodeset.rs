//! Node-set expressions: expansion never panics, and folding what it
//! expanded gives back the same set of names.
#![no_main]
use libfuzzer_sys::fuzz_target;
use muster::dispatch::nodeset::{expand, fold};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(names) = expand(text) {
        if names.iter().all(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')) {
            let mut again = expand(&fold(&names)).expect("a folded set expands");
            let mut names = names;
            names.sort();
            again.sort();
            assert_eq!(names, again);
        }
    }
});
