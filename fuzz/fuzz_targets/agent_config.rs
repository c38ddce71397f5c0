//! agent.toml: parsed or refused with a location, never a panic; every
//! value derived from a loaded config (durations added to a clock, paths,
//! the hub's Redis client) is usable without a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use muster::agent::AgentConfig;
use std::path::Path;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(c) = AgentConfig::parse(text, Path::new("/etc/muster")) else { return };
    let now = Instant::now();
    for secs in [c.default_timeout, c.max_timeout, c.hook_timeout, c.handshake_timeout, c.idle_timeout] {
        let _ = now + Duration::from_secs(secs);
    }
    let _ = now + c.grace();
    assert!(c.state_dir.is_absolute());
    assert!(c.allowlist.as_deref().is_some_and(Path::is_absolute));
    assert!(c.run_dirs.iter().chain(&c.action_roots).all(|p| p.is_absolute()));
    if let Some(h) = &c.hub {
        assert!(h.station_key.is_absolute() && h.network_key.is_absolute());
        let _ = h.redis.client();
    }
});
