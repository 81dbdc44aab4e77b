//! One datagram of an INET_DIAG dump reply.
#![no_main]
use headroom_agent::sampler::netlink::parse_datagram;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut sockets = 0usize;
    let _ = parse_datagram(data, 1, &mut |_| sockets += 1);
});
