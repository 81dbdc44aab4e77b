//! Tests of reading a database into the sizing input and of the `sizing` table.

use super::*;
use crate::live::fleet::HostMetrics;
use crate::sizing::MinuteSum;
use crate::store::kept_stats::KeptHostStats;
use crate::store::SampleDetail;
use crate::store::{GapRow, HostBatch, HostInfo, Retention, SampleRow};
use headroom_common::wire::Listener;
use indicatif::ProgressBar;

/// A Monday at 00:00 UTC.
const T0: u64 = 1_700_438_400_000;
const GIB: u64 = 1 << 30;

fn hello(group: &str, zone: &str, cores: u32) -> HostInfo {
    HostInfo {
        labels: [("group", group), ("zone", zone)]
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
        cores,
        memory_bytes: 8 * GIB,
        interval_ms: 1000,
        agent_version: "0.1.0".into(),
    }
}

/// A sample at `ts_ms` with CPU busy, used memory and established connections on port 443.
fn sample(seq: u64, ts_ms: u64, cpu_pct: f64, mem_gib: u64, established_443: u32) -> SampleRow {
    let detail = SampleDetail {
        listeners: vec![Listener {
            port: 443,
            established: established_443,
            accept_queue: 0,
            accept_queue_limit: 128,
        }],
        ..SampleDetail::default()
    };
    SampleRow {
        seq,
        ts_ms,
        clock_offset_ms: 0,
        metrics: HostMetrics {
            cpu_busy_pct: Some(cpu_pct),
            mem_used_bytes: Some(mem_gib * GIB),
            // Host-wide count: the 443 connections plus 10 others (outgoing, ssh).
            tcp_established: Some(u64::from(established_443) + 10),
            ..HostMetrics::default()
        },
        detail: detail.encode(),
    }
}

/// Two hosts of group "web" over minutes 0 and 1 after T0, one unlabelled host, and a gap.
fn fixture(dir: &Path) -> Store {
    let (mut store, _) = Store::open(&dir.join("headroom.db"), T0).unwrap();
    let batch = |host: &str, info: HostInfo, rows: Vec<SampleRow>, gaps: Vec<GapRow>| HostBatch {
        host: host.into(),
        instance_id: 1,
        received_ms: T0,
        hello: Some(info),
        rows,
        gaps,
    };
    // web-1 (4 cores): minute 0 at 50 % and 70 % (mean 60 % = 2.4 cores), minute 1 at 25 % (1 core).
    // web-2 (8 cores): minute 0 at 10 % (0.8 cores), minute 1 at 30 % and 50 % (mean 40 % = 3.2 cores).
    store
        .commit_batches(&[
            batch(
                "web-1",
                hello("web", "a", 4),
                vec![
                    sample(1, T0 + 1_000, 50.0, 2, 100),
                    sample(2, T0 + 30_000, 70.0, 4, 300),
                    sample(3, T0 + 61_000, 25.0, 3, 50),
                ],
                Vec::new(),
            ),
            batch(
                "web-2",
                hello("web", "b", 8),
                vec![
                    sample(1, T0 + 2_000, 10.0, 1, 40),
                    sample(2, T0 + 62_000, 30.0, 5, 60),
                    sample(3, T0 + 90_000, 50.0, 7, 80),
                ],
                vec![GapRow {
                    from_seq: 10,
                    to_seq: 19,
                    from_ms: T0 + 100_000,
                    to_ms: T0 + 110_000,
                    count: 10,
                    reason: "spool full".into(),
                }],
            ),
            batch(
                "lone",
                hello("", "", 2),
                vec![sample(1, T0 + 5_000, 50.0, 1, 0)],
                Vec::new(),
            ),
        ])
        .unwrap();
    store
}

/// A report of the hour that ends with minute 1 after T0, over the database in `dir`, raw tail included.
fn hour_ending_at_minute_1(dir: &Path) -> ReportOptions {
    ReportOptions {
        db: dir.join("headroom.db"),
        window: Duration::from_secs(3_600),
        now_ms: T0 + 100_000,
        end: EndAt::Now,
        scenarios: Vec::new(),
        progress: false,
        rolled_up_only: false,
    }
}

fn config_with_443() -> SizingConfig {
    let mut config = SizingConfig::default();
    config.defaults.max_connections.insert(443, 1000);
    config
}

