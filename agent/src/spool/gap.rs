//! Gaps: runs of samples that will never reach the collector, and why.

use headroom_common::wire::GapReport;

/// Why samples are missing: the wire's enum, so the agent and the collector name reasons alike.
pub use headroom_common::wire::GapReason;

/// A run of samples that will never reach the collector.
///
/// For `SpoolFull` the times are those of the first and last sample dropped. For `Corrupt` the lost samples
/// could not be read, so the times are those of the readable samples on either side of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub from_seq: u64,
    pub to_seq: u64,
    pub from_ms: u64,
    pub to_ms: u64,
    /// Samples lost; for `SpoolFull` exactly those deleted, for `Corrupt` the sequence numbers missing.
    pub count: u64,
    pub reason: GapReason,
}

impl From<Gap> for GapReport {
    fn from(gap: Gap) -> GapReport {
        GapReport {
            from_seq: gap.from_seq,
            to_seq: gap.to_seq,
            from_ms: gap.from_ms,
            to_ms: gap.to_ms,
            count: gap.count,
            reason: gap.reason,
        }
    }
}
