//! The spool recovering from what crashes and bad disks leave behind: torn tails, garbage, caps, restarts.

use headroom_agent::sampler::{Sampler, SamplerConfig};
use headroom_agent::spool::{Gap, GapReason, Spool, SpoolError, SpoolReport, DEFAULT_CAP_BYTES};
use headroom_common::wire::{
    CpuSample, CpuTimes, InterfaceCounters, Listener, MemorySample, Sample, SocketSample,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A sample shaped like a small real host's, with counters that change with `seq`.
fn sample(seq: u64) -> Sample {
    Sample {
        seq,
        timestamp_ms: 1_700_000_000_000 + seq * 1000,
        cpu: Some(CpuSample {
            total: CpuTimes {
                user: 1000 + seq * 7,
                system: 500 + seq * 3,
                idle: 90_000 + seq * 190,
                ..Default::default()
            },
            per_core: vec![CpuTimes::default(); 2],
            cores: 2,
            load: None,
        }),
        memory: Some(MemorySample {
            total_bytes: 8 << 30,
            available_bytes: (5 << 30) + seq * 4096,
            ..Default::default()
        }),
        network: vec![
            InterfaceCounters {
                name: "eth0".into(),
                rx_bytes: seq * 150_000,
                tx_bytes: seq * 90_000,
                rx_packets: seq * 100,
                tx_packets: seq * 80,
                ..Default::default()
            },
            InterfaceCounters {
                name: "lo".into(),
                rx_bytes: seq * 2000,
                tx_bytes: seq * 2000,
                ..Default::default()
            },
        ],
        sockets: Some(SocketSample {
            listeners: vec![
                Listener {
                    port: 22,
                    established: 1,
                    ..Default::default()
                },
                Listener {
                    port: 443,
                    established: (seq % 200) as u32,
                    accept_queue: (seq % 3) as u32,
                    accept_queue_limit: 4096,
                },
            ],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn seqs(samples: &[Sample]) -> Vec<u64> {
    samples.iter().map(|s| s.seq).collect()
}

/// Everything the spool would send after `after`, read in batches as the uplink reads it.
fn read_all(spool: &mut Spool) -> Vec<Sample> {
    let mut after = None;
    let mut all = Vec::new();
    loop {
        let batch = spool.read_after(after, 256).unwrap();
        let Some(last) = batch.last() else {
            return all;
        };
        after = Some(last.seq);
        all.extend(batch);
    }
}

fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    paths.sort();
    paths
}

fn disk_bytes(dir: &Path) -> u64 {
    segment_paths(dir)
        .iter()
        .map(|path| std::fs::metadata(path).unwrap().len())
        .sum()
}

/// Log lines written while `run` runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

fn open_logged(dir: &Path, cap_bytes: u64) -> (Spool, SpoolReport, Vec<String>) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let (spool, report) =
        tracing::subscriber::with_default(subscriber, || Spool::open(dir, cap_bytes)).unwrap();
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let warnings = text
        .lines()
        .filter(|line| line.contains("WARN"))
        .map(String::from)
        .collect();
    (spool, report, warnings)
}

/// A spool holding samples 1..=count; returns the byte offset at which each record ends.
fn write_spool(dir: &Path, count: u64) -> Vec<u64> {
    let (mut spool, _) = Spool::open(dir, DEFAULT_CAP_BYTES).unwrap();
    let mut ends = Vec::new();
    for seq in 1..=count {
        spool.append(&sample(seq)).unwrap();
        ends.push(spool.len_bytes());
    }
    spool.flush().unwrap();
    ends
}

#[test]
fn reopening_keeps_every_unacknowledged_sample() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(dir.path(), DEFAULT_CAP_BYTES).unwrap();
    for seq in 1..=100 {
        spool.append(&sample(seq)).unwrap();
    }
    spool.ack(30).unwrap();
    // No flush: a killed process leaves its writes in the page cache, which is what the next open reads.
    drop(spool);
    let (mut spool, report, warnings) = open_logged(dir.path(), DEFAULT_CAP_BYTES);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        report.samples, 100,
        "the one segment is kept whole, acknowledged part included"
    );
    assert_eq!(report.truncated_tails, 0);
    // The ack mark is written every few acks and on flush, so after a kill it may lag: some acknowledged
    // samples are read again (the collector drops them as duplicates), and none that were not.
    let mark = spool.acked_through();
    assert!(mark.is_none_or(|m| m <= 30), "{mark:?}");
    assert_eq!(spool.last_seq(), Some(100));
    let first = mark.map_or(1, |m| m + 1);
    assert_eq!(
        read_all(&mut spool),
        (first..=100).map(sample).collect::<Vec<_>>()
    );
    spool.append(&sample(101)).unwrap();
    assert_eq!(seqs(&spool.read_after(Some(100), 10).unwrap()), vec![101]);
}

#[test]
fn a_torn_tail_is_truncated_with_one_warning_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let ends = write_spool(dir.path(), 50);
    let segment = &segment_paths(dir.path())[0];
    let cut = (ends[48] + ends[49]) / 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(segment)
        .unwrap()
        .set_len(cut)
        .unwrap();

    let (mut spool, report, warnings) = open_logged(dir.path(), DEFAULT_CAP_BYTES);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let file_name = segment.file_name().unwrap().to_str().unwrap();
    assert!(
        warnings[0].contains(file_name) && warnings[0].contains(&format!("offset_bytes={}", ends[48])),
        "the warning names the file and the offset: {}",
        warnings[0]
    );
    assert_eq!(report.truncated_tails, 1);
    assert_eq!(report.samples, 49);
    assert_eq!(spool.last_seq(), Some(49));
    assert!(
        spool.take_gaps().is_empty(),
        "a torn write is not a gap: its sample was never spooled"
    );
    assert_eq!(std::fs::metadata(segment).unwrap().len(), ends[48]);
    // The agent goes on where the spool ends, and the next start is clean.
    spool.append(&sample(50)).unwrap();
    drop(spool);
    let (mut spool, report, warnings) = open_logged(dir.path(), DEFAULT_CAP_BYTES);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(report.truncated_tails, 0);
    assert_eq!(read_all(&mut spool), (1..=50).map(sample).collect::<Vec<_>>());
}

