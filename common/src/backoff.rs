//! Reconnect backoff: capped exponential growth with jitter, as a pure function.
//!
//! Jitter spreads a fleet's reconnects after a collector restart, so thousands of agents do not arrive in the
//! same millisecond. The random draw comes in as an argument so the function stays deterministic under test.

use std::time::Duration;

/// How a retry delay grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay ceiling before jitter for the first retry.
    pub initial: Duration,
    /// No delay ever exceeds this.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0 for the first retry). `unit_random` is a draw from [0, 1).
    ///
    /// The ceiling doubles each attempt up to `cap`; the delay is drawn from the upper half of the ceiling
    /// ("equal jitter"), so it never collapses to zero yet stays spread out.
    pub fn delay(&self, attempt: u32, unit_random: f64) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        let ceiling = self.initial.saturating_mul(factor).min(self.cap);
        let jitter = unit_random.clamp(0.0, 1.0);
        let delay = ceiling.mul_f64(0.5 + 0.5 * jitter);
        delay.min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_grows_then_stays_under_the_cap() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            cap: Duration::from_secs(5),
        };
        assert_eq!(backoff.delay(0, 0.0), Duration::from_millis(50));
        assert_eq!(backoff.delay(1, 0.0), Duration::from_millis(100));
        assert_eq!(backoff.delay(3, 0.0), Duration::from_millis(400));
        for attempt in 0..200 {
            for draw in [0.0, 0.3, 0.999_999, 1.0, 7.0] {
                let delay = backoff.delay(attempt, draw);
                assert!(delay <= backoff.cap, "attempt {attempt}: {delay:?} above the cap");
                assert!(
                    delay >= Duration::from_millis(50),
                    "attempt {attempt}: {delay:?} collapsed"
                );
            }
        }
        // Far past the cap, the delay is spread over the upper half of the cap, not pinned to it.
        assert_eq!(backoff.delay(50, 0.0), Duration::from_millis(2500));
        assert_eq!(backoff.delay(50, 1.0), Duration::from_secs(5));
    }

    #[test]
    fn jitter_spreads_agents_that_retry_together() {
        let backoff = Backoff::default();
        let a = backoff.delay(4, 0.1);
        let b = backoff.delay(4, 0.9);
        assert!(b > a + Duration::from_secs(1), "{a:?} vs {b:?}");
    }
}
