//! Node-set expressions: expansion never panics, and folding what it
//! expanded gives back the same set of names (when the folded form is
//! itself short enough to be a spec: folds are for display and may be
//! longer than `MAX_SPEC_LEN`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use muster::dispatch::nodeset::{expand, fold, MAX_SPEC_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(names) = expand(text) {
        let folded = fold(&names);
        if folded.len() <= MAX_SPEC_LEN
            && names.iter().all(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            let mut again = expand(&folded).expect("a folded set expands");
            let mut names = names;
            names.sort();
            again.sort();
            assert_eq!(names, again);
        }
    }
});
