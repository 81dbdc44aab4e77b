//! A damaged spool segment scanned record by record, as `Spool::open` and the reader do.
#![no_main]
use headroom_agent::spool::record::{find_next_record, parse_record, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut offset = 0;
    while offset < data.len() {
        match parse_record(&data[offset..]) {
            Parsed::Record { len_bytes, .. } => {
                assert!(len_bytes > 0);
                offset += len_bytes;
            }
            _ => match find_next_record(data, offset + 1, None) {
                Some(next) => {
                    assert!(next > offset, "a scan must move forward");
                    offset = next;
                }
                None => break,
            },
        }
    }
});
