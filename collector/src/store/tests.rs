//! Tests of the store on temporary databases, driven with fake clocks.

use super::*;
use crate::store::rollup::{HOUR_MS, MINUTE_MS};

/// A Monday at 00:00 UTC, so minutes and hours line up with round numbers.
const T0: u64 = 1_700_438_400_000;

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&dir.path().join("headroom.db"), T0).unwrap();
    (dir, store)
}

fn metrics(cpu: f64, mem_bytes: u64, tcp: u64) -> HostMetrics {
    HostMetrics {
        cpu_busy_pct: Some(cpu),
        mem_used_bytes: Some(mem_bytes),
        tcp_established: Some(tcp),
        ..HostMetrics::default()
    }
}

fn row(seq: u64, ts_ms: u64, cpu: f64) -> SampleRow {
    SampleRow {
        seq,
        ts_ms,
        clock_offset_ms: 0,
        metrics: metrics(cpu, 1_000 * seq, seq),
        detail: Vec::new(),
    }
}

fn batch(host: &str, rows: Vec<SampleRow>) -> HostBatch {
    HostBatch {
        host: host.into(),
        instance_id: 7,
        received_ms: T0,
        hello: None,
        rows,
        gaps: Vec::new(),
    }
}

fn hello(group: &str, zone: &str, cores: u32, memory_bytes: u64) -> HostInfo {
    HostInfo {
        labels: [
            ("group".to_string(), group.to_string()),
            ("zone".to_string(), zone.to_string()),
        ]
        .into(),
        cores,
        memory_bytes,
        interval_ms: 1000,
        agent_version: "0.1.0".into(),
    }
}

fn count(store: &Store, sql: &str) -> i64 {
    store.conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn sketch_percentiles_over_hours_and_minutes_are_within_the_stated_error() {
    let (_dir, mut store) = temp_store();
    let mut rng = fastrand::Rng::with_seed(11);
    // Three hours at 1 Hz, a skewed distribution like CPU busy: mostly low, a busy tail.
    let values: Vec<f64> = (0..3 * 3600).map(|_| rng.f64().powi(4) * 100.0).collect();
    for chunk in values.chunks(600).enumerate() {
        let (i, chunk) = chunk;
        let rows = chunk
            .iter()
            .enumerate()
            .map(|(j, &v)| {
                let n = (i * 600 + j) as u64;
                row(n + 1, T0 + n * 1000, v)
            })
            .collect();
        store.commit_batches(&[batch("web-1", rows)]).unwrap();
    }
    store.maintain(T0 + 4 * HOUR_MS, &Retention::default()).unwrap();
    assert_eq!(count(&store, "SELECT COUNT(*) FROM rollup_hour"), 3);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM rollup_minute"), 180);

    let exact = |slice: &[f64], q: f64| {
        let mut sorted = slice.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    };
    // The whole window (hourly rows), and one with ragged ends (hours plus minute rows).
    for (from, to) in [
        (T0, T0 + 3 * HOUR_MS),
        (T0 + 17 * MINUTE_MS, T0 + 150 * MINUTE_MS),
    ] {
        let slice = &values[((from - T0) / 1000) as usize..((to - T0) / 1000) as usize];
        for q in [0.5, 0.9, 0.99] {
            let got = store
                .host_percentile("web-1", Metric::CpuBusyPct, from, to, q)
                .unwrap()
                .unwrap();
            let want = exact(slice, q);
            assert!(
                (got - want).abs() <= want * sketch::RELATIVE_ACCURACY,
                "q {q}: {got} vs {want}"
            );
        }
        let stats = store
            .host_stats("web-1", Metric::CpuBusyPct, from, to)
            .unwrap()
            .unwrap();
        assert_eq!(stats.count, slice.len() as u64);
    }
    let groups = store
        .group_percentiles(Metric::CpuBusyPct, T0, T0 + 3 * HOUR_MS, 0.99)
        .unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].samples, values.len() as u64);
}

#[test]
fn repeated_sequence_numbers_are_stored_once() {
    let (_dir, mut store) = temp_store();
    let first = store
        .commit_batches(&[batch("a", (1..=10).map(|s| row(s, T0 + s * 1000, 1.0)).collect())])
        .unwrap();
    assert_eq!(
        first[0],
        CommitOutcome {
            stored: 10,
            duplicates: 0,
            last_seq: Some(10)
        }
    );
    // A retransmission overlapping what was stored, in one group with a second copy of itself.
    let again = batch("a", (5..=15).map(|s| row(s, T0 + s * 1000, 1.0)).collect());
    let outcomes = store.commit_batches(&[again.clone(), again]).unwrap();
    assert_eq!(
        outcomes[0],
        CommitOutcome {
            stored: 5,
            duplicates: 6,
            last_seq: Some(15)
        }
    );
    assert_eq!(
        outcomes[1],
        CommitOutcome {
            stored: 0,
            duplicates: 11,
            last_seq: Some(15)
        }
    );
    assert_eq!(count(&store, "SELECT COUNT(*) FROM samples"), 15);
    assert_eq!(count(&store, "SELECT COUNT(DISTINCT seq) FROM samples"), 15);
}

#[test]
fn issue_12_rows_out_of_order_are_stored_in_order_and_a_hello_counts_once_committed() {
    let (_dir, mut store) = temp_store();
    let mut first = batch("a", [3, 1, 2].map(|s| row(s, T0 + s * 1000, 1.0)).to_vec());
    first.hello = Some(hello("web", "z1", 4, 8 << 30));
    let second = batch("a", vec![row(4, T0 + 4_000, 1.0), row(2, T0 + 2_000, 1.0)]);
    let outcomes = store.commit_batches(&[first, second]).unwrap();
    assert_eq!(
        outcomes,
        [
            CommitOutcome {
                stored: 3,
                duplicates: 0,
                last_seq: Some(3)
            },
            CommitOutcome {
                stored: 1,
                duplicates: 1,
                last_seq: Some(4)
            }
        ]
    );
    let record = &store.hosts["a"];
    assert_eq!(
        (record.group.as_str(), record.zone.as_str(), record.cores),
        ("web", "z1", 4)
    );
    // A batch without a hello keeps what the last one said.
    store
        .commit_batches(&[batch("a", vec![row(5, T0 + 5_000, 1.0)])])
        .unwrap();
    assert_eq!(
        (store.hosts["a"].group.as_str(), store.hosts["a"].zone.as_str()),
        ("web", "z1")
    );
    assert_eq!(store.last_seq("a", 7), Some(5));
    assert_eq!(count(&store, "SELECT COUNT(*) FROM samples"), 5);
}

