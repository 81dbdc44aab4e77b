//! The reconnect spread: how far apart a collector's agents come back when they lose it.
//!
//! Every agent of a collector loses it at the same moment when it restarts or its host fails, and, left to
//! its own backoff, retries within the same second: 20,000 agents make 20,000 handshakes at once, most are
//! refused for load, and each refusal costs both ends a connection attempt. The collector knows how many agents
//! it holds and how many handshakes a second it can take, so from protocol 3 on it tells each agent a window
//! (`Spread`); an agent that loses a collector it was streaming to waits a random time in that window before
//! its first attempt, and the fleet arrives at the rate the collector planned for, on average.
//!
//! Not evenly: a restarted collector has its core to itself at the start of the window, while at its end it
//! carries nearly the whole fleet's steady load, and each agent that comes back late brings a longer backlog
//! (it kept sampling while it waited). So arrivals are tilted towards the start: their rate falls linearly
//! from 1.8 times the planned rate to a fifth of it (`TILT`). In a storm of 20,000 agents, evenly spread arrivals
//! met a full core in the last third of the window; the tilt moves that work to where the core is free.
//!
//! Plain functions over counts and times; the collector's session decides when to send (`CollectorSession::
//! spread_frame`), the agent's uplink draws the delay (`first_delay`).

use crate::backoff::Backoff;
use std::time::Duration;

/// The widest window a collector may ask for, and an agent accepts: a collector that would need longer to take
/// its fleet back is past what one collector should hold.
pub const MAX_WINDOW_MS: u64 = 120_000;

/// A connection is told the window this long after its welcome at the earliest, so that the agents coming
/// back in a storm are not sent anything more while it lasts.
pub const FIRST_AFTER_MS: u64 = 10_000;

/// After the first, the window is looked at again this often per connection, and sent when it moved
/// (`worth_telling`).
pub const CHECK_INTERVAL_MS: u64 = 60_000;

/// The window for `connected` agents on a collector that plans to take `handshakes_per_s` a second: the time
/// it needs to take them all back, at most `MAX_WINDOW_MS`.
pub fn window_ms(connected: usize, handshakes_per_s: u32) -> u64 {
    let per_s = u64::from(handshakes_per_s.max(1));
    (connected as u64)
        .saturating_mul(1000)
        .div_ceil(per_s)
        .min(MAX_WINDOW_MS)
}

/// Whether an agent that was last told `told_ms` (0 if never) should be told `window_ms`: when the two differ
/// by more than a quarter of the last figure and by more than a second, so that a fleet that changes by a few
/// hosts does not cost a frame per connection.
pub fn worth_telling(told_ms: u64, window_ms: u64) -> bool {
    let moved = told_ms.abs_diff(window_ms);
    moved > 1000 && moved > told_ms / 4
}

/// How far the rate of first attempts leans towards the start of the window: it falls linearly from
/// `1 + TILT` times the average at the start to `1 - TILT` times it at the end.
pub const TILT: f64 = 0.8;

/// The wait before the first attempt after losing a collector that gave `window_ms` (clamped to
/// `MAX_WINDOW_MS`), for `unit_random` drawn from [0, 1): the point of the window where the share of the
/// fleet that came back before it is `unit_random`, arrivals being tilted towards the start (`TILT`).
pub fn first_delay(window_ms: u64, unit_random: f64) -> Duration {
    let window = Duration::from_millis(window_ms.min(MAX_WINDOW_MS));
    let share = unit_random.clamp(0.0, 1.0);
    // The share back by x (a fraction of the window) is F(x) = (1 + a) x - a x²; this is its inverse.
    let a = TILT;
    let x = ((1.0 + a) - ((1.0 + a) * (1.0 + a) - 4.0 * a * share).sqrt()) / (2.0 * a);
    window.mul_f64(x.clamp(0.0, 1.0))
}

