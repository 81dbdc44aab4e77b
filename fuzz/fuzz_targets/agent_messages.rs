//! What an agent can send: bytes into a collector session, before and after a valid hello.
#![no_main]
use headroom_common::session::{AgentSession, CollectorSession};
use headroom_common::wire::{Hello, PROTOCOL_VERSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = CollectorSession::new("web-1".into()).on_bytes(data);
    let hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        agent_version: "0.1.0".into(),
        instance_id: 1,
        interval_ms: 1000,
        labels: Default::default(),
        capacity: Default::default(),
        facts: Default::default(),
    };
    let mut session = CollectorSession::new("web-1".into());
    if let Ok(frame) = AgentSession::new().hello_frame(&hello) {
        let _ = session.on_bytes(&frame);
        let _ = session.welcome_frame(Some(1));
        let _ = session.on_bytes(data);
    }
});
