//! The spool's two small files beside its segments: the ack mark and the gaps not yet reported.
//!
//! Both are rewritten whole through a temporary file and a rename, so a crash leaves the old content or the
//! new, never half of each. Both are plain text so that an operator can read them with `cat`. A file that
//! does not parse is never a reason to stop: a lost ack mark only means a few samples are sent again (the
//! collector drops duplicates), and a damaged gap line is logged and skipped.

use super::{Gap, GapReason};
use headroom_common::files::{self, Durability};
use std::io::Write;
use std::path::Path;
use tracing::warn;

pub const ACK_FILE: &str = "acked-through";
pub const GAPS_FILE: &str = "pending-gaps";

/// The persisted ack mark, or None if there is none or it is unreadable.
pub fn read_ack(dir: &Path) -> std::io::Result<Option<u64>> {
    let path = dir.join(ACK_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(seq) => Ok(Some(seq)),
            Err(_) => {
                warn!(file = %path.display(), "spool ack mark is not a number; unacknowledged samples will be sent again");
                Ok(None)
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Persist the ack mark. `durable` adds an fsync, needed only before segments it covers are deleted.
///
/// On a full disk the temporary file of an atomic rewrite cannot be created, yet the mark must move on, or the
/// segments it covers could never be deleted to make room. The existing file is then overwritten in place with
/// a fixed-width line: it needs no new block, and a single short write inside one block is not torn.
pub fn write_ack(dir: &Path, seq: u64, durable: bool) -> std::io::Result<()> {
    let path = dir.join(ACK_FILE);
    match write_atomic(&path, format!("{seq}\n").as_bytes(), durable) {
        Err(error) if error.kind() == std::io::ErrorKind::StorageFull => {
            // The failed atomic write has already removed its temporary file.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|_| error)?;
            let line = format!("{seq:>20}\n");
            file.write_all(line.as_bytes())?;
            file.set_len(line.len() as u64)?;
            if durable {
                file.sync_data()?;
            }
            Ok(())
        }
        other => other,
    }
}

/// Gaps persisted and not yet taken.
pub fn read_gaps(dir: &Path) -> std::io::Result<Vec<Gap>> {
    let path = dir.join(GAPS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            warn!(file = %path.display(), "spool gaps file is not text; its gaps are lost");
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let mut gaps = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_gap(line) {
            Some(gap) => gaps.push(gap),
            None => warn!(file = %path.display(), line = index + 1, "spool gap line does not parse; skipped"),
        }
    }
    Ok(gaps)
}

/// Persist the pending gaps (durably: they are the only record of samples that are gone), or remove the file
/// when there are none.
pub fn write_gaps(dir: &Path, gaps: &[Gap]) -> std::io::Result<()> {
    let path = dir.join(GAPS_FILE);
    if gaps.is_empty() {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let mut text = String::new();
    for gap in gaps {
        text.push_str(&format_gap(gap));
        text.push('\n');
    }
    write_atomic(&path, text.as_bytes(), true)
}

/// `from_seq to_seq from_ms to_ms count reason`, space separated.
fn format_gap(gap: &Gap) -> String {
    format!(
        "{} {} {} {} {} {}",
        gap.from_seq,
        gap.to_seq,
        gap.from_ms,
        gap.to_ms,
        gap.count,
        gap.reason.name()
    )
}

fn parse_gap(line: &str) -> Option<Gap> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [from_seq, to_seq, from_ms, to_ms, count, reason] = fields[..] else {
        return None;
    };
    Some(Gap {
        from_seq: from_seq.parse().ok()?,
        to_seq: to_seq.parse().ok()?,
        from_ms: from_ms.parse().ok()?,
        to_ms: to_ms.parse().ok()?,
        count: count.parse().ok()?,
        reason: GapReason::from_name(reason)?,
    })
}

/// Rewrites a mark (mode 0600, like the spool); `durable` adds the fsyncs.
fn write_atomic(path: &Path, contents: &[u8], durable: bool) -> std::io::Result<()> {
    let durability = if durable {
        Durability::Synced
    } else {
        Durability::Unsynced
    };
    files::write_atomic_with(path, contents, files::PRIVATE_FILE, durability)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_round_trip_and_a_bad_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let gaps = vec![
            Gap {
                from_seq: 1,
                to_seq: 9,
                from_ms: 1000,
                to_ms: 9000,
                count: 9,
                reason: GapReason::SpoolFull,
            },
            Gap {
                from_seq: 20,
                to_seq: 21,
                from_ms: 19_000,
                to_ms: 22_000,
                count: 2,
                reason: GapReason::Corrupt,
            },
        ];
        write_gaps(dir.path(), &gaps).unwrap();
        assert_eq!(read_gaps(dir.path()).unwrap(), gaps);
        let mut text = std::fs::read_to_string(dir.path().join(GAPS_FILE)).unwrap();
        text.push_str("1 2 three 4 5 corrupt\n");
        std::fs::write(dir.path().join(GAPS_FILE), text).unwrap();
        assert_eq!(read_gaps(dir.path()).unwrap(), gaps);
        write_gaps(dir.path(), &[]).unwrap();
        assert!(!dir.path().join(GAPS_FILE).exists());
    }

    #[test]
    fn an_unreadable_ack_mark_means_no_mark() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_ack(dir.path()).unwrap(), None);
        write_ack(dir.path(), 42, false).unwrap();
        assert_eq!(read_ack(dir.path()).unwrap(), Some(42));
        std::fs::write(dir.path().join(ACK_FILE), "forty-two").unwrap();
        assert_eq!(read_ack(dir.path()).unwrap(), None);
    }
}
