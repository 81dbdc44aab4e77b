//! The agent's crash-safe on-disk spool: every sample the collector has not yet acknowledged, within a cap.
//!
//! # Layout
//! `<state_dir>/spool/` holds segment files named by the first sequence number they hold
//! (`00000000000000000001.seg`), each a run of checksummed records (see `record`); `acked-through`, the
//! highest sequence number the collector has stored; and `pending-gaps`, samples dropped and not yet reported.
//! Segments are about a sixteenth of the cap (4 MiB at the default 64 MiB), so that forgetting acknowledged
//! samples and dropping the oldest when full are both a file deletion, never a rewrite.
//!
//! # What 64 MiB holds
//! A real sample of this 2-core test host (3 interfaces, 1 listening port) takes 239 bytes in the spool, its
//! 10-byte record header included; `agent/tests/spool_recovery.rs` measures it from a `Sampler` and prints it.
//! At 1 Hz the default 64 MiB cap holds about 78 hours (3.2 days) of such samples. A host with 64 cores,
//! 10 interfaces and 100 listening ports, with the counters of a long uptime, takes about 2.7 KB a sample
//! (per-core CPU times dominate), so the same cap holds about 6.8 hours; such hosts want a larger cap.
//!
//! # Durability
//! Records are appended with one `write_all` each to an unbuffered file, so every sample is in the page cache
//! when `append` returns: a crash of the agent (`kill -9`, a panic, the OOM killer) loses nothing. Only a
//! kernel crash or a power loss can lose what is not yet on disk, so the spool calls `fdatasync` every
//! `SYNC_EVERY_RECORDS` records (10 s at 1 Hz), when it starts a new segment, and on `flush` (clean shutdown).
//! Syncing every sample would cost a journal commit a second on every host for samples that a power loss
//! takes together with everything else the host was doing; after such a loss the agent's sequence reservation
//! keeps the lost numbers from being reused, so the collector sees them as a gap.
//!
//! The ack mark is rewritten on every acknowledgement without a sync (it may lag: the collector drops the
//! duplicates a stale mark causes) and with a sync just before the segments it covers are deleted.
//!
//! # Damage
//! `open` checks every record. A record cut short or garbage at the end of the newest segment is a torn write:
//! the file is truncated there with one warning. Garbage in the middle of a segment is skipped to the next valid
//! record, or, if there is none, the rest of that segment is dropped; the sequence numbers lost either way are
//! reported as a gap with reason "corrupt". The spool never refuses to start because of its own files, and a
//! scan moves forward on every step, so it cannot loop.

mod gap;
mod marks;
pub mod record;
mod scan;

use headroom_common::files;
use headroom_common::wire::Sample;
use record::encode_record;
use scan::{list_segments, read_records, segment_name, unacked_range, Scanner};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use tracing::warn;

/// Default cap on the sum of segment sizes.
pub const DEFAULT_CAP_BYTES: u64 = 64 << 20;

/// Name of the spool's directory inside the agent's state directory.
pub const SPOOL_DIR_NAME: &str = "spool";

/// Segments are this fraction of the cap, so that dropping one when full gives up a sixteenth of the history.
const SEGMENTS_PER_CAP: u64 = 16;
const MAX_SEGMENT_BYTES: u64 = 4 << 20;
const MIN_SEGMENT_BYTES: u64 = 1 << 10;

/// Newest samples kept in memory too, so that sending the live tail never reads the disk.
const TAIL_SAMPLES: usize = 300;

/// Records appended between two `fdatasync`s.
const SYNC_EVERY_RECORDS: u32 = 10;

/// Gaps kept while nobody takes them; past this, a new gap is merged into the newest one.
const MAX_PENDING_GAPS: usize = 1024;

const SEGMENT_SUFFIX: &str = ".seg";

pub use gap::{Gap, GapReason};

