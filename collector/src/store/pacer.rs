//! How much of a core the writer's maintenance may take while ingest is committing.
//!
//! The minute rollup pass at 20,000 hosts costs the writer about 5 s of CPU a minute. Run as fast as the
//! queue left room, it took a quarter of a core for 20 s, and on a collector pinned to one core that
//! starved the QUIC driver: its socket overflowed once a minute and acknowledgements waited seconds
//! (issue 12, bench/RESULTS.md). Paced, the same work spreads over most of the minute at a bounded share.
//!
//! A token bucket: credit accrues at `share` of wall time up to `max_credit`, each step spends what it took.
//! Pacing applies only while ingest committed recently and the cycle is not behind; an idle collector or a
//! cycle that has run longer than `behind_after` (a backlog after downtime) runs maintenance at full speed.

use std::time::{Duration, Instant};

/// After the last commit, how long the writer still counts as under ingest.
const INGEST_QUIET: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Pacer {
    /// Share of one core, 0 < share ≤ 1; 1 turns pacing off.
    share: f64,
    max_credit: Duration,
    behind_after: Duration,
    /// Seconds of step time in hand; negative after a step longer than the credit.
    credit: f64,
    refilled_at: Instant,
    last_commit: Option<Instant>,
    cycle_started: Option<Instant>,
}

impl Pacer {
    pub fn new(share_pct: u32, max_credit: Duration, behind_after: Duration, now: Instant) -> Pacer {
        Pacer {
            share: f64::from(share_pct.clamp(1, 100)) / 100.0,
            max_credit,
            behind_after,
            credit: max_credit.as_secs_f64(),
            refilled_at: now,
            last_commit: None,
            cycle_started: None,
        }
    }

    pub fn committed(&mut self, now: Instant) {
        self.last_commit = Some(now);
    }

    /// A maintenance cycle starts (`true`) or has nothing more to do (`false`).
    pub fn cycle(&mut self, running: bool, now: Instant) {
        self.cycle_started = if running {
            self.cycle_started.or(Some(now))
        } else {
            None
        };
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled_at).as_secs_f64();
        self.refilled_at = now;
        self.credit = (self.credit + elapsed * self.share).min(self.max_credit.as_secs_f64());
    }

    fn paced(&self, now: Instant) -> bool {
        let ingesting = self
            .last_commit
            .is_some_and(|at| now.saturating_duration_since(at) < INGEST_QUIET);
        let behind = self
            .cycle_started
            .is_some_and(|at| now.saturating_duration_since(at) >= self.behind_after);
        self.share < 1.0 && ingesting && !behind
    }

    /// How long maintenance must wait before its next step; zero when it may take one now.
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if !self.paced(now) || self.credit > 0.0 {
            return Duration::ZERO;
        }
        // Ingest may stop meanwhile; the wait is capped so that an idle writer finds out soon.
        Duration::from_secs_f64(-self.credit / self.share).min(INGEST_QUIET)
    }

    /// A step took `took`.
    pub fn spent(&mut self, took: Duration, now: Instant) {
        self.refill(now);
        self.credit -= took.as_secs_f64();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn pacer(now: Instant) -> Pacer {
        Pacer::new(10, 50 * MS, Duration::from_secs(45), now)
    }

    #[test]
    fn issue_12_under_ingest_maintenance_keeps_to_its_share_of_a_core() {
        let start = Instant::now();
        let mut p = pacer(start);
        p.cycle(true, start);
        // Steps of 20 ms, taken whenever allowed, over 20 s of steady ingest: 10 % is 2 s of step time.
        let mut now = start;
        let mut stepped = Duration::ZERO;
        while now < start + Duration::from_secs(20) {
            p.committed(now);
            if p.wait(now).is_zero() {
                p.spent(20 * MS, now + 20 * MS);
                stepped += 20 * MS;
                now += 20 * MS;
            } else {
                now += 5 * MS;
            }
        }
        let share = stepped.as_secs_f64() / 20.0;
        assert!(
            (0.09..=0.115).contains(&share),
            "maintenance took {share:.3} of the core"
        );
    }

    #[test]
    fn issue_12_the_wait_is_what_the_credit_needs_to_refill() {
        let start = Instant::now();
        let mut p = pacer(start);
        p.committed(start);
        p.cycle(true, start);
        assert_eq!(p.wait(start), Duration::ZERO, "a full bucket steps at once");
        p.spent(80 * MS, start);
        // 50 ms of credit, 80 ms spent: 30 ms short at 10 % is 300 ms of wall time.
        p.committed(start + MS);
        let wait = p.wait(start + MS);
        assert!(wait > 280 * MS && wait < 300 * MS, "{wait:?}");
        p.committed(start + 295 * MS);
        assert!(p.wait(start + 295 * MS) > Duration::ZERO);
        p.committed(start + 302 * MS);
        assert_eq!(p.wait(start + 302 * MS), Duration::ZERO);
    }

    #[test]
    fn issue_12_an_idle_writer_and_a_cycle_that_is_behind_run_at_full_speed() {
        let start = Instant::now();
        let mut p = pacer(start);
        p.cycle(true, start);
        p.spent(Duration::from_secs(1), start);
        // Nothing committed yet: no pacing.
        assert_eq!(p.wait(start), Duration::ZERO);
        p.committed(start);
        assert!(p.wait(start) > Duration::ZERO);
        // A second after the last commit ingest counts as stopped.
        assert_eq!(p.wait(start + Duration::from_secs(1)), Duration::ZERO);
        // Under ingest again, but the cycle started 45 s ago: it is behind and catches up unpaced.
        let later = start + Duration::from_secs(45);
        p.committed(later);
        p.spent(Duration::from_secs(10), later);
        assert_eq!(p.wait(later), Duration::ZERO);
        // A new cycle is paced again.
        p.cycle(false, later);
        p.cycle(true, later);
        assert!(p.wait(later) > Duration::ZERO);
    }

    #[test]
    fn issue_12_a_share_of_the_whole_core_never_waits() {
        let start = Instant::now();
        let mut p = Pacer::new(100, 50 * MS, Duration::from_secs(45), start);
        p.committed(start);
        p.cycle(true, start);
        p.spent(Duration::from_secs(5), start);
        assert_eq!(p.wait(start), Duration::ZERO);
    }
}
