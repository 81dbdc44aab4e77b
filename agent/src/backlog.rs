//! Where the uplink keeps samples until the collector acknowledges them: memory (`Outbox`) or disk (`Spool`).

use headroom_common::session::Outbox;
use headroom_common::wire::{GapReport, Sample};

/// The uplink's view of unacknowledged samples. Implementations never block on the network and never fail the
/// uplink: a storage problem is logged and counted by the implementation.
pub trait Backlog: Send {
    /// Keep a new sample (dropping the oldest, as a gap, when full).
    fn push(&mut self, sample: Sample);
    /// The collector stored everything through `seq`.
    fn ack(&mut self, seq: u64);
    /// A session starts: the collector holds everything through `last_stored_seq`; nothing is sent yet.
    fn resume(&mut self, last_stored_seq: Option<u64>);
    /// Up to `max` samples not yet sent in this session, oldest first; marks them sent.
    fn next_batch(&mut self, max: usize) -> Vec<Sample>;
    /// Sent in this session and not yet acknowledged.
    fn in_flight(&self) -> usize;
    /// Not yet sent in this session.
    fn unsent(&self) -> usize;
    /// The newest sample held.
    fn newest(&self) -> Option<Sample>;
    /// Gaps to report to the collector; each is returned once.
    fn take_gaps(&mut self) -> Vec<GapReport>;
    /// Unacknowledged samples held.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Samples dropped since start.
    fn dropped(&self) -> u64;
    /// Make what is held durable (no-op in memory).
    fn flush(&mut self) {}
}

impl Backlog for Outbox {
    fn push(&mut self, sample: Sample) {
        Outbox::push(self, sample)
    }
    fn ack(&mut self, seq: u64) {
        Outbox::ack(self, seq)
    }
    fn resume(&mut self, last_stored_seq: Option<u64>) {
        Outbox::resume(self, last_stored_seq)
    }
    fn next_batch(&mut self, max: usize) -> Vec<Sample> {
        Outbox::next_batch(self, max)
    }
    fn in_flight(&self) -> usize {
        Outbox::in_flight(self)
    }
    fn unsent(&self) -> usize {
        Outbox::unsent(self)
    }
    fn newest(&self) -> Option<Sample> {
        Outbox::newest(self).cloned()
    }
    fn take_gaps(&mut self) -> Vec<GapReport> {
        Outbox::take_gaps(self)
    }
    fn len(&self) -> usize {
        Outbox::len(self)
    }
    fn dropped(&self) -> u64 {
        Outbox::dropped(self)
    }
}
