//! What a collector (or something posing as one) can send: bytes into an agent session.
#![no_main]
use headroom_common::session::AgentSession;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = AgentSession::new().on_bytes(data);
});
