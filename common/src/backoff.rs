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
    /// The most a refusal for load counts in the delay: a collector that refused a connection because every
    /// handshake slot and its line were taken is up, and frees slots by the second, so an agent it refused
    /// comes back within 4 to 8 s (with the default initial delay) however often it was refused, instead of
    /// drifting to the 30 s cap and coming back long after the collector could take it.
    pub const REFUSED_ATTEMPT_CAP: u32 = 4;

    /// The delay before retry number `attempt` after the collector refused the connection for load.
    pub fn delay_after_refusal(&self, attempt: u32, unit_random: f64) -> Duration {
        self.delay(attempt.min(Self::REFUSED_ATTEMPT_CAP), unit_random)
    }

    /// The attempt number after a failure: one more, except that a refusal (the collector is up) counts
    /// from the refusal cap at most, so a failure of another kind right after a run of refusals (a handshake
    /// that did not finish on a collector still busy) backs off 8 to 16 s, not to the 30 s cap.
    pub fn next_attempt(attempt: u32, refused: bool) -> u32 {
        if refused {
            attempt.min(Self::REFUSED_ATTEMPT_CAP).saturating_add(1)
        } else {
            attempt.saturating_add(1)
        }
    }

    /// The delay before retrying after failed attempt number `attempt`, refused for load or not, and the
    /// attempt number moved on (`delay_after_refusal` or `delay`, then `next_attempt`).
    pub fn after_failure(&self, attempt: &mut u32, refused: bool, unit_random: f64) -> Duration {
        let delay = if refused {
            self.delay_after_refusal(*attempt, unit_random)
        } else {
            self.delay(*attempt, unit_random)
        };
        *attempt = Self::next_attempt(*attempt, refused);
        delay
    }

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
    fn issue_12_a_refused_agent_comes_back_within_eight_seconds_however_often_refused() {
        let backoff = Backoff::default();
        for attempt in 0..100 {
            for draw in [0.0, 0.5, 0.999] {
                let delay = backoff.delay_after_refusal(attempt, draw);
                assert!(delay <= Duration::from_secs(8), "attempt {attempt}: {delay:?}");
                assert!(
                    delay >= Duration::from_millis(250),
                    "attempt {attempt}: {delay:?}"
                );
                // The first few refusals back off as any failure does.
                if attempt <= Backoff::REFUSED_ATTEMPT_CAP {
                    assert_eq!(delay, backoff.delay(attempt, draw));
                }
            }
        }
        // Spread over 4 to 8 s, so a fleet refused together does not come back together.
        assert_eq!(backoff.delay_after_refusal(20, 0.0), Duration::from_secs(4));
        assert_eq!(backoff.delay_after_refusal(20, 1.0), Duration::from_secs(8));
        // Any other failure still backs off to the cap.
        assert_eq!(backoff.delay(20, 1.0), Duration::from_secs(30));
        // Ten refusals, then a timeout: 8 to 16 s, not the 30 s cap.
        let mut attempt = 0;
        for _ in 0..10 {
            attempt = Backoff::next_attempt(attempt, true);
        }
        assert_eq!(attempt, Backoff::REFUSED_ATTEMPT_CAP + 1);
        assert!(backoff.delay(attempt, 1.0) <= Duration::from_secs(16));
        // Other failures count on from there.
        assert_eq!(Backoff::next_attempt(attempt, false), attempt + 1);
        assert_eq!(Backoff::next_attempt(u32::MAX, false), u32::MAX);
    }

    #[test]
    fn jitter_spreads_agents_that_retry_together() {
        let backoff = Backoff::default();
        let a = backoff.delay(4, 0.1);
        let b = backoff.delay(4, 0.9);
        assert!(b > a + Duration::from_secs(1), "{a:?} vs {b:?}");
    }
}
