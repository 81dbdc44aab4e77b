//! Where the uplink keeps samples until the collector acknowledges them: memory (`Outbox`) or disk (`Spool`).

use crate::spool::{Gap, GapReason};
use headroom_common::session::Outbox;
use headroom_common::wire::{GapReport, Sample};
use std::collections::VecDeque;
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

/// Default bound of the in-memory queue that stands in for the spool while it cannot be written: ten minutes
/// at 1 Hz, a few megabytes at most.
pub const DEFAULT_MEMORY_MAX_SAMPLES: usize = 600;

/// The on-disk spool as the uplink's backlog: samples survive agent restarts and collector outages.
///
/// The spool holds the samples; this adapter adds what belongs to one session: how far it has sent, the
/// newest sample (for live updates ahead of a backlog), and the count of samples it could not keep.
///
/// While the spool cannot be written (a full disk, an I/O error), new samples wait in a bounded in-memory
/// queue, `unspooled`, and are sent from there; every sample in it is newer than everything in the spool. Each
/// new sample first retries the spool with the oldest waiting one, so the spool takes them back in order as
/// soon as it can. When the queue is full its oldest sample is dropped and reported to the collector as a gap
/// with reason `spool_write_failed`, exactly as a full spool reports what it drops.
pub struct SpoolBacklog {
    spool: crate::spool::Spool,
    sent_through: Option<u64>,
    acked_through: Option<u64>,
    newest: Option<Sample>,
    dropped: u64,
    /// Samples the spool could not take, oldest first.
    unspooled: VecDeque<Sample>,
    memory_max_samples: usize,
    /// Samples lost because neither the spool nor the queue could keep them, not yet reported.
    write_gaps: Vec<Gap>,
    /// True after a write error was logged, so a full disk is one warning, not one per second.
    write_failing: bool,
    /// True after the queue overflowed and that was logged.
    memory_full: bool,
}

impl SpoolBacklog {
    pub fn new(spool: crate::spool::Spool) -> Self {
        Self::with_memory_max(spool, DEFAULT_MEMORY_MAX_SAMPLES)
    }

    /// `memory_max_samples` bounds the queue used while the spool cannot be written.
    pub fn with_memory_max(spool: crate::spool::Spool, memory_max_samples: usize) -> Self {
        let acked_through = spool.acked_through();
        SpoolBacklog {
            spool,
            sent_through: acked_through,
            acked_through,
            newest: None,
            dropped: 0,
            unspooled: VecDeque::new(),
            memory_max_samples,
            write_gaps: Vec::new(),
            write_failing: false,
            memory_full: false,
        }
    }

    fn first_unacked(&self) -> u64 {
        self.acked_through.map_or(1, |seq| seq + 1)
    }

    /// Append to the spool; true if the sample is in it (an error after the record was written, such as a
    /// failed sync, still leaves it there).
    fn try_spool(&mut self, sample: &Sample) -> bool {
        match self.spool.append(sample) {
            Ok(()) => true,
            Err(error) => {
                let kept = self.spool.last_seq().is_some_and(|last| last >= sample.seq);
                if !self.write_failing {
                    if kept {
                        tracing::warn!(%error, seq = sample.seq, "spool write may not be durable");
                    } else {
                        tracing::warn!(
                            %error,
                            seq = sample.seq,
                            max_samples = self.memory_max_samples,
                            "cannot write the spool; keeping new samples in memory until it can be written"
                        );
                    }
                    self.write_failing = true;
                }
                kept
            }
        }
    }

    /// Move waiting samples into the spool, oldest first, until one does not go in.
    fn drain_to_spool(&mut self) {
        while let Some(front) = self.unspooled.front().cloned() {
            if !self.try_spool(&front) {
                return;
            }
            self.unspooled.pop_front();
        }
    }

