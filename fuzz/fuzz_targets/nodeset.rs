//! Node-set expressions. Expansion runs within a small budget (a few
//! thousand names) so the fuzzer spends its time on syntax rather than on
//! writing out 100,000 names: whatever the small budget accepts, the real
//! `expand` gives the same names; whatever it refuses for a reason other
//! than size, `expand` refuses the same way. Folding what was expanded
//! gives back the same set of names (when the fold fits in a spec).
#![no_main]
use libfuzzer_sys::fuzz_target;
use muster::dispatch::nodeset::{expand, expand_within, fold, Bounds, NodeSetError, MAX_SPEC_LEN};

const SMALL: Bounds = Bounds { max_names: 4096, max_spec_len: 4096, max_name_bytes: 256 * 1024 };

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let names = match expand_within(text, SMALL) {
        Ok(names) => names,
        Err(NodeSetError::TooMany { .. } | NodeSetError::TooBig { .. } | NodeSetError::TooLong { .. }) => return,
        Err(e) => {
            assert_eq!(expand(text), Err(e));
            return;
        }
    };
    assert_eq!(expand(text).as_ref(), Ok(&names));
    let folded = fold(&names);
    // A fold is for display and may be longer than a spec may be.
    if folded.len() <= MAX_SPEC_LEN && names.iter().all(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')) {
        let mut again = expand(&folded).expect("a folded set expands");
        let mut names = names;
        names.sort();
        again.sort();
        assert_eq!(names, again);
    }
});
