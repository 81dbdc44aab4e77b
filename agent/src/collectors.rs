//! Which collector to stream to when several are configured (pure: time comes in as an argument).
//!
//! Each host ranks the collectors by rendezvous (highest-random-weight) hashing on its name, so a fleet
//! spreads evenly, every host of a given name always prefers the same collector, and losing one collector
//! moves only its own hosts (each to its own next choice). A collector that fails is skipped for a while; the
//! agent returns to its first choice once that one answers again. The spool makes each move lossless: samples
//! not acknowledged by one collector are sent to the next.

/// How long a collector that failed is passed over before it is tried again.
pub const SKIP_AFTER_FAILURE_MS: u64 = 15_000;

/// A stable 64-bit hash of `host` and `address` (FNV-1a, then a final avalanche so close inputs spread).
fn weight(host: &str, address: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in host.bytes().chain([0u8]).chain(address.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64 finaliser.
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// The collectors in `host`'s order of preference (indexes into `addresses`).
pub fn preference_order(host: &str, addresses: &[String]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..addresses.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(weight(host, &addresses[i])), i));
    order
}

/// The agent's view of its collectors: preference order and which ones failed recently.
#[derive(Debug, Clone)]
pub struct CollectorChoice {
    addresses: Vec<String>,
    order: Vec<usize>,
    /// Per address: skipped until this time (ms) after a failure.
    skip_until_ms: Vec<u64>,
}

impl CollectorChoice {
    pub fn new(host: &str, addresses: Vec<String>) -> Self {
        let order = preference_order(host, &addresses);
        let skip_until_ms = vec![0; addresses.len()];
        CollectorChoice {
            addresses,
            order,
            skip_until_ms,
        }
    }

    pub fn address(&self, index: usize) -> &str {
        &self.addresses[index]
    }

    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

    /// The first choice of this host.
    pub fn preferred(&self) -> usize {
        self.order[0]
    }

    /// The collector to try now: the most preferred one not being skipped; when every one failed recently,
    /// the one whose skip ends first.
    pub fn pick(&self, now_ms: u64) -> usize {
        self.order
            .iter()
            .copied()
            .find(|&i| self.skip_until_ms[i] <= now_ms)
            .unwrap_or_else(|| {
                *self
                    .order
                    .iter()
                    .min_by_key(|&&i| self.skip_until_ms[i])
                    .expect("at least one collector")
            })
    }

    /// A connection to `index` failed or was refused.
    pub fn failed(&mut self, index: usize, now_ms: u64) {
        self.skip_until_ms[index] = now_ms + SKIP_AFTER_FAILURE_MS;
    }

    /// A collector welcomed us: it is good again.
    pub fn succeeded(&mut self, index: usize) {
        self.skip_until_ms[index] = 0;
    }

    /// While streaming to `current`, when the earliest more preferred collector may be tried again (ms);
    /// `None` on the first choice.
    pub fn better_due_ms(&self, current: usize) -> Option<u64> {
        self.order
            .iter()
            .take_while(|&&i| i != current)
            .map(|&i| self.skip_until_ms[i])
            .min()
    }

    /// While streaming to `current`, whether a more preferred collector is due to be tried again (its skip
    /// has run out), so the agent should hand over to it.
    pub fn should_return(&self, current: usize, now_ms: u64) -> Option<usize> {
        let better = self.order.iter().take_while(|&&i| i != current);
        better.copied().find(|&i| self.skip_until_ms[i] <= now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("collector-{i}.example:9600")).collect()
    }

    #[test]
    fn rendezvous_spreads_hosts_and_moves_only_the_lost_collectors_hosts() {
        let three = addresses(3);
        let mut per_collector = [0usize; 3];
        let hosts: Vec<String> = (0..3000).map(|i| format!("web-{i}")).collect();
        for host in &hosts {
            per_collector[preference_order(host, &three)[0]] += 1;
        }
        for count in per_collector {
            assert!((850..=1150).contains(&count), "{per_collector:?}");
        }
        // Losing collector 1: its hosts go to their second choice, nobody else moves.
        for host in &hosts {
            let order = preference_order(host, &three);
            let mut choice = CollectorChoice::new(host, three.clone());
            choice.failed(1, 1_000);
            let now = choice.pick(2_000);
            if order[0] == 1 {
                assert_eq!(now, order[1], "{host}");
            } else {
                assert_eq!(now, order[0], "{host}");
            }
        }
        // The order depends only on the host and the addresses, not their listing order.
        let reversed: Vec<String> = three.iter().rev().cloned().collect();
        let a = preference_order("db-7", &three);
        let b = preference_order("db-7", &reversed);
        let names_a: Vec<&str> = a.iter().map(|&i| three[i].as_str()).collect();
        let names_b: Vec<&str> = b.iter().map(|&i| reversed[i].as_str()).collect();
        assert_eq!(names_a, names_b);
    }

    #[test]
    fn a_failed_collector_is_skipped_then_returned_to() {
        let mut choice = CollectorChoice::new("web-1", addresses(3));
        let first = choice.preferred();
        assert_eq!(choice.pick(0), first);
        choice.failed(first, 10_000);
        let second = choice.pick(10_001);
        assert_ne!(second, first);
        assert_eq!(choice.should_return(second, 10_002), None, "still skipped");
        assert_eq!(choice.better_due_ms(second), Some(10_000 + SKIP_AFTER_FAILURE_MS));
        assert_eq!(choice.better_due_ms(first), None);
        assert_eq!(
            choice.should_return(second, 10_000 + SKIP_AFTER_FAILURE_MS),
            Some(first),
            "tried again once the skip runs out"
        );
        choice.succeeded(first);
        assert_eq!(choice.pick(10_003), first);
        // Everything down: the one whose skip ends first is tried.
        for i in 0..3 {
            choice.failed(i, 20_000 + i as u64);
        }
        assert_eq!(choice.pick(20_010), 0);
        // A single collector is always picked.
        let single = CollectorChoice::new("h", addresses(1));
        assert_eq!(single.pick(5), 0);
        assert_eq!(single.should_return(0, 5), None);
    }
}