    fn keep_in_memory(&mut self, sample: Sample) {
        if self.unspooled.len() >= self.memory_max_samples {
            let lost = if self.memory_max_samples == 0 {
                Some(sample.clone())
            } else {
                self.unspooled.pop_front()
            };
            if let Some(lost) = lost {
                self.dropped += 1;
                if !self.memory_full {
                    tracing::warn!(
                        seq = lost.seq,
                        max_samples = self.memory_max_samples,
                        "spool cannot be written and the in-memory queue is full; dropping the oldest samples \
                         (they are reported to the collector as a gap)"
                    );
                    self.memory_full = true;
                }
                self.note_lost(&lost);
            }
            if self.memory_max_samples == 0 {
                return;
            }
        }
        self.unspooled.push_back(sample);
    }

    fn note_lost(&mut self, sample: &Sample) {
        match self.write_gaps.last_mut() {
            Some(gap) if gap.to_seq.checked_add(1) == Some(sample.seq) => {
                gap.to_seq = sample.seq;
                gap.to_ms = gap.to_ms.max(sample.timestamp_ms);
                gap.count += 1;
            }
            _ => self.write_gaps.push(Gap {
                from_seq: sample.seq,
                to_seq: sample.seq,
                from_ms: sample.timestamp_ms,
                to_ms: sample.timestamp_ms,
                count: 1,
                reason: GapReason::WriteFailed,
            }),
        }
    }
}

impl Backlog for SpoolBacklog {
    fn push(&mut self, sample: Sample) {
        self.drain_to_spool();
        if self.unspooled.is_empty() && self.try_spool(&sample) {
            if self.write_failing {
                tracing::info!("spool writes work again; samples kept in memory are on disk");
                self.write_failing = false;
                self.memory_full = false;
            }
        } else {
            self.keep_in_memory(sample.clone());
        }
        self.newest = Some(sample);
    }