/// A database where host "a" (instance 7) stored seqs 1 to 5, a sync recorded them in `hosts`, and 6 to 8
/// followed: only the rows themselves know those.
fn stored_past_the_sync(path: &std::path::Path) -> Store {
    let (mut store, _) = Store::open(path, T0).unwrap();
    store
        .commit_batches(&[batch("a", (1..=5).map(|s| row(s, T0 + s, 1.0)).collect())])
        .unwrap();
    store.maintain(T0, &Retention::default()).unwrap();
    store
        .commit_batches(&[batch("a", (6..=8).map(|s| row(s, T0 + s, 1.0)).collect())])
        .unwrap();
    store
}

#[test]
fn reopening_keeps_the_last_seq_with_or_without_a_sync() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headroom.db");
    {
        let mut store = stored_past_the_sync(&path);
        store
            .commit_batches(&[batch("b", vec![row(3, T0, 1.0)])])
            .unwrap();
    }
    let (mut store, report) = Store::open(&path, T0).unwrap();
    assert_eq!(report.hosts, 2);
    assert_eq!(store.last_seq("a", 7), Some(8));
    assert_eq!(store.last_seq("b", 7), Some(3));
    assert_eq!(
        store.last_seq("a", 8),
        None,
        "another instance has stored nothing"
    );

    // A reinstall restarts at seq 1; the old instance's higher seqs must not shadow it after a crash.
    let mut reinstall = batch("a", vec![row(1, T0 + 100, 1.0), row(2, T0 + 101, 1.0)]);
    reinstall.instance_id = 8;
    assert_eq!(store.commit_batches(&[reinstall]).unwrap()[0].stored, 2);
    drop(store);
    let (store, _) = Store::open(&path, T0).unwrap();
    assert_eq!(store.last_seq("a", 8), Some(2));
    assert_eq!(store.last_seq("a", 7), None);
}

/// Issue 12: a read-only store (every web page, API call and `/metrics` scrape) does not read back the rows
/// stored since the last sync: it knows the synced last seqs only, and its cost does not grow with them.
#[test]
fn issue_12_a_read_only_store_does_not_read_back_the_rows_since_the_sync() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headroom.db");
    stored_past_the_sync(&path);
    let reader = Store::open_read_only(&path).unwrap();
    assert_eq!(
        reader.last_seq("a", 7),
        Some(5),
        "as synced, not the rows after it"
    );
    let (writer, _) = Store::open(&path, T0).unwrap();
    assert_eq!(
        writer.last_seq("a", 7),
        Some(8),
        "the writer resumes after every stored row"
    );
}

#[test]
fn a_rollup_of_two_minutes_matches_hand_computed_min_mean_max() {
    let (_dir, mut store) = temp_store();
    let mut info = batch("a", vec![]);
    info.hello = Some(hello("web", "z1", 4, 8_000));
    store.commit_batches(&[info]).unwrap();
    // Minute 0: 10, 20, 60; minute 1: 5, 7. Rows stored out of time order across two batches.
    store
        .commit_batches(&[batch(
            "a",
            vec![row(1, T0 + 1_000, 10.0), row(2, T0 + 61_000, 5.0)],
        )])
        .unwrap();
    store
        .commit_batches(&[batch(
            "a",
            vec![
                row(3, T0 + 2_000, 20.0),
                row(4, T0 + 62_000, 7.0),
                row(5, T0 + 59_999, 60.0),
            ],
        )])
        .unwrap();
    // At T0 + 2 min + 5 s the second minute is not yet past the rollup delay.
    store
        .maintain(T0 + 2 * MINUTE_MS + 5_000, &Retention::default())
        .unwrap();
    assert_eq!(count(&store, "SELECT COUNT(*) FROM rollup_minute"), 1);
    store
        .maintain(T0 + 2 * MINUTE_MS + 10_000, &Retention::default())
        .unwrap();
    let first = store
        .host_stats("a", Metric::CpuBusyPct, T0, T0 + MINUTE_MS)
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.count, first.min, first.mean(), first.max),
        (3, 10.0, 30.0, 60.0)
    );
    let second = store
        .host_stats("a", Metric::CpuBusyPct, T0 + MINUTE_MS, T0 + 2 * MINUTE_MS)
        .unwrap()
        .unwrap();
    assert_eq!(
        (second.count, second.min, second.mean(), second.max),
        (2, 5.0, 6.0, 7.0)
    );
    let both = store
        .host_stats("a", Metric::CpuBusyPct, T0, T0 + 2 * MINUTE_MS)
        .unwrap()
        .unwrap();
    assert_eq!((both.count, both.min, both.sum, both.max), (5, 5.0, 102.0, 60.0));

    // A late sample for the first minute, after it was rolled up, is merged in.
    store
        .commit_batches(&[batch("a", vec![row(6, T0 + 30_000, 100.0)])])
        .unwrap();
    store
        .maintain(T0 + 3 * MINUTE_MS + 10_000, &Retention::default())
        .unwrap();
    let first = store
        .host_stats("a", Metric::CpuBusyPct, T0, T0 + MINUTE_MS)
        .unwrap()
        .unwrap();
    assert_eq!((first.count, first.max, first.sum), (4, 100.0, 190.0));
    let group = &store.group_minutes(T0, T0 + MINUTE_MS).unwrap()[0];
    assert_eq!(
        group.hosts, 1,
        "a merge replaces the host's contribution rather than adding a host"
    );
    assert!(
        (group.cpu_busy_cores - 47.5 / 100.0 * 4.0).abs() < 1e-9,
        "{group:?}"
    );
}

#[test]
fn group_minutes_sum_three_hosts() {
    let (_dir, mut store) = temp_store();
    // (host, group, cores, memory, cpu samples, mem used, tcp)
    let hosts = [
        ("a", "web", 4, 16_000, [50.0, 70.0], 4_000, 10),
        ("b", "web", 8, 32_000, [25.0, 25.0], 8_000, 20),
        ("c", "db", 2, 8_000, [100.0, 0.0], 1_000, 5),
    ];
    for (name, group, cores, memory, cpu, mem_used, tcp) in hosts {
        let mut b = batch(
            name,
            cpu.iter()
                .enumerate()
                .map(|(i, &c)| SampleRow {
                    seq: i as u64 + 1,
                    ts_ms: T0 + 10_000 * i as u64,
                    clock_offset_ms: 0,
                    metrics: metrics(c, mem_used, tcp),
                    detail: Vec::new(),
                })
                .collect(),
        );
        b.hello = Some(hello(group, "z1", cores, memory));
        store.commit_batches(&[b]).unwrap();
    }
    store.maintain(T0 + 5 * MINUTE_MS, &Retention::default()).unwrap();
    let rows = store.group_minutes(T0, T0 + HOUR_MS).unwrap();
    assert_eq!(rows.len(), 2);
    let (db, web) = (&rows[0], &rows[1]);
    assert_eq!(
        (db.group.as_str(), db.hosts, db.cores, db.mem_bytes),
        ("db", 1, 2, 8_000)
    );
    assert!((db.cpu_busy_cores - 1.0).abs() < 1e-9);
    assert_eq!(
        (
            web.group.as_str(),
            web.zone.as_str(),
            web.hosts,
            web.cores,
            web.mem_bytes
        ),
        ("web", "z1", 2, 12, 48_000)
    );
    // a: 60 % of 4 cores = 2.4; b: 25 % of 8 = 2.0.
    assert!((web.cpu_busy_cores - 4.4).abs() < 1e-9, "{web:?}");
    assert_eq!((web.mem_used_bytes, web.tcp_established), (12_000.0, 30.0));
}