/// The wait before the next attempt. Another collector that has not failed recently is tried at once (within
/// 200 ms), the same one after a backoff (`Backoff::after_failure`, which moves `attempt` on). After losing a
/// collector it was streaming to, `lost_spread_ms` is the window that collector gave, and a random part of it is
/// added, so that its fleet does not come back in the same second (`first_delay`). `draws` are
/// two draws from [0, 1).
pub fn retry_delay(
    backoff: &Backoff,
    attempt: &mut u32,
    refused: bool,
    other_collector: bool,
    lost_spread_ms: Option<u64>,
    draws: [f64; 2],
) -> Duration {
    let delay = if other_collector {
        Duration::from_millis(200).mul_f64(draws[0].clamp(0.0, 1.0))
    } else {
        backoff.after_failure(attempt, refused, draws[0])
    };
    delay + lost_spread_ms.map_or(Duration::ZERO, |window| first_delay(window, draws[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_the_time_to_take_the_fleet_back_and_is_capped() {
        assert_eq!(window_ms(0, 1000), 0);
        assert_eq!(window_ms(500, 1000), 500);
        assert_eq!(window_ms(20_000, 1000), 20_000);
        assert_eq!(window_ms(20_000, 2000), 10_000);
        assert_eq!(window_ms(1, 3), 334, "rounded up");
        assert_eq!(window_ms(1_000_000, 1000), MAX_WINDOW_MS);
        assert_eq!(window_ms(10, 0), 10_000, "a rate of 0 is taken as 1 a second");
    }

    #[test]
    fn only_a_move_of_more_than_a_quarter_and_a_second_is_told() {
        assert!(!worth_telling(0, 0));
        assert!(!worth_telling(0, 900), "a small fleet comes back at once anyway");
        assert!(worth_telling(0, 1001));
        assert!(!worth_telling(20_000, 24_000), "20 % more");
        assert!(worth_telling(20_000, 25_001));
        assert!(worth_telling(20_000, 14_000), "30 % fewer");
        assert!(worth_telling(3000, 500), "the fleet shrank to a few hundred");
    }

    /// The share of `draws` evenly spaced draws whose delay falls in [from, to) of a 100 s window.
    fn share_between(from_s: f64, to_s: f64, draws: u32) -> f64 {
        let inside = (0..draws)
            .map(|i| first_delay(100_000, (f64::from(i) + 0.5) / f64::from(draws)).as_secs_f64())
            .filter(|delay| (from_s..to_s).contains(delay))
            .count();
        inside as f64 / f64::from(draws)
    }

    #[test]
    fn issue_12_arrivals_lean_towards_the_start_of_the_window() {
        // The first tenth takes 17.2 % of the fleet, the last 2.8 % (the rate falls from 1.8 to 0.2 times
        // the average), and half the fleet is back after 32 % of the window.
        assert!((share_between(0.0, 10.0, 100_000) - 0.172).abs() < 0.001);
        assert!((share_between(45.0, 55.0, 100_000) - 0.100).abs() < 0.001);
        assert!((share_between(90.0, 100.0, 100_000) - 0.028).abs() < 0.001);
        let half = first_delay(100_000, 0.5).as_secs_f64();
        assert!((half - 32.461).abs() < 0.01, "{half}");
        // Later draws never wait less.
        let delays: Vec<Duration> = (0..=1000)
            .map(|i| first_delay(20_000, f64::from(i) / 1000.0))
            .collect();
        assert!(delays.windows(2).all(|pair| pair[0] <= pair[1]));
    }

    #[test]
    fn the_first_delay_spans_the_window_and_no_more() {
        assert_eq!(first_delay(20_000, 0.0), Duration::ZERO);
        assert_eq!(first_delay(20_000, 1.0), Duration::from_secs(20));
        assert!(first_delay(20_000, 0.999_999) < Duration::from_secs(20));
        assert_eq!(
            first_delay(20_000, 7.0),
            Duration::from_secs(20),
            "a bad draw stays in the window"
        );
        assert_eq!(first_delay(u64::MAX, 1.0), Duration::from_millis(MAX_WINDOW_MS));
        assert_eq!(first_delay(0, 0.7), Duration::ZERO);
    }

    #[test]
    fn issue_12_losing_a_collector_spreads_the_first_attempt_over_its_window() {
        let backoff = Backoff::default();
        // Streaming, then lost: the usual first retry (250-500 ms) plus a draw from the window.
        let mut attempt = 0;
        let lost = retry_delay(&backoff, &mut attempt, false, false, Some(20_000), [0.0, 0.5]);
        assert_eq!(lost, Duration::from_millis(250) + first_delay(20_000, 0.5));
        assert!(lost > Duration::from_millis(250 + 6_400) && lost < Duration::from_millis(250 + 6_600));
        assert_eq!(attempt, 1);
        let mut attempt = 0;
        let last = retry_delay(&backoff, &mut attempt, false, false, Some(20_000), [0.999, 0.999]);
        assert!(last < Duration::from_millis(500 + 20_000), "{last:?}");
        // Failing over to another collector: within 200 ms, plus the lost one's window all the same.
        let mut attempt = 3;
        let over = retry_delay(&backoff, &mut attempt, false, true, Some(20_000), [0.5, 0.25]);
        assert_eq!(over, Duration::from_millis(100) + first_delay(20_000, 0.25));
        assert_eq!(attempt, 3, "another collector is no retry of this one");
        // An attempt that never got a welcome is retried on the backoff alone, whatever the window.
        let mut attempt = 2;
        let failed = retry_delay(&backoff, &mut attempt, true, false, None, [0.0, 0.999]);
        assert_eq!(failed, backoff.delay_after_refusal(2, 0.0));
        // A collector that never gave a window (protocol 2, or a small fleet) is come back to at once.
        let mut attempt = 0;
        let small = retry_delay(&backoff, &mut attempt, false, false, Some(0), [0.0, 0.999]);
        assert_eq!(small, Duration::from_millis(250));
    }
}
