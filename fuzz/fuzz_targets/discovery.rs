//! discovery.toml: parsed or refused with a location, never a panic; what
//! loads is written back and reads the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use muster::hub::discovery::Discovery;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("/st/hub/discovery.toml");
    if let Ok(d) = Discovery::parse(text, path) {
        let _ = d.expected("prod", &["web".to_string()], &[]);
        let written = d.to_text().expect("a loaded record serializes");
        assert_eq!(Discovery::parse(&written, path).expect("what we write reads back"), d);
    }
});