#[test]
fn garbage_in_the_middle_is_skipped_and_counted_as_a_corrupt_gap() {
    let dir = tempfile::tempdir().unwrap();
    let ends = write_spool(dir.path(), 50);
    let segment = &segment_paths(dir.path())[0];
    let mut bytes = std::fs::read(segment).unwrap();
    // Wipe from the middle of record 20 into record 22, as a bad sector would.
    let from = ((ends[18] + ends[19]) / 2) as usize;
    let to = ((ends[20] + ends[21]) / 2) as usize;
    bytes[from..to].fill(0xA5);
    std::fs::write(segment, &bytes).unwrap();

    let (mut spool, report, warnings) = open_logged(dir.path(), DEFAULT_CAP_BYTES);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("middle"), "{}", warnings[0]);
    assert_eq!(report.truncated_tails, 0);
    assert_eq!(report.corrupt_skipped_bytes, ends[21] - ends[18]);
    let read = seqs(&read_all(&mut spool));
    let expected: Vec<u64> = (1..=50).filter(|seq| !(20..=22).contains(seq)).collect();
    assert_eq!(read, expected);
    assert_eq!(
        spool.take_gaps(),
        vec![Gap {
            from_seq: 20,
            to_seq: 22,
            from_ms: sample(19).timestamp_ms,
            to_ms: sample(23).timestamp_ms,
            count: 3,
            reason: GapReason::Corrupt,
        }]
    );
    // The damaged bytes stay in place; a later start skips them again without reporting the gap twice.
    drop(spool);
    let (mut spool, _, _) = open_logged(dir.path(), DEFAULT_CAP_BYTES);
    assert_eq!(seqs(&read_all(&mut spool)), expected);
}