/// What `open` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolReport {
    /// Samples held (a few may already be acknowledged, in a segment acknowledged only in part).
    pub samples: usize,
    pub bytes: u64,
    /// Torn or corrupt tails truncated.
    pub truncated_tails: u32,
    /// Bytes of garbage skipped or dropped inside segments, tails excluded.
    pub corrupt_skipped_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "spool directory {path}: {source} (check state_dir in the config and that the agent may write there)"
    )]
    Dir { path: String, source: std::io::Error },
    #[error("spool file {path}: {source} (check free space and permissions in the spool directory)")]
    File { path: String, source: std::io::Error },
    #[error("sample {seq} cannot be spooled: {detail}")]
    Encode { seq: u64, detail: String },
    #[error(
        "sample {seq} is not after the spool's last sequence number {last_seq}; sequence numbers must grow"
    )]
    OutOfOrder { seq: u64, last_seq: u64 },
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::File {
        path: path.display().to_string(),
        source,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    seq: u64,
    timestamp_ms: u64,
}

impl Mark {
    fn of(sample: &Sample) -> Mark {
        Mark {
            seq: sample.seq,
            timestamp_ms: sample.timestamp_ms,
        }
    }
}

/// One segment file and what it holds.
#[derive(Debug)]
struct Segment {
    name_seq: u64,
    path: PathBuf,
    bytes: u64,
    records: u64,
    first: Option<Mark>,
    last: Option<Mark>,
}

impl Segment {
    fn add(&mut self, mark: Mark, len_bytes: u64) {
        self.first.get_or_insert(mark);
        self.last = Some(mark);
        self.records += 1;
        self.bytes += len_bytes;
    }
}

/// Where the previous disk read stopped, so that the next one continues without rescanning.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    name_seq: u64,
    offset: u64,
    last_seq: u64,
}

/// A bounded, append-only queue of samples on disk. See the module documentation.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    cap_bytes: u64,
    segment_target_bytes: u64,
    /// Oldest first; the newest is the one `writer` appends to, when there is a writer.
    segments: VecDeque<Segment>,
    writer: Option<File>,
    unsynced_records: u32,
    total_bytes: u64,
    newest: Option<Mark>,
    acked_through: Option<u64>,
    /// Newest samples, oldest first, never acknowledged or dropped ones.
    tail: VecDeque<Sample>,
    /// Samples at or below this seq may be on disk only; None when the tail holds every sample spooled.
    tail_misses_through: Option<u64>,
    cursor: Option<Cursor>,
    gaps: Vec<Gap>,
    /// Acks taken since the ack mark was last written.
    acks_since_mark: u32,
}

/// The ack mark is rewritten (without fsync) every this many acks, and durably before any deletion. A mark that
/// lags only means a few acknowledged samples are sent again after a restart, which the collector drops.
const ACKS_PER_MARK_WRITE: u32 = 30;

