//! Mergeable percentile sketch with a relative-error guarantee, and the per-metric rollup statistics
//! (count, sum, min, max, sketch) stored as one compact blob per host and bucket.
//!
//! The sketch is log-bucketed (the DDSketch idea): a positive value `x` falls in bucket
//! `k = ceil(ln x / ln γ)` with `γ = (1 + α) / (1 − α)`, and the bucket reports `2γ^k / (γ + 1)`, which is
//! within a relative error `α` of every value the bucket can hold. Merging two sketches adds their bucket
//! counts, so a 30-day percentile is a merge of 720 hourly sketches rather than a scan of raw rows. Every
//! metric headroom stores is non-negative; values at or below `MIN_INDEXABLE` (and negative values, which
//! would be a bug upstream) count in a zero bucket that reports exactly 0.

use thiserror::Error;

/// Relative accuracy of every quantile the sketch returns: the answer is within 1 % of the exact value.
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// Values at or below this count as zero (a rate of one byte per 30 years is zero for planning).
const MIN_INDEXABLE: f64 = 1e-9;

/// Values above this are clamped, which bounds the number of buckets a sketch can ever hold to about 3,100.
const MAX_INDEXABLE: f64 = 1e18;

/// Version byte at the start of a stats blob, bumped if the encoding ever changes.
pub(super) const STATS_FORMAT: u8 = 1;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("rollup blob does not decode: {0}")]
pub struct DecodeError(pub &'static str);

fn gamma_ln() -> f64 {
    ((1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)).ln()
}

/// Where [`Sketch::add`] counts a value that is not NaN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SketchBucket {
    /// The zero bucket: values at or below `MIN_INDEXABLE`, negatives and −∞ included.
    Zero,
    /// Log bucket `k`; values above `MAX_INDEXABLE` (+∞ too) are clamped into the top one.
    Index(i32),
}

/// The bucket [`Sketch::add`] counts `value` in; `None` for NaN, which a sketch leaves out (the count, sum,
/// min and max of [`MetricStats`] still take it). One function, so that the rollup pass's compact
/// accumulator (`minute_entry.rs`) buckets exactly as a sketch does.
pub(super) fn bucket_of(value: f64) -> Option<SketchBucket> {
    if value.is_nan() {
        return None;
    }
    if value <= MIN_INDEXABLE {
        return Some(SketchBucket::Zero);
    }
    let clamped = value.min(MAX_INDEXABLE);
    Some(SketchBucket::Index((clamped.ln() / gamma_ln()).ceil() as i32))
}

/// Log-bucketed counts of observed values; see the module documentation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sketch {
    zero_count: u64,
    /// (bucket index, count), sorted by index, each index once. Sparse, because a minute of one metric
    /// usually touches a handful of buckets; a sorted vector holds a handful in one small allocation (a
    /// rollup pass holds a sketch per metric of every host for its minute).
    buckets: Vec<(i32, u64)>,
}

impl Sketch {
    pub fn new() -> Self {
        Sketch::default()
    }

    pub fn count(&self) -> u64 {
        self.zero_count + self.buckets.iter().map(|&(_, count)| count).sum::<u64>()
    }

    /// The count of bucket `index`, made (at 0) if the sketch has none yet.
    fn slot(&mut self, index: i32) -> &mut u64 {
        let at = match self.buckets.binary_search_by_key(&index, |&(i, _)| i) {
            Ok(at) => at,
            Err(at) => {
                self.buckets.insert(at, (index, 0));
                at
            }
        };
        &mut self.buckets[at].1
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// Number of non-empty buckets, which is what the encoded size grows with.
    pub fn bucket_count(&self) -> usize {
        self.buckets.len() + usize::from(self.zero_count > 0)
    }

    pub fn add(&mut self, value: f64) {
        match bucket_of(value) {
            None => {}
            Some(SketchBucket::Zero) => self.zero_count += 1,
            Some(SketchBucket::Index(index)) => *self.slot(index) += 1,
        }
    }

    pub fn merge(&mut self, other: &Sketch) {
        self.zero_count += other.zero_count;
        for &(index, count) in &other.buckets {
            *self.slot(index) += count;
        }
    }

    /// The value at quantile `q` (0..=1), within `RELATIVE_ACCURACY` of the exact order statistic at rank
    /// `floor(q × (count − 1))`; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (total - 1) as f64).floor() as u64;
        if rank < self.zero_count {
            return Some(0.0);
        }
        let mut seen = self.zero_count;
        let gamma_ln = gamma_ln();
        for &(index, count) in &self.buckets {
            seen += count;
            if seen > rank {
                // 2γ^k / (γ + 1), computed in log space to stay finite near the clamp.
                let gamma = gamma_ln.exp();
                return Some(2.0 * (f64::from(index) * gamma_ln).exp() / (gamma + 1.0));
            }
        }
        None
    }

