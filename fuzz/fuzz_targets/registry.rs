//! Registry entry JSON: parsed and checked or refused with the file, never
//! a panic; an accepted entry names itself as stored and dials HOST:PORT.
#![no_main]
use libfuzzer_sys::fuzz_target;
use muster::dispatch::registry::parse;

fuzz_target!(|data: &[u8]| {
    match parse(data, "agents/w1.json", "w1") {
        Ok(e) => {
            assert_eq!(e.name, "w1");
            let (_, port) = e.addr.rsplit_once(':').expect("HOST:PORT");
            assert!(port.parse::<u16>().is_ok());
        }
        Err(e) => assert!(e.to_string().starts_with("registry entry agents/w1.json")),
    }
});
