//! How the driver waits for datagrams: on the socket's readiness while few arrive, on a short timer while many
//! do.
//!
//! Waiting on readiness wakes the listeners' thread for nearly every burst of arrivals: at 5,000 agents
//! (15,000 datagrams a second) that thread woke 1,400–2,000 times a second, and each wake-up (a context
//! switch, the reactor's turn, a read that finds the socket empty) cost about a tenth of the collector's CPU
//! per host-sample (issue 12, bench/RESULTS.md). Once datagrams come faster than the driver would poll, it
//! takes the socket out of the reactor and reads it every `PACE` instead, so that arrivals wake nothing; a
//! datagram then waits at most about `PACE` (plus the timer's granularity, 1 ms in tokio) longer before it is
//! read. Below a lower rate it waits on readiness again, so that a quiet collector does not wake a thousand
//! times a second for nothing.
//!
//! Plain data and `now` as an argument: the decisions are tested without a socket or a clock.

use std::time::{Duration, Instant};

/// How long the paced driver sleeps between turns that found the socket empty.
pub(super) const PACE: Duration = Duration::from_millis(1);

/// The span over which the arrival rate is counted.
pub(super) const WINDOW: Duration = Duration::from_millis(100);

/// Datagrams in one window from which the driver paces itself: 2,000 a second, two per `PACE`.
pub(super) const ENTER_PACED: u64 = 200;

/// Datagrams in one window below which a paced driver waits on readiness again: 1,000 a second. Between
/// the two rates it keeps the way it has, so that a rate near one line does not switch every window.
pub(super) const LEAVE_PACED: u64 = 100;

/// The arrival rate of the current window and the way the driver waits.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pace {
    window_start: Instant,
    datagrams: u64,
    paced: bool,
}

impl Pace {
    pub(super) fn new(now: Instant) -> Pace {
        Pace {
            window_start: now,
            datagrams: 0,
            paced: false,
        }
    }

    /// Whether the driver reads on a timer rather than on readiness.
    #[cfg(test)]
    pub(super) fn paced(&self) -> bool {
        self.paced
    }

    /// Counts the datagrams one turn read at `now`; when a window has passed, decides from its count whether
    /// the driver paces itself from now on. Returns the decision (unchanged within a window).
    pub(super) fn observe(&mut self, datagrams: usize, now: Instant) -> bool {
        self.datagrams += datagrams as u64;
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= WINDOW {
            // A window that ran long (a driver that slept through a quiet spell) counts at its real length.
            let per_window = self.datagrams as u128 * WINDOW.as_nanos() / elapsed.as_nanos().max(1);
            if self.paced {
                self.paced = per_window >= u128::from(LEAVE_PACED);
            } else {
                self.paced = per_window >= u128::from(ENTER_PACED);
            }
            self.window_start = now;
            self.datagrams = 0;
        }
        self.paced
    }
}

/// When a driver that reads on a timer and found the socket empty at `now` reads it next: after `PACE`, or at
/// its earliest connection timer if that comes first.
pub(super) fn paced_wake(now: Instant, timer: Option<Instant>) -> Instant {
    let paced = now + PACE;
    timer.map_or(paced, |timer| timer.min(paced))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Turns of `per_turn` datagrams every millisecond for `ms` milliseconds from `*now`.
    fn run(pace: &mut Pace, now: &mut Instant, per_turn: usize, ms: u32) -> bool {
        let mut paced = pace.paced();
        for _ in 0..ms {
            *now += MS;
            paced = pace.observe(per_turn, *now);
        }
        paced
    }

    #[test]
    fn issue_12_many_datagrams_pace_the_driver_and_few_give_it_back_to_readiness() {
        let start = Instant::now();
        let mut now = start;
        let mut pace = Pace::new(start);
        // A handful of agents: one datagram every few milliseconds stays on readiness.
        assert!(!run(&mut pace, &mut now, 0, 1_000));
        for _ in 0..100 {
            now += 5 * MS;
            assert!(!pace.observe(1, now));
        }
        // 5,000 agents: ~15 datagrams a millisecond. Paced from the end of the first full window.
        assert!(!pace.observe(15, now + MS));
        now += MS;
        assert!(run(&mut pace, &mut now, 15, 250));
        // Between the two lines (1,500 a second) it stays paced.
        for _ in 0..200 {
            now += 2 * MS;
            assert!(pace.observe(3, now));
        }
        // Under 1,000 a second: back on readiness at the end of a window.
        for _ in 0..200 {
            now += 2 * MS;
            pace.observe(1, now);
        }
        assert!(!pace.paced());
        // And between the lines again, from readiness: it stays on readiness.
        for _ in 0..200 {
            now += 2 * MS;
            assert!(!pace.observe(3, now));
        }
    }

    #[test]
    fn issue_12_a_window_slept_through_counts_at_its_length() {
        let start = Instant::now();
        let mut pace = Pace::new(start);
        let mut now = start;
        assert!(run(&mut pace, &mut now, 20, 100));
        // The driver slept a whole second (nothing arrived) and then read a burst of 150: 150 a second.
        now += Duration::from_secs(1);
        assert!(!pace.observe(150, now));
    }

    #[test]
    fn issue_12_a_paced_driver_wakes_for_its_timer_or_after_the_pace() {
        let now = Instant::now();
        assert_eq!(paced_wake(now, None), now + PACE);
        assert_eq!(paced_wake(now, Some(now + 10 * MS)), now + PACE);
        let soon = now + Duration::from_micros(300);
        assert_eq!(paced_wake(now, Some(soon)), soon);
    }
}