#[test]
fn retention_deletes_exactly_what_is_older() {
    let (_dir, mut store) = temp_store();
    let rows: Vec<SampleRow> = (0..100).map(|i| row(i + 1, T0 + i * MINUTE_MS, 1.0)).collect();
    store.commit_batches(&[batch("a", rows)]).unwrap();
    store
        .commit_batches(&[HostBatch {
            gaps: vec![GapRow {
                from_seq: 1,
                to_seq: 2,
                from_ms: T0,
                to_ms: T0 + 1,
                count: 2,
                reason: "spool full".into(),
            }],
            ..batch("a", vec![])
        }])
        .unwrap();
    let retention = Retention {
        raw_ms: 30 * MINUTE_MS,
        minute_rollups_ms: 60 * MINUTE_MS,
        hour_rollups_ms: 90 * MINUTE_MS,
    };
    // Now is minute 110: raw before minute 80, minute rollups before 50, the rest before 20 expire.
    let now = T0 + 110 * MINUTE_MS;
    let report = store.maintain(now, &retention).unwrap();
    assert_eq!(report.raw_rows_deleted, 80);
    assert_eq!(
        count(&store, "SELECT MIN(ts_ms) FROM samples"),
        (T0 + 80 * MINUTE_MS) as i64
    );
    assert_eq!(count(&store, "SELECT COUNT(*) FROM samples"), 20);
    assert_eq!(
        count(&store, "SELECT MIN(bucket_ms) FROM rollup_minute"),
        (T0 + 50 * MINUTE_MS) as i64
    );
    assert_eq!(
        count(&store, "SELECT MIN(minute_ms) FROM group_minutes"),
        (T0 + 20 * MINUTE_MS) as i64
    );
    // Hour 0 starts before the cutoff (minute 20) and goes; hour 1 is not built yet (rolled up to minute 109).
    assert_eq!(count(&store, "SELECT COUNT(*) FROM rollup_hour"), 0);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM gaps"), 0);
    // Nothing younger goes on the next run.
    assert_eq!(store.maintain(now, &retention).unwrap().raw_rows_deleted, 0);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM samples"), 20);
}

#[test]
fn raw_rows_are_not_deleted_before_they_are_rolled_up() {
    let (_dir, mut store) = temp_store();
    store
        .commit_batches(&[batch("a", vec![row(1, T0, 1.0)])])
        .unwrap();
    let retention = Retention {
        raw_ms: 1,
        ..Retention::default()
    };
    let mut report = MaintainReport::default();
    // The host sync runs first; the row is not rolled up yet, so it stays.
    assert!(store
        .maintain_step(T0 + HOUR_MS, &retention, &mut report)
        .unwrap());
    assert_eq!(count(&store, "SELECT COUNT(*) FROM samples"), 1);
    store.maintain(T0 + HOUR_MS, &retention).unwrap();
    assert_eq!(count(&store, "SELECT COUNT(*) FROM samples"), 0);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM rollup_minute"), 1);
}

#[test]
fn open_reports_creation_then_a_clean_check_and_refuses_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headroom.db");
    // An empty file (as `touch` leaves it) is a new database.
    std::fs::write(&path, b"").unwrap();
    let (store, report) = Store::open(&path, T0).unwrap();
    assert_eq!(report.migrated_from, Some(0));
    assert!(report.check_ok);
    assert!(
        report.line().contains("(created)") && report.line().contains("quick_check ok"),
        "{}",
        report.line()
    );
    drop(store);
    let (_, report) = Store::open(&path, T0).unwrap();
    assert_eq!(
        (report.migrated_from, report.schema_version),
        (None, schema::SCHEMA_VERSION)
    );

    let newer = dir.path().join("newer.db");
    drop(Store::open(&newer, T0).unwrap());
    Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let error = Store::open(&newer, T0).err().unwrap();
    assert!(
        matches!(error, StoreError::NewerSchema { found: 99, .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("run a newer headroom-collector"),
        "{error}"
    );

    let foreign = dir.path().join("other.db");
    Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE orders (id INTEGER)")
        .unwrap();
    let error = Store::open(&foreign, T0).err().unwrap();
    assert!(
        matches!(error, StoreError::NotHeadroom { .. }) && error.to_string().contains("orders"),
        "{error}"
    );

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    let error = Store::open(&garbage, T0).err().unwrap();
    assert!(matches!(error, StoreError::NotHeadroom { .. }), "{error}");
}

#[test]
fn quick_check_problems_are_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headroom.db");
    {
        let (mut store, _) = Store::open(&path, T0).unwrap();
        let rows: Vec<SampleRow> = (1..=2000).map(|s| row(s, T0 + s, 1.0)).collect();
        store.commit_batches(&[batch("a", rows)]).unwrap();
        store
            .conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    // Overwrite whole pages past the schema page with garbage.
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 4096 * 12);
    bytes[4096 * 4..4096 * 12].fill(0xff);
    std::fs::write(&path, bytes).unwrap();
    match Store::open(&path, T0) {
        Ok((_, report)) => {
            assert!(!report.check_ok, "{}", report.line());
            assert!(
                report.line().contains("quick_check found problems"),
                "{}",
                report.line()
            );
        }
        Err(error) => assert!(matches!(error, StoreError::Corrupt { .. }), "{error}"),
    }
}

