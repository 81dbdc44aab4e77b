//! Merging many encoded rollup blobs into one total without building a [`RollupStats`] per blob.
//!
//! A 30-day window is about 720 hour blobs per host. Decoding each into its own sparse sketches and
//! merging those one by one built and dropped millions of small maps per report; here each blob is read
//! straight into running totals whose sketch buckets are a dense array over every index a sketch can
//! hold, and metrics the caller does not want are only checked, never summed. The result is the same
//! [`RollupStats`] that decoding and merging blob by blob gives (same counts, the same floating-point sums
//! in the same order, the same min, max and buckets).

use super::sketch::{
    get_f64, get_varint, read_buckets, take, DecodeError, MetricStats, RollupStats, Sketch, STATS_FORMAT,
};
use std::collections::BTreeMap;

/// Lowest bucket index the dense array holds. Every value a sketch indexes lies in (1e-9, 1e18], whose
/// indexes are -1036..=2073 at 1 % accuracy; the margin keeps them all dense. Anything outside (only a
/// damaged blob could hold it) is kept in a sparse map, so no input changes the answer.
const DENSE_LOW: i32 = -1100;
/// One past the highest bucket index the dense array holds.
const DENSE_HIGH: i32 = 2100;

/// Which metrics ([`crate::metrics::Metric::ALL`] indexes) a merge keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// Every metric.
    All,
    /// Only this one; the others come out as `None`.
    One(usize),
}

impl Wanted {
    fn keeps(self, index: usize) -> bool {
        match self {
            Wanted::All => true,
            Wanted::One(one) => one == index,
        }
    }
}

/// One metric's running total.
#[derive(Debug)]
struct Total {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    zero_count: u64,
    /// Count per bucket index `DENSE_LOW + i`; empty for a sparse merger.
    dense: Vec<u64>,
    /// Buckets outside the dense range (every bucket of a sparse merger).
    sparse: BTreeMap<i32, u64>,
}

impl Total {
    fn add_bucket(&mut self, index: i32, count: u64) {
        if !self.dense.is_empty() && (DENSE_LOW..DENSE_HIGH).contains(&index) {
            self.dense[(index - DENSE_LOW) as usize] += count;
        } else {
            *self.sparse.entry(index).or_insert(0) += count;
        }
    }

    fn finish(self) -> MetricStats {
        let dense = self
            .dense
            .iter()
            .enumerate()
            .filter(|(_, &count)| count > 0)
            .map(|(offset, &count)| (DENSE_LOW + offset as i32, count));
        MetricStats {
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
            sketch: Sketch::from_parts(self.zero_count, self.sparse.into_iter().chain(dense)),
        }
    }
}

/// Running totals of encoded rollup blobs; see the module documentation.
#[derive(Debug)]
pub struct RollupMerger {
    wanted: Wanted,
    totals: Vec<Option<Total>>,
    /// Whether each kept metric's buckets go to a dense array (many blobs into one total) or all to the
    /// map (a few blobs each into many totals held at once, where 25 KiB per total would add up).
    dense: bool,
}

impl RollupMerger {
    pub fn new(wanted: Wanted) -> Self {
        RollupMerger {
            wanted,
            totals: Vec::new(),
            dense: true,
        }
    }

    /// A merger that keeps its buckets in a map: small when it sees few blobs, slower when it sees many.
    /// Its answers are those of [`RollupMerger::new`].
    pub fn sparse(wanted: Wanted) -> Self {
        RollupMerger {
            dense: false,
            ..RollupMerger::new(wanted)
        }
    }

    /// Adds one encoded blob (as written by [`RollupStats::encode`]); a blob that does not decode is
    /// rejected with the same error [`RollupStats::decode`] gives, and leaves the totals partly updated.
    pub fn add_encoded(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let mut input = bytes;
        if take(&mut input, 1)?[0] != STATS_FORMAT {
            return Err(DecodeError("unknown stats format version"));
        }
        let len = get_varint(&mut input)?;
        if len > 4096 {
            return Err(DecodeError("too many metrics"));
        }
        let len = len as usize;
        if self.totals.len() < len {
            self.totals.resize_with(len, || None);
        }
        for index in 0..len {
            match take(&mut input, 1)?[0] {
                0 => {}
                1 => {
                    let count = get_varint(&mut input)?;
                    let sum = get_f64(&mut input)?;
                    let min = get_f64(&mut input)?;
                    let max = get_f64(&mut input)?;
                    let dense = self.dense;
                    let mut total = if self.wanted.keeps(index) {
                        Some(self.totals[index].get_or_insert_with(|| Total {
                            count: 0,
                            sum: -0.0,
                            min,
                            max,
                            zero_count: 0,
                            dense: if dense {
                                vec![0; (DENSE_HIGH - DENSE_LOW) as usize]
                            } else {
                                Vec::new()
                            },
                            sparse: BTreeMap::new(),
                        }))
                    } else {
                        None
                    };
                    let zero_count = get_varint(&mut input)?;
                    if let Some(total) = total.as_deref_mut() {
                        // The sum starts at -0.0, the identity of floating-point addition, so the
                        // totals are bit for bit what merging decoded blobs one by one gives.
                        total.sum += sum;
                        total.count += count;
                        total.min = total.min.min(min);
                        total.max = total.max.max(max);
                        total.zero_count += zero_count;
                    }
                    read_buckets(&mut input, |bucket, count| {
                        if let Some(total) = total.as_deref_mut() {
                            total.add_bucket(bucket, count);
                        }
                    })?;
                }
                _ => return Err(DecodeError("bad presence byte")),
            }
        }
        Ok(())
    }