impl Spool {
    /// Open the spool in `dir` (normally `<state_dir>/spool`), creating it if needed, checking every record and
    /// repairing what is damaged. Fails only if the directory or its files cannot be created, read or written.
    pub fn open(dir: &Path, cap_bytes: u64) -> Result<(Spool, SpoolReport), SpoolError> {
        let dir_error = |source| SpoolError::Dir {
            path: dir.display().to_string(),
            source,
        };
        files::create_dir_all(dir, files::PRIVATE_DIR).map_err(dir_error)?;
        // Find out now, with the directory named, rather than at the first sample.
        let probe = dir.join("write-probe.tmp");
        files::write_atomic_with(&probe, b"", files::PRIVATE_FILE, files::Durability::Unsynced)
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(dir_error)?;
        let acked_through = marks::read_ack(dir).map_err(file_error(&dir.join(marks::ACK_FILE)))?;
        let stored_gaps = marks::read_gaps(dir).map_err(file_error(&dir.join(marks::GAPS_FILE)))?;
        let names = list_segments(dir).map_err(dir_error)?;

        let mut scanner = Scanner {
            previous: None,
            damage: None,
            acked_through,
            gaps: Vec::new(),
            report: SpoolReport::default(),
        };
        let mut segments = VecDeque::new();
        let count = names.len();
        for (index, (name_seq, path)) in names.into_iter().enumerate() {
            if let Some(segment) = scanner.scan(name_seq, path, index + 1 == count)? {
                segments.push_back(segment);
            }
        }
        let segment_target_bytes = (cap_bytes / SEGMENTS_PER_CAP).clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES);
        let newest = segments.back().and_then(|s| s.last);
        let writer = match segments.back() {
            Some(segment) if segment.bytes < segment_target_bytes => Some(
                OpenOptions::new()
                    .append(true)
                    .open(&segment.path)
                    .map_err(file_error(&segment.path))?,
            ),
            _ => None,
        };
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            cap_bytes,
            segment_target_bytes,
            total_bytes: segments.iter().map(|s| s.bytes).sum(),
            segments,
            writer,
            unsynced_records: 0,
            newest,
            acked_through,
            tail: VecDeque::new(),
            tail_misses_through: newest.map(|m| m.seq),
            cursor: None,
            gaps: stored_gaps,
            acks_since_mark: 0,
        };
        if !scanner.gaps.is_empty() {
            for gap in scanner.gaps {
                spool.push_gap(gap);
            }
            spool.save_gaps()?;
        }
        // The cap may have been lowered since the spool was written.
        while spool.total_bytes > spool.cap_bytes && !spool.segments.is_empty() {
            spool.drop_oldest()?;
        }
        let mut report = scanner.report;
        report.samples = spool.segments.iter().map(|s| s.records as usize).sum();
        report.bytes = spool.total_bytes;
        Ok((spool, report))
    }

    /// Append a sample; its seq must be above `last_seq()`. Drops the oldest segments first if it would not fit.
    pub fn append(&mut self, sample: &Sample) -> Result<(), SpoolError> {
        if let Some(last_seq) = self.last_seq().filter(|&last| sample.seq <= last) {
            return Err(SpoolError::OutOfOrder {
                seq: sample.seq,
                last_seq,
            });
        }
        let record = encode_record(sample).map_err(|detail| SpoolError::Encode {
            seq: sample.seq,
            detail,
        })?;
        let len_bytes = record.len() as u64;
        while self.total_bytes + len_bytes > self.cap_bytes && !self.segments.is_empty() {
            self.drop_oldest()?;
        }
        let full = self
            .segments
            .back()
            .is_none_or(|s| s.bytes >= self.segment_target_bytes);
        if self.writer.is_none() || full {
            self.start_segment(sample.seq)?;
        }
        let (Some(writer), Some(segment)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            unreachable!("start_segment leaves a writer on the newest segment");
        };
        if let Err(source) = writer.write_all(&record) {
            // Part of the record may be in the file; the next append starts a fresh segment, and readers skip
            // the torn bytes as they skip any garbage.
            self.writer = None;
            return Err(file_error(&segment.path)(source));
        }
        segment.add(Mark::of(sample), len_bytes);
        self.total_bytes += len_bytes;
        self.newest = Some(Mark::of(sample));
        self.unsynced_records += 1;
        // The record is in the file from here on, whatever the sync below says: the tail must show it, or a
        // read served from the tail would skip it.
        self.tail.push_back(sample.clone());
        if self.tail.len() > TAIL_SAMPLES {
            if let Some(evicted) = self.tail.pop_front() {
                self.tail_misses_through = Some(evicted.seq);
            }
        }
        if self.unsynced_records >= SYNC_EVERY_RECORDS {
            self.sync_writer()?;
        }
        Ok(())
    }

    /// Record samples lost outside the spool (it could not be written), persisted with the spool's own gaps
    /// so that they are reported after a restart too.
    pub fn record_gap(&mut self, gap: Gap) -> Result<(), SpoolError> {
        self.push_gap(gap);
        self.save_gaps()
    }

    /// The collector has stored everything through `seq`: forget it, deleting the segments it covers whole.
    pub fn ack(&mut self, seq: u64) -> Result<(), SpoolError> {
        if self.acked_through.is_some_and(|acked| acked >= seq) {
            return Ok(());
        }
        self.acked_through = Some(seq);
        while self.tail.front().is_some_and(|s| s.seq <= seq) {
            self.tail.pop_front();
        }
        // The newest segment is the one being appended to; it stays until it is full and another takes over,
        // so a steady stream of prompt acks costs an append per sample, not a file per sample.
        let closed = if self.writer.is_some() {
            self.segments.len().saturating_sub(1)
        } else {
            self.segments.len()
        };
        let covered = self
            .segments
            .iter()
            .take(closed)
            .take_while(|s| s.last.is_none_or(|last| last.seq <= seq))
            .count();
        self.acks_since_mark += 1;
        if covered > 0 || self.acks_since_mark >= ACKS_PER_MARK_WRITE {
            // The mark must be on disk before the samples it stands for are deleted, or a power loss in between
            // would leave neither.
            marks::write_ack(&self.dir, seq, covered > 0)
                .map_err(file_error(&self.dir.join(marks::ACK_FILE)))?;
            self.acks_since_mark = 0;
        }
        for _ in 0..covered {
            self.remove_oldest_file()?;
        }
        Ok(())
    }

    /// Samples with seq above `after` (and above the ack mark), oldest first, at most `max`.
    pub fn read_after(&mut self, after: Option<u64>, max: usize) -> Result<Vec<Sample>, SpoolError> {
        let after = after.max(self.acked_through);
        if max == 0 {
            return Ok(Vec::new());
        }
        let in_memory = match (self.tail_misses_through, after) {
            (None, _) => true,
            (Some(missing), Some(after)) => after >= missing,
            (Some(_), None) => false,
        };
        if in_memory {
            let newer = |s: &&Sample| after.is_none_or(|after| s.seq > after);
            return Ok(self.tail.iter().filter(newer).take(max).cloned().collect());
        }
        self.read_from_disk(after, max)
    }

    /// Highest sequence number spooled or acknowledged: the agent continues after it.
    pub fn last_seq(&self) -> Option<u64> {
        self.newest.map(|m| m.seq).max(self.acked_through)
    }

    pub fn acked_through(&self) -> Option<u64> {
        self.acked_through
    }

    /// Gaps not yet reported; they are forgotten, on disk too, once taken.
    pub fn take_gaps(&mut self) -> Vec<Gap> {
        let gaps = std::mem::take(&mut self.gaps);
        if !gaps.is_empty() {
            if let Err(error) = self.save_gaps() {
                // The worst outcome is the same gaps reported again after a restart.
                warn!(dir = %self.dir.display(), %error, "cannot clear the spool's reported gaps");
            }
        }
        gaps
    }

    /// Bytes of all segments.
    pub fn len_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Make everything appended and acknowledged so far durable (clean shutdown).
    pub fn flush(&mut self) -> Result<(), SpoolError> {
        self.sync_writer()?;
        if let Some(seq) = self.acked_through {
            marks::write_ack(&self.dir, seq, true).map_err(file_error(&self.dir.join(marks::ACK_FILE)))?;
        }
        Ok(())
    }

    fn sync_writer(&mut self) -> Result<(), SpoolError> {
        if let (Some(writer), Some(segment)) = (&self.writer, self.segments.back()) {
            writer.sync_data().map_err(file_error(&segment.path))?;
        }
        self.unsynced_records = 0;
        Ok(())
    }

    fn start_segment(&mut self, first_seq: u64) -> Result<(), SpoolError> {
        self.sync_writer()?;
        self.writer = None;
        if let Some(segment) = self
            .segments
            .back_mut()
            .filter(|s| s.name_seq == first_seq || s.records == 0)
        {
            // A write to this segment failed and a sample comes again: go on in the same file rather than make
            // an empty file per attempt while the disk is full. A segment named below its first record still
            // holds nothing below its name.
            let file = OpenOptions::new()
                .append(true)
                .open(&segment.path)
                .map_err(file_error(&segment.path))?;
            let bytes = file.metadata().map_err(file_error(&segment.path))?.len();
            self.total_bytes = self.total_bytes - segment.bytes + bytes;
            segment.bytes = bytes;
            self.writer = Some(file);
            return Ok(());
        }
        let path = self.dir.join(segment_name(first_seq));
        // Samples are private to the host: mode 0600 whatever the umask.
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(files::PRIVATE_FILE)
            .open(&path)
            .map_err(file_error(&path))?;
        // Bytes a failed write left in a file of this name would sit between records; counting them keeps
        // the cap honest.
        let bytes = file.metadata().map_err(file_error(&path))?.len();
        // The new file's directory entry must survive a power loss, or its synced records would be lost.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(file_error(&self.dir))?;
        self.total_bytes += bytes;
        self.segments.push_back(Segment {
            name_seq: first_seq,
            path,
            bytes,
            records: 0,
            first: None,
            last: None,
        });
        self.writer = Some(file);
        Ok(())
    }

    /// Delete the oldest segment to make room, recording the unacknowledged samples it held as a gap.
    fn drop_oldest(&mut self) -> Result<(), SpoolError> {
        let Some(segment) = self.segments.front() else {
            return Ok(());
        };
        let lost = match (segment.first, segment.last, self.acked_through) {
            (Some(_), Some(last), Some(acked)) if last.seq <= acked => None,
            (Some(first), Some(last), acked) if acked.is_none_or(|acked| acked < first.seq) => {
                Some((first, last, segment.records))
            }
            (Some(_), Some(_), Some(acked)) => unacked_range(&segment.path, acked)?,
            _ => None,
        };
        if let Some((first, last, count)) = lost {
            warn!(
                file = %segment.path.display(),
                from_seq = first.seq,
                to_seq = last.seq,
                count,
                "spool is full; dropping its oldest unacknowledged samples"
            );
            self.push_gap(Gap {
                from_seq: first.seq,
                to_seq: last.seq,
                from_ms: first.timestamp_ms,
                to_ms: last.timestamp_ms,
                count,
                reason: GapReason::SpoolFull,
            });
            // Recorded before the deletion: a crash in between reports a gap twice rather than hiding one.
            self.save_gaps()?;
        }
        self.remove_oldest_file()
    }

    fn remove_oldest_file(&mut self) -> Result<(), SpoolError> {
        let Some(segment) = self.segments.pop_front() else {
            return Ok(());
        };
        if self.segments.is_empty() {
            self.writer = None;
            self.unsynced_records = 0;
        }
        if self.cursor.is_some_and(|c| c.name_seq == segment.name_seq) {
            self.cursor = None;
        }
        if let Some(last) = segment.last {
            while self.tail.front().is_some_and(|s| s.seq <= last.seq) {
                self.tail.pop_front();
            }
        }
        self.total_bytes -= segment.bytes;
        match std::fs::remove_file(&segment.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(file_error(&segment.path)(e)),
            _ => Ok(()),
        }
    }

    fn push_gap(&mut self, gap: Gap) {
        let full = self.gaps.len() >= MAX_PENDING_GAPS;
        match self.gaps.last_mut() {
            Some(last)
                if full
                    || (last.reason == gap.reason && last.to_seq.checked_add(1) == Some(gap.from_seq)) =>
            {
                last.from_seq = last.from_seq.min(gap.from_seq);
                last.to_seq = last.to_seq.max(gap.to_seq);
                last.from_ms = last.from_ms.min(gap.from_ms);
                last.to_ms = last.to_ms.max(gap.to_ms);
                last.count += gap.count;
            }
            _ => self.gaps.push(gap),
        }
    }

    fn save_gaps(&self) -> Result<(), SpoolError> {
        marks::write_gaps(&self.dir, &self.gaps).map_err(file_error(&self.dir.join(marks::GAPS_FILE)))
    }

    fn read_from_disk(&mut self, after: Option<u64>, max: usize) -> Result<Vec<Sample>, SpoolError> {
        let resume = self.cursor.filter(|c| Some(c.last_seq) == after).and_then(|c| {
            let index = self.segments.iter().position(|s| s.name_seq == c.name_seq)?;
            Some((index, c.offset))
        });
        let (start_index, start_offset) = resume.unwrap_or_else(|| {
            // The segment holding after + 1 is the last one starting at or below it.
            let index = after.map_or(0, |after| {
                self.segments
                    .iter()
                    .rposition(|s| s.first.is_some_and(|f| f.seq <= after.saturating_add(1)))
                    .unwrap_or(0)
            });
            (index, 0)
        });
        let mut out = Vec::new();
        let mut cursor = self.cursor;
        for segment in self.segments.iter().skip(start_index) {
            if out.len() >= max {
                break;
            }
            let offset = if segment.name_seq == self.segments[start_index].name_seq {
                start_offset
            } else {
                0
            };
            let path = &segment.path;
            read_records(path, offset, |sample, next_offset| {
                if after.is_none_or(|after| sample.seq > after) {
                    cursor = Some(Cursor {
                        name_seq: segment.name_seq,
                        offset: next_offset,
                        last_seq: sample.seq,
                    });
                    out.push(sample);
                }
                out.len() < max
            })
            .map_err(file_error(path))?;
        }
        self.cursor = cursor;
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
