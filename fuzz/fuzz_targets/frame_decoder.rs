//! The frame decoder fed a stream cut at arbitrary points, each whole payload decoded as every message type.
#![no_main]
use headroom_common::enroll::{EnrollMessage, EnrollReply};
use headroom_common::wire::{decode_payload, AgentMessage, CollectorMessage, FrameDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses where the stream is cut, so frames split across reads are covered.
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let mut decoder = FrameDecoder::new(64 << 10);
    for chunk in stream.chunks(usize::from(cut).max(1)) {
        decoder.push(chunk);
        loop {
            match decoder.next_frame() {
                Ok(Some(payload)) => {
                    assert!(payload.len() <= 64 << 10);
                    let _ = decode_payload::<AgentMessage>(&payload, "agent message");
                    let _ = decode_payload::<CollectorMessage>(&payload, "collector message");
                    let _ = decode_payload::<EnrollMessage>(&payload, "enroll message");
                    let _ = decode_payload::<EnrollReply>(&payload, "enroll reply");
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