fn minutes_of(loaded: &LoadedInput, group: &str) -> Vec<MinuteSum> {
    let group = loaded.input.groups.iter().find(|g| g.name == group).unwrap();
    group.minutes.clone()
}

/// Issue 11, point 7: a report is readable by others (0644) whatever the umask.
#[test]
fn issue_11_reports_are_written_0644_under_any_umask() {
    use headroom_common::files::{mode_of, UmaskGuard};
    let dir = tempfile::tempdir().unwrap();
    for mask in [0o000, 0o077] {
        let _umask = UmaskGuard::set(mask);
        let path = dir.path().join(format!("report-{mask:o}.md"));
        write_atomically(&path, "# report\n").unwrap();
        assert_eq!(mode_of(&path).unwrap(), 0o644, "umask {mask:o}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# report\n");
    }
}

#[test]
fn window_is_whole_minutes_ending_with_the_current_one() {
    let window = Window::ending_at(T0 + 61_500, Duration::from_secs(3_600));
    assert_eq!(window.end_ms, T0 + 2 * MINUTE_MS);
    assert_eq!(window.start_ms, T0 + 2 * MINUTE_MS - 3_600_000);
}

#[test]
fn raw_tail_gives_per_host_minute_means_summed_per_group_with_per_port_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = fixture(dir.path());
    let window = Window::ending_at(T0 + 100_000, Duration::from_secs(3_600));
    let loaded = load_input(&store, window, 99.0, &ProgressBar::hidden()).unwrap();
    assert_eq!(
        loaded.rolled_up_through_ms, window.start_ms,
        "nothing is rolled up yet"
    );
    let minutes = minutes_of(&loaded, "web");
    // Minute 0: 2.4 + 0.8 cores; memory (2+4)/2 + 1 = 4 GiB; port 443 (100+300)/2 + 40 = 240.
    // Minute 1: 1.0 + 3.2 cores; memory 3 + (5+7)/2 = 9 GiB; port 443 50 + (60+80)/2 = 120.
    let expected = [(T0, 3.2, 4, 240.0), (T0 + MINUTE_MS, 4.2, 9, 120.0)];
    assert_eq!(minutes.len(), 2, "{minutes:?}");
    for (row, (minute, cores, mem_gib, established)) in minutes.iter().zip(expected) {
        assert_eq!(row.minute_start_ms, minute);
        assert!((row.cpu_busy_cores - cores).abs() < 1e-9, "{row:?}");
        assert_eq!(row.memory_used_bytes, (mem_gib * GIB) as f64);
        assert_eq!(row.established_by_port, vec![(443, established)]);
        assert_eq!(row.hosts_reporting, 2);
    }
    let lone = minutes_of(&loaded, UNGROUPED);
    assert_eq!(lone.len(), 1);
    assert!((lone[0].cpu_busy_cores - 1.0).abs() < 1e-9);
    // The gap of web-2 is stated in its group's notes, not in the other group's.
    let gap_note = &loaded.notes["web"][0];
    assert!(gap_note.contains("web-2 dropped 10 samples"), "{gap_note}");
    assert!(gap_note.contains("spool full"), "{gap_note}");
    assert!(!loaded.notes.contains_key(UNGROUPED));
}

