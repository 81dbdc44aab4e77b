//! Where the uplink keeps samples until the collector acknowledges them: memory (`Outbox`) or disk (`Spool`).

use headroom_common::session::Outbox;
use headroom_common::wire::{GapReport, Sample};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// The backlog shared by the sampling loop (which appends) and the uplink (which sends and acknowledges).
///
/// Appending never waits on the network: whatever the uplink is doing (connecting, waiting out a backoff,
/// blocked on flow control), a new sample goes straight to the spool. Each lock is held for one call only.
#[derive(Clone)]
pub struct SharedBacklog {
    inner: Arc<Mutex<Box<dyn Backlog>>>,
    arrived: Arc<Notify>,
}

impl SharedBacklog {
    pub fn new(backlog: Box<dyn Backlog>) -> Self {
        SharedBacklog {
            inner: Arc::new(Mutex::new(backlog)),
            arrived: Arc::new(Notify::new()),
        }
    }

    /// Keep a new sample and wake the uplink.
    pub fn push(&self, sample: Sample) {
        self.with(|backlog| backlog.push(sample));
        self.arrived.notify_one();
    }

    /// Run `f` on the backlog under its lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut dyn Backlog) -> R) -> R {
        let mut guard = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(guard.as_mut())
    }

    /// Resolves when a sample was pushed since the last call.
    pub async fn arrived(&self) {
        self.arrived.notified().await
    }
}

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

/// The on-disk spool as the uplink's backlog: samples survive agent restarts and collector outages.
///
/// The spool holds the samples; this adapter adds what belongs to one session: how far it has sent, the
/// newest sample (for live updates ahead of a backlog), and the count of samples it could not keep.
pub struct SpoolBacklog {
    spool: crate::spool::Spool,
    sent_through: Option<u64>,
    acked_through: Option<u64>,
    newest: Option<Sample>,
    dropped: u64,
    /// True after a write error was logged, so a full disk is one warning, not one per second.
    write_failing: bool,
}

impl SpoolBacklog {
    pub fn new(spool: crate::spool::Spool) -> Self {
        let acked_through = spool.acked_through();
        SpoolBacklog {
            spool,
            sent_through: acked_through,
            acked_through,
            newest: None,
            dropped: 0,
            write_failing: false,
        }
    }

    fn first_unacked(&self) -> u64 {
        self.acked_through.map_or(1, |seq| seq + 1)
    }
}

impl Backlog for SpoolBacklog {
    fn push(&mut self, sample: Sample) {
        match self.spool.append(&sample) {
            Ok(()) => {
                if self.write_failing {
                    tracing::info!("spool writes work again");
                    self.write_failing = false;
                }
            }
            Err(error) => {
                self.dropped += 1;
                if !self.write_failing {
                    tracing::warn!(%error, seq = sample.seq, "cannot write the spool; samples are being lost");
                    self.write_failing = true;
                }
            }
        }
        self.newest = Some(sample);
    }

    fn ack(&mut self, seq: u64) {
        self.acked_through = self.acked_through.max(Some(seq));
        if let Err(error) = self.spool.ack(seq) {
            tracing::warn!(%error, seq, "cannot record the acknowledgement in the spool; it will be resent");
        }
    }

    fn resume(&mut self, last_stored_seq: Option<u64>) {
        if let Some(seq) = last_stored_seq {
            self.ack(seq);
        }
        // Everything not stored goes out again, starting after what the collector holds.
        self.sent_through = last_stored_seq;
    }

    fn next_batch(&mut self, max: usize) -> Vec<Sample> {
        match self.spool.read_after(self.sent_through, max) {
            Ok(batch) => {
                if let Some(last) = batch.last() {
                    self.sent_through = Some(last.seq);
                }
                batch
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the spool");
                Vec::new()
            }
        }
    }

    fn in_flight(&self) -> usize {
        let sent = self.sent_through.map_or(0, |seq| seq + 1);
        sent.saturating_sub(self.first_unacked()) as usize
    }

    fn unsent(&self) -> usize {
        let newest = self.spool.last_seq().unwrap_or(0);
        newest.saturating_sub(self.sent_through.unwrap_or(0).max(self.first_unacked() - 1)) as usize
    }

    fn newest(&self) -> Option<Sample> {
        self.newest.clone()
    }

    fn take_gaps(&mut self) -> Vec<GapReport> {
        self.spool.take_gaps().into_iter().map(GapReport::from).collect()
    }

    fn len(&self) -> usize {
        let newest = self.spool.last_seq().unwrap_or(0);
        (newest + 1).saturating_sub(self.first_unacked()) as usize
    }

    fn dropped(&self) -> u64 {
        self.dropped
    }

    fn flush(&mut self) {
        if let Err(error) = self.spool.flush() {
            tracing::warn!(%error, "cannot flush the spool");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: u64) -> Sample {
        Sample {
            seq,
            timestamp_ms: seq * 1000,
            ..Default::default()
        }
    }

    #[test]
    fn spool_backlog_resends_what_the_collector_lacks_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = crate::spool::Spool::open(&dir.path().join("spool"), 1 << 20).unwrap();
        let mut backlog = SpoolBacklog::new(spool);
        for seq in 1..=10 {
            backlog.push(sample(seq));
        }
        backlog.resume(None);
        let seqs = |batch: Vec<Sample>| batch.iter().map(|s| s.seq).collect::<Vec<_>>();
        assert_eq!(seqs(backlog.next_batch(4)), vec![1, 2, 3, 4]);
        assert_eq!((backlog.in_flight(), backlog.unsent()), (4, 6));
        backlog.ack(4);
        assert_eq!(backlog.in_flight(), 0);
        backlog.flush();
        drop(backlog);

        // The agent restarts; the collector had stored through 6 (acks for 5 and 6 were lost in flight).
        let (spool, _) = crate::spool::Spool::open(&dir.path().join("spool"), 1 << 20).unwrap();
        assert_eq!(
            spool.last_seq(),
            Some(10),
            "the sequence continues from the spool"
        );
        let mut backlog = SpoolBacklog::new(spool);
        backlog.resume(Some(6));
        assert_eq!(seqs(backlog.next_batch(100)), vec![7, 8, 9, 10]);
        assert_eq!(backlog.len(), 4);
    }
}
