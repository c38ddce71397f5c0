//! scripts.conf text: parsed or refused with a line, never a panic; every
//! entry it yields has a valid, unique, non-builtin name and an absolute path.
#![no_main]
use libfuzzer_sys::fuzz_target;
use muster::exec::{parse_allowlist, BUILTINS};
use muster::protocol::check_action_name;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_allowlist(text, "scripts.conf") {
        Ok(entries) => {
            let mut names = std::collections::HashSet::new();
            for e in entries {
                assert!(check_action_name(&e.name).is_ok() && !BUILTINS.contains(&e.name.as_str()));
                assert!(e.path.is_absolute());
                assert!(names.insert(e.name));
            }
        }
        Err(e) => assert!(e.to_string().starts_with("scripts.conf:")),
    }
});