#[test]
fn rolled_up_minutes_match_the_raw_reading_with_exact_per_port_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = fixture(dir.path());
    let window = Window::ending_at(T0 + 100_000, Duration::from_secs(3_600));
    let load = |store: &Store| load_input(store, window, 99.0, &ProgressBar::hidden()).unwrap();
    let before = load(&store);
    // Minute 0 is finished and 10 s past: it is rolled up; minute 1 is not yet.
    store
        .maintain(T0 + MINUTE_MS + 10_000, &Retention::default())
        .unwrap();
    let after = load(&store);
    assert_eq!(after.rolled_up_through_ms, T0 + MINUTE_MS);
    let (raw, rolled) = (minutes_of(&before, "web"), minutes_of(&after, "web"));
    assert_eq!(rolled.len(), 2);
    assert!(
        (raw[0].cpu_busy_cores - rolled[0].cpu_busy_cores).abs() < 1e-9,
        "{raw:?} {rolled:?}"
    );
    assert_eq!(raw[0].memory_used_bytes, rolled[0].memory_used_bytes);
    assert_eq!(raw[0].hosts_reporting, rolled[0].hosts_reporting);
    // Rolled up, port 443 is exact: (100 + 300) / 2 + 40, not the host-wide 260.
    assert_eq!(rolled[0].established_by_port, vec![(443, 240.0)]);
    assert_eq!(
        rolled[1], raw[1],
        "the unfinished minute still comes from raw rows"
    );
    assert!(
        !after.notes["web"].iter().any(|n| n.contains("connection")),
        "{:?}",
        after.notes
    );

    // A late sample of web-1 for the rolled-up minute 0, 500 on 443: its mean becomes
    // (100 + 300 + 500) / 3 = 300, so the group's 443 load is 300 + 40 = 340, before the rollup
    // merges it (raw reading of the change) and after (group_port_minutes), never 240 + 500.
    let late = HostBatch {
        host: "web-1".into(),
        instance_id: 1,
        received_ms: T0 + 70_000,
        hello: None,
        rows: vec![sample(4, T0 + 40_000, 60.0, 3, 500)],
        gaps: Vec::new(),
    };
    store.commit_batches(&[late]).unwrap();
    let pending = minutes_of(&load(&store), "web");
    assert_eq!(pending[0].established_by_port, vec![(443, 340.0)]);
    assert_eq!(pending[0].hosts_reporting, 2);
    // web-1's CPU mean becomes (50 + 70 + 60) / 3 = 60 %: unchanged, 2.4 + 0.8 cores.
    assert!((pending[0].cpu_busy_cores - 3.2).abs() < 1e-9, "{pending:?}");
    store
        .maintain(T0 + 2 * MINUTE_MS + 10_000, &Retention::default())
        .unwrap();
    let merged = load(&store);
    assert_eq!(merged.rolled_up_through_ms, T0 + 2 * MINUTE_MS);
    let merged = minutes_of(&merged, "web");
    assert_eq!(merged[0].established_by_port, vec![(443, 340.0)]);
    assert_eq!(merged[0].hosts_reporting, 2);
    assert!((merged[0].cpu_busy_cores - 3.2).abs() < 1e-9, "{merged:?}");
    for (now, then) in merged[1..].iter().zip(&rolled[1..]) {
        assert!(
            (now.cpu_busy_cores - then.cpu_busy_cores).abs() < 1e-9,
            "{merged:?} {rolled:?}"
        );
        assert_eq!(now.memory_used_bytes, then.memory_used_bytes);
        assert_eq!(now.hosts_reporting, then.hosts_reporting);
        assert_eq!(now.established_by_port, then.established_by_port);
    }
}

#[test]
fn minutes_rolled_up_before_the_upgrade_have_no_connection_counts_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = fixture(dir.path());
    store
        .maintain(T0 + 2 * MINUTE_MS + 10_000, &Retention::default())
        .unwrap();
    // As the upgrade step leaves a database whose minutes were rolled up before per-port sums existed.
    store.forget_port_sums_before(T0 + 2 * MINUTE_MS).unwrap();
    let window = Window::ending_at(T0 + 130_000, Duration::from_secs(3_600));
    let loaded = load_input(&store, window, 99.0, &ProgressBar::hidden()).unwrap();
    let minutes = minutes_of(&loaded, "web");
    assert_eq!(minutes.len(), 2);
    assert!(
        minutes.iter().all(|m| m.established_by_port.is_empty()),
        "{minutes:?}"
    );
    assert!(minutes.iter().all(|m| m.hosts_reporting == 2), "{minutes:?}");
    assert!(
        loaded.notes["web"]
            .iter()
            .any(|n| n.contains("no connection counts before") && n.contains("upgraded")),
        "{:?}",
        loaded.notes
    );
}

