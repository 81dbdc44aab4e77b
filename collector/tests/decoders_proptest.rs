//! Property tests for the collector's decoders of stored and configured bytes: the rollup blob, the per-port
//! sums, the sample detail blob, the config file and the alarm rules. A damaged database or a bad file must be
//! an error, never a panic.

use headroom_collector::store::ports::PortSums;
use headroom_collector::store::sketch::RollupStats;
use headroom_collector::store::SampleDetail;
use proptest::collection::vec;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn stored_blobs_decode_without_panicking(bytes in vec(any::<u8>(), 0..1024)) {
        let _ = RollupStats::decode(&bytes);
        let _ = PortSums::decode(&bytes);
        let _ = SampleDetail::decode(&bytes);
    }

    #[test]
    fn a_truncated_or_flipped_rollup_blob_is_an_error_or_a_value_never_a_panic(
        cut in 0usize..4096, flip in any::<(usize, u8)>(),
    ) {
        let blob = RollupStats::default().encode();
        let _ = RollupStats::decode(&blob[..cut.min(blob.len())]);
        let mut flipped = blob.clone();
        if !flipped.is_empty() {
            let at = flip.0 % flipped.len();
            flipped[at] ^= flip.1;
        }
        let _ = RollupStats::decode(&flipped);
    }

    #[test]
    fn config_and_rules_parsers_never_panic(
        text in any::<String>(),
        toml_ish in "(\\[{1,2}[a-z_.]{1,12}\\]{1,2}\n)?([a-z_]{1,16} ?= ?\"?[a-z0-9/:.%]{0,20}\"?\n){0,8}",
    ) {
        for input in [&text, &toml_ish] {
            let _ = headroom_collector::config::parse(input, "collector.toml");
            let _ = headroom_collector::analytics::alarms::parse(input, "alarms.toml");
        }
    }
}
