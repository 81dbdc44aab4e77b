//! The blobs the store reads back: rollup statistics with their sketches, per-port sums, sample details.
#![no_main]
use headroom_collector::store::ports::PortSums;
use headroom_collector::store::sketch::RollupStats;
use headroom_collector::store::SampleDetail;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(stats) = RollupStats::decode(data) {
        // What decodes must encode again and decode to the same bytes (compared as bytes: NaN is not equal
        // to itself).
        let encoded = stats.encode();
        let again = RollupStats::decode(&encoded).expect("an encoded blob decodes");
        assert_eq!(again.encode(), encoded);
    }
    let _ = PortSums::decode(data);
    let _ = SampleDetail::decode(data);
});