/// Issue 12: the web view's refresh reads rolled-up minutes only, and its window ends where they end.
#[test]
fn issue_12_a_rolled_up_only_report_ends_at_the_rollup_and_reads_no_raw_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = fixture(dir.path());
    // Minute 0 is finished and 10 s past: rolled up; minute 1 is not.
    store
        .maintain(T0 + MINUTE_MS + 10_000, &Retention::default())
        .unwrap();
    // A late row of the finished minute 0, past the rollup's watermark.
    store
        .commit_batches(&[HostBatch {
            host: "web-1".into(),
            instance_id: 1,
            received_ms: T0 + 70_000,
            hello: None,
            rows: vec![sample(4, T0 + 40_000, 90.0, 6, 500)],
            gaps: Vec::new(),
        }])
        .unwrap();
    let window = Window::ending_at(T0 + 100_000, Duration::from_secs(3_600));
    let bar = ProgressBar::hidden();
    let everything = load_input_with(&store, window, 99.0, &bar, RawTail::Read).unwrap();
    let rolled = load_input_with(&store, window, 99.0, &bar, RawTail::Skip).unwrap();
    let (everything, rolled) = (minutes_of(&everything, "web"), minutes_of(&rolled, "web"));
    assert_eq!(everything.len(), 2, "{everything:?}");
    assert_eq!(rolled.len(), 1, "minute 1 is not rolled up: {rolled:?}");
    // The pass reads rows in the order they were stored and stopped at web-1's first row of minute 1, so
    // minute 0 holds web-1 at (50 + 70) / 2 % of 4 cores; web-2's row of minute 0 is past the watermark.
    assert!((rolled[0].cpu_busy_cores - 2.4).abs() < 1e-9, "{rolled:?}");
    assert_eq!(rolled[0].hosts_reporting, 1, "{rolled:?}");
    // With the raw tail, both count in minute 0 already: web-1 at (50 + 70 + 90) / 3 % with the late row,
    // web-2 at 10 % of 8 cores.
    assert!(
        (everything[0].cpu_busy_cores - (2.8 + 0.8)).abs() < 1e-9,
        "{everything:?}"
    );
    drop(store);

    let options = |rolled_up_only| ReportOptions {
        rolled_up_only,
        ..hour_ending_at_minute_1(dir.path())
    };
    let web = build_report(&options(true), &config_with_443()).unwrap();
    assert_eq!(
        web.window_end_ms,
        T0 + MINUTE_MS,
        "the last rolled-up minute ends the window"
    );
    assert_eq!(web.window_start_ms, T0 + MINUTE_MS - 3_600_000);
    let cli = build_report(&options(false), &config_with_443()).unwrap();
    assert_eq!(cli.window_end_ms, T0 + 2 * MINUTE_MS);
}

#[test]
fn issue_12_a_kept_report_starts_on_the_hour_and_answers_like_a_full_read_of_that_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = fixture(dir.path());
    store
        .maintain(T0 + 2 * MINUTE_MS + 10_000, &Retention::default())
        .unwrap();
    let config = config_with_443();
    let mut kept = KeptHostStats::new(crate::store::Metric::MemUsedBytes);
    // The report a refresh makes, and a full read of the same window: the hour before T0 and the minutes
    // rolled up since.
    let same_as_full = |kept: &mut KeptHostStats, now_ms: u64| {
        let options = ReportOptions {
            now_ms,
            ..hour_ending_at_minute_1(dir.path())
        };
        let refreshed = build_report_kept(&options, &config, kept).unwrap();
        assert_eq!(
            refreshed.window_start_ms,
            T0 - 3_600_000,
            "on the hour at or before an hour back"
        );
        let full = build_report(
            &ReportOptions {
                window: Duration::from_millis(refreshed.window_end_ms - refreshed.window_start_ms),
                rolled_up_only: true,
                ..options
            },
            &config,
        )
        .unwrap();
        assert_eq!(refreshed, full);
        refreshed
    };
    let first = same_as_full(&mut kept, T0 + 2 * MINUTE_MS + 10_000);
    assert_eq!(first.window_end_ms, T0 + 2 * MINUTE_MS);
    assert!(!first.groups.is_empty());
    assert_eq!(kept.blobs_read(), 5, "minute 0: three hosts, minute 1: two");
    // Two minutes later, with a minute more of web-1: only that minute's rollup is read.
    store
        .commit_batches(&[HostBatch {
            host: "web-1".into(),
            instance_id: 1,
            received_ms: T0 + 3 * MINUTE_MS,
            hello: None,
            rows: vec![sample(4, T0 + 2 * MINUTE_MS + 5_000, 80.0, 9, 400)],
            gaps: Vec::new(),
        }])
        .unwrap();
    store
        .maintain(T0 + 4 * MINUTE_MS + 10_000, &Retention::default())
        .unwrap();
    let later = same_as_full(&mut kept, T0 + 4 * MINUTE_MS + 10_000);
    assert_eq!(later.window_end_ms, T0 + 4 * MINUTE_MS);
    assert_eq!(kept.blobs_read(), 1, "one new host-minute");
}

