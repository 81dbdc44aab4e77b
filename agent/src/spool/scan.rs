//! The spool's segment files on disk: listing and naming them, reading their records back, and the scan at
//! open that checks every record, truncates torn tails and reports damage as gaps.

use super::record::{self, find_next_record, parse_header, parse_payload, parse_record, Header, Parsed};
use super::{file_error, Gap, GapReason, Mark, Segment, SpoolError, SpoolReport, SEGMENT_SUFFIX};
use headroom_common::wire::Sample;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use tracing::warn;

/// The first and last unacknowledged samples of a segment, and how many there are, read from its file.
pub(super) fn unacked_range(path: &Path, acked: u64) -> Result<Option<(Mark, Mark, u64)>, SpoolError> {
    let mut range: Option<(Mark, Mark, u64)> = None;
    read_records(path, 0, |sample, _| {
        if sample.seq > acked {
            let mark = Mark::of(&sample);
            range = Some(match range {
                Some((first, _, count)) => (first, mark, count + 1),
                None => (mark, mark, 1),
            });
        }
        true
    })
    .map_err(file_error(path))?;
    Ok(range)
}

/// Call `visit` with each valid record of a segment from `offset` on, and the offset just past it, until it
/// returns false. Damaged bytes are skipped as `open` skips them.
pub(super) fn read_records(
    path: &Path,
    offset: u64,
    mut visit: impl FnMut(Sample, u64) -> bool,
) -> std::io::Result<()> {
    let mut file = File::open(path)?;
    let len_bytes = file.metadata()?.len();
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::with_capacity(64 << 10, file);
    let mut offset = offset;
    let mut header = [0u8; record::HEADER_BYTES];
    let mut payload = Vec::new();
    while offset < len_bytes {
        let mut parsed = Parsed::Invalid;
        if len_bytes - offset >= header.len() as u64 {
            reader.read_exact(&mut header)?;
            if let Header::Valid { payload_bytes, crc } = parse_header(&header) {
                if offset + (header.len() + payload_bytes) as u64 <= len_bytes {
                    payload.resize(payload_bytes, 0);
                    reader.read_exact(&mut payload)?;
                    parsed = parse_payload(&header[2..6], crc, &payload);
                }
            }
        }
        match parsed {
            Parsed::Record { sample, len_bytes } => {
                offset += len_bytes as u64;
                if !visit(sample, offset) {
                    return Ok(());
                }
            }
            Parsed::Incomplete | Parsed::Invalid => {
                // Rare: load the rest of the segment and look for the next record in it.
                reader.seek(SeekFrom::Start(offset))?;
                let mut rest = Vec::new();
                reader.read_to_end(&mut rest)?;
                let Some(next) = find_next_record(&rest, 1, None) else {
                    return Ok(());
                };
                offset += next as u64;
                reader.seek(SeekFrom::Start(offset))?;
            }
        }
    }
    Ok(())
}

pub(super) fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SEGMENT_SUFFIX}")
}

/// Segment files in the directory, oldest first.
pub(super) fn list_segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(seq) = name
            .to_str()
            .and_then(|name| name.strip_suffix(SEGMENT_SUFFIX))
            .and_then(|stem| stem.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push((seq, entry.path()));
    }
    segments.sort();
    Ok(segments)
}

/// Where damage was found and nothing valid has followed it yet.
#[derive(Debug, Clone, Copy)]
pub(super) struct Damage {
    /// Every seq above this may be lost.
    lost_above: u64,
}

/// Checks segments in order at open, carrying what it knows from one segment into the next.
pub(super) struct Scanner {
    pub(super) previous: Option<Mark>,
    pub(super) damage: Option<Damage>,
    pub(super) acked_through: Option<u64>,
    pub(super) gaps: Vec<Gap>,
    pub(super) report: SpoolReport,
}

impl Scanner {
    /// Check one segment file, truncating a damaged end. None when it holds nothing worth keeping (and is
    /// deleted).
    pub(super) fn scan(
        &mut self,
        name_seq: u64,
        path: PathBuf,
        newest: bool,
    ) -> Result<Option<Segment>, SpoolError> {
        let bytes = std::fs::read(&path).map_err(file_error(&path))?;
        let mut segment = Segment {
            name_seq,
            path,
            bytes: 0,
            records: 0,
            first: None,
            last: None,
        };
        let mut offset = 0;
        while offset < bytes.len() {
            if let Parsed::Record { sample, len_bytes } = parse_record(&bytes[offset..]) {
                if self.previous.is_none_or(|previous| sample.seq > previous.seq) {
                    self.accept(&sample);
                    segment.add(Mark::of(&sample), len_bytes as u64);
                    offset += len_bytes;
                    continue;
                }
            }
            if self.damage.is_none() {
                // A segment holds nothing below its name, so damage at its start loses nothing below that.
                let below_segment = if segment.records == 0 {
                    name_seq.saturating_sub(1)
                } else {
                    0
                };
                let lost_above = self.previous.map_or(0, |p| p.seq).max(below_segment);
                self.damage = Some(Damage { lost_above });
            }
            match find_next_record(&bytes, offset + 1, self.previous.map(|p| p.seq)) {
                Some(next) => {
                    warn!(
                        file = %segment.path.display(),
                        offset_bytes = offset,
                        skipped_bytes = next - offset,
                        "spool segment is damaged in the middle; skipped to the next valid record"
                    );
                    self.report.corrupt_skipped_bytes += (next - offset) as u64;
                    // The skipped bytes stay in the file and count against the cap.
                    segment.bytes += (next - offset) as u64;
                    offset = next;
                }
                None => {
                    if newest {
                        warn!(
                            file = %segment.path.display(),
                            offset_bytes = offset,
                            "spool ends in a torn or corrupt record; truncated there"
                        );
                        self.report.truncated_tails += 1;
                    } else {
                        warn!(
                            file = %segment.path.display(),
                            offset_bytes = offset,
                            "spool segment is corrupt from here to its end; dropped the rest"
                        );
                        self.report.corrupt_skipped_bytes += (bytes.len() - offset) as u64;
                    }
                    truncate(&segment.path, offset as u64)?;
                    break;
                }
            }
        }
        let wholly_acked = segment
            .last
            .is_some_and(|last| self.acked_through.is_some_and(|acked| last.seq <= acked));
        if segment.records == 0 || wholly_acked {
            std::fs::remove_file(&segment.path).map_err(file_error(&segment.path))?;
            return Ok(None);
        }
        Ok(Some(segment))
    }

    /// A valid record: if damage came before it, the sequence numbers in between are a corrupt gap.
    pub(super) fn accept(&mut self, sample: &Sample) {
        if let Some(damage) = self.damage.take() {
            let from_seq = damage.lost_above.max(self.acked_through.unwrap_or(0)) + 1;
            if sample.seq > from_seq {
                let to_seq = sample.seq - 1;
                self.gaps.push(Gap {
                    from_seq,
                    to_seq,
                    from_ms: self.previous.map_or(sample.timestamp_ms, |p| p.timestamp_ms),
                    to_ms: sample.timestamp_ms,
                    count: to_seq - from_seq + 1,
                    reason: GapReason::Corrupt,
                });
            }
        }
        self.previous = Some(Mark::of(sample));
    }
}

pub(super) fn truncate(path: &Path, len_bytes: u64) -> Result<(), SpoolError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(file_error(path))?;
    file.set_len(len_bytes).map_err(file_error(path))?;
    file.sync_all().map_err(file_error(path))
}