    /// A sketch from its zero count and its (index, count) buckets.
    /// A bucket given twice keeps its last count.
    pub(super) fn from_parts(zero_count: u64, buckets: impl IntoIterator<Item = (i32, u64)>) -> Sketch {
        let mut sketch = Sketch {
            zero_count,
            buckets: Vec::new(),
        };
        for (index, count) in buckets {
            *sketch.slot(index) = count;
        }
        sketch
    }

    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.zero_count);
        put_varint(out, self.buckets.len() as u64);
        let mut previous: Option<i32> = None;
        for &(index, count) in &self.buckets {
            match previous {
                // Bucket indexes are sorted, so after the first only the (small, positive) step is stored.
                Some(p) => put_varint(out, (index - p) as u64),
                None => put_varint(out, zigzag(index)),
            }
            put_varint(out, count);
            previous = Some(index);
        }
    }

    fn decode(input: &mut &[u8]) -> Result<Sketch, DecodeError> {
        let mut sketch = Sketch {
            zero_count: get_varint(input)?,
            buckets: Vec::new(),
        };
        // In order, so each lands at the end; a damaged blob's repeated index keeps its last count.
        read_buckets(input, |index, count| *sketch.slot(index) = count)?;
        Ok(sketch)
    }
}

/// Reads an encoded sketch's bucket list (its length, then each index step and count), calling `each`
/// with every (index, count) in order.
pub(super) fn read_buckets(input: &mut &[u8], mut each: impl FnMut(i32, u64)) -> Result<(), DecodeError> {
    let len = get_varint(input)?;
    let mut previous: Option<i32> = None;
    for _ in 0..len {
        let raw = get_varint(input)?;
        let index = match previous {
            Some(p) => i32::try_from(raw)
                .ok()
                .and_then(|step| p.checked_add(step))
                .ok_or(DecodeError("bucket index out of range"))?,
            None => unzigzag(raw)?,
        };
        each(index, get_varint(input)?);
        previous = Some(index);
    }
    Ok(())
}

/// Count, sum, min, max and sketch of one metric over one bucket of time.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricStats {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub sketch: Sketch,
}

impl MetricStats {
    pub fn of(value: f64) -> Self {
        let mut sketch = Sketch::new();
        sketch.add(value);
        MetricStats {
            count: 1,
            sum: value,
            min: value,
            max: value,
            sketch,
        }
    }

    pub fn add(&mut self, value: f64) {
        self.add_unsketched(value);
        self.sketch.add(value);
    }

    /// The statistics of one value without a sketch, as [`MetricStats::add_unsketched`] goes on from.
    pub fn unsketched(value: f64) -> MetricStats {
        MetricStats {
            count: 1,
            sum: value,
            min: value,
            max: value,
            sketch: Sketch::new(),
        }
    }

    /// Count, sum, min and max as [`MetricStats::add`] keeps them (the same arithmetic, in the same order),
    /// leaving the sketch alone: for readers that need only means.
    pub fn add_unsketched(&mut self, value: f64) {
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    pub fn merge(&mut self, other: &MetricStats) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sketch.merge(&other.sketch);
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    /// Quantile from the sketch, clamped to the exact min and max; p0 and p100 are the exact min and max.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        if q <= 0.0 {
            return Some(self.min);
        }
        if q >= 1.0 {
            return Some(self.max);
        }
        self.sketch.quantile(q).map(|v| v.clamp(self.min, self.max))
    }
}