#[test]
fn detail_blobs_round_trip() {
    use headroom_common::wire::{SocketSample, TcpState};
    let mut states = TcpStates::default();
    states.add(TcpState::Established, 3);
    let sample = Sample {
        seq: 1,
        timestamp_ms: T0,
        network: vec![InterfaceCounters {
            name: "eth0".into(),
            rx_bytes: 5,
            ..Default::default()
        }],
        sockets: Some(SocketSample {
            tcp_states: Some(states),
            listeners: vec![Listener {
                port: 443,
                established: 3,
                accept_queue: 1,
                accept_queue_limit: 128,
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let row = SampleRow::from_sample(&sample, HostMetrics::default());
    let detail = SampleDetail::decode(&row.detail).unwrap();
    assert_eq!(detail, SampleDetail::of(&sample));
    assert_eq!(detail.listeners[0].port, 443);
    // Encoded straight from the sample, the bytes are those of the owned detail, whatever the reused
    // buffer held before; a sample without sockets too.
    assert_eq!(row.detail, SampleDetail::of(&sample).encode());
    let mut reused = SampleRow::from_sample(&sample, HostMetrics::default());
    let bare = Sample {
        seq: 2,
        ..Default::default()
    };
    reused.fill_from(&bare, -5);
    assert_eq!(reused.detail, SampleDetail::of(&bare).encode());
    assert_eq!((reused.seq, reused.clock_offset_ms), (2, -5));
}

#[tokio::test]
async fn the_writer_reports_read_only_and_disk_full_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&dir.path().join("headroom.db"), T0).unwrap();
    let (handle, thread) = spawn_writer(store, 8);
    assert_eq!(
        handle
            .commit(batch("a", vec![row(1, T0, 1.0)]))
            .await
            .unwrap()
            .last_seq,
        Some(1)
    );

    handle.execute_for_test("PRAGMA query_only = ON").await;
    let error = handle
        .commit(batch("a", vec![row(2, T0, 1.0)]))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::ReadOnly { .. }), "{error}");
    assert!(error.to_string().contains("writable"), "{error}");
    match handle.health() {
        StoreHealth::Degraded { error, .. } => assert!(error.contains("read-only"), "{error}"),
        StoreHealth::Ok => panic!("health should be degraded"),
    }
    assert_eq!(
        handle.last_seq("a", 7),
        Some(1),
        "nothing of the failed batch counts as stored"
    );

    handle.execute_for_test("PRAGMA query_only = OFF").await;
    assert_eq!(
        handle
            .commit(batch("a", vec![row(2, T0, 1.0)]))
            .await
            .unwrap()
            .stored,
        1
    );
    assert_eq!(handle.health(), StoreHealth::Ok);

    // Disk full: cap the file at its current size, then lift the cap.
    handle.execute_for_test("PRAGMA max_page_count = 1").await;
    let big: Vec<SampleRow> = (3..500)
        .map(|s| SampleRow {
            detail: vec![7; 2000],
            ..row(s, T0, 1.0)
        })
        .collect();
    let error = handle.commit(batch("a", big.clone())).await.unwrap_err();
    assert!(matches!(error, StoreError::DiskFull { .. }), "{error}");
    assert!(matches!(handle.health(), StoreHealth::Degraded { .. }));
    handle
        .execute_for_test("PRAGMA max_page_count = 1073741823")
        .await;
    assert_eq!(handle.commit(batch("a", big)).await.unwrap().last_seq, Some(499));
    assert_eq!(handle.health(), StoreHealth::Ok);
    drop(handle);
    thread.join().unwrap();
}

/// Whether `future` is ready at its first poll.
fn ready_at_once<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

#[tokio::test]
async fn issue_12_a_reserved_queue_place_is_the_one_its_commit_uses() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&dir.path().join("headroom.db"), T0).unwrap();
    // A queue of one place.
    let (handle, thread) = spawn_writer(store, 1);
    let slot = handle.reserve().await.unwrap();
    assert!(
        ready_at_once(handle.reserve()).is_none(),
        "the only place is reserved: nobody else gets one"
    );
    // The commit goes into the place reserved for it: taking another would wait forever.
    let committed = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        handle.commit_in(Some(slot), batch("a", vec![row(1, T0, 1.0)])),
    )
    .await
    .expect("a commit in its reserved place does not wait for another")
    .unwrap();
    assert_eq!(committed.0.last_seq, Some(1));
    assert_eq!(committed.1.rows.len(), 1, "the batch comes back for reuse");
    // The writer freed the place when it took the batch; a place dropped unused is free again too.
    let unused = ready_at_once(handle.reserve())
        .expect("free after the commit")
        .unwrap();
    drop(unused);
    let again = ready_at_once(handle.reserve())
        .expect("free once dropped")
        .unwrap();
    let outcome = handle
        .commit_in(Some(again), batch("a", vec![row(2, T0 + 1, 1.0)]))
        .await
        .unwrap();
    assert_eq!(outcome.0.last_seq, Some(2));
    drop(handle);
    thread.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submitters_are_committed_and_shutdown_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headroom.db");
    let (store, _) = Store::open(&path, T0).unwrap();
    // A queue of 2 with 10 submitters: most wait for a slot, none is lost.
    let (handle, thread) = spawn_writer(store, 2);
    let mut tasks = Vec::new();
    for h in 0..10 {
        let handle = handle.clone();
        tasks.push(tokio::spawn(async move {
            for s in 1..=10u64 {
                let outcome = handle
                    .commit(batch(&format!("host-{h}"), vec![row(s, T0 + s, 1.0)]))
                    .await
                    .unwrap();
                assert_eq!(outcome.last_seq, Some(s));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(handle.last_seq("host-3", 7), Some(10));
    drop(handle);
    thread.join().unwrap();
    let store = Store::open_read_only(&path).unwrap();
    assert_eq!(count(&store, "SELECT COUNT(*) FROM samples"), 100);
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM (SELECT DISTINCT host_id, seq FROM samples)"
        ),
        100
    );
    // The writer synced hosts on its way out.
    assert_eq!(count(&store, "SELECT MIN(last_seq) FROM hosts"), 10);
}

/// A sample of `cpu` % busy whose detail lists `(port, established)` listeners.
fn row_with_ports(seq: u64, ts_ms: u64, cpu: f64, ports: &[(u16, u32)]) -> SampleRow {
    let detail = SampleDetail {
        listeners: ports
            .iter()
            .map(|&(port, established)| Listener {
                port,
                established,
                accept_queue: 0,
                accept_queue_limit: 128,
            })
            .collect(),
        ..SampleDetail::default()
    };
    SampleRow {
        detail: detail.encode(),
        ..row(seq, ts_ms, cpu)
    }
}

#[test]
fn group_port_minutes_sum_host_means_and_replace_a_late_host_contribution() {
    let (dir, mut store) = temp_store();
    // Minute 0. a: 80 → 10, 20 (mean 15); 443 → 100, 200 (150).
    //           b: 80 → 30 in its first sample only (30); 443 → 300, 500 (400).
    let mut a = batch(
        "a",
        vec![
            row_with_ports(1, T0 + 1_000, 10.0, &[(80, 10), (443, 100)]),
            row_with_ports(2, T0 + 20_000, 10.0, &[(80, 20), (443, 200)]),
        ],
    );
    a.hello = Some(hello("web", "z1", 4, 8_000));
    let mut b = batch(
        "b",
        vec![
            row_with_ports(1, T0 + 2_000, 10.0, &[(80, 30), (443, 300)]),
            row_with_ports(2, T0 + 30_000, 10.0, &[(443, 500)]),
        ],
    );
    b.hello = Some(hello("web", "z1", 4, 8_000));
    store.commit_batches(&[a, b]).unwrap();
    store
        .maintain(T0 + MINUTE_MS + 10_000, &Retention::default())
        .unwrap();
    let by_port = |store: &Store| -> Vec<(u16, f64, u64)> {
        let rows = store.group_port_minutes(T0, T0 + MINUTE_MS).unwrap();
        assert!(rows
            .iter()
            .all(|r| (r.minute_ms, r.group.as_str(), r.zone.as_str()) == (T0, "web", "z1")));
        rows.iter().map(|r| (r.port, r.established, r.hosts)).collect()
    };
    // 80: 15 + 30 = 45; 443: 150 + 400 = 550; two hosts each.
    assert_eq!(by_port(&store), vec![(80, 45.0, 2), (443, 550.0, 2)]);

    // A late sample of a for minute 0 (an agent catching up): 80 → 60, 443 → 600, and a new port 8080 → 7.
    // a's means become 80: (10 + 20 + 60) / 3 = 30, 443: (100 + 200 + 600) / 3 = 300, 8080: 7. Its old
    // contribution is replaced: 80: 30 + 30 = 60, 443: 300 + 400 = 700 (not 550 + 300), 8080: one host.
    store
        .commit_batches(&[batch(
            "a",
            vec![row_with_ports(
                3,
                T0 + 40_000,
                10.0,
                &[(80, 60), (443, 600), (8080, 7)],
            )],
        )])
        .unwrap();
    store
        .maintain(T0 + 2 * MINUTE_MS + 10_000, &Retention::default())
        .unwrap();
    assert_eq!(
        by_port(&store),
        vec![(80, 60.0, 2), (443, 700.0, 2), (8080, 7.0, 1)]
    );
    // The host's own minute row keeps the sums the next merge starts from.
    let a_id = store.hosts["a"].id;
    let minute = store.host_minute(a_id, T0).unwrap().unwrap();
    assert_eq!(
        (
            minute.ports.get(80),
            minute.ports.get(443),
            minute.ports.get(8080)
        ),
        ((90, 3), (900, 3), (7, 1))
    );
    assert_eq!(store.group_minutes(T0, T0 + MINUTE_MS).unwrap()[0].hosts, 2);
    let marks = store.rollup_marks().unwrap();
    assert_eq!(marks.rolled_up_through_ms, T0 + 2 * MINUTE_MS);
    assert_eq!(marks.port_minutes_from_ms, 0);
    assert_eq!(marks.raw_rowid, 5);
    // Read from the file on a connection of their own, as /metrics reads them, without opening a store.
    let path = dir.path().join("headroom.db");
    assert_eq!(super::read_rollup_marks(&path).unwrap(), marks);
    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let error = super::read_rollup_marks(&other).unwrap_err().to_string();
    assert!(error.contains("other.db") && !error.contains('\n'), "{error}");

    // Kept as long as group_minutes.
    let retention = Retention {
        hour_rollups_ms: HOUR_MS,
        ..Retention::default()
    };
    store.maintain(T0 + MINUTE_MS + HOUR_MS, &retention).unwrap();
    assert!(store.group_port_minutes(T0, T0 + HOUR_MS).unwrap().is_empty());
}

#[test]
fn a_version_1_database_gains_port_sums_from_its_next_unrolled_minute() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headroom.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA application_id = {}; PRAGMA user_version = 1; \
             INSERT INTO rollup_minute (bucket_ms, host_id, samples, stats, pass_rowid) \
             VALUES ({}, 1, 1, x'', 1), ({}, 2, 1, x'', 1);",
            schema::APPLICATION_ID,
            T0,
            T0 + 5 * MINUTE_MS
        ))
        .unwrap();
    }
    let (store, report) = Store::open(&path, T0).unwrap();
    assert_eq!(
        (report.migrated_from, report.schema_version),
        (Some(1), schema::SCHEMA_VERSION)
    );
    // Version 4: each sample records the clock correction applied to it.
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM pragma_table_info('samples') WHERE name = 'clock_offset_ms'"
        ),
        1
    );
    // The first minute after every minute row written before the upgrade.
    assert_eq!(
        store.rollup_marks().unwrap().port_minutes_from_ms,
        T0 + 6 * MINUTE_MS
    );
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM rollup_minute WHERE ports IS NULL"),
        2
    );
}

