//! The trusted-dispatcher map and revoked serials (text before the first
//! NUL is the map, the rest the revoked list): parsed or refused with a
//! line, never a panic; every serial a loaded map holds is found by check.
#![no_main]
use libfuzzer_sys::fuzz_target;
use muster::agent::trust::{parse_serial, Trust};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (map, revoked) = text.split_once('\0').unwrap_or((text, ""));
    for word in text.split_whitespace() {
        let _ = parse_serial(word);
    }
    if let Ok(t) = Trust::parse(map, revoked) {
        for line in map.lines() {
            let mut parts = line.split('#').next().unwrap_or("").split_whitespace();
            if let (Some(serial), Some(id)) = (parts.next(), parts.next()) {
                let canonical = parse_serial(serial).expect("a loaded serial parses");
                match t.check(&canonical) {
                    Ok(found) => assert_eq!(found, id),
                    Err(why) => assert!(why.contains("revoked"), "{why}"),
                }
            }
        }
        let _ = t.check("1000");
    }
});