#[test]
fn report_states_gaps_and_renders_a_table_per_group() {
    let dir = tempfile::tempdir().unwrap();
    drop(fixture(dir.path()));
    let report = build_report(&hour_ending_at_minute_1(dir.path()), &config_with_443()).unwrap();
    let names: Vec<&str> = report.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, vec![UNGROUPED, "web"]);
    let table = render_table(&report, true);
    assert!(table.contains("web"), "{table}");
    assert!(table.contains("web: agents reported data gaps"), "{table}");
}

#[test]
fn issue_10_each_what_if_is_a_row_of_the_sizing_table() {
    let dir = tempfile::tempdir().unwrap();
    drop(fixture(dir.path()));
    let options = ReportOptions {
        scenarios: crate::sizing::WhatIfOptions {
            growth: vec![0.5],
            lose_hosts: vec![1],
            combined: vec![Scenario::parse_combined("growth=50%,lose-hosts=1").unwrap()],
            ..Default::default()
        }
        .scenarios(),
        ..hour_ending_at_minute_1(dir.path())
    };
    let report = build_report(&options, &config_with_443()).unwrap();
    let table = render_table(&report, false);
    let web_rows: Vec<Vec<String>> = table
        .lines()
        .filter(|line| line.contains(" web "))
        .map(|line| {
            line.split(['│', '┆'])
                .map(|cell| cell.trim().to_string())
                .filter(|cell| !cell.is_empty())
                .collect()
        })
        .collect();
    assert!(web_rows.iter().all(|row| row.len() > 1), "{table}");
    let scenarios: Vec<&str> = web_rows.iter().map(|row| row[1].as_str()).collect();
    assert_eq!(
        scenarios,
        [
            "baseline",
            "growth +50 %",
            "lose 1 host",
            "growth +50 %, lose 1 host"
        ],
        "{table}"
    );
}

#[test]
fn a_missing_database_or_foreign_labels_are_usage_errors() {
    let options = ReportOptions {
        db: PathBuf::from("/nonexistent/headroom.db"),
        window: Duration::from_secs(3_600),
        now_ms: T0,
        end: EndAt::Now,
        scenarios: Vec::new(),
        progress: false,
        rolled_up_only: false,
    };
    let error = build_report(&options, &SizingConfig::default()).unwrap_err();
    assert!(matches!(error, ReportError::Usage(_)), "{error}");
    assert!(error
        .to_string()
        .contains("/nonexistent/headroom.db: file not found"));
    let config = SizingConfig {
        group_label: "service".into(),
        ..SizingConfig::default()
    };
    let error = build_report(&options, &config).unwrap_err();
    assert!(
        error.to_string().contains("sizing.group_label \"service\""),
        "{error}"
    );
}

/// The sizing input as the report read it before the columnar read: every `group_minutes` and
/// `group_port_minutes` row (all columns) added into per-minute maps, then the raw tail. The reference the
/// faster read must match bit for bit.
fn row_by_row_minutes(store: &Store, window: Window) -> BTreeMap<String, Vec<MinuteSum>> {
    #[derive(Default)]
    struct Sum {
        cpu: f64,
        memory: f64,
        ports: BTreeMap<u16, f64>,
        hosts: u32,
    }
    fn at<'a>(
        groups: &'a mut BTreeMap<String, BTreeMap<u64, Sum>>,
        stored: &str,
        minute_ms: u64,
    ) -> &'a mut Sum {
        let name = if stored.is_empty() { UNGROUPED } else { stored };
        groups
            .entry(name.to_string())
            .or_default()
            .entry(minute_ms)
            .or_default()
    }
    let marks = store.rollup_marks().unwrap();
    let through = marks.rolled_up_through_ms.clamp(window.start_ms, window.end_ms);
    let mut groups: BTreeMap<String, BTreeMap<u64, Sum>> = BTreeMap::new();
    for row in store.group_minutes(window.start_ms, through).unwrap() {
        let sum = at(&mut groups, &row.group, row.minute_ms);
        sum.cpu += row.cpu_busy_cores;
        sum.memory += row.mem_used_bytes;
        sum.hosts += row.hosts as u32;
    }
    let ports_from = window.start_ms.max(marks.port_minutes_from_ms);
    for row in store
        .group_port_minutes(ports_from, through.max(ports_from))
        .unwrap()
    {
        let sum = at(&mut groups, &row.group, row.minute_ms);
        *sum.ports.entry(row.port).or_default() += row.established;
    }
    let raw = store
        .raw_group_minutes(
            window.start_ms,
            window.end_ms,
            through,
            marks.raw_rowid,
            marks.port_minutes_from_ms,
        )
        .unwrap();
    for row in raw {
        let sum = at(&mut groups, &row.group, row.minute_ms);
        sum.cpu += row.cpu_busy_cores;
        sum.memory += row.mem_used_bytes;
        sum.hosts = (i64::from(sum.hosts) + row.hosts).max(0) as u32;
        for (port, count) in row.established_by_port {
            *sum.ports.entry(port).or_default() += count;
        }
    }
    groups
        .into_iter()
        .map(|(group, minutes)| {
            let minutes = minutes
                .into_iter()
                .map(|(minute_start_ms, sum)| MinuteSum {
                    minute_start_ms,
                    cpu_busy_cores: sum.cpu,
                    memory_used_bytes: sum.memory,
                    established_by_port: sum.ports.into_iter().collect(),
                    hosts_reporting: sum.hosts,
                })
                .collect();
            (group, minutes)
        })
        .collect()
}

