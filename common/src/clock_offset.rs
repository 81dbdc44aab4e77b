//! The clock offset between an agent and the collector, estimated NTP-style from time probes (protocol 2).
//!
//! The collector sends a `TimeProbe` stamped with its clock (t1); the agent stamps when it read the probe (t2)
//! and when it sent its `TimeReply` (t3), both on its own clock; the collector stamps when the reply arrived
//! (t4). Then, as in NTP (RFC 5905, section 8):
//! - offset = ((t2 − t1) + (t3 − t4)) / 2, how far the agent's clock is ahead of the collector's;
//! - delay = (t4 − t1) − (t3 − t2), the round trip spent on the network and in queues.
//!
//! The offset is exact when both directions take the same time; its error is at most half the delay. So, like
//! NTP's clock filter, the estimate is the offset of the exchange with the smallest delay among the last few.
//! Pure: every time comes in as an argument.

use std::collections::VecDeque;

/// Exchanges kept for the filter.
pub const CLOCK_FILTER_EXCHANGES: usize = 8;

/// One completed probe exchange, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockExchange {
    /// How far the agent's clock is ahead of the collector's (negative: behind).
    pub offset_ms: i64,
    /// Round-trip time net of the agent's own processing; never negative.
    pub delay_ms: i64,
}

impl ClockExchange {
    /// The exchange from its four timestamps (t1 and t4 on the collector's clock, t2 and t3 on the agent's).
    /// None when the agent's stamps are out of order (it replied before it received), which no honest clock
    /// produces.
    pub fn from_timestamps(
        collector_sent_ms: u64,
        agent_received_ms: u64,
        agent_sent_ms: u64,
        collector_received_ms: u64,
    ) -> Option<ClockExchange> {
        let [t1, t2, t3, t4] = [
            collector_sent_ms,
            agent_received_ms,
            agent_sent_ms,
            collector_received_ms,
        ]
        .map(i128::from);
        if t3 < t2 || t4 < t1 {
            return None;
        }
        let offset = ((t2 - t1) + (t3 - t4)) / 2;
        let delay = ((t4 - t1) - (t3 - t2)).max(0);
        Some(ClockExchange {
            offset_ms: i64::try_from(offset).ok()?,
            delay_ms: i64::try_from(delay).ok()?,
        })
    }
}

/// The offset estimate of one connection: the lowest-delay exchange among the last `CLOCK_FILTER_EXCHANGES`.
#[derive(Debug, Clone, Default)]
pub struct ClockEstimator {
    exchanges: VecDeque<ClockExchange>,
}

impl ClockEstimator {
    pub fn add(&mut self, exchange: ClockExchange) {
        if self.exchanges.len() == CLOCK_FILTER_EXCHANGES {
            self.exchanges.pop_front();
        }
        self.exchanges.push_back(exchange);
    }

    /// The best exchange so far, or None before the first.
    pub fn best(&self) -> Option<ClockExchange> {
        self.exchanges.iter().copied().min_by_key(|e| e.delay_ms)
    }

    /// How far the agent's clock is ahead of the collector's, in milliseconds.
    pub fn offset_ms(&self) -> Option<i64> {
        self.best().map(|e| e.offset_ms)
    }
}

/// Where a sample taken at `agent_ms` on the agent's clock belongs on the collector's clock.
///
/// The agent's time less the estimated offset, but never after `now_ms` (a sample cannot come from the
/// future; without an estimate, a clock running ahead is caught here) and never before `previous_ms`, the
/// corrected time of the host's previous sample, so that a replayed backlog keeps its order when the estimate
/// moves. A sample is never refused for its timestamp: it is placed.
pub fn corrected_time_ms(
    agent_ms: u64,
    offset_ms: Option<i64>,
    now_ms: u64,
    previous_ms: Option<u64>,
) -> u64 {
    let shifted = i128::from(agent_ms) - i128::from(offset_ms.unwrap_or(0));
    let placed = shifted.clamp(0, i128::from(now_ms)) as u64;
    placed.max(previous_ms.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_paths_give_the_exact_offset() {
        // The agent is 600 s ahead; 10 ms each way; the agent takes 2 ms to answer.
        let t1 = 1_000_000;
        let t2 = t1 + 10 + 600_000;
        let t3 = t2 + 2;
        let t4 = t1 + 10 + 2 + 10;
        let exchange = ClockExchange::from_timestamps(t1, t2, t3, t4).unwrap();
        assert_eq!(
            exchange,
            ClockExchange {
                offset_ms: 600_000,
                delay_ms: 20
            }
        );
        // And 600 s behind.
        let t2 = t1 + 10 - 600_000;
        let exchange = ClockExchange::from_timestamps(t1, t2, t2 + 2, t4).unwrap();
        assert_eq!(exchange.offset_ms, -600_000);
    }

    #[test]
    fn the_lowest_delay_exchange_wins_and_old_ones_age_out() {
        let mut clock = ClockEstimator::default();
        assert_eq!(clock.offset_ms(), None);
        clock.add(ClockExchange {
            offset_ms: 900,
            delay_ms: 400,
        });
        clock.add(ClockExchange {
            offset_ms: 1000,
            delay_ms: 4,
        });
        clock.add(ClockExchange {
            offset_ms: 1200,
            delay_ms: 90,
        });
        assert_eq!(clock.offset_ms(), Some(1000));
        for _ in 0..CLOCK_FILTER_EXCHANGES {
            clock.add(ClockExchange {
                offset_ms: -5,
                delay_ms: 50,
            });
        }
        assert_eq!(clock.offset_ms(), Some(-5), "the old best exchange aged out");
    }

    #[test]
    fn replies_stamped_before_they_were_received_are_ignored() {
        assert_eq!(ClockExchange::from_timestamps(100, 500, 499, 120), None);
        assert_eq!(ClockExchange::from_timestamps(100, 500, 501, 99), None);
        assert!(ClockExchange::from_timestamps(u64::MAX, 0, u64::MAX, u64::MAX).is_some());
    }

    #[test]
    fn corrected_times_move_to_the_collector_clock_keep_order_and_never_reach_the_future() {
        let now = 10_000_000;
        // 10 minutes ahead and behind, both corrected.
        assert_eq!(
            corrected_time_ms(now + 600_000 - 500, Some(600_000), now, None),
            now - 500
        );
        assert_eq!(
            corrected_time_ms(now - 600_000 - 500, Some(-600_000), now, None),
            now - 500
        );
        // No estimate yet: a clock ahead is placed at the arrival time, not refused.
        assert_eq!(corrected_time_ms(now + 600_000, None, now, None), now);
        // A replayed backlog keeps its order when the estimate moves between two samples.
        let first = corrected_time_ms(now - 2_000, Some(0), now, None);
        let second = corrected_time_ms(now - 1_999, Some(50), now, Some(first));
        assert_eq!(second, first);
        assert_eq!(corrected_time_ms(5, Some(100), now, None), 0);
    }
}
