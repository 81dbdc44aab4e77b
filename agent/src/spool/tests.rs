//! Unit tests of the spool's bookkeeping: reads from memory and disk, acks, the cap and its gaps.

use super::*;
use headroom_common::wire::GapReport;
use headroom_common::wire::InterfaceCounters;

fn sample(seq: u64) -> Sample {
    Sample {
        seq,
        timestamp_ms: 1_700_000_000_000 + seq * 1000,
        network: vec![InterfaceCounters {
            name: "eth0".into(),
            rx_bytes: seq * 1500,
            tx_bytes: seq * 900,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn seqs(samples: &[Sample]) -> Vec<u64> {
    samples.iter().map(|s| s.seq).collect()
}

fn segment_files(dir: &Path) -> usize {
    list_segments(dir).unwrap().len()
}

#[test]
fn appended_samples_read_back_in_order_and_acks_forget_them() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, report) = Spool::open(dir.path(), DEFAULT_CAP_BYTES).unwrap();
    assert_eq!(report, SpoolReport::default());
    assert_eq!(spool.last_seq(), None);
    for seq in 1..=20 {
        spool.append(&sample(seq)).unwrap();
    }
    assert_eq!(spool.last_seq(), Some(20));
    assert_eq!(
        spool.read_after(None, 5).unwrap(),
        (1..=5).map(sample).collect::<Vec<_>>()
    );
    assert_eq!(seqs(&spool.read_after(Some(18), 100).unwrap()), vec![19, 20]);
    spool.ack(10).unwrap();
    assert_eq!(spool.acked_through(), Some(10));
    assert_eq!(
        seqs(&spool.read_after(None, 3).unwrap()),
        vec![11, 12, 13],
        "acknowledged samples are never handed out again"
    );
    assert!(matches!(
        spool.append(&sample(20)),
        Err(SpoolError::OutOfOrder {
            seq: 20,
            last_seq: 20
        })
    ));
}

#[test]
fn backlog_beyond_the_memory_tail_is_read_from_disk_with_a_cursor() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments so the backlog spans many files.
    let (mut spool, _) = Spool::open(dir.path(), 256 << 10).unwrap();
    let total = TAIL_SAMPLES as u64 * 6;
    for seq in 1..=total {
        spool.append(&sample(seq)).unwrap();
    }
    assert!(segment_files(dir.path()) > 3, "the test needs several segments");
    assert!(
        spool.tail_misses_through.is_some(),
        "the test needs a backlog the tail does not hold"
    );
    let mut after = None;
    let mut got = Vec::new();
    loop {
        let batch = spool.read_after(after, 97).unwrap();
        if batch.is_empty() {
            break;
        }
        after = batch.last().map(|s| s.seq);
        got.extend(batch);
    }
    assert_eq!(got, (1..=total).map(sample).collect::<Vec<_>>());
    // A read that does not continue the last one (a reconnect) starts from the right place without a cursor.
    assert_eq!(seqs(&spool.read_after(Some(123), 2).unwrap()), vec![124, 125]);
    assert_eq!(seqs(&spool.read_after(Some(total - 1), 10).unwrap()), vec![total]);
}

#[test]
fn acks_delete_whole_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(dir.path(), 64 << 10).unwrap();
    for seq in 1..=400 {
        spool.append(&sample(seq)).unwrap();
    }
    let files_before = segment_files(dir.path());
    let bytes_before = spool.len_bytes();
    assert!(files_before > 2);
    let second_segment_first = spool.segments[1].first.unwrap().seq;
    spool.ack(second_segment_first - 1).unwrap();
    assert_eq!(segment_files(dir.path()), files_before - 1);
    assert!(spool.len_bytes() < bytes_before);
    // Half of a segment acknowledged: the file stays, its acknowledged samples are not read.
    spool.ack(second_segment_first + 1).unwrap();
    assert_eq!(segment_files(dir.path()), files_before - 1);
    assert_eq!(
        seqs(&spool.read_after(None, 1).unwrap()),
        vec![second_segment_first + 2]
    );
    spool.ack(400).unwrap();
    // Everything acknowledged: only the segment still being appended to remains, and nothing is read from it.
    assert_eq!(segment_files(dir.path()), 1);
    assert!(spool.read_after(None, 10).unwrap().is_empty());
    assert_eq!(
        spool.last_seq(),
        Some(400),
        "the ack mark remembers where the sequence stands"
    );
    spool.append(&sample(401)).unwrap();
    assert_eq!(seqs(&spool.read_after(None, 10).unwrap()), vec![401]);
}