    /// The merged statistics, in the shape [`RollupStats::merge`] would have built.
    pub fn finish(self) -> RollupStats {
        RollupStats {
            metrics: self
                .totals
                .into_iter()
                .map(|total| total.map(Total::finish))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hourly-like blobs from a seeded generator: values across magnitudes, zeros, metrics missing in
    /// some blobs and blobs of different lengths.
    fn blobs(seed: u64, count: usize) -> Vec<Vec<u8>> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..count)
            .map(|_| {
                let len = rng.usize(1..=12);
                let mut stats = RollupStats::with_len(len);
                for index in 0..len {
                    if rng.u8(..10) == 0 {
                        continue;
                    }
                    let scale = 10f64.powi(rng.i32(-12..=20));
                    for _ in 0..rng.usize(1..=60) {
                        let value = match rng.u8(..20) {
                            0 => 0.0,
                            1 => 1e-12,
                            _ => rng.f64() * scale,
                        };
                        stats.add(index, value);
                    }
                }
                stats.encode()
            })
            .collect()
    }

    fn merged_one_by_one(blobs: &[Vec<u8>]) -> RollupStats {
        let mut total = RollupStats::default();
        for blob in blobs {
            total.merge(&RollupStats::decode(blob).unwrap());
        }
        total
    }

    #[test]
    fn issue_10_merging_encoded_blobs_answers_like_decoding_each() {
        for seed in 0..20 {
            let input = blobs(seed, 720);
            let expected = merged_one_by_one(&input);
            let mut merger = RollupMerger::new(Wanted::All);
            let mut sparse = RollupMerger::sparse(Wanted::All);
            for blob in &input {
                merger.add_encoded(blob).unwrap();
                sparse.add_encoded(blob).unwrap();
            }
            let got = merger.finish();
            assert_eq!(got, expected, "seed {seed}");
            assert_eq!(sparse.finish(), expected, "seed {seed}, sparse");
            for (index, stats) in expected.metrics.iter().enumerate() {
                let Some(stats) = stats else { continue };
                let mine = got.get(index).unwrap();
                assert_eq!(
                    mine.sum.to_bits(),
                    stats.sum.to_bits(),
                    "seed {seed} metric {index}"
                );
                for q in [0.0, 0.01, 0.5, 0.9, 0.99, 0.999, 1.0] {
                    assert_eq!(
                        mine.quantile(q),
                        stats.quantile(q),
                        "seed {seed} metric {index} q {q}"
                    );
                }
                // One metric alone, on a few of the seeds: a merge per metric is the test's longest part.
                if seed >= 4 {
                    continue;
                }
                let mut one = RollupMerger::new(Wanted::One(index));
                for blob in &input {
                    one.add_encoded(blob).unwrap();
                }
                let one = one.finish();
                assert_eq!(one.get(index), Some(stats), "seed {seed} metric {index} alone");
                assert!(one
                    .metrics
                    .iter()
                    .enumerate()
                    .all(|(i, m)| i == index || m.is_none()));
            }
        }
    }

    #[test]
    fn issue_10_merger_rejects_what_decode_rejects() {
        let good = blobs(7, 1).remove(0);
        let mut cases = vec![Vec::new(), vec![9, 1, 0], vec![STATS_FORMAT, 1, 2]];
        cases.extend((1..good.len()).map(|cut| good[..cut].to_vec()));
        for case in cases {
            let expected = RollupStats::decode(&case).unwrap_err();
            let got = RollupMerger::new(Wanted::All).add_encoded(&case).unwrap_err();
            assert_eq!(got, expected, "{case:?}");
        }
        // Indexes outside the dense range (only a damaged blob holds them) are still counted.
        let mut stats = RollupStats::with_len(1);
        stats.add(0, 1.0);
        let blob = stats.encode();
        let mut far = vec![STATS_FORMAT, 1, 1, 1];
        far.extend_from_slice(&1f64.to_le_bytes());
        far.extend_from_slice(&1f64.to_le_bytes());
        far.extend_from_slice(&1f64.to_le_bytes());
        // Zero count 0, one bucket: index -10,000 (zigzag 19,999), count 1.
        far.extend_from_slice(&[0, 1, 0x9f, 0x9c, 0x01, 1]);
        let mut merger = RollupMerger::new(Wanted::All);
        merger.add_encoded(&far).unwrap();
        merger.add_encoded(&blob).unwrap();
        let mut expected = RollupStats::decode(&far).unwrap();
        assert_eq!(expected.get(0).unwrap().sketch.bucket_count(), 1);
        expected.merge(&RollupStats::decode(&blob).unwrap());
        assert_eq!(merger.finish(), expected);
    }
}