#[test]
fn issue_13_export_reads_after_its_cursor_and_retention_records_unsent_rows_as_a_gap() {
    let (_dir, mut store) = temp_store();
    let rows: Vec<SampleRow> = (0..100).map(|i| row(i + 1, T0 + i * MINUTE_MS, 10.0)).collect();
    store
        .commit_batches(&[HostBatch {
            hello: Some(hello("web", "z1", 4, 1 << 30)),
            ..batch("a", rows)
        }])
        .unwrap();
    // Export never ran: no cursor, and retention records nothing.
    assert_eq!(store.export_progress().unwrap(), None);
    let first = store.export_rows_after(0, 10).unwrap();
    assert_eq!(first.len(), 10);
    assert!(first.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(first[0].values[Metric::CpuBusyPct.index()], Some(10.0));
    assert_eq!(first[0].values[Metric::TcpEstablished.index()], Some(1.0));
    let hosts = store.export_hosts().unwrap();
    assert_eq!(hosts[&first[0].host_id].group, "web");
    assert_eq!(hosts[&first[0].host_id].cores, 4);

    // The remote acknowledged the first 70 rows; 2 were refused for good.
    let acked = store.export_rows_after(0, 70).unwrap().last().unwrap().id;
    store.save_export_progress(acked, 2).unwrap();
    store.save_export_progress(acked - 5, 0).unwrap();
    let progress = store.export_progress().unwrap().unwrap();
    assert_eq!(
        (progress.cursor, progress.dropped_rows),
        (acked, 2),
        "the cursor never moves back"
    );
    assert_eq!(store.export_rows_after(acked, 1000).unwrap().len(), 30);

    // Raw retention deletes minutes 0..80: rows 71..80 were never sent, so they are a gap.
    let retention = Retention {
        raw_ms: 30 * MINUTE_MS,
        minute_rollups_ms: 600 * MINUTE_MS,
        hour_rollups_ms: 900 * MINUTE_MS,
    };
    store.maintain(T0 + 110 * MINUTE_MS, &retention).unwrap();
    let progress = store.export_progress().unwrap().unwrap();
    assert_eq!(progress.gap_rows, 10);
    assert_eq!(progress.gap_from_ms, T0 + 70 * MINUTE_MS);
    assert_eq!(progress.gap_to_ms, T0 + 79 * MINUTE_MS);
    assert_eq!(store.export_rows_after(acked, 1000).unwrap().len(), 20);
}

#[test]
fn a_version_2_database_gains_the_busiest_core_column_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headroom.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.execute_batch(schema::MIGRATIONS[1]).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA application_id = {}; PRAGMA user_version = 2; \
             INSERT INTO hosts (id, name, first_seen_ms, last_seen_ms) VALUES (1, 'a', {T0}, {T0}); \
             INSERT INTO samples (ts_ms, host_id, seq, cpu_busy_pct) VALUES ({T0}, 1, 1, 12.5);",
            schema::APPLICATION_ID,
        ))
        .unwrap();
    }
    let (mut store, report) = Store::open(&path, T0).unwrap();
    assert_eq!(
        (report.migrated_from, report.schema_version),
        (Some(2), schema::SCHEMA_VERSION)
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM samples WHERE cpu_busy_pct = 12.5 AND cpu_busiest_core_pct IS NULL"
        ),
        1
    );
    let mut row = row(2, T0 + 1_000, 20.0);
    row.metrics.cpu_busiest_core_pct = Some(97.5);
    store.commit_batches(&[batch("a", vec![row])]).unwrap();
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM samples WHERE cpu_busiest_core_pct = 97.5"
        ),
        1
    );
}