#[test]
fn a_segment_corrupt_to_its_end_loses_only_its_rest() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments, so that the damaged one is not the newest.
    let cap_bytes = 256 << 10;
    let (mut spool, _) = Spool::open(dir.path(), cap_bytes).unwrap();
    for seq in 1..=600 {
        spool.append(&sample(seq)).unwrap();
    }
    drop(spool);
    let segments = segment_paths(dir.path());
    assert!(segments.len() >= 3, "the test needs three segments");
    let mut bytes = std::fs::read(&segments[0]).unwrap();
    let half = bytes.len() / 2;
    bytes[half..].fill(0);
    std::fs::write(&segments[0], &bytes).unwrap();

    let (mut spool, report, warnings) = open_logged(dir.path(), cap_bytes);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(report.truncated_tails, 0, "only the newest segment has a tail");
    let read = seqs(&read_all(&mut spool));
    let missing: Vec<u64> = (1..=600).filter(|seq| !read.contains(seq)).collect();
    assert!(!missing.is_empty());
    let gaps = spool.take_gaps();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(
        (gaps[0].from_seq, gaps[0].to_seq, gaps[0].count, gaps[0].reason),
        (
            missing[0],
            *missing.last().unwrap(),
            missing.len() as u64,
            GapReason::Corrupt
        )
    );
}

#[test]
fn a_tiny_cap_holds_during_a_long_outage_and_the_gap_counts_every_dropped_sample() {
    let dir = tempfile::tempdir().unwrap();
    let cap_bytes = 64 << 10;
    let (mut spool, _) = Spool::open(dir.path(), cap_bytes).unwrap();
    let count = 5000;
    let mut largest_record_bytes = 0;
    for seq in 1..=count {
        let before = spool.len_bytes();
        spool.append(&sample(seq)).unwrap();
        largest_record_bytes = largest_record_bytes.max(spool.len_bytes().saturating_sub(before));
        assert!(
            spool.len_bytes() <= cap_bytes + largest_record_bytes,
            "over the cap at seq {seq}"
        );
        if seq % 97 == 0 {
            assert!(disk_bytes(dir.path()) <= cap_bytes + largest_record_bytes);
        }
    }
    assert_eq!(disk_bytes(dir.path()), spool.len_bytes());
    let kept = read_all(&mut spool);
    let first_kept = kept[0].seq;
    assert_eq!(seqs(&kept), (first_kept..=count).collect::<Vec<_>>());
    let dropped = count - kept.len() as u64;
    assert!(dropped > count / 2, "the cap must have bitten");
    let expected = vec![Gap {
        from_seq: 1,
        to_seq: first_kept - 1,
        from_ms: sample(1).timestamp_ms,
        to_ms: sample(first_kept - 1).timestamp_ms,
        count: dropped,
        reason: GapReason::SpoolFull,
    }];
    // Pending gaps survive a restart, and are reported once.
    drop(spool);
    let (mut spool, _, _) = open_logged(dir.path(), cap_bytes);
    assert_eq!(spool.take_gaps(), expected);
    drop(spool);
    let (mut spool, _, _) = open_logged(dir.path(), cap_bytes);
    assert!(spool.take_gaps().is_empty());
}

#[test]
fn a_lowered_cap_is_applied_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(dir.path(), 1 << 20).unwrap();
    for seq in 1..=3000 {
        spool.append(&sample(seq)).unwrap();
    }
    assert!(spool.len_bytes() > 64 << 10);
    drop(spool);
    let (mut spool, report, _) = open_logged(dir.path(), 64 << 10);
    assert!(report.bytes <= 64 << 10, "{report:?}");
    let gaps = spool.take_gaps();
    let kept = read_all(&mut spool);
    assert_eq!(
        gaps.iter().map(|g| g.count).sum::<u64>() + kept.len() as u64,
        3000
    );
}

#[test]
fn truncation_at_every_byte_of_the_last_two_records_opens_cleanly() {
    let source = tempfile::tempdir().unwrap();
    let ends = write_spool(source.path(), 30);
    let original = std::fs::read(&segment_paths(source.path())[0]).unwrap();
    let segment_name = segment_paths(source.path())[0].file_name().unwrap().to_owned();
    for cut in ends[27]..=ends[29] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(&segment_name), &original[..cut as usize]).unwrap();
        let (mut spool, report, warnings) = open_logged(dir.path(), DEFAULT_CAP_BYTES);
        let whole = ends.iter().filter(|&&end| end <= cut).count() as u64;
        let torn = !ends.contains(&cut);
        assert_eq!(report.samples as u64, whole, "cut at {cut}");
        assert_eq!(report.truncated_tails, u32::from(torn), "cut at {cut}");
        assert_eq!(warnings.len(), usize::from(torn), "cut at {cut}: {warnings:?}");
        assert_eq!(spool.last_seq(), Some(whole), "cut at {cut}");
        assert_eq!(read_all(&mut spool), (1..=whole).map(sample).collect::<Vec<_>>());
        spool.append(&sample(whole + 1)).unwrap();
    }
}

