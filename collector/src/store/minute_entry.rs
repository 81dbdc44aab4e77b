//! What the rollup pass holds for one host and minute while it scans raw rows: every metric's statistics
//! and the per-port sums, in a compact form that becomes [`RollupStats`] and [`PortSums`] only when the
//! entry is flushed.
//!
//! Why compact: a pass holds a minute of every host at once (20,000 entries at 20,000 agents, for most of
//! each minute). As `RollupStats` an entry is 22 slots of 64 bytes, a heap vector per sketch and a B-tree
//! node for the ports, about 4.1 KiB for a busy host's minute; here it is one box of per-metric columns
//! (count, sum, min, max, zero count: 30 bytes a metric) with one vector of the sketch buckets of all
//! metrics (16-bit index and count, 4 bytes a bucket), and a sorted vector of ports, about 1.2 KiB
//! (`issue_12_a_pass_entry_holds_a_typical_host_minute_in_under_a_third_of_the_memory` measures both).
//!
//! The columns do the arithmetic of [`MetricStats::add`] in the same order, and the buckets come from the
//! sketch's own [`bucket_of`], so the statistics a flush writes are bit for bit those `RollupStats::add`
//! would have built. What 16 bits cannot hold (more than 65,535 values of one metric in a minute, more than
//! 65,535 buckets in all) turns the entry into `RollupStats`, exactly, and it goes on as that: nothing is
//! ever clamped, and a minute that large is rare enough to pay the full size.

use super::ports::PortSums;
use super::sketch::{bucket_of, MetricStats, RollupStats, Sketch, SketchBucket};
use super::SampleDetail;
use crate::metrics::Metric;
use headroom_common::wire::Listener;

/// Metrics a sample row holds, and so the metrics an entry keeps (what `RollupStats::with_len` is given).
const METRICS: usize = Metric::ALL.len();

/// The listeners of a `samples` row's `detail` (after the metric columns that start at `first`) when
/// `ports`; none when the detail blob does not decode, so such a row loses its per-port counts only.
pub(super) fn row_listeners(
    row: &rusqlite::Row<'_>,
    first: usize,
    ports: bool,
) -> rusqlite::Result<Vec<Listener>> {
    if !ports {
        return Ok(Vec::new());
    }
    let detail = row.get_ref(first + Metric::ALL.len())?.as_blob_or_null();
    Ok(detail
        .ok()
        .flatten()
        .and_then(|b| SampleDetail::decode(b).ok())
        .map(|detail| detail.listeners)
        .unwrap_or_default())
}

/// What one host gathered in one minute of a rollup pass: metric statistics and per-port established sums.
#[derive(Debug)]
pub(crate) struct MinuteEntry {
    stats: CompactStats,
    ports: CompactPorts,
}

impl MinuteEntry {
    pub(crate) fn new() -> MinuteEntry {
        MinuteEntry {
            stats: CompactStats::new(),
            ports: CompactPorts::default(),
        }
    }

    /// Adds one `samples` row whose metric columns ([`metric_columns`](super::schema::metric_columns))
    /// start at `first` and are followed by `detail`. Listeners count only with `ports`; a detail blob that
    /// does not decode loses its per-port counts only.
    pub(crate) fn add_row(
        &mut self,
        row: &rusqlite::Row<'_>,
        first: usize,
        ports: bool,
    ) -> rusqlite::Result<()> {
        for index in 0..METRICS {
            if let Some(value) = row.get::<_, Option<f64>>(first + index)? {
                self.stats.add(index, value);
            }
        }
        self.ports.add_listeners(&row_listeners(row, first, ports)?);
        Ok(())
    }

    /// The statistics and port sums as the rollup stores them.
    pub(crate) fn into_parts(self) -> (RollupStats, PortSums) {
        (self.stats.into_rollup_stats(), self.ports.into_port_sums())
    }
}

/// Every metric's statistics for one host-minute; see the module documentation.
#[derive(Debug)]
enum CompactStats {
    /// Boxed, so that an entry in the pass's B-tree is three words plus the ports: the tree's nodes are
    /// often half full, and a 700-byte value inline would leave that much room empty in every free slot.
    Narrow(Box<NarrowStats>),
    /// What the narrow form could not hold, carried on exactly as `RollupStats::add` goes on.
    Wide(RollupStats),
}

