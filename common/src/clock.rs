//! The wall clock, read in one place.
//!
//! The protocol, sizing and alarm cores take `now` as an argument; only the binaries' edges (the tick loop,
//! ingest, the HTTP handlers, the store writer) call this to get it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; 0 if the clock is before 1970.
pub fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

/// `time` as milliseconds since the Unix epoch; 0 before 1970.
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn epoch_milliseconds() {
        assert_eq!(
            unix_ms(UNIX_EPOCH + Duration::from_millis(1_750_000_000_123)),
            1_750_000_000_123
        );
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert!(now_ms() > 1_700_000_000_000);
    }
}