#[test]
fn a_damaged_ack_mark_replays_rather_than_refusing_to_start() {
    let dir = tempfile::tempdir().unwrap();
    write_spool(dir.path(), 10);
    std::fs::write(dir.path().join("acked-through"), "\u{0}\u{0}garbage").unwrap();
    let (mut spool, _, warnings) = open_logged(dir.path(), DEFAULT_CAP_BYTES);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(spool.acked_through(), None);
    assert_eq!(read_all(&mut spool).len(), 10);
}

#[test]
fn a_spool_directory_that_cannot_be_created_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("state");
    std::fs::write(&blocker, "a file where the state directory should be").unwrap();
    let spool_dir = blocker.join("spool");
    let error = Spool::open(&spool_dir, DEFAULT_CAP_BYTES).unwrap_err();
    assert!(matches!(error, SpoolError::Dir { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains(&spool_dir.display().to_string()), "{message}");
    assert!(
        message.contains("state_dir"),
        "the message says what to fix: {message}"
    );
}

/// Measures what one real sample of this host costs in the spool, and how long the default cap lasts.
#[test]
fn a_real_sample_of_this_host_round_trips_and_its_size_is_measured() {
    let mut sampler = Sampler::new(SamplerConfig::default());
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let real = sampler.sample(1, now_ms, Instant::now());
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(dir.path(), DEFAULT_CAP_BYTES).unwrap();
    spool.append(&real).unwrap();
    let record_bytes = spool.len_bytes();
    drop(spool);
    let (mut spool, _) = Spool::open(dir.path(), DEFAULT_CAP_BYTES).unwrap();
    assert_eq!(spool.read_after(None, 1).unwrap(), vec![real.clone()]);
    let hours = DEFAULT_CAP_BYTES as f64 / record_bytes as f64 / 3600.0;
    // A larger host for comparison: 64 cores, 10 interfaces and 100 listening ports, counters of a long uptime.
    let mut large = sample(2);
    large.cpu.as_mut().unwrap().per_core = (0..64)
        .map(|core| CpuTimes {
            user: 900_000_000 + core,
            system: 300_000_000 + core,
            idle: 4_000_000_000 + core,
            iowait: 2_000_000 + core,
            softirq: 20_000_000 + core,
            ..Default::default()
        })
        .collect();
    large.network = (0..10)
        .map(|index| InterfaceCounters {
            name: format!("ens{index}f0"),
            rx_bytes: 900_000_000_000_000 + index,
            tx_bytes: 700_000_000_000_000 + index,
            rx_packets: 900_000_000_000 + index,
            tx_packets: 800_000_000_000 + index,
            ..Default::default()
        })
        .collect();
    large.sockets.as_mut().unwrap().listeners = (0..100)
        .map(|index| Listener {
            port: 8000 + index,
            established: 3000,
            accept_queue: 2,
            accept_queue_limit: 4096,
        })
        .collect();
    let before = spool.len_bytes();
    spool.append(&large).unwrap();
    let large_record_bytes = spool.len_bytes() - before;
    assert_eq!(spool.read_after(Some(1), 1).unwrap(), vec![large]);
    let large_hours = DEFAULT_CAP_BYTES as f64 / large_record_bytes as f64 / 3600.0;
    println!(
        "one sample of a 64-core host with 10 interfaces and 100 listeners: {large_record_bytes} bytes; \
         {large_hours:.1} hours at 1 Hz"
    );
    println!(
        "one sample of this host: {record_bytes} bytes spooled ({} interfaces, {} listeners, {} cores); \
         {} MiB hold {hours:.1} hours at 1 Hz",
        real.network.len(),
        real.sockets.as_ref().map_or(0, |s| s.listeners.len()),
        real.cpu.as_ref().map_or(0, |c| c.per_core.len()),
        DEFAULT_CAP_BYTES >> 20
    );
}