impl CompactStats {
    fn new() -> CompactStats {
        CompactStats::Narrow(Box::new(NarrowStats {
            counts: [0; METRICS],
            sums: [0.0; METRICS],
            mins: [0.0; METRICS],
            maxs: [0.0; METRICS],
            zero_counts: [0; METRICS],
            buckets_from: [0; METRICS],
            buckets: Vec::new(),
        }))
    }

    /// What `RollupStats::add(index, value)` does to statistics made by `RollupStats::with_len(METRICS)`.
    fn add(&mut self, index: usize, value: f64) {
        match self {
            CompactStats::Narrow(narrow) => {
                if !narrow.try_add(index, value) {
                    let mut wide = narrow.to_rollup_stats();
                    wide.add(index, value);
                    *self = CompactStats::Wide(wide);
                }
            }
            CompactStats::Wide(wide) => wide.add(index, value),
        }
    }

    fn into_rollup_stats(self) -> RollupStats {
        match self {
            CompactStats::Narrow(narrow) => narrow.to_rollup_stats(),
            CompactStats::Wide(wide) => wide,
        }
    }
}

/// The statistics of every metric with 16-bit counts and bucket indexes: [`MetricStats`] of each metric
/// in columns, 30 bytes a metric (a struct per metric would be padded to 32), and the buckets of all
/// sketches in one vector.
#[derive(Debug)]
struct NarrowStats {
    /// Values added to each metric; 0 while a metric has none, and then it converts to `None`. Every
    /// other count of a metric (its zero bucket, each bucket) is at most this one, so keeping this one
    /// below `u16::MAX` keeps them all in 16 bits.
    counts: [u16; METRICS],
    sums: [f64; METRICS],
    mins: [f64; METRICS],
    maxs: [f64; METRICS],
    /// Values in each metric's zero bucket.
    zero_counts: [u16; METRICS],
    /// Where each metric's buckets start in `buckets`; they end where the next metric's start.
    buckets_from: [u16; METRICS],
    /// The sketch buckets of every metric: metric 0's, then metric 1's and so on, each metric's sorted by
    /// index, each index once. One vector for all, rather than one per sketch, saves a vector header and
    /// an allocation per metric.
    buckets: Vec<BucketCount>,
}

/// One sketch bucket of one metric. The sketch's indexes run from −1,036 (just above `MIN_INDEXABLE`)
/// to 2,073 (`MAX_INDEXABLE`), well inside 16 bits (`every_sketch_index_fits_in_16_bits`).
#[derive(Debug, Clone, Copy)]
struct BucketCount {
    index: i16,
    count: u16,
}

impl NarrowStats {
    /// Adds `value` to metric `metric`; `false`, changing nothing, when the narrow form cannot hold it: a
    /// metric outside the catalogue, a count at `u16::MAX`, a bucket index beyond 16 bits, or a bucket
    /// past the 65,535 that `buckets_from` can number (22 metrics can touch up to 68,420).
    fn try_add(&mut self, metric: usize, value: f64) -> bool {
        if self.counts.get(metric).is_none_or(|&count| count == u16::MAX) {
            return false;
        }
        match bucket_of(value) {
            None => {}
            Some(SketchBucket::Zero) => self.zero_counts[metric] += 1,
            Some(SketchBucket::Index(bucket)) => {
                let Ok(bucket) = i16::try_from(bucket) else {
                    return false;
                };
                if !self.count_in_bucket(metric, bucket) {
                    return false;
                }
            }
        }
        self.add_to_totals(metric, value);
        true
    }

    /// [`MetricStats::of`] for the first value, [`MetricStats::add_unsketched`] after it: the same
    /// operations in the same order, so the same bits, NaN and signed zeros included.
    fn add_to_totals(&mut self, metric: usize, value: f64) {
        if self.counts[metric] == 0 {
            self.sums[metric] = value;
            self.mins[metric] = value;
            self.maxs[metric] = value;
        } else {
            self.sums[metric] += value;
            self.mins[metric] = self.mins[metric].min(value);
            self.maxs[metric] = self.maxs[metric].max(value);
        }
        self.counts[metric] += 1;
    }