/// Statistics of every stored metric, in `Metric::ALL` order; `None` where the metric had no value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollupStats {
    pub metrics: Vec<Option<MetricStats>>,
}

impl RollupStats {
    pub fn with_len(len: usize) -> Self {
        RollupStats {
            metrics: vec![None; len],
        }
    }

    pub fn add(&mut self, index: usize, value: f64) {
        if self.metrics.len() <= index {
            self.metrics.resize(index + 1, None);
        }
        match &mut self.metrics[index] {
            Some(stats) => stats.add(value),
            slot => *slot = Some(MetricStats::of(value)),
        }
    }

    /// [`RollupStats::add`] without the sketch: count, sum, min and max only.
    pub fn add_unsketched(&mut self, index: usize, value: f64) {
        if self.metrics.len() <= index {
            self.metrics.resize(index + 1, None);
        }
        match &mut self.metrics[index] {
            Some(stats) => stats.add_unsketched(value),
            slot => *slot = Some(MetricStats::unsketched(value)),
        }
    }

    pub fn merge(&mut self, other: &RollupStats) {
        if self.metrics.len() < other.metrics.len() {
            self.metrics.resize(other.metrics.len(), None);
        }
        for (mine, theirs) in self.metrics.iter_mut().zip(&other.metrics) {
            match (mine.as_mut(), theirs) {
                (Some(m), Some(t)) => m.merge(t),
                (None, Some(t)) => *mine = Some(t.clone()),
                _ => {}
            }
        }
    }

