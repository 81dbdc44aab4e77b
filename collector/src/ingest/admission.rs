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

/// One host's share of the store writer, as a token bucket over every sample it sends: tokens accrue at twice
/// the rate the agent's interval implies, whether it is connected or not, up to a day's worth (the catch-up
/// budget), and each sample stored takes one. An agent that sends more than it has earned is not refused, and
/// nothing of it is acknowledged unstored: its samples wait before they are stored, the stream is not read
/// meanwhile, and QUIC flow control holds the agent back.
///
/// So an honest agent is never held back: at its own rate it spends half of what it earns; back from an
/// outage, it has earned twice the samples it could have taken meanwhile (a burst covers the last 10 s it
/// sends at once). A flood of samples stamped with any time, fresh or old, gets twice the interval's rate.
#[derive(Debug, Clone)]
pub struct StoreShare {
    interval_ms: u32,
    per_ms: f64,
    cap: f64,
    tokens: f64,
    at_ms: u64,
}

impl StoreShare {
    /// Samples of burst beyond a catch-up window's worth (jitter, a batch resent after a reconnect).
    pub const BURST: u32 = 32;
    /// Headroom over the interval's rate (jitter, a sample resent after a reconnect, catching up).
    pub const RATE_FACTOR: f64 = 2.0;
    /// The longest absence whose samples are stored at full catch-up speed; longer backlogs drain at twice
    /// the interval's rate after that.
    pub const CATCH_UP_BUDGET_MS: u64 = 24 * 3_600_000;

    /// A share for a host first seen at `now_ms`, `away_ms` after the collector last stored anything of it
    /// (0 for a host never stored); `window_ms` is the catch-up age (samples an agent sends at once after
    /// reconnecting).
    pub fn new(interval_ms: u32, window_ms: u64, away_ms: u64, now_ms: u64) -> StoreShare {
        let mut share = StoreShare {
            interval_ms,
            per_ms: 0.0,
            cap: 0.0,
            tokens: 0.0,
            at_ms: now_ms,
        };
        share.set_interval(interval_ms);
        let burst = share.per_ms * window_ms as f64 + f64::from(Self::BURST);
        share.tokens = (burst + share.per_ms * away_ms as f64).min(share.cap);
        share
    }

    /// The rate and budget for an interval; the tokens held (or owed) stay, up to the new budget.
    fn set_interval(&mut self, interval_ms: u32) {
        self.interval_ms = interval_ms;
        self.per_ms = Self::RATE_FACTOR / f64::from(interval_ms.max(1));
        self.cap = self.per_ms * Self::CATCH_UP_BUDGET_MS as f64 + f64::from(Self::BURST);
        self.tokens = self.tokens.min(self.cap);
    }

    /// Charges `samples` at `now_ms`; returns how long to wait before storing them (0 when within share).
    pub fn charge(&mut self, samples: u64, now_ms: u64) -> u64 {
        self.refill(now_ms);
        self.tokens -= samples as f64;
        if self.tokens >= 0.0 {
            0
        } else {
            (-self.tokens / self.per_ms).ceil() as u64
        }
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed_ms = now_ms.saturating_sub(self.at_ms) as f64;
        self.at_ms = self.at_ms.max(now_ms);
        self.tokens = (self.tokens + elapsed_ms * self.per_ms).min(self.cap);
    }

    /// Whether the bucket is full at `now_ms`: a share made anew from the host's absence would be the same.
    fn is_full(&self, now_ms: u64) -> bool {
        let elapsed_ms = now_ms.saturating_sub(self.at_ms) as f64;
        self.tokens + elapsed_ms * self.per_ms >= self.cap
    }
}

/// Every host's share, kept across its connections: an agent that reconnects (it gives up waiting for an
/// acknowledgement after a few seconds of being held back) finds its bucket as it left it, not a fresh one.
/// Hosts with a full bucket are forgotten when the table is tidied, so it holds only hosts sending lately.
#[derive(Debug, Default)]
pub struct StoreShares {
    shares: HashMap<String, StoreShare>,
    /// The table is tidied when it grows past this; then it is set to twice what was left (at least
    /// `TIDY_ABOVE`), so tidying costs a constant amount per charge however large the fleet.
    tidy_at: usize,
}

impl StoreShares {
    /// Hosts remembered past which full buckets are dropped.
    const TIDY_ABOVE: usize = 4096;

    /// Charges `samples` of `host` (sampling every `interval_ms`) at `now_ms`; returns how long they wait
    /// before they are stored. `away_ms` (how long since the collector last stored anything of the host) and
    /// `window_ms` (the catch-up age) matter only for a host not in the table.
    pub fn charge(
        &mut self,
        host: &str,
        interval_ms: u32,
        (window_ms, away_ms): (u64, u64),
        samples: u64,
        now_ms: u64,
    ) -> u64 {
        if self.shares.len() > self.tidy_at.max(Self::TIDY_ABOVE) {
            self.tidy(now_ms);
        }
        // One lookup for a known host (every batch), and no copy of its name.
        if let Some(share) = self.shares.get_mut(host) {
            // A new hello may change the interval: the rate follows it, the tokens (or the debt) stay.
            if share.interval_ms != interval_ms {
                share.refill(now_ms);
                share.set_interval(interval_ms);
            }
            return share.charge(samples, now_ms);
        }
        let mut share = StoreShare::new(interval_ms, window_ms, away_ms, now_ms);
        let wait = share.charge(samples, now_ms);
        self.shares.insert(host.to_string(), share);
        wait
    }

