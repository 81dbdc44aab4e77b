//! One connection's view of its host's clock: where each sample goes on the collector's clock, and when the
//! host's clock is wrong enough to say so. Pure: the offset estimate and `now_ms` come in as arguments.
//!
//! The estimate itself comes from the session's clock probes (`headroom_common::clock_offset`); this only applies it.

use headroom_common::clock_offset::corrected_time_ms;
use headroom_common::wire::Sample;

/// What one connection knows about its host's clock.
#[derive(Debug, Clone, Default)]
pub struct HostClock {
    /// How far the host's clock is ahead of ours, as the session last estimated it.
    offset_ms: Option<i64>,
    /// Corrected time of the last sample placed for storage, so that the next is never placed before it.
    previous_ms: Option<u64>,
    /// Whether the offset was past the limit when last checked, so crossing it is logged once each way.
    skewed: bool,
}

/// A change worth one log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkewChange {
    /// The offset went past the limit.
    Became { offset_ms: i64 },
    /// The offset came back within the limit.
    Recovered { offset_ms: i64 },
}

impl HostClock {
    /// Take a new estimate; says whether it crossed `max_skew_ms` either way.
    pub fn set_offset(&mut self, offset_ms: i64, max_skew_ms: u64) -> Option<SkewChange> {
        self.offset_ms = Some(offset_ms);
        let skewed = offset_ms.unsigned_abs() > max_skew_ms;
        let change = match (self.skewed, skewed) {
            (false, true) => Some(SkewChange::Became { offset_ms }),
            (true, false) => Some(SkewChange::Recovered { offset_ms }),
            _ => None,
        };
        self.skewed = skewed;
        change
    }

    pub fn offset_ms(&self) -> Option<i64> {
        self.offset_ms
    }

    /// Move a sample to be stored onto the collector's clock, in order after the previous one. Returns the
    /// correction applied (the sample's own time less where it was placed), which is stored with it.
    pub fn place_stored(&mut self, sample: &mut Sample, now_ms: u64) -> i64 {
        let placed = corrected_time_ms(sample.timestamp_ms, self.offset_ms, now_ms, self.previous_ms);
        self.previous_ms = Some(placed);
        let applied = i128::from(sample.timestamp_ms) - i128::from(placed);
        sample.timestamp_ms = placed;
        applied.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Move a live sample onto the collector's clock. It runs ahead of the stored ones, so it does not move
    /// the order they are kept in.
    pub fn place_live(&self, sample: &mut Sample, now_ms: u64) {
        sample.timestamp_ms = corrected_time_ms(sample.timestamp_ms, self.offset_ms, now_ms, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: u64 = 1_700_000_000_000;

    fn at(timestamp_ms: u64) -> Sample {
        Sample {
            seq: 1,
            timestamp_ms,
            ..Default::default()
        }
    }

    #[test]
    fn issue_11_a_clock_ten_minutes_off_is_placed_in_the_right_minute_and_flagged_once() {
        let mut clock = HostClock::default();
        assert_eq!(
            clock.set_offset(600_250, 300_000),
            Some(SkewChange::Became { offset_ms: 600_250 })
        );
        assert_eq!(clock.set_offset(600_200, 300_000), None, "said once");
        let mut sample = at(NOW_MS - 2_000 + 600_250);
        assert_eq!(clock.place_stored(&mut sample, NOW_MS), 600_200);
        assert_eq!(sample.timestamp_ms, NOW_MS - 2_000 + 50);

        let mut behind = HostClock::default();
        behind.set_offset(-600_000, 300_000);
        let mut sample = at(NOW_MS - 1_000 - 600_000);
        assert_eq!(behind.place_stored(&mut sample, NOW_MS), -600_000);
        assert_eq!(sample.timestamp_ms, NOW_MS - 1_000);
        assert_eq!(
            behind.set_offset(20, 300_000),
            Some(SkewChange::Recovered { offset_ms: 20 })
        );
    }

    #[test]
    fn issue_11_a_replayed_backlog_keeps_its_order_and_live_samples_do_not_disturb_it() {
        let mut clock = HostClock::default();
        clock.set_offset(0, 300_000);
        let mut live = at(NOW_MS);
        clock.place_live(&mut live, NOW_MS);
        let mut placed = Vec::new();
        for (i, offset) in [0, 0, 3_000, 3_000].into_iter().enumerate() {
            // The estimate moves by 3 s in the middle of the replay (an NTP step on the host).
            clock.set_offset(offset, 300_000);
            let mut sample = at(NOW_MS - 3_600_000 + i as u64 * 1_000);
            clock.place_stored(&mut sample, NOW_MS);
            placed.push(sample.timestamp_ms);
        }
        assert!(placed.windows(2).all(|w| w[0] <= w[1]), "{placed:?}");
        assert_eq!(
            placed[0],
            NOW_MS - 3_600_000,
            "the live sample did not push the backlog forward"
        );
    }

    #[test]
    fn issue_11_without_an_estimate_a_clock_ahead_is_placed_at_arrival() {
        let mut clock = HostClock::default();
        let mut sample = at(NOW_MS + 600_000);
        assert_eq!(clock.place_stored(&mut sample, NOW_MS), 600_000);
        assert_eq!(sample.timestamp_ms, NOW_MS);
    }
}