#[test]
fn a_full_spool_drops_whole_segments_and_counts_only_unacknowledged_samples() {
    let dir = tempfile::tempdir().unwrap();
    let cap_bytes = 16 << 10;
    let (mut spool, _) = Spool::open(dir.path(), cap_bytes).unwrap();
    let mut seq = 0;
    // Fill the first segment and a little of the next, then acknowledge part of the first.
    while spool.segments.len() < 2 {
        seq += 1;
        spool.append(&sample(seq)).unwrap();
    }
    let first_segment_last = spool.segments[0].last.unwrap().seq;
    spool.ack(3).unwrap();
    while spool.gaps.is_empty() {
        seq += 1;
        spool.append(&sample(seq)).unwrap();
        assert!(spool.len_bytes() <= cap_bytes);
    }
    let gaps = spool.take_gaps();
    assert_eq!(
        gaps,
        vec![Gap {
            from_seq: 4,
            to_seq: first_segment_last,
            from_ms: sample(4).timestamp_ms,
            to_ms: sample(first_segment_last).timestamp_ms,
            count: first_segment_last - 3,
            reason: GapReason::SpoolFull,
        }]
    );
    assert!(spool.take_gaps().is_empty(), "taken gaps are not reported twice");
    assert_eq!(
        seqs(&spool.read_after(None, 1).unwrap()),
        vec![first_segment_last + 1]
    );
}

#[test]
fn adjacent_gaps_merge_and_pending_gaps_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(dir.path(), DEFAULT_CAP_BYTES).unwrap();
    let gap = |from_seq: u64, to_seq: u64| Gap {
        from_seq,
        to_seq,
        from_ms: from_seq * 1000,
        to_ms: to_seq * 1000,
        count: to_seq - from_seq + 1,
        reason: GapReason::SpoolFull,
    };
    spool.push_gap(gap(1, 10));
    spool.push_gap(gap(11, 20));
    assert_eq!(spool.gaps, vec![gap(1, 20)]);
    for index in 0..(MAX_PENDING_GAPS as u64 * 2) {
        spool.push_gap(gap(100 + index * 10, 100 + index * 10 + 4));
    }
    assert_eq!(spool.gaps.len(), MAX_PENDING_GAPS);
    let counted: u64 = spool.gaps.iter().map(|g| g.count).sum();
    assert_eq!(
        counted,
        20 + MAX_PENDING_GAPS as u64 * 2 * 5,
        "merging never loses a count"
    );
}

#[test]
fn the_memory_tail_and_the_disk_agree() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(dir.path(), DEFAULT_CAP_BYTES).unwrap();
    for seq in 1..=50 {
        spool.append(&sample(seq)).unwrap();
    }
    let from_memory = spool.read_after(Some(10), 100).unwrap();
    let from_disk = spool.read_from_disk(Some(10), 100).unwrap();
    assert_eq!(from_memory, from_disk);
    assert_eq!(from_memory.len(), 40);
}

#[test]
fn gaps_become_wire_reports_with_the_reason_names_the_collector_stores() {
    let report = GapReport::from(Gap {
        from_seq: 5,
        to_seq: 9,
        from_ms: 5000,
        to_ms: 9000,
        count: 5,
        reason: GapReason::Corrupt,
    });
    assert_eq!((report.from_seq, report.to_seq, report.count), (5, 9, 5));
    assert_eq!(report.reason.name(), "corrupt");
    assert_eq!(GapReason::from_name("spool_full"), Some(GapReason::SpoolFull));
}

/// Issue 11, point 7: the spool directory, its segments and its marks are private whatever the umask.
#[test]
fn issue_11_spool_files_are_private_under_a_permissive_umask() {
    use headroom_common::files::{mode_of, UmaskGuard};
    let _umask = UmaskGuard::set(0);
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("state/spool");
    let (mut spool, _) = Spool::open(&spool_dir, DEFAULT_CAP_BYTES).unwrap();
    for seq in 1..=3 {
        spool.append(&sample(seq)).unwrap();
    }
    spool.ack(2).unwrap();
    spool.flush().unwrap();
    assert_eq!(mode_of(&spool_dir).unwrap(), 0o700);
    let names = list_segments(&spool_dir).unwrap();
    assert!(!names.is_empty());
    for entry in std::fs::read_dir(&spool_dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode_of(&path).unwrap(), 0o600, "{}", path.display());
    }
    assert!(spool_dir.join(marks::ACK_FILE).exists());
}
