//! A host's recent readings as a bounded ring, and the window statistics the alarm rules take over it
//! (percentile, least-squares slope), computed straight from the ring without allocating.

use crate::analytics::alarms::{Condition, RuleSet};
use crate::analytics::outliers::{Metric, MetricValues};
use headroom_common::percentile::linear_rank;
use std::ops::Range;

// One bit per metric in `KeptMetrics`.
const _: () = assert!(Metric::COUNT <= 64);

/// Which metrics a history keeps: those a rule reads over a window get a column of the ring, those a rule
/// only compares as they are now (`threshold`) keep their newest value, and the rest are not kept at all:
/// nothing reads them, so the ring costs only what the rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeptMetrics {
    /// Bit `metric.index()`: a column over the whole ring.
    windowed: u64,
    /// Bit `metric.index()`: the newest reading's value only (never also in `windowed`).
    newest_only: u64,
}

impl KeptMetrics {
    /// Every metric over the whole ring.
    pub const ALL: KeptMetrics = KeptMetrics {
        windowed: if Metric::COUNT == 64 {
            u64::MAX
        } else {
            (1 << Metric::COUNT) - 1
        },
        newest_only: 0,
    };

    /// What the rules read: `percentile` and `rate_of_change` a window of their metric, live `headroom`
    /// rules a window of busy CPU and used memory, `threshold` the newest value of its metric. `outlier`
    /// rules read the outlier tracker, which keeps its own per-window means.
    pub fn for_rules(rules: Option<&RuleSet>) -> KeptMetrics {
        let mut kept = KeptMetrics::default();
        for rule in rules.iter().flat_map(|set| &set.rules) {
            match rule.condition {
                Condition::Percentile { metric, .. } | Condition::RateOfChange { metric, .. } => {
                    kept.windowed |= bit(metric);
                }
                Condition::Headroom {
                    within_days: None, ..
                } => kept.windowed |= bit(Metric::CpuBusyPct) | bit(Metric::MemUsedBytes),
                Condition::Threshold { metric, .. } => kept.newest_only |= bit(metric),
                _ => {}
            }
        }
        kept.newest_only &= !kept.windowed;
        kept
    }

    /// The metrics with a column over the ring, in metric order.
    pub fn windowed(&self) -> impl Iterator<Item = Metric> + '_ {
        Metric::ALL.into_iter().filter(|&m| self.windowed & bit(m) != 0)
    }

    /// The metrics kept as their newest value only, in metric order.
    pub fn newest_only(&self) -> impl Iterator<Item = Metric> + '_ {
        Metric::ALL
            .into_iter()
            .filter(|&m| self.newest_only & bit(m) != 0)
    }

    /// Values a history of `capacity` readings holds: the times, a column per windowed metric, one value per
    /// newest-only metric.
    pub fn slots(&self, capacity: usize) -> usize {
        capacity * (1 + self.windowed.count_ones() as usize) + self.newest_only.count_ones() as usize
    }
}

fn bit(metric: Metric) -> u64 {
    1 << metric.index()
}

/// Position of `metric` among the set bits of `mask` below it, when its own bit is set.
fn rank_in(mask: u64, metric: Metric) -> Option<usize> {
    let bit = bit(metric);
    (mask & bit != 0).then(|| (mask & (bit - 1)).count_ones() as usize)
}

/// The last readings of one host, oldest first, bounded: a ring stored metric by metric, so that a rule
/// reading one metric over a window touches only that metric's values (8 bytes a reading, contiguous).
///
/// Only the metrics in its [`KeptMetrics`] are stored, all in one allocation: `capacity` reading times (as
/// f64, exact for any millisecond time below 2^53), then `capacity` values per windowed metric, then the
/// newest value of each newest-only metric. Values stay f64, so every statistic is exactly what it would
/// be over the readings as derived.
#[derive(Debug, Clone, Default)]
pub struct HostHistory {
    capacity: usize,
    /// Physical index of the oldest reading.
    head: usize,
    len: usize,
    kept: KeptMetrics,
    /// NaN where the reading lacked the metric.
    slots: Box<[f64]>,
}