    fn ack(&mut self, seq: u64) {
        self.acked_through = self.acked_through.max(Some(seq));
        while self.unspooled.front().is_some_and(|s| s.seq <= seq) {
            self.unspooled.pop_front();
        }
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
        let mut batch = match self.spool.read_after(self.sent_through, max) {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, "cannot read the spool");
                return Vec::new();
            }
        };
        // What waits in memory comes after everything on disk.
        let after = batch.last().map(|s| s.seq).max(self.sent_through);
        let room = max.saturating_sub(batch.len());
        batch.extend(
            self.unspooled
                .iter()
                .filter(|s| after.is_none_or(|after| s.seq > after))
                .take(room)
                .cloned(),
        );
        if let Some(last) = batch.last() {
            self.sent_through = Some(last.seq);
        }
        batch
    }

    fn in_flight(&self) -> usize {
        let Some(sent) = self.sent_through else {
            return 0;
        };
        let on_disk = (sent.min(self.spool.last_seq().unwrap_or(0)) + 1).saturating_sub(self.first_unacked());
        on_disk as usize + self.unspooled.iter().take_while(|s| s.seq <= sent).count()
    }

    fn unsent(&self) -> usize {
        let done = self.sent_through.unwrap_or(0).max(self.first_unacked() - 1);
        let on_disk = self.spool.last_seq().unwrap_or(0).saturating_sub(done) as usize;
        on_disk + self.unspooled.iter().filter(|s| s.seq > done).count()
    }

    fn newest(&self) -> Option<Sample> {
        self.newest.clone()
    }

    fn take_gaps(&mut self) -> Vec<GapReport> {
        let mut gaps: Vec<GapReport> = self.spool.take_gaps().into_iter().map(GapReport::from).collect();
        gaps.extend(self.write_gaps.drain(..).map(GapReport::from));
        gaps
    }

    fn len(&self) -> usize {
        // Everything waiting in memory is newer than everything on disk.
        let on_disk = (self.spool.last_seq().unwrap_or(0) + 1).saturating_sub(self.first_unacked()) as usize;
        on_disk + self.unspooled.len()
    }

    fn dropped(&self) -> u64 {
        self.dropped
    }

    fn flush(&mut self) {
        // Last chance for what waits in memory: onto the disk, or else into the gaps the spool persists, so
        // that the next start reports it rather than leaving a silent hole.
        self.drain_to_spool();
        for lost in std::mem::take(&mut self.unspooled) {
            self.dropped += 1;
            self.note_lost(&lost);
        }
        for gap in std::mem::take(&mut self.write_gaps) {
            let (from_seq, to_seq, count) = (gap.from_seq, gap.to_seq, gap.count);
            if let Err(error) = self.spool.record_gap(gap) {
                tracing::warn!(%error, from_seq, to_seq, count,
                    "samples lost to a spool that could not be written cannot be recorded either; \
                     the collector will see them missing without a reason");
            }
        }
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

    /// Issue 11: while the spool cannot be written, samples wait in memory and are sent from there; what the
    /// bounded queue cannot keep is reported as a `spool_write_failed` gap; the spool takes the rest back in
    /// order once it can be written again.
    #[test]
    fn issue_11_an_unwritable_spool_keeps_samples_in_memory_and_reports_the_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join("spool");
        let (spool, _) = crate::spool::Spool::open(&spool_dir, 1 << 20).unwrap();
        let mut backlog = SpoolBacklog::with_memory_max(spool, 3);
        // The spool's directory disappears: no segment can be created.
        std::fs::remove_dir_all(&spool_dir).unwrap();
        for seq in 1..=5 {
            backlog.push(sample(seq));
        }
        assert_eq!(backlog.dropped(), 2, "two samples did not fit a 3-sample queue");
        assert_eq!(backlog.len(), 3);
        backlog.resume(None);
        let seqs = |batch: Vec<Sample>| batch.iter().map(|s| s.seq).collect::<Vec<_>>();
        assert_eq!(seqs(backlog.next_batch(10)), vec![3, 4, 5]);
        assert_eq!((backlog.in_flight(), backlog.unsent()), (3, 0));
        let gaps = backlog.take_gaps();
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(
            (
                gaps[0].from_seq,
                gaps[0].to_seq,
                gaps[0].count,
                gaps[0].reason.as_str()
            ),
            (1, 2, 2, "spool_write_failed")
        );
        assert!(backlog.take_gaps().is_empty(), "a gap is reported once");
        backlog.ack(4);
        assert_eq!(backlog.len(), 1);

        // The disk works again: the waiting sample goes to the spool first, then the new one, in order.
        std::fs::create_dir_all(&spool_dir).unwrap();
        backlog.push(sample(6));
        assert_eq!(
            seqs(backlog.next_batch(10)),
            vec![6],
            "5 was already sent in this session"
        );
        backlog.resume(Some(4));
        assert_eq!(seqs(backlog.next_batch(10)), vec![5, 6], "both are on disk now");
        backlog.flush();
        drop(backlog);
        let (mut spool, _) = crate::spool::Spool::open(&spool_dir, 1 << 20).unwrap();
        assert_eq!(seqs(spool.read_after(Some(4), 10).unwrap()), vec![5, 6]);
    }

    #[test]
    fn issue_11_samples_still_in_memory_at_stop_are_persisted_as_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join("spool");
        let (spool, _) = crate::spool::Spool::open(&spool_dir, 1 << 20).unwrap();
        // A directory where the first segment file would go: segments cannot be written, the gaps file can.
        let blocker = spool_dir.join("00000000000000000001.seg");
        std::fs::create_dir(&blocker).unwrap();
        let mut backlog = SpoolBacklog::with_memory_max(spool, 10);
        for seq in 1..=3 {
            backlog.push(sample(seq));
        }
        assert_eq!((backlog.len(), backlog.dropped()), (3, 0));
        backlog.flush();
        assert_eq!(backlog.dropped(), 3, "nothing acknowledged them before the stop");
        drop(backlog);
        std::fs::remove_dir(&blocker).unwrap();
        let (mut spool, _) = crate::spool::Spool::open(&spool_dir, 1 << 20).unwrap();
        let gaps = spool.take_gaps();
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        let gap = GapReport::from(gaps[0].clone());
        assert_eq!(
            (gap.from_seq, gap.to_seq, gap.count, gap.reason.as_str()),
            (1, 3, 3, "spool_write_failed")
        );
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
