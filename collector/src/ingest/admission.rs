//! Admission decisions at the network edge, as plain data: a per-source-address rate limit for new
//! connections, and each connection's share of the store writer. Time comes in as an argument, so the rules
//! are tested without sockets or clocks.

use std::collections::HashMap;
use std::net::IpAddr;

/// A token bucket per source address: each new connection costs one token; tokens refill at `per_s` up to
/// `burst`. Addresses idle long enough to have a full bucket are forgotten, and at most `max_sources` are
/// remembered, so a flood from many addresses cannot grow the table without bound.
#[derive(Debug)]
pub struct SourceRate {
    burst: f64,
    per_s: f64,
    max_sources: usize,
    buckets: HashMap<IpAddr, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

impl SourceRate {
    pub fn new(burst: u32, per_s: f64, max_sources: usize) -> SourceRate {
        SourceRate {
            burst: f64::from(burst.max(1)),
            per_s: per_s.max(f64::MIN_POSITIVE),
            max_sources: max_sources.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Whether a new connection from `source` at `now_ms` is admitted (and, if so, takes its token).
    pub fn admit(&mut self, source: IpAddr, now_ms: u64) -> bool {
        if !self.buckets.contains_key(&source) && self.buckets.len() >= self.max_sources {
            self.forget_full(now_ms);
            if self.buckets.len() >= self.max_sources {
                // Every remembered address is still busy: a newcomer waits rather than evicting one.
                return false;
            }
        }
        let (burst, per_s) = (self.burst, self.per_s);
        let bucket = self.buckets.entry(source).or_insert(Bucket {
            tokens: burst,
            at_ms: now_ms,
        });
        let elapsed_s = now_ms.saturating_sub(bucket.at_ms) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed_s * per_s).min(burst);
        bucket.at_ms = bucket.at_ms.max(now_ms);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Addresses currently remembered.
    pub fn sources(&self) -> usize {
        self.buckets.len()
    }

    /// Drops the addresses whose bucket has refilled: they are indistinguishable from new ones.
    pub fn forget_full(&mut self, now_ms: u64) {
        let (burst, per_s) = (self.burst, self.per_s);
        self.buckets.retain(|_, bucket| {
            let elapsed_s = now_ms.saturating_sub(bucket.at_ms) as f64 / 1000.0;
            bucket.tokens + elapsed_s * per_s < burst
        });
    }
}

/// One connection's share of the store writer: samples no older than the catch-up age are charged here, at
/// twice the rate the agent's interval implies, with a burst for a reconnect; what an agent sends beyond
/// that is not refused but waited for (the task stops reading, and QUIC flow control holds the agent back).
/// Backlog samples have their own, higher pace (the catch-up budget) in ingest.
#[derive(Debug, Clone)]
pub struct StoreShare {
    per_ms: f64,
    burst: f64,
    tokens: f64,
    at_ms: u64,
}

impl StoreShare {
    /// Samples of burst beyond the rate.
    pub const BURST: u32 = 32;
    /// Headroom over the interval's rate (jitter, a sample resent after a reconnect).
    pub const RATE_FACTOR: f64 = 2.0;

    pub fn new(interval_ms: u32, now_ms: u64) -> StoreShare {
        let interval_ms = f64::from(interval_ms.max(1));
        StoreShare {
            per_ms: Self::RATE_FACTOR / interval_ms,
            burst: f64::from(Self::BURST),
            tokens: f64::from(Self::BURST),
            at_ms: now_ms,
        }
    }

    /// Charges `samples` at `now_ms`; returns how long to wait before reading more (0 when within share).
    pub fn charge(&mut self, samples: u64, now_ms: u64) -> u64 {
        let elapsed_ms = now_ms.saturating_sub(self.at_ms) as f64;
        self.at_ms = self.at_ms.max(now_ms);
        self.tokens = (self.tokens + elapsed_ms * self.per_ms).min(self.burst) - samples as f64;
        if self.tokens >= 0.0 {
            0
        } else {
            (-self.tokens / self.per_ms).ceil() as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 11: an agent at its own rate never waits; one sending 100 times its rate is held to twice it.
    #[test]
    fn issue_11_an_agent_gets_its_interval_share_of_the_store() {
        let mut honest = StoreShare::new(1_000, 0);
        for second in 1..=600 {
            assert_eq!(honest.charge(1, second * 1_000), 0);
        }
        let mut flooding = StoreShare::new(1_000, 0);
        let mut now_ms = 0;
        let mut stored = 0;
        // 100 samples a second, each read waiting as told.
        while now_ms < 60_000 {
            let wait_ms = flooding.charge(100, now_ms);
            stored += 100;
            now_ms += 1_000.max(wait_ms);
        }
        let rate = stored as f64 / (now_ms as f64 / 1_000.0);
        assert!(
            rate <= 2.0 * 1.1 + f64::from(StoreShare::BURST) / 60.0,
            "{rate} samples/s"
        );
        assert!(rate >= 1.5, "{rate} samples/s");
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let mut limit = SourceRate::new(3, 2.0, 100);
        assert!((0..3).all(|_| limit.admit(ip(1), 0)));
        assert!(!limit.admit(ip(1), 0));
        // Other sources are not affected.
        assert!(limit.admit(ip(2), 0));
        // 2 per second: one token after 500 ms.
        assert!(!limit.admit(ip(1), 400));
        assert!(limit.admit(ip(1), 500));
        assert!(!limit.admit(ip(1), 600));
        // The bucket never holds more than the burst.
        assert!((0..3).all(|_| limit.admit(ip(1), 100_000)));
        assert!(!limit.admit(ip(1), 100_000));
    }

    #[test]
    fn the_table_is_bounded_and_forgets_idle_sources() {
        let mut limit = SourceRate::new(2, 1.0, 2);
        assert!(limit.admit(ip(1), 0));
        assert!(limit.admit(ip(2), 0));
        assert!(!limit.admit(ip(3), 0), "table full of busy sources");
        assert_eq!(limit.sources(), 2);
        // After a second both buckets are full again and their addresses are forgotten.
        assert!(limit.admit(ip(3), 1_000));
        assert_eq!(limit.sources(), 1);
    }
}