/// Issue 9: a report's raw-tail step is the rollup's own arithmetic. What `raw_group_minutes` says raw rows
/// past the rollup add (a late row merged into a finished minute, and a minute not rolled up yet) is exactly
/// what the next rollup pass adds to `group_minutes` and `group_port_minutes`.
#[test]
fn issue_9_raw_rows_past_the_rollup_add_what_the_next_pass_adds() {
    let (_dir, mut store) = temp_store();
    let mut a = batch(
        "a",
        vec![
            row_with_ports(1, T0 + 1_000, 20.0, &[(443, 100)]),
            row_with_ports(2, T0 + 20_000, 40.0, &[(443, 300)]),
        ],
    );
    a.hello = Some(hello("web", "z1", 4, 8_000));
    let mut b = batch("b", vec![row_with_ports(1, T0 + 2_000, 10.0, &[(443, 50)])]);
    b.hello = Some(hello("web", "z2", 8, 8_000));
    store.commit_batches(&[a, b]).unwrap();
    store
        .maintain(T0 + MINUTE_MS + 10_000, &Retention::default())
        .unwrap();
    // A late row of a for the finished minute 0, and minute 1 of both hosts.
    store
        .commit_batches(&[
            batch(
                "a",
                vec![
                    row_with_ports(3, T0 + 40_000, 90.0, &[(443, 800), (8080, 7)]),
                    row_with_ports(4, T0 + MINUTE_MS + 1_000, 50.0, &[(443, 10)]),
                ],
            ),
            batch(
                "b",
                vec![row_with_ports(2, T0 + MINUTE_MS + 2_000, 30.0, &[(443, 20)])],
            ),
        ])
        .unwrap();
    let window = (T0, T0 + 2 * MINUTE_MS);
    // Per minute: hosts, busy cores, used memory, established by port, summed over zones.
    type Sums = BTreeMap<u64, (i64, f64, f64, BTreeMap<u16, f64>)>;
    let tables = |store: &Store| -> Sums {
        let mut sums = Sums::new();
        for row in store.group_minutes(window.0, window.1).unwrap() {
            let sum = sums.entry(row.minute_ms).or_default();
            sum.0 += row.hosts as i64;
            sum.1 += row.cpu_busy_cores;
            sum.2 += row.mem_used_bytes;
        }
        for row in store.group_port_minutes(window.0, window.1).unwrap() {
            *sums
                .entry(row.minute_ms)
                .or_default()
                .3
                .entry(row.port)
                .or_default() += row.established;
        }
        sums
    };
    let before = tables(&store);
    let marks = store.rollup_marks().unwrap();
    let mut expected = before.clone();
    for raw in store
        .raw_group_minutes(
            window.0,
            window.1,
            marks.rolled_up_through_ms,
            marks.raw_rowid,
            marks.port_minutes_from_ms,
        )
        .unwrap()
    {
        assert_eq!(raw.group, "web");
        let sum = expected.entry(raw.minute_ms).or_default();
        sum.0 += raw.hosts;
        sum.1 += raw.cpu_busy_cores;
        sum.2 += raw.mem_used_bytes;
        for (port, established) in raw.established_by_port {
            *sum.3.entry(port).or_default() += established;
        }
    }
    // Minute 0 changes only a's means (no new host); minute 1 is new.
    assert_eq!(expected[&T0].0, 2);
    assert_eq!(expected[&(T0 + MINUTE_MS)].0, 2);
    assert_ne!(expected[&T0].1, before[&T0].1);
    store
        .maintain(T0 + 2 * MINUTE_MS + 10_000, &Retention::default())
        .unwrap();
    let after = tables(&store);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (minute, want) in &expected {
        let got = &after[minute];
        assert_eq!(got.0, want.0, "hosts in minute {minute}");
        assert!(
            (got.1 - want.1).abs() < 1e-9,
            "busy cores in minute {minute}: {got:?} vs {want:?}"
        );
        assert!(
            (got.2 - want.2).abs() < 1e-6,
            "memory in minute {minute}: {got:?} vs {want:?}"
        );
        assert_eq!(
            got.3.keys().collect::<Vec<_>>(),
            want.3.keys().collect::<Vec<_>>()
        );
        for (port, established) in &want.3 {
            assert!(
                (got.3[port] - established).abs() < 1e-9,
                "port {port} in minute {minute}"
            );
        }
    }
}