/// Issue 10 (report speed): the group sums are now read in one ordered pass into per-group columns; the
/// answer is bit for bit the row-by-row one, over three groups (one unlabelled) of six hosts in three
/// zones with uneven values, ports that come and go, rolled-up minutes, a late row and a raw tail.
#[test]
fn issue_10_the_columnar_read_gives_the_row_by_row_answer_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = Store::open(&dir.path().join("headroom.db"), T0).unwrap();
    let mut random = fastrand::Rng::with_seed(10);
    let hosts: Vec<(String, HostInfo)> = ["web", "db", ""]
        .iter()
        .flat_map(|group| {
            ["a", "b", "c"].iter().flat_map(move |zone| {
                (0..2).map(move |i| (format!("{group}-{zone}{i}"), hello(group, zone, 2 + 2 * i)))
            })
        })
        .collect();
    let mut seq = 0;
    let mut batches = Vec::new();
    for (host, info) in &hosts {
        let mut rows = Vec::new();
        for step in 0..90u64 {
            seq += 1;
            let mut row = sample(
                seq,
                T0 + step * 20_000 + random.u64(0..999),
                random.f64() * 100.0,
                1,
                0,
            );
            row.metrics.mem_used_bytes = Some(random.u64(1..8 * GIB));
            let mut listeners = Vec::new();
            for port in [443u16, 80, 8080] {
                if random.bool() {
                    listeners.push(Listener {
                        port,
                        established: random.u32(0..5_000),
                        accept_queue: 0,
                        accept_queue_limit: 128,
                    });
                }
            }
            row.detail = SampleDetail {
                listeners,
                ..SampleDetail::default()
            }
            .encode();
            rows.push(row);
        }
        batches.push(HostBatch {
            host: host.clone(),
            instance_id: 1,
            received_ms: T0,
            hello: Some(info.clone()),
            rows,
            gaps: Vec::new(),
        });
    }
    store.commit_batches(&batches).unwrap();
    // Minutes 0 to 19 rolled up, 20 to 29 raw; then a late row for minute 3.
    store
        .maintain(T0 + 20 * MINUTE_MS + 10_000, &Retention::default())
        .unwrap();
    let mut late = sample(10_000, T0 + 3 * MINUTE_MS + 5_000, 99.0, 7, 4_321);
    late.metrics.mem_used_bytes = Some(3 * GIB + 12_345);
    store
        .commit_batches(&[HostBatch {
            host: "web-a0".into(),
            instance_id: 1,
            received_ms: T0 + 21 * MINUTE_MS,
            hello: None,
            rows: vec![late],
            gaps: Vec::new(),
        }])
        .unwrap();
    let window = Window::ending_at(T0 + 30 * MINUTE_MS - 1, Duration::from_secs(3_600));
    let loaded = load_input(&store, window, 99.9, &ProgressBar::hidden()).unwrap();
    assert_eq!(loaded.rolled_up_through_ms, T0 + 20 * MINUTE_MS);
    let expected = row_by_row_minutes(&store, window);
    assert_eq!(expected.len(), 3);
    for group in &loaded.input.groups {
        assert_eq!(group.minutes.len(), 30, "{}", group.name);
        assert!(group.minutes.iter().any(|m| m.established_by_port.len() == 3));
        // MinuteSum's equality compares every f64 exactly.
        assert_eq!(group.minutes, expected[&group.name], "{}", group.name);
    }
}
