//! dispatcher.toml: parsed or refused with a location, never a panic; the
//! durations of a loaded config can be added to a clock.
#![no_main]
use libfuzzer_sys::fuzz_target;
use muster::dispatch::DispatcherConfig;
use std::path::Path;
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match DispatcherConfig::parse(text, Path::new("/st/dispatcher.toml")) {
        Ok(c) => {
            let now = Instant::now();
            let _ = now + c.connect_limit();
            let _ = now + c.hook_limit();
            assert!(c.fanout >= 1);
            assert!(c.hook.as_deref().is_none_or(Path::is_absolute));
            if !c.hub.redis.url.is_empty() {
                let _ = c.hub.redis.client();
            }
        }
        Err(e) => assert!(e.to_string().starts_with("dispatcher config /st/dispatcher.toml")),
    }
});