    /// Counts one value in bucket `bucket` of `metric`; `false`, changing nothing, when that needs a new
    /// bucket and `buckets_from` could not number it.
    fn count_in_bucket(&mut self, metric: usize, bucket: i16) -> bool {
        let run = self.bucket_run(metric);
        let from = run.start;
        match self.buckets[run].binary_search_by_key(&bucket, |b| b.index) {
            Ok(at) => self.buckets[from + at].count += 1,
            Err(_) if self.buckets.len() == usize::from(u16::MAX) => return false,
            Err(at) => {
                let first = BucketCount {
                    index: bucket,
                    count: 1,
                };
                insert_growing_by_an_eighth(&mut self.buckets, from + at, first);
                for later in &mut self.buckets_from[metric + 1..] {
                    *later += 1;
                }
            }
        }
        true
    }

    /// Where `metric`'s buckets are in `buckets`.
    fn bucket_run(&self, metric: usize) -> std::ops::Range<usize> {
        let end = self
            .buckets_from
            .get(metric + 1)
            .map_or(self.buckets.len(), |&next| usize::from(next));
        usize::from(self.buckets_from[metric])..end
    }

    /// The statistics `RollupStats::add` would have built from the same values: a slot for every metric,
    /// `None` where a metric got none.
    fn to_rollup_stats(&self) -> RollupStats {
        let metrics = (0..METRICS)
            .map(|metric| {
                (self.counts[metric] > 0).then(|| MetricStats {
                    count: u64::from(self.counts[metric]),
                    sum: self.sums[metric],
                    min: self.mins[metric],
                    max: self.maxs[metric],
                    sketch: Sketch::from_parts(
                        u64::from(self.zero_counts[metric]),
                        self.buckets[self.bucket_run(metric)]
                            .iter()
                            .map(|b| (i32::from(b.index), u64::from(b.count))),
                    ),
                })
            })
            .collect();
        RollupStats { metrics }
    }
}

/// `Vec::insert`, growing a full vector by an eighth (and four) rather than doubling it: an entry stops
/// growing at a size no one can foresee (how many buckets its metrics touch), and doubling would leave up
/// to half of every entry's vector empty for the rest of the pass. The price is about a dozen copies of
/// at most a few hundred bytes per entry and minute.
fn insert_growing_by_an_eighth<T>(items: &mut Vec<T>, at: usize, item: T) {
    if items.len() == items.capacity() {
        items.reserve_exact(items.len() / 8 + 4);
    }
    items.insert(at, item);
}

/// [`PortSums`] as a vector sorted by port: a host's few listening ports in one small allocation (16 bytes
/// a port) rather than a B-tree node (216 bytes), with the same arithmetic.
#[derive(Debug, Default)]
pub(crate) struct CompactPorts {
    ports: Vec<PortSum>,
}

/// One port's (sum of `established`, samples), as [`PortSums`] keeps them.
#[derive(Debug, Clone, Copy)]
struct PortSum {
    port: u16,
    samples: u32,
    established_sum: u64,
}

impl CompactPorts {
    /// [`PortSums::add_listeners`].
    pub(crate) fn add_listeners(&mut self, listeners: &[Listener]) {
        for listener in listeners {
            let at = match self.ports.binary_search_by_key(&listener.port, |p| p.port) {
                Ok(at) => at,
                Err(at) => {
                    let empty = PortSum {
                        port: listener.port,
                        samples: 0,
                        established_sum: 0,
                    };
                    insert_growing_by_an_eighth(&mut self.ports, at, empty);
                    at
                }
            };
            let sum = &mut self.ports[at];
            sum.established_sum += u64::from(listener.established);
            sum.samples += 1;
        }
    }