    pub fn get(&self, index: usize) -> Option<&MetricStats> {
        self.metrics.get(index).and_then(Option::as_ref)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 * self.metrics.len());
        out.push(STATS_FORMAT);
        put_varint(&mut out, self.metrics.len() as u64);
        for metric in &self.metrics {
            match metric {
                None => out.push(0),
                Some(stats) => {
                    out.push(1);
                    put_varint(&mut out, stats.count);
                    out.extend_from_slice(&stats.sum.to_le_bytes());
                    out.extend_from_slice(&stats.min.to_le_bytes());
                    out.extend_from_slice(&stats.max.to_le_bytes());
                    stats.sketch.encode(&mut out);
                }
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<RollupStats, DecodeError> {
        let mut input = bytes;
        let format = take(&mut input, 1)?[0];
        if format != STATS_FORMAT {
            return Err(DecodeError("unknown stats format version"));
        }
        let len = get_varint(&mut input)?;
        if len > 4096 {
            return Err(DecodeError("too many metrics"));
        }
        let mut metrics = Vec::with_capacity(len as usize);
        for _ in 0..len {
            match take(&mut input, 1)?[0] {
                0 => metrics.push(None),
                1 => {
                    let count = get_varint(&mut input)?;
                    let sum = get_f64(&mut input)?;
                    let min = get_f64(&mut input)?;
                    let max = get_f64(&mut input)?;
                    let sketch = Sketch::decode(&mut input)?;
                    metrics.push(Some(MetricStats {
                        count,
                        sum,
                        min,
                        max,
                        sketch,
                    }));
                }
                _ => return Err(DecodeError("bad presence byte")),
            }
        }
        Ok(RollupStats { metrics })
    }
}

#[cfg(test)]
impl RollupStats {
    /// Bytes this holds on the heap, by capacity: the metric slots and every sketch's buckets.
    pub(super) fn heap_bytes(&self) -> usize {
        let sketches: usize = self
            .metrics
            .iter()
            .flatten()
            .map(|stats| stats.sketch.buckets.capacity() * std::mem::size_of::<(i32, u64)>())
            .sum();
        self.metrics.capacity() * std::mem::size_of::<Option<MetricStats>>() + sketches
    }
}

fn zigzag(value: i32) -> u64 {
    u64::from(((value << 1) ^ (value >> 31)) as u32)
}

fn unzigzag(raw: u64) -> Result<i32, DecodeError> {
    let raw = u32::try_from(raw).map_err(|_| DecodeError("bucket index out of range"))?;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(super) fn get_varint(input: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = take(input, 1)?[0];
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError("varint too long"))
}

pub(super) fn get_f64(input: &mut &[u8]) -> Result<f64, DecodeError> {
    let bytes = take(input, 8)?;
    Ok(f64::from_le_bytes(bytes.try_into().expect("took 8 bytes")))
}

pub(super) fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
    if input.len() < n {
        return Err(DecodeError("truncated"));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_12_unsketched_totals_are_bit_for_bit_those_of_add() {
        let mut rng = fastrand::Rng::with_seed(5);
        let values: Vec<f64> = (0..1_000)
            .map(|_| rng.f64() * 10f64.powi(rng.i32(-3..=9)))
            .collect();
        let (mut full, mut light) = (RollupStats::default(), RollupStats::default());
        for &value in &values {
            full.add(2, value);
            light.add_unsketched(2, value);
        }
        let (full, light) = (full.get(2).unwrap(), light.get(2).unwrap());
        assert_eq!(
            (light.count, light.min, light.max),
            (full.count, full.min, full.max)
        );
        assert_eq!(light.sum.to_bits(), full.sum.to_bits());
        assert_eq!(light.mean().to_bits(), full.mean().to_bits());
        assert!(light.sketch.is_empty() && !full.sketch.is_empty());
    }

    fn exact_quantile(values: &[f64], q: f64) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    #[test]
    fn quantiles_are_within_the_stated_relative_error_across_magnitudes() {
        let mut rng = fastrand::Rng::with_seed(7);
        // Log-uniform over nine decades: bytes per second from a quiet host to a busy one.
        let values: Vec<f64> = (0..20_000).map(|_| 10f64.powf(rng.f64() * 9.0)).collect();
        let mut sketch = Sketch::new();
        values.iter().for_each(|&v| sketch.add(v));
        for q in [0.0, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0] {
            let exact = exact_quantile(&values, q);
            let got = sketch.quantile(q).unwrap();
            let error = (got - exact).abs() / exact;
            assert!(
                error <= RELATIVE_ACCURACY,
                "q {q}: exact {exact}, sketch {got}, error {error}"
            );
        }
    }

    #[test]
    fn merged_sketches_answer_like_one_sketch_of_all_values() {
        let mut a = Sketch::new();
        let mut b = Sketch::new();
        let mut all = Sketch::new();
        for i in 0..1000 {
            let v = f64::from(i) * 0.37;
            if i % 3 == 0 {
                a.add(v)
            } else {
                b.add(v)
            }
            all.add(v);
        }
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(a.count(), 1000);
    }

    #[test]
    fn zeros_and_negatives_report_zero() {
        let mut sketch = Sketch::new();
        for v in [0.0, 0.0, -1.0, 5.0] {
            sketch.add(v);
        }
        assert_eq!(sketch.quantile(0.5), Some(0.0));
        let top = sketch.quantile(1.0).unwrap();
        assert!((top - 5.0).abs() / 5.0 <= RELATIVE_ACCURACY, "{top}");
        assert_eq!(Sketch::new().quantile(0.5), None);
    }

    #[test]
    fn stats_blobs_round_trip_and_reject_garbage() {
        let mut stats = RollupStats::with_len(3);
        for i in 0..60 {
            stats.add(0, 20.0 + f64::from(i % 7));
            stats.add(2, 1e9 + f64::from(i) * 1e6);
        }
        stats.add(2, 0.0);
        let blob = stats.encode();
        assert_eq!(RollupStats::decode(&blob).unwrap(), stats);
        assert!(RollupStats::decode(&blob[..blob.len() - 1]).is_err());
        assert!(RollupStats::decode(&[9, 0]).is_err());
        assert_eq!(stats.get(1), None);
        let cpu = stats.get(0).unwrap();
        assert_eq!((cpu.count, cpu.min, cpu.max), (60, 20.0, 26.0));
        assert_eq!(cpu.quantile(0.0), Some(20.0));
        assert_eq!(cpu.quantile(1.0), Some(26.0));
    }
}
