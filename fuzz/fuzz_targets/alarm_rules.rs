//! The alarm rules file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = headroom_collector::analytics::alarms::parse(text, "alarms.toml");
    }
});