    pub(crate) fn into_port_sums(self) -> PortSums {
        PortSums::from_ports(
            self.ports
                .into_iter()
                .map(|p| (p.port, (p.established_sum, p.samples))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ports::tests::listener;
    use proptest::prelude::*;
    use std::mem::size_of;

    impl MinuteEntry {
        /// Bytes the entry holds, by capacity: its own size (what the pass's B-tree holds inline) and what
        /// it owns on the heap.
        fn bytes(&self) -> usize {
            let stats = match &self.stats {
                CompactStats::Narrow(narrow) => {
                    size_of::<NarrowStats>() + narrow.buckets.capacity() * size_of::<BucketCount>()
                }
                CompactStats::Wide(wide) => wide.heap_bytes(),
            };
            size_of::<MinuteEntry>() + stats + self.ports.ports.capacity() * size_of::<PortSum>()
        }
    }

    /// A host-minute as the pass held it before: `RollupStats` for every metric and `PortSums`.
    struct FullMinute {
        stats: RollupStats,
        ports: PortSums,
    }

    impl FullMinute {
        fn new() -> FullMinute {
            FullMinute {
                stats: RollupStats::with_len(METRICS),
                ports: PortSums::default(),
            }
        }

        fn bytes(&self) -> usize {
            size_of::<FullMinute>() + self.stats.heap_bytes() + self.ports.heap_bytes()
        }
    }

    /// Every field of every metric, floats by their bits: stricter than `==` on `RollupStats`, which takes
    /// NaN for unequal to itself and 0.0 for equal to −0.0.
    #[allow(clippy::type_complexity)]
    fn bits(stats: &RollupStats) -> Vec<Option<(u64, [u64; 3], Sketch)>> {
        stats
            .metrics
            .iter()
            .map(|slot| {
                slot.as_ref().map(|s| {
                    let floats = [s.sum.to_bits(), s.min.to_bits(), s.max.to_bits()];
                    (s.count, floats, s.sketch.clone())
                })
            })
            .collect()
    }

    /// The statistics both ways from `values` (metric index, value), in order.
    fn both_ways(values: &[(usize, f64)]) -> (CompactStats, RollupStats) {
        let mut compact = CompactStats::new();
        let mut full = RollupStats::with_len(METRICS);
        for &(index, value) in values {
            compact.add(index, value);
            full.add(index, value);
        }
        (compact, full)
    }

    /// What one sample row holds: metric values and listeners.
    struct RowValues {
        metrics: Vec<(Metric, f64)>,
        listeners: Vec<Listener>,
    }

    /// One minute of a busy host at one sample a second, with the noise of the load generator's simulated
    /// hosts (`app/sim.rs`: CPU ±4 points, network ±10 %, memory ±1 point, connections ±5 %) and what a real
    /// kernel adds: pressure, conntrack, the busiest core. The CPU, core, network, connection and
    /// retransmit figures vary; memory, load and pressure drift; the rest stay at zero or one value.
    fn typical_minute() -> Vec<RowValues> {
        let mut rng = fastrand::Rng::with_seed(12);
        let mut noise = |spread: f64| (rng.f64() - 0.5) * 2.0 * spread;
        (0..60)
            .map(|second| {
                let t = f64::from(second) / 60.0;
                let busy = 45.0 + noise(4.0);
                let rx = 2.5e7 * (1.0 + noise(0.1));
                let established = (1500.0 * (1.0 + noise(0.05))).round();
                let retrans = (noise(2.0) + 2.0).floor();
                let mem_pct = 62.0 + noise(1.0);
                let busiest = busy + 15.0 + noise(8.0);
                let metrics = vec![
                    (Metric::CpuBusyPct, busy),
                    (Metric::CpuUserPct, busy * 0.7),
                    (Metric::CpuSystemPct, busy * 0.3),
                    (Metric::CpuIowaitPct, 0.0),
                    (Metric::CpuStealPct, 0.0),
                    (Metric::Load1, 3.6 + 0.1 * t),
                    (Metric::MemUsedPct, mem_pct),
                    (
                        Metric::MemUsedBytes,
                        (mem_pct / 100.0 * 64.0 * 1024f64.powi(3)).round(),
                    ),
                    (Metric::SwapUsedBytes, 0.0),
                    (Metric::PsiCpu, 2.0 + 0.2 * t),
                    (Metric::PsiMemory, 0.0),
                    (Metric::PsiIo, 0.3 + 0.02 * t),
                    (Metric::NetRxBytesPerS, rx),
                    (Metric::NetTxBytesPerS, rx * 1.6),
                    (Metric::TcpEstablished, established),
                    (Metric::TcpTimeWait, (established / 3.0).floor()),
                    (Metric::RetransPerS, retrans),
                    (Metric::ListenOverflowsPerS, 0.0),
                    (Metric::ListenDropsPerS, 0.0),
                    (Metric::ConntrackFillPct, 3.1),
                    (Metric::MaxAcceptQueueFillPct, 0.0),
                    (Metric::CpuBusiestCorePct, busiest),
                ];
                let listeners = vec![
                    listener(22, 1),
                    listener(443, established as u32 - 40),
                    listener(9100, 1),
                ];
                RowValues { metrics, listeners }
            })
            .collect()
    }

    #[test]
    fn issue_12_a_pass_entry_holds_a_typical_host_minute_in_under_a_third_of_the_memory() {
        let minute = typical_minute();
        assert!(minute.iter().all(|row| row.metrics.len() == METRICS));
        let (mut compact, mut full) = (MinuteEntry::new(), FullMinute::new());
        for row in &minute {
            for &(metric, value) in &row.metrics {
                compact.stats.add(metric.index(), value);
                full.stats.add(metric.index(), value);
            }
            compact.ports.add_listeners(&row.listeners);
            full.ports.add_listeners(&row.listeners);
        }
        let (compact_bytes, full_bytes) = (compact.bytes(), full.bytes());
        let CompactStats::Narrow(narrow) = &compact.stats else {
            panic!("a minute of 60 samples stays narrow");
        };
        let buckets = narrow.buckets.len();
        println!(
            "one host-minute (60 samples, 22 metrics, {buckets} sketch buckets, 3 ports): \
             {full_bytes} B as RollupStats and PortSums, {compact_bytes} B as a MinuteEntry"
        );
        // What the compact entry is made of: its own size, the box of 22 × 30 bytes of columns and the
        // bucket vector's header, 16 bytes a port with room for four, and 4 bytes a bucket with at most an
        // eighth (and four) more room. For this minute's buckets that bounds it below 1.25 KiB, under a
        // third of what `RollupStats` and `PortSums` hold for the same minute.
        let fixed = size_of::<MinuteEntry>() + size_of::<NarrowStats>() + 4 * size_of::<PortSum>();
        assert_eq!(fixed, 48 + 688 + 64);
        assert!(
            buckets >= 60,
            "the minute is not as varied as a busy host's: {buckets} buckets"
        );
        let bound = fixed + (buckets + buckets / 8 + 4) * size_of::<BucketCount>();
        assert!(
            compact_bytes <= bound,
            "{compact_bytes} B for {buckets} buckets, bound {bound} B"
        );
        assert!(compact_bytes < 1_280, "{compact_bytes} B");
        assert!(
            compact_bytes * 3 <= full_bytes,
            "{compact_bytes} B against {full_bytes} B"
        );
        let (stats, ports) = compact.into_parts();
        assert_eq!(stats, full.stats);
        assert_eq!(ports, full.ports);
    }

    #[test]
    fn issue_12_a_count_past_16_bits_carries_on_in_rollup_stats() {
        // 70,000 identical values into one bucket (more samples than a minute at one a millisecond holds),
        // with other metrics and buckets before and after the count outgrows 16 bits.
        let mut values = vec![(3, 0.25), (0, 12.0), (0, 0.0), (5, f64::NAN)];
        values.extend(std::iter::repeat_n((0, 7.5), 70_000));
        values.extend([(0, 8.0), (3, 1e12), (21, 4.0), (0, 7.5), (0, -1.0)]);
        let (compact, full) = both_ways(&values);
        assert!(
            matches!(compact, CompactStats::Wide(_)),
            "the count went past 16 bits"
        );
        let compact = compact.into_rollup_stats();
        assert_eq!(bits(&compact), bits(&full));
        assert_eq!(compact.get(0).unwrap().count, 70_005);
        assert_eq!(compact.get(0).unwrap().sketch.count(), 70_005);

        // One short of the limit stays narrow and gives the same.
        let (compact, full) = both_ways(&vec![(7, 7.5); usize::from(u16::MAX)]);
        assert!(matches!(compact, CompactStats::Narrow(_)));
        assert_eq!(bits(&compact.into_rollup_stats()), bits(&full));
    }

    #[test]
    fn a_metric_outside_the_catalogue_lengthens_the_statistics_as_rollup_stats_does() {
        let (compact, full) = both_ways(&[(1, 2.0), (METRICS + 3, 5.0), (1, 3.0)]);
        let compact = compact.into_rollup_stats();
        assert_eq!(compact.metrics.len(), METRICS + 4);
        assert_eq!(compact, full);
    }

    #[test]
    fn every_sketch_index_fits_in_16_bits() {
        let edges = [f64::next_up(1e-9), 1.0, 1e18, f64::MAX, f64::INFINITY];
        for value in edges {
            let Some(SketchBucket::Index(index)) = bucket_of(value) else {
                panic!("{value} has no log bucket");
            };
            assert!(i16::try_from(index).is_ok(), "{value}: index {index}");
        }
        // The ends, as the documentation of `BucketCount` gives them.
        assert_eq!(bucket_of(f64::next_up(1e-9)), Some(SketchBucket::Index(-1036)));
        assert_eq!(bucket_of(f64::INFINITY), Some(SketchBucket::Index(2073)));
        assert_eq!(bucket_of(1e-9), Some(SketchBucket::Zero));
    }

    /// Values from everywhere a metric's value can be: the edges of the sketch (the zero bucket, the clamp)
    /// and of f64 (NaN, infinities, signed zeros, subnormals), a few values over and over so buckets count
    /// past one, magnitudes from far below the zero bucket to far above the clamp, and any f64 at all.
    fn value() -> impl Strategy<Value = f64> {
        let edges = vec![
            f64::NAN,
            0.0,
            -0.0,
            -1.0,
            1e-9,
            1e-10,
            f64::next_up(1e-9),
            1e18,
            2e18,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            5e-324,
        ];
        prop_oneof![
            2 => prop::sample::select(edges),
            3 => prop::sample::select(vec![1.0, 2.5, 42.0, 99.9, 1.5e9]),
            3 => (-12.0f64..21.0).prop_map(|exponent| 10f64.powf(exponent)),
            1 => -1e6f64..1e6,
            1 => any::<f64>(),
        ]
    }

    proptest! {
        #[test]
        fn issue_12_a_pass_entry_gives_the_statistics_rollup_stats_add_gives(
            values in prop::collection::vec((0..METRICS, value()), 0..600),
        ) {
            let (compact, full) = both_ways(&values);
            prop_assert!(matches!(compact, CompactStats::Narrow(_)));
            let compact = compact.into_rollup_stats();
            prop_assert_eq!(compact.metrics.len(), METRICS);
            prop_assert_eq!(bits(&compact), bits(&full));
            let nan = |s: &MetricStats| s.sum.is_nan() || s.min.is_nan() || s.max.is_nan();
            if !full.metrics.iter().flatten().any(nan) {
                prop_assert_eq!(compact, full);
            }
        }

        #[test]
        fn issue_12_a_pass_entry_gives_the_port_sums_port_sums_give(
            samples in prop::collection::vec(
                prop::collection::vec((prop::sample::select(vec![22u16, 80, 443, 5432, 9100]), any::<u32>()), 0..5),
                0..60,
            ),
        ) {
            let (mut compact, mut full) = (CompactPorts::default(), PortSums::default());
            for sample in &samples {
                let listeners: Vec<Listener> = sample.iter().map(|&(port, n)| listener(port, n)).collect();
                compact.add_listeners(&listeners);
                full.add_listeners(&listeners);
            }
            prop_assert_eq!(compact.into_port_sums(), full);
        }
    }

    proptest! {
        // Each case adds 65,536 values both ways, so fewer cases than the default 256.
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn issue_12_an_entry_that_outgrows_16_bits_mid_minute_goes_on_as_rollup_stats_would(
            before in prop::collection::vec((0..METRICS, value()), 0..300),
            (metric, repeated) in (0..METRICS, value()),
            after in prop::collection::vec((0..METRICS, value()), 0..300),
        ) {
            let mut values = before;
            values.extend(std::iter::repeat_n((metric, repeated), usize::from(u16::MAX) + 1));
            values.extend(after);
            let (compact, full) = both_ways(&values);
            prop_assert!(matches!(compact, CompactStats::Wide(_)));
            prop_assert_eq!(bits(&compact.into_rollup_stats()), bits(&full));
        }
    }
}