/// Physical index ranges of a window of the ring, oldest first: at most two contiguous runs, so that
/// iteration needs no per-reading modulo.
pub(super) type Runs = [Range<usize>; 2];

impl HostHistory {
    /// A history of every metric (tests and benchmarks; the runtime keeps only what its rules read).
    pub fn new(capacity: usize) -> HostHistory {
        HostHistory::keeping(capacity, KeptMetrics::ALL)
    }

    /// A history of `capacity` readings of the metrics in `kept`.
    pub fn keeping(capacity: usize, kept: KeptMetrics) -> HostHistory {
        let capacity = capacity.max(1);
        let mut slots = vec![f64::NAN; kept.slots(capacity)].into_boxed_slice();
        slots[..capacity].fill(0.0);
        HostHistory {
            capacity,
            head: 0,
            len: 0,
            kept,
            slots,
        }
    }

    /// Bytes of readings held on the heap (the rest of the struct is inline in its host's cell).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }

    /// Adds a reading taken (or received) at `at_ms`, dropping the oldest when full. Readings are expected
    /// in time order; the window searches rely on it.
    pub fn push(&mut self, at_ms: u64, values: MetricValues) {
        let slot = if self.len == self.capacity {
            let oldest = self.head;
            self.head = (self.head + 1) % self.capacity;
            oldest
        } else {
            self.len += 1;
            (self.head + self.len - 1) % self.capacity
        };
        debug_assert!(at_ms < 1 << f64::MANTISSA_DIGITS, "a time f64 holds exactly");
        self.slots[slot] = at_ms as f64;
        let kept = self.kept;
        for (column, metric) in kept.windowed().enumerate() {
            self.slots[(1 + column) * self.capacity + slot] = values.get(metric).unwrap_or(f64::NAN);
        }
        let newest = self.newest_start();
        for (at, metric) in kept.newest_only().enumerate() {
            self.slots[newest + at] = values.get(metric).unwrap_or(f64::NAN);
        }
    }

    fn newest_start(&self) -> usize {
        self.capacity * (1 + self.kept.windowed.count_ones() as usize)
    }

    /// Time of the reading in physical slot `slot`.
    fn time_at(&self, slot: usize) -> u64 {
        self.slots[slot] as u64
    }

