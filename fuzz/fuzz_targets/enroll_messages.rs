//! Enrollment and renewal messages, both directions.
#![no_main]
use headroom_common::enroll::{EnrollMessage, EnrollReply};
use headroom_common::wire::decode_payload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_payload::<EnrollMessage>(data, "enroll message");
    let _ = decode_payload::<EnrollReply>(data, "enroll reply");
});
