//! One datagram of an INET_DIAG dump reply, or of replies to single-socket lookups.
#![no_main]
use headroom_agent::sampler::netlink::{parse_datagram, parse_lookup_replies, LookupProgress};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut sockets = 0usize;
    let _ = parse_datagram(data, 1, &mut |_| sockets += 1);
    let mut progress = LookupProgress::default();
    let _ = parse_lookup_replies(data, 1, 4, &mut progress, &mut |_| sockets += 1);
});