    /// Forgets the hosts whose bucket is full: they are indistinguishable from new ones.
    fn tidy(&mut self, now_ms: u64) {
        self.shares.retain(|_, share| !share.is_full(now_ms));
        self.tidy_at = 2 * self.shares.len();
    }

    /// Hosts remembered.
    pub fn len(&self) -> usize {
        self.shares.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shares.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW_MS: u64 = 10_000;

    /// Issue 11: an agent at its own rate never waits; one sending 100 times its rate is held to twice it,
    /// whatever times its samples carry.
    #[test]
    fn issue_11_an_agent_gets_its_interval_share_of_the_store() {
        let mut honest = StoreShare::new(1_000, WINDOW_MS, 0, 0);
        for second in 1..=600 {
            assert_eq!(honest.charge(1, second * 1_000), 0);
        }
        let mut flooding = StoreShare::new(1_000, WINDOW_MS, 0, 0);
        let mut now_ms = 0;
        let mut stored = 0;
        // 100 samples a second, each batch stored after the wait it is told.
        while now_ms < 600_000 {
            let wait_ms = flooding.charge(100, now_ms);
            now_ms += wait_ms;
            stored += 100;
            now_ms += 1_000;
        }
        let rate = stored as f64 / (now_ms as f64 / 1_000.0);
        let burst = StoreShare::RATE_FACTOR * 10.0 + f64::from(StoreShare::BURST);
        assert!(rate <= 2.0 * 1.1 + burst / 600.0, "{rate} samples/s");
        assert!(rate >= 1.5, "{rate} samples/s");
    }

    /// Issue 11 (the spool outage test lost a sample): an agent back from an outage sends every sample
    /// younger than the catch-up age in one go, which at 100 ms is 100 samples, and then its backlog. Held
    /// back for seconds there, its flush on stop timed out and the last samples stayed on the host, missing
    /// and in no gap.
    #[test]
    fn issue_11_an_agent_back_from_an_outage_is_not_held_back() {
        for interval_ms in [100u32, 1_000, 10_000] {
            let interval = u64::from(interval_ms);
            // Never stored before: the last catch-up window at once, then one sample an interval.
            let mut share = StoreShare::new(interval_ms, WINDOW_MS, 0, 0);
            assert_eq!(
                share.charge(WINDOW_MS / interval + 1, 0),
                0,
                "interval {interval_ms} ms"
            );
            for tick in 1..=100 {
                assert_eq!(share.charge(1, tick * interval), 0);
            }
            // Away an hour (a collector restart forgot the share): the hour's samples at once.
            let hour = 3_600_000;
            let mut share = StoreShare::new(interval_ms, WINDOW_MS, hour, 0);
            assert_eq!(
                share.charge(hour / interval + 1, 0),
                0,
                "interval {interval_ms} ms"
            );
            // Away a week: a day's worth at once, the rest at twice the rate.
            let mut share = StoreShare::new(interval_ms, WINDOW_MS, 7 * 24 * hour, 0);
            let day = 2 * StoreShare::CATCH_UP_BUDGET_MS / interval;
            assert_eq!(share.charge(day, 0), 0);
            assert!(share.charge(day, 0) > 0);
        }
    }

    /// Issue 11: a host held back cannot reset its share by reconnecting; a host that kept to its rate is
    /// forgotten once its bucket is full, so the table holds only hosts sending lately.
    #[test]
    fn issue_11_the_share_is_the_hosts_across_connections() {
        let mut shares = StoreShares::default();
        let new = (WINDOW_MS, 0);
        assert_eq!(shares.charge("flood-1", 1_000, new, 52, 0), 0);
        let wait_ms = shares.charge("flood-1", 1_000, new, 500, 0);
        assert!(wait_ms >= 200_000, "{wait_ms}");
        // The agent gives up and reconnects: the same host, the same bucket.
        assert!(shares.charge("flood-1", 1_000, new, 1, 5_000) > 0);
        // Another host is not affected.
        assert_eq!(shares.charge("web-1", 1_000, new, 1, 5_000), 0);
        // A hello with a longer interval lowers the rate; the debt stays.
        assert!(shares.charge("flood-1", 10_000, new, 1, 6_000) > wait_ms);
        let day = StoreShare::CATCH_UP_BUDGET_MS;
        shares.tidy(day);
        assert_eq!(shares.len(), 1, "only flood-1, still in debt");
        // Many hosts, each back to a full bucket a day after its sample: the table stays bounded.
        for n in 0..5 * StoreShares::TIDY_ABOVE as u64 {
            shares.charge(&format!("h{n}"), 1_000, new, 1, day + n * day);
        }
        assert!(shares.len() <= StoreShares::TIDY_ABOVE + 2, "{}", shares.len());
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