/// Issue 9: SQLite stays behind the store's API. No source file outside `src/store/` names the SQLite crate,
/// so every other layer reads through named functions that return typed rows.
#[test]
fn issue_9_only_the_store_touches_sqlite() {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    assert!(files.len() > 50, "walked {}", src.display());
    let offenders: Vec<_> = files
        .iter()
        .filter(|path| !path.starts_with(src.join("store")))
        .filter(|path| {
            std::fs::read_to_string(path)
                .unwrap()
                .contains(concat!("rus", "qlite"))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "SQLite used outside the store: {offenders:?}"
    );
}

/// Three hosts over about three hours: one throughout, one that stopped after the first hour, one that
/// started in the last minutes; hour rollups built for the first two hours only.
fn three_hosts_three_hours() -> (tempfile::TempDir, Store) {
    let (dir, mut store) = temp_store();
    let mut rng = fastrand::Rng::with_seed(12);
    let spans = [("a", 0, 170 * 60), ("b", 0, 61 * 60), ("c", 160 * 60, 170 * 60)];
    for (host, first_s, end_s) in spans {
        let mut seq = 0;
        for chunk_start in (first_s..end_s).step_by(600) {
            let rows = (chunk_start..(chunk_start + 600).min(end_s))
                .map(|s| {
                    seq += 1;
                    let mut r = row(seq, T0 + s * 1000, rng.f64() * 100.0);
                    r.metrics.mem_used_bytes = Some(rng.u64(1 << 30..4 << 30));
                    r
                })
                .collect();
            store.commit_batches(&[batch(host, rows)]).unwrap();
        }
    }
    store
        .maintain(T0 + 2 * HOUR_MS + 30 * MINUTE_MS, &Retention::default())
        .unwrap();
    store
        .maintain(T0 + 171 * MINUTE_MS, &Retention::default())
        .unwrap();
    (dir, store)
}

#[test]
fn issue_12_a_window_reads_only_the_minutes_that_hold_rollups() {
    let (_dir, store) = three_hosts_three_hours();
    let first = count(&store, "SELECT MIN(bucket_ms) FROM rollup_minute") as u64;
    let last = count(&store, "SELECT MAX(bucket_ms) FROM rollup_minute") as u64;
    assert_eq!(first, T0);
    assert!(
        last >= T0 + 160 * MINUTE_MS,
        "minutes rolled up to {}",
        (last - T0) / MINUTE_MS
    );
    let built = count(&store, "SELECT MAX(bucket_ms) FROM rollup_hour") as u64 + HOUR_MS;
    // A day's window ending now: whole hours from the hour table (one indexed range per host, however
    // long), minutes only where minute rows exist, not the 1,440 minutes of the day.
    let from = T0 + 3 * HOUR_MS - 86_400_000;
    let plan = store.rollup_plan(from, T0 + 3 * HOUR_MS).unwrap();
    assert_eq!(plan.hours, Some((from, built)));
    assert_eq!(plan.minutes, vec![(built, last + MINUTE_MS)]);
    // Before the first minute, and an empty database: no minute to look up.
    assert!(store.rollup_plan(T0 - 86_400_000, T0).unwrap().minutes.is_empty());
    let (_empty_dir, empty) = temp_store();
    let plan = empty.rollup_plan(T0, T0 + 86_400_000).unwrap();
    assert!(plan.hours.is_none() && plan.minutes.is_empty(), "{plan:?}");
}

#[test]
fn issue_12_every_hosts_statistics_in_one_read_answer_like_one_host_at_a_time() {
    let (_dir, store) = three_hosts_three_hours();
    let windows = [
        (T0 + 3 * HOUR_MS - 86_400_000, T0 + 3 * HOUR_MS),
        (T0 + 17 * MINUTE_MS, T0 + 150 * MINUTE_MS),
        (T0 + 30 * MINUTE_MS, T0 + 50 * MINUTE_MS),
        (T0 + 2 * HOUR_MS, T0 + 3 * HOUR_MS),
        (T0 - HOUR_MS, T0),
    ];
    for (from, to) in windows {
        for metric in [Metric::MemUsedBytes, Metric::CpuBusyPct] {
            let all = store.hosts_metric_stats(metric, from, to).unwrap();
            for host in ["a", "b", "c"] {
                let one = store.host_stats(host, metric, from, to).unwrap();
                let bulk = all.get(host);
                let what = format!("{host} {metric:?} {from}..{to}");
                match (one, bulk) {
                    (None, None) => {}
                    (Some(one), Some(bulk)) => {
                        assert_eq!(
                            (bulk.count, bulk.min, bulk.max),
                            (one.count, one.min, one.max),
                            "{what}"
                        );
                        assert_eq!(bulk.sketch, one.sketch, "{what}");
                        assert!((bulk.sum - one.sum).abs() <= one.sum.abs() * 1e-12, "{what}");
                        for q in [0.5, 0.95, 0.99] {
                            assert_eq!(bulk.quantile(q), one.quantile(q), "{what} q {q}");
                        }
                    }
                    (one, bulk) => panic!("{what}: one at a time {one:?}, all at once {bulk:?}"),
                }
            }
            assert!(all.keys().all(|h| ["a", "b", "c"].contains(&h.as_str())));
        }
    }
    // The windows above saw each host at least once.
    let day = store
        .hosts_metric_stats(Metric::MemUsedBytes, T0 - HOUR_MS, T0 + 4 * HOUR_MS)
        .unwrap();
    assert_eq!(day.len(), 3);
}

#[test]
fn issue_12_a_read_snapshot_ends_its_transaction_and_nests_in_an_open_one() {
    let (_dir, store) = three_hosts_three_hours();
    // Many reads in one transaction: the same answers, and the connection back in autocommit after.
    let in_one = store
        .in_read_snapshot("test", || store.host_window_stats(T0, T0 + 3 * HOUR_MS))
        .unwrap();
    assert_eq!(in_one, store.host_window_stats(T0, T0 + 3 * HOUR_MS).unwrap());
    assert!(store.conn.is_autocommit());
    // A failed read ends the transaction too and reports the read's own error.
    let failed: Result<(), StoreError> = store.in_read_snapshot("test", || {
        Err(StoreError::BadBlob {
            path: "x".into(),
            what: "rollup stats",
            detail: "damaged".into(),
        })
    });
    assert!(matches!(failed, Err(StoreError::BadBlob { .. })), "{failed:?}");
    assert!(store.conn.is_autocommit());
    // Inside a transaction the caller opened, the read runs in it and leaves it open.
    store.conn.execute_batch("BEGIN").unwrap();
    let hosts = store
        .hosts_metric_stats(Metric::MemUsedBytes, T0, T0 + 3 * HOUR_MS)
        .unwrap();
    assert_eq!(hosts.len(), 3);
    assert!(!store.conn.is_autocommit());
    store.conn.execute_batch("COMMIT").unwrap();
}

/// Commits a sample every 10 s of minute `minute` (from `T0`) for each of `hosts`, with memory values drawn
/// from `rng`.
fn commit_minute(store: &mut Store, hosts: &[&str], minute: u64, rng: &mut fastrand::Rng) {
    let batches: Vec<HostBatch> = hosts
        .iter()
        .map(|host| {
            let rows = (0..6)
                .map(|tick| {
                    let seq = minute * 10 + tick + 1;
                    let mut r = row(seq, T0 + minute * MINUTE_MS + tick * 10_000, rng.f64() * 100.0);
                    r.metrics.mem_used_bytes = Some(rng.u64(1 << 30..4 << 30));
                    r
                })
                .collect();
            batch(host, rows)
        })
        .collect();
    store.commit_batches(&batches).unwrap();
}

/// `kept` and `full` agree host by host as [`Store::hosts_metric_stats`] promises.
fn assert_same_stats(
    kept: &HashMap<String, sketch::MetricStats>,
    full: &HashMap<String, sketch::MetricStats>,
    what: &str,
) {
    let mut hosts: Vec<_> = kept.keys().collect();
    hosts.sort();
    let mut expected: Vec<_> = full.keys().collect();
    expected.sort();
    assert_eq!(hosts, expected, "{what}: hosts");
    for (host, one) in full {
        let kept = &kept[host];
        assert_eq!(
            (kept.count, kept.min, kept.max),
            (one.count, one.min, one.max),
            "{what} {host}"
        );
        assert_eq!(kept.sketch, one.sketch, "{what} {host}");
        assert!(
            (kept.sum - one.sum).abs() <= one.sum.abs() * 1e-12,
            "{what} {host}"
        );
        for q in [0.5, 0.99, 0.999] {
            assert_eq!(kept.quantile(q), one.quantile(q), "{what} {host} q {q}");
        }
    }
}

#[test]
fn issue_12_kept_statistics_answer_like_a_full_read_as_the_window_moves_and_read_only_what_is_new() {
    use crate::store::kept_stats::KeptHostStats;
    let (_dir, mut store) = temp_store();
    let mut rng = fastrand::Rng::with_seed(5);
    let mut kept = KeptHostStats::new(Metric::MemUsedBytes);
    let window_ms = 2 * HOUR_MS;
    let (mut steady_reads, mut hour_moves, mut late_unseen) = (0, 0, 0);
    let mut last = HashMap::new();
    for minute in 0..260u64 {
        // Host c joins at minute 100; host b leaves at minute 200.
        let hosts: Vec<&str> = ["a", "b", "c"]
            .into_iter()
            .filter(|h| (*h != "c" || minute >= 100) && (*h != "b" || minute < 200))
            .collect();
        commit_minute(&mut store, &hosts, minute, &mut rng);
        let now = T0 + (minute + 1) * MINUTE_MS + 15_000;
        store.maintain(now, &Retention::default()).unwrap();
        if minute == 150 {
            // A late row for a minute already rolled up: merged into that minute's rollup.
            let mut late = row(150 * 10 + 7, T0 + 148 * MINUTE_MS + 5_000, 1.0);
            late.metrics.mem_used_bytes = Some(8 << 30);
            store.commit_batches(&[batch("a", vec![late])]).unwrap();
            store.maintain(now, &Retention::default()).unwrap();
        }
        let before = kept.window();
        let answer = kept.read(&store, now - window_ms, now).unwrap();
        let (from, to) = kept.window().expect("a window was read");
        assert_eq!(from % HOUR_MS, 0, "the start is on the hour");
        assert_eq!(
            to,
            store.rollup_marks().unwrap().rolled_up_through_ms,
            "minute {minute}"
        );
        let full = store.hosts_metric_stats(Metric::MemUsedBytes, from, to).unwrap();
        // Between the late row and the hour that holds it being built, the kept minutes part has that
        // minute as it was when it was read; afterwards, and everywhere else, the answers agree.
        let built = count(&store, "SELECT COALESCE(MAX(bucket_ms), 0) FROM rollup_hour") as u64 + HOUR_MS;
        if minute >= 150 && built < T0 + 3 * HOUR_MS {
            assert_eq!(answer.len(), full.len());
            assert!(answer["a"].max <= full["a"].max, "minute {minute}");
            late_unseen += u32::from(answer["a"].max < full["a"].max);
        } else {
            assert_same_stats(&answer, &full, &format!("minute {minute}"));
        }
        last = answer;
        // A read with the same start reads the minute since the last read (and an hour when one is built):
        // a blob per host and minute, not the window's.
        if let Some((before_from, before_to)) = before {
            if before_from == from && before_to < to && to % HOUR_MS > 5 * MINUTE_MS {
                steady_reads += 1;
                let minutes = (to - before_to) / MINUTE_MS;
                assert!(
                    kept.blobs_read() <= minutes * hosts.len() as u64,
                    "minute {minute}: {} blobs for {minutes} new minutes",
                    kept.blobs_read()
                );
            }
            if before_from != from {
                hour_moves += 1;
            }
        }
    }
    assert!(steady_reads > 150, "{steady_reads} steady reads");
    assert!(hour_moves >= 2, "{hour_moves} moves of the start");
    assert!(
        (20..=40).contains(&late_unseen),
        "the late row unseen for {late_unseen} minutes"
    );
    assert_eq!(
        last["a"].max,
        (8u64 << 30) as f64,
        "the late row counts once its hour is built"
    );
}

#[test]
fn issue_12_a_read_only_store_maps_the_file_only_when_asked_and_bounds_its_cache() {
    let (dir, store) = temp_store();
    drop(store);
    let path = dir.path().join("headroom.db");
    let mapped = |store: &Store| -> i64 {
        store
            .conn
            .query_row("PRAGMA mmap_size", [], |r| r.get(0))
            .unwrap()
    };
    let cache_kib = |store: &Store| -> i64 {
        -store
            .conn
            .query_row::<i64, _, _>("PRAGMA cache_size", [], |r| r.get(0))
            .unwrap()
    };
    // The collector's own reads copy pages into a cache of 16 MiB, so its RSS carries neither the file nor
    // more than that while a read's store is open; a report maps the file and keeps 64 MiB.
    let own = Store::open_read_only(&path).unwrap();
    assert_eq!((mapped(&own), cache_kib(&own)), (0, 16 * 1024));
    let copied = Store::open_read_only_with(&path, FileReads::Copied).unwrap();
    assert_eq!((mapped(&copied), cache_kib(&copied)), (0, 16 * 1024));
    let report = Store::open_read_only_with(&path, FileReads::Mapped).unwrap();
    assert_eq!((mapped(&report), cache_kib(&report)), (1 << 30, 64 * 1024));
}

#[test]
fn issue_12_kept_statistics_start_over_after_a_failed_read() {
    use crate::store::kept_stats::KeptHostStats;
    let (_dir, mut store) = temp_store();
    let mut rng = fastrand::Rng::with_seed(9);
    let mut kept = KeptHostStats::new(Metric::MemUsedBytes);
    for minute in 0..3u64 {
        commit_minute(&mut store, &["a", "b"], minute, &mut rng);
    }
    store
        .maintain(T0 + 3 * MINUTE_MS + 15_000, &Retention::default())
        .unwrap();
    kept.read(&store, T0, T0 + 2 * MINUTE_MS).unwrap();
    // Minute 2 of host b damaged: the read fails, naming the file, and keeps nothing of it.
    let bucket = (T0 + 2 * MINUTE_MS) as i64;
    let good: Vec<u8> = store
        .conn
        .query_row(
            "SELECT stats FROM rollup_minute WHERE bucket_ms = ?1 AND host_id = \
             (SELECT id FROM hosts WHERE name = 'b')",
            [bucket],
            |r| r.get(0),
        )
        .unwrap();
    let set = |blob: &[u8]| {
        store
            .conn
            .execute(
                "UPDATE rollup_minute SET stats = ?2 WHERE bucket_ms = ?1 AND host_id = \
                 (SELECT id FROM hosts WHERE name = 'b')",
                params![bucket, blob],
            )
            .unwrap();
    };
    set(&[0xff, 0x00, 0x07]);
    let failed = kept.read(&store, T0, T0 + 3 * MINUTE_MS).unwrap_err();
    assert!(failed.to_string().contains("headroom.db"), "{failed}");
    assert_eq!(kept.window(), None, "nothing kept after a failed read");
    set(&good);
    let answer = kept.read(&store, T0, T0 + 3 * MINUTE_MS).unwrap();
    let full = store
        .hosts_metric_stats(Metric::MemUsedBytes, T0, T0 + 3 * MINUTE_MS)
        .unwrap();
    assert_same_stats(&answer, &full, "after the failed read");
    assert_eq!(answer["a"].count, 18, "three minutes of six samples, once");
}