    /// Times of the readings in the physical range `run`.
    fn times_in(&self, run: Range<usize>) -> impl Iterator<Item = u64> + '_ {
        self.slots[run].iter().map(|&at| at as u64)
    }

    fn physical(&self, logical: usize) -> usize {
        (self.head + logical) % self.capacity
    }

    /// Time and value of `metric` in the newest reading, when it has the metric.
    pub fn latest(&self, metric: Metric) -> Option<(u64, f64)> {
        let slot = self.physical(self.len.checked_sub(1)?);
        let value = match rank_in(self.kept.newest_only, metric) {
            Some(at) => self.slots[self.newest_start() + at],
            None => *self.column(metric).get(slot)?,
        };
        (!value.is_nan()).then_some((self.time_at(slot), value))
    }

    /// Time of the newest reading.
    pub fn latest_ms(&self) -> Option<u64> {
        Some(self.time_at(self.physical(self.len.checked_sub(1)?)))
    }

    /// The ring's runs holding the readings at or after `from_ms`.
    pub(super) fn runs_since(&self, from_ms: u64) -> Runs {
        let (mut low, mut high) = (0, self.len);
        while low < high {
            let middle = (low + high) / 2;
            if self.time_at(self.physical(middle)) < from_ms {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        if low == self.len {
            return [0..0, 0..0];
        }
        let first = self.physical(low);
        let end = self.head + self.len;
        if first >= self.head && end > self.capacity {
            [first..self.capacity, 0..end - self.capacity]
        } else {
            [first..first + (self.len - low), 0..0]
        }
    }

    /// Every slot of `metric`, in physical order (NaN where a reading lacked it or the slot is unused);
    /// empty when the metric has no column.
    pub(super) fn column(&self, metric: Metric) -> &[f64] {
        match rank_in(self.kept.windowed, metric) {
            Some(column) => &self.slots[(1 + column) * self.capacity..(2 + column) * self.capacity],
            None => &[],
        }
    }

    /// The values of `metric` in `runs`, as two slices (NaN still in them); empty when the metric has no
    /// column.
    pub(super) fn parts(&self, metric: Metric, runs: &Runs) -> [&[f64]; 2] {
        let column = self.column(metric);
        if column.is_empty() {
            return [&[], &[]];
        }
        [&column[runs[0].clone()], &column[runs[1].clone()]]
    }

    /// (time, value) of `metric` in the readings at or after `from_ms`, oldest first.
    pub fn since(&self, metric: Metric, from_ms: u64) -> impl Iterator<Item = (u64, f64)> + '_ {
        let runs = self.runs_since(from_ms);
        let [first, second] = self.parts(metric, &runs);
        let [a, b] = runs;
        let times = self.times_in(a).chain(self.times_in(b));
        times
            .zip(first.iter().chain(second))
            .filter(|(_, value)| !value.is_nan())
            .map(|(at_ms, &value)| (at_ms, value))
    }

    /// Values of `metric` in the readings at or after `from_ms`, oldest first.
    pub fn values_since(&self, metric: Metric, from_ms: u64) -> impl Iterator<Item = f64> + '_ {
        let runs = self.runs_since(from_ms);
        let [first, second] = self.parts(metric, &runs);
        first
            .iter()
            .chain(second)
            .copied()
            .filter(|value| !value.is_nan())
    }

    /// Least-squares slope of `metric` over `runs` per minute, as [`slope_per_minute`] computes it.
    pub(super) fn slope_in(&self, metric: Metric, runs: &Runs) -> Option<f64> {
        let parts = self.parts(metric, runs);
        let mut sums = SlopeSums::default();
        for (run, values) in runs.iter().zip(parts) {
            for (at_ms, &value) in self.times_in(run.clone()).zip(values) {
                if !value.is_nan() {
                    sums.add(at_ms, value);
                }
            }
        }
        sums.slope()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The `quantile_pct` percentile of `values` by linear interpolation between closest ranks (the alarm rules'
/// definition, [`headroom_common::percentile::linear`]); reorders them.
pub fn percentile(values: &mut [f64], quantile_pct: f64) -> Option<f64> {
    headroom_common::percentile::linear(values, quantile_pct / 100.0)
}

/// Order statistics kept by a single pass when the wanted rank is this close to either end; further in,
/// the values are copied and selected.
const NEAR_END: usize = 16;

/// Whether the order statistics a percentile of `count` values needs lie within [`NEAR_END`] of an end.
fn near_an_end(count: usize, quantile_pct: f64) -> bool {
    let Some((lower_rank, _)) = linear_rank(count, quantile_pct / 100.0) else {
        return true;
    };
    count - lower_rank <= NEAR_END || lower_rank + 2 <= NEAR_END
}

/// [`percentile`] of `values` (no NaN among them), in one pass when the rank is near an end, else by
/// selection in place.
pub(super) fn percentile_in_place(values: &mut [f64], quantile_pct: f64) -> Option<f64> {
    if near_an_end(values.len(), quantile_pct) {
        percentile_of([values, &[]], quantile_pct, &mut Vec::new())
    } else {
        percentile(values, quantile_pct)
    }
}

/// [`percentile`] of the non-NaN values in `parts`, with the same result. A rank within [`NEAR_END`] of
/// either end (p99 of a few hundred readings, a minimum, a maximum) is found in one pass keeping the few
/// extreme values; any other copies the values into `scratch` and selects there.
pub(super) fn percentile_of(parts: [&[f64]; 2], quantile_pct: f64, scratch: &mut Vec<f64>) -> Option<f64> {
    let count: usize = parts
        .iter()
        .map(|part| part.iter().map(|v| usize::from(!v.is_nan())).sum::<usize>())
        .sum();
    let (lower_rank, fraction) = linear_rank(count, quantile_pct / 100.0)?;
    let wants_upper = fraction != 0.0 && lower_rank + 1 < count;
    let from_top = count - lower_rank;
    let from_bottom = lower_rank + 1 + usize::from(wants_upper);
    let (lower, upper) = if from_top <= NEAR_END {
        let kept = Extremes::largest(parts, from_top);
        (kept.get(0), kept.get(1))
    } else if from_bottom <= NEAR_END {
        let kept = Extremes::smallest(parts, from_bottom);
        (kept.get(lower_rank), kept.get(lower_rank + 1))
    } else {
        scratch.clear();
        for part in parts {
            scratch.extend(part.iter().copied().filter(|v| !v.is_nan()));
        }
        return percentile(scratch, quantile_pct);
    };
    if !wants_upper {
        return Some(lower);
    }
    Some(lower + (upper - lower) * fraction)
}

/// An integer that orders as `f64::total_cmp` orders the floats: integer comparisons in the hot loop.
fn order_key(value: f64) -> i64 {
    let bits = value.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

/// The inverse of [`order_key`] (the sign bit, which picks the mask, is unchanged by it).
fn from_order_key(key: i64) -> f64 {
    f64::from_bits((key ^ (((key >> 63) as u64) >> 1) as i64) as u64)
}

/// The `wanted` largest or smallest non-NaN values of some slices, ascending, as order keys.
struct Extremes {
    sorted: [i64; NEAR_END + 1],
}

/// Inserts `key` into the first `len` entries of `sorted` (ascending), which have room for one more.
fn insert_sorted(sorted: &mut [i64; NEAR_END + 1], len: usize, key: i64) {
    let mut at = len;
    while at > 0 && sorted[at - 1] > key {
        sorted[at] = sorted[at - 1];
        at -= 1;
    }
    sorted[at] = key;
}

impl Extremes {
    fn get(&self, at: usize) -> f64 {
        from_order_key(self.sorted[at])
    }

    fn largest(parts: [&[f64]; 2], wanted: usize) -> Extremes {
        let mut sorted = [i64::MIN; NEAR_END + 1];
        let mut len = 0;
        for &value in parts.iter().flat_map(|part| part.iter()) {
            if value.is_nan() {
                continue;
            }
            let key = order_key(value);
            if len < wanted {
                insert_sorted(&mut sorted, len, key);
                len += 1;
            } else if key > sorted[0] {
                // The smallest kept value drops out; the rest shift down until the new one fits.
                let mut at = 1;
                while at < wanted && sorted[at] < key {
                    sorted[at - 1] = sorted[at];
                    at += 1;
                }
                sorted[at - 1] = key;
            }
        }
        Extremes { sorted }
    }

    fn smallest(parts: [&[f64]; 2], wanted: usize) -> Extremes {
        let mut sorted = [i64::MAX; NEAR_END + 1];
        let mut len = 0;
        for &value in parts.iter().flat_map(|part| part.iter()) {
            if value.is_nan() {
                continue;
            }
            let key = order_key(value);
            if len < wanted {
                insert_sorted(&mut sorted, len, key);
                len += 1;
            } else if key < sorted[wanted - 1] {
                // The largest kept value drops out; the rest shift up until the new one fits.
                let mut at = wanted - 1;
                while at > 0 && sorted[at - 1] > key {
                    sorted[at] = sorted[at - 1];
                    at -= 1;
                }
                sorted[at] = key;
            }
        }
        Extremes { sorted }
    }
}

/// Running sums of a least-squares fit, relative to the first point so the terms stay small enough for
/// f64 over any window we allow.
#[derive(Default)]
struct SlopeSums {
    origin: Option<(u64, f64)>,
    n: f64,
    sum_t: f64,
    sum_v: f64,
    sum_tt: f64,
    sum_tv: f64,
}

impl SlopeSums {
    #[inline]
    fn add(&mut self, at_ms: u64, value: f64) {
        let (t0_ms, v0) = *self.origin.get_or_insert((at_ms, value));
        let t = at_ms.saturating_sub(t0_ms) as f64 / 60_000.0;
        let v = value - v0;
        self.n += 1.0;
        self.sum_t += t;
        self.sum_v += v;
        self.sum_tt += t * t;
        self.sum_tv += t * v;
    }

    fn slope(&self) -> Option<f64> {
        let variance = self.n * self.sum_tt - self.sum_t * self.sum_t;
        (self.n >= 2.0 && variance > 1e-12)
            .then(|| (self.n * self.sum_tv - self.sum_t * self.sum_v) / variance)
    }
}

/// Least-squares slope of (time, value) points, in value units per minute; `None` with fewer than two
/// distinct times. The fit uses every point, so one noisy reading does not make a trend.
pub fn slope_per_minute(points: impl Iterator<Item = (u64, f64)>) -> Option<f64> {
    let mut sums = SlopeSums::default();
    for (at_ms, value) in points {
        sums.add(at_ms, value);
    }
    sums.slope()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass selection near the ends agrees bit for bit with sorting, for every rank and for
    /// values with ties, signed zeros and gaps.
    #[test]
    fn percentile_of_parts_matches_full_selection() {
        let mut rng_state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            rng_state ^= rng_state << 13;
            rng_state ^= rng_state >> 7;
            rng_state ^= rng_state << 17;
            rng_state
        };
        let mut scratch = Vec::new();
        for case in 0..400 {
            let len = (next() % 80) as usize;
            let values: Vec<f64> = (0..len)
                .map(|_| match next() % 10 {
                    0 => f64::NAN,
                    1 => -0.0,
                    2 => 0.0,
                    3 => 5.0,
                    _ => (next() % 1000) as f64 / 7.0 - 50.0,
                })
                .collect();
            let split = if len == 0 {
                0
            } else {
                (next() as usize) % (len + 1)
            };
            let (a, b) = values.split_at(split);
            for quantile_pct in [0.0, 1.0, 10.0, 25.0, 50.0, 87.5, 90.0, 99.0, 99.9, 100.0] {
                let mut plain: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
                let expected = percentile(&mut plain, quantile_pct);
                let got = percentile_of([a, b], quantile_pct, &mut scratch);
                assert_eq!(
                    got.map(f64::to_bits),
                    expected.map(f64::to_bits),
                    "case {case}, p{quantile_pct} of {values:?}"
                );
            }
        }
    }

    /// The example rules plus a threshold on a metric no window reads, and a group-wide percentile.
    fn example_rules() -> RuleSet {
        let extra = r#"
[[rule]]
name = "load-high"
kind = "threshold"
severity = "warning"
for = "30s"
runbook = "https://runbooks.invalid/load"
metric = "load1"
op = ">"
value = 6.0

[[rule]]
name = "group-psi"
kind = "percentile"
severity = "warning"
for = "0s"
runbook = "https://runbooks.invalid/psi"
metric = "psi_cpu"
quantile = 90.0
over = "2m"
across = "group"
op = ">"
value = 20.0
"#;
        let text = format!("{}\n{extra}", include_str!("../../../../../deploy/alarms.toml"));
        crate::analytics::alarms::parse(&text, "alarms.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    /// Issue 12: a host's history keeps only what the rules read. With the example rules and the two above
    /// that is a 15-minute window (902 readings) of five metrics and the times, plus the newest `load1`,
    /// 43,304 bytes in one allocation; with every metric it was 902 × (1 + `Metric::COUNT`) values.
    /// Without rules it is the times of 16 readings.
    #[test]
    fn issue_12_history_holds_only_the_metrics_the_rules_read() {
        let rules = example_rules();
        let kept = KeptMetrics::for_rules(Some(&rules));
        let mut windowed: Vec<&str> = kept.windowed().map(Metric::name).collect();
        windowed.sort_unstable();
        assert_eq!(
            windowed,
            [
                "cpu_busy_pct",
                "mem_used_bytes",
                "mem_used_pct",
                "psi_cpu",
                "retrans_per_s"
            ]
        );
        assert_eq!(
            kept.newest_only().map(Metric::name).collect::<Vec<_>>(),
            ["load1"]
        );
        let capacity = crate::analytics::history_capacity(Some(&rules));
        assert_eq!(capacity, 902);
        let history = HostHistory::keeping(capacity, kept);
        assert_eq!(history.heap_bytes(), (902 * (1 + 5) + 1) * 8);
        assert_eq!(
            HostHistory::new(capacity).heap_bytes(),
            902 * (1 + Metric::COUNT) * 8
        );
        let bare = HostHistory::keeping(
            crate::analytics::history_capacity(None),
            KeptMetrics::for_rules(None),
        );
        assert_eq!(bare.heap_bytes(), 16 * 8);
        assert!(std::mem::size_of::<HostHistory>() <= 56);
    }

    /// Issue 12: the compact history changes no alarm. Two engines with the same rules, one reading
    /// histories of every metric and one reading histories of only what the rules read, see the same
    /// transitions with the same values at every evaluation over 20 minutes of varied readings, gaps
    /// included.
    #[test]
    fn issue_12_compact_histories_give_the_same_alarms() {
        use crate::analytics::alarms::{AlarmEngine, EvalInputs, HostInput};
        let rules = example_rules();
        let capacity = crate::analytics::history_capacity(Some(&rules));
        let kept = KeptMetrics::for_rules(Some(&rules));
        let host = |i: usize, history: HostHistory| HostInput {
            host: format!("web-{i}"),
            labels: [
                ("group".to_string(), "web".to_string()),
                ("zone".to_string(), format!("z{}", i % 3)),
            ]
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>()
            .into(),
            interval_ms: 1_000,
            last_seen_ms: 0,
            clock_offset_ms: None,
            cores: 4,
            memory_bytes: 8 << 30,
            history,
            ports: Default::default(),
        };
        let mut full: Vec<HostInput> = (0..6).map(|i| host(i, HostHistory::new(capacity))).collect();
        let mut compact: Vec<HostInput> = (0..6)
            .map(|i| host(i, HostHistory::keeping(capacity, kept)))
            .collect();
        let mut full_engine = AlarmEngine::new(rules.clone());
        let mut compact_engine = AlarmEngine::new(rules);
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 10_000) as f64 / 100.0
        };
        let t0_ms = 1_700_000_000_000_u64;
        let mut transitions = 0;
        for second in 0..1_200_u64 {
            let now_ms = t0_ms + second * 1_000;
            for (i, (a, b)) in full.iter_mut().zip(compact.iter_mut()).enumerate() {
                if (second + i as u64) % 97 == 0 {
                    continue;
                }
                let mut values = MetricValues::default();
                for metric in Metric::ALL {
                    let value = next();
                    // Rising load on the later hosts, so that thresholds and slopes cross.
                    let value = value * 0.5 + (i as f64) * 10.0 + second as f64 / 60.0;
                    values.set(metric, (value as u64 % 13 != 0).then_some(value));
                }
                values.set(
                    Metric::MemUsedBytes,
                    Some(f64::from(1u32 << 30) * (1.0 + i as f64)),
                );
                for input in [&mut *a, &mut *b] {
                    input.history.push(now_ms, values);
                    input.last_seen_ms = now_ms;
                }
            }
            if second % 10 == 0 {
                let a = full_engine.evaluate(
                    EvalInputs {
                        hosts: &full,
                        outliers: None,
                    },
                    now_ms,
                );
                let b = compact_engine.evaluate(
                    EvalInputs {
                        hosts: &compact,
                        outliers: None,
                    },
                    now_ms,
                );
                assert_eq!(a, b, "at second {second}");
                transitions += a.len();
                assert_eq!(
                    full_engine.active(),
                    compact_engine.active(),
                    "at second {second}"
                );
            }
        }
        assert!(
            transitions >= 5,
            "the readings crossed the rules {transitions} times"
        );
    }

    #[test]
    fn slope_over_runs_matches_the_iterator_form() {
        let mut history = HostHistory::new(7);
        for i in 0..11_u64 {
            let mut values = MetricValues::default();
            values.set(
                Metric::MemUsedPct,
                (i % 4 != 1).then_some(40.0 + (i * i) as f64 * 0.3),
            );
            history.push(1_000 + i * 5_000, values);
        }
        for from_ms in [0, 20_000, 40_000, 51_000, 60_000] {
            let runs = history.runs_since(from_ms);
            assert_eq!(
                history.slope_in(Metric::MemUsedPct, &runs).map(f64::to_bits),
                slope_per_minute(history.since(Metric::MemUsedPct, from_ms)).map(f64::to_bits),
                "from {from_ms}"
            );
        }
    }
}
