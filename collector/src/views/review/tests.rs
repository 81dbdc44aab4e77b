//! The review over a database whose answers are worked out by hand: alarm transitions, outlier flags,
//! agent-reported gaps, hosts that joined and left, and two groups sized a week apart.

use super::model::{NOISY_WITHIN_MS, REVIEW_SCHEMA_VERSION};
use super::*;
use crate::live::fleet::HostMetrics;
use crate::sizing::GroupStatus;
use crate::store::history::{AlarmHistoryRow, HistoryRows, OutlierFlagRow};
use crate::store::{GapRow, HostBatch, HostInfo, SampleRow, Store};

/// A Monday at 00:00 UTC; the review ends two weeks later.
const T0: u64 = 1_700_438_400_000;
const DAY: u64 = 86_400_000;
const MIN: u64 = 60_000;
const END: u64 = T0 + 14 * DAY;
const START: u64 = END - 7 * DAY;
const GIB: u64 = 1 << 30;

fn batch(
    host: &str,
    labels: (&str, &str),
    at_ms: u64,
    seq: u64,
    cpu_pct: f64,
    gaps: Vec<GapRow>,
) -> HostBatch {
    HostBatch {
        host: host.into(),
        instance_id: 1,
        received_ms: at_ms,
        hello: Some(HostInfo {
            labels: [("group", labels.0), ("zone", labels.1)]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            cores: 4,
            memory_bytes: 8 * GIB,
            interval_ms: 1000,
            agent_version: "0.1.0".into(),
        }),
        rows: vec![SampleRow {
            seq,
            ts_ms: at_ms,
            clock_offset_ms: 0,
            metrics: HostMetrics {
                cpu_busy_pct: Some(cpu_pct),
                mem_used_bytes: Some(GIB),
                ..HostMetrics::default()
            },
            detail: Vec::new(),
        }],
        gaps,
    }
}

fn gap(from_ms: u64, count: u64, reason: &str) -> GapRow {
    GapRow {
        // Sequence numbers distinct per gap: the store keeps one gap per range.
        from_seq: from_ms / 1000,
        to_seq: from_ms / 1000 + count - 1,
        from_ms,
        to_ms: from_ms + count * 1000,
        count,
        reason: reason.into(),
    }
}

fn alarm(rule: &str, subject: &str, status: &str, at_ms: u64, fired_ms: Option<u64>) -> AlarmHistoryRow {
    AlarmHistoryRow {
        at_ms,
        rule: rule.into(),
        kind: "threshold".into(),
        severity: "warning".into(),
        subject_type: "host".into(),
        subject: subject.into(),
        status: status.into(),
        value: Some(90.0),
        active_since_ms: Some(at_ms),
        fired_ms,
        summary: format!("{subject} {rule}"),
        runbook: format!("https://runbooks.example.invalid/{rule}"),
    }
}

fn flag(host: &str, metric: &str, at_ms: u64) -> OutlierFlagRow {
    OutlierFlagRow {
        at_ms,
        host: host.into(),
        group: "web".into(),
        metric: metric.into(),
        value: 92.0,
        group_median: 31.0,
        score: 9.0,
        explanation: format!("{host} {metric} at {at_ms}"),
    }
}

/// web-1 (zone a) and web-2 (zone b), 4 cores each: 20 % busy half an hour before the review's window,
/// 35 % five minutes before its end. api-1 joined two days before the end; old-1 reported for the last
/// time an hour into the window. web-2 reported two gaps inside the window, web-1 one before it.
fn database(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("headroom.db");
    let (mut store, _) = Store::open(&path, T0).unwrap();
    let web = |zone| ("web", zone);
    let batches = vec![
        batch("old-1", ("batch", "a"), START - 3_600_000, 1, 10.0, Vec::new()),
        batch(
            "web-1",
            web("a"),
            START - 30 * MIN,
            1,
            20.0,
            vec![gap(START - DAY, 7, "spool full")],
        ),
        batch("web-2", web("b"), START - 30 * MIN, 1, 20.0, Vec::new()),
        batch("old-1", ("batch", "a"), START + 3_600_000, 2, 10.0, Vec::new()),
        batch("api-1", ("api", "c"), END - 2 * DAY, 1, 10.0, Vec::new()),
        batch(
            "web-2",
            web("b"),
            END - DAY,
            2,
            35.0,
            vec![
                gap(START + DAY, 10, "spool full"),
                gap(START + 2 * DAY, 5, "spool_write_failed"),
            ],
        ),
        batch("web-1", web("a"), END - 5 * MIN, 2, 35.0, Vec::new()),
        batch("web-2", web("b"), END - 5 * MIN, 3, 35.0, Vec::new()),
        batch("api-1", ("api", "c"), END - 5 * MIN, 2, 10.0, Vec::new()),
    ];
    for batch in batches {
        store.commit_batches(&[batch]).unwrap();
    }
    let h = 3_600_000;
    store
        .record_history(&HistoryRows {
            alarms: vec![
                // Before the window: not counted.
                alarm("cpu-hot", "web-1", "firing", START - h, Some(START - h)),
                alarm("cpu-hot", "web-1", "firing", START + h, Some(START + h)),
                alarm(
                    "cpu-hot",
                    "web-1",
                    "resolved",
                    START + h + 2 * MIN,
                    Some(START + h),
                ),
                alarm("cpu-hot", "web-1", "firing", START + 2 * h, Some(START + 2 * h)),
                alarm(
                    "cpu-hot",
                    "web-1",
                    "resolved",
                    START + 2 * h + 3 * MIN,
                    Some(START + 2 * h),
                ),
                alarm("cpu-hot", "web-1", "firing", START + 3 * h, Some(START + 3 * h)),
                alarm("cpu-hot", "web-1", "resolved", START + 4 * h, Some(START + 3 * h)),
                alarm("cpu-hot", "web-1", "firing", START + 5 * h, Some(START + 5 * h)),
                // Pending, then resolved without firing: neither a firing nor a time to resolve.
                alarm("mem-high", "web-2", "pending", START + 6 * h, None),
                alarm("mem-high", "web-2", "resolved", START + 6 * h + MIN, None),
                alarm("mem-high", "web-2", "firing", START + 7 * h, Some(START + 7 * h)),
                alarm(
                    "mem-high",
                    "web-2",
                    "resolved",
                    START + 7 * h + 20 * MIN,
                    Some(START + 7 * h),
                ),
            ],
            outliers: vec![
                flag("web-2", "cpu_busy_pct", START + h),
                flag("web-1", "cpu_busy_pct", START + 2 * h),
                flag("web-2", "mem_used_pct", START + 3 * h),
                flag("web-2", "cpu_busy_pct", START + 4 * h),
            ],
        })
        .unwrap();
    store.sync_hosts().unwrap();
    path
}

fn review(dir: &std::path::Path) -> Review {
    let options = ReviewOptions {
        db: database(dir),
        window: DEFAULT_WINDOW,
        now_ms: END - 1,
        end: EndAt::Now,
    };
    build_review(&options, &SizingConfig::default()).unwrap()
}

#[test]
fn issue_14_review_counts_alarms_resolve_times_and_noisy_rules() {
    let dir = tempfile::tempdir().unwrap();
    let review = review(dir.path());
    assert_eq!(review.schema_version, REVIEW_SCHEMA_VERSION);
    assert_eq!((review.window_start_ms, review.window_end_ms), (START, END));
    let alarms: Vec<(&str, &str, u32, u32, bool)> = review
        .alarms
        .rows
        .iter()
        .map(|r| {
            (
                r.rule.as_str(),
                r.subject.as_str(),
                r.fired,
                r.resolved,
                r.firing_at_end,
            )
        })
        .collect();
    assert_eq!(
        alarms,
        vec![
            ("cpu-hot", "web-1", 4, 3, true),
            ("mem-high", "web-2", 1, 1, false)
        ]
    );
    assert!(
        review.alarms.look_at.contains("cpu-hot on web-1 (4 firings)"),
        "{}",
        review.alarms.look_at
    );
    assert!(review
        .alarms
        .look_at
        .contains("Still firing at the end: cpu-hot on web-1"));

    // cpu-hot resolved after 2, 3 and 60 minutes; mem-high after 20. Nearest rank: p50 of all four
    // (2, 3, 20, 60) is the 2nd, 3 min; p90 the 4th, 60 min.
    let times: Vec<(&str, u32, u64, u64, u64)> = review
        .resolve_times
        .rows
        .iter()
        .map(|r| {
            (
                r.rule.as_str(),
                r.resolved,
                r.p50_ms / MIN,
                r.p90_ms / MIN,
                r.max_ms / MIN,
            )
        })
        .collect();
    assert_eq!(
        times,
        vec![
            ("(all rules)", 4, 3, 60, 60),
            ("cpu-hot", 3, 3, 60, 60),
            ("mem-high", 1, 20, 20, 20)
        ]
    );

    // Two of cpu-hot's four firings resolved within 5 minutes; mem-high's one took 20.
    assert_eq!(NOISY_WITHIN_MS, 5 * MIN);
    assert_eq!(review.noisy_rules.rows.len(), 1);
    let noisy = &review.noisy_rules.rows[0];
    assert_eq!((noisy.rule.as_str(), noisy.fired, noisy.short), ("cpu-hot", 4, 2));
    assert_eq!(noisy.short_share, 0.5);
    assert!(review
        .noisy_rules
        .look_at
        .contains("Candidates to tune: cpu-hot resolved 2 of 4"));
}

#[test]
fn issue_14_review_lists_outliers_gaps_and_hosts_added_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let review = review(dir.path());
    let outliers: Vec<(&str, u32, Vec<String>)> = review
        .outlier_hosts
        .rows
        .iter()
        .map(|r| (r.host.as_str(), r.flags, r.metrics.clone()))
        .collect();
    assert_eq!(
        outliers,
        vec![
            (
                "web-2",
                3,
                vec!["cpu_busy_pct".to_string(), "mem_used_pct".to_string()]
            ),
            ("web-1", 1, vec!["cpu_busy_pct".to_string()]),
        ]
    );
    assert_eq!(
        review.outlier_hosts.rows[0].latest,
        format!("web-2 cpu_busy_pct at {}", START + 4 * 3_600_000)
    );

    // Only web-2's two gaps fall in the window: 15 samples; web-1's is a day before it.
    assert_eq!(review.gaps.rows.len(), 1, "{:?}", review.gaps.rows);
    let gaps = &review.gaps.rows[0];
    assert_eq!((gaps.host.as_str(), gaps.gaps, gaps.samples), ("web-2", 2, 15));
    assert_eq!(gaps.reasons, vec!["spool full", "spool_write_failed"]);
    assert_eq!(
        (gaps.first_ms, gaps.last_ms),
        (START + DAY, START + 2 * DAY + 5_000)
    );

    let added: Vec<(&str, u64)> = review
        .hosts_added
        .rows
        .iter()
        .map(|r| (r.host.as_str(), r.at_ms))
        .collect();
    assert_eq!(added, vec![("api-1", END - 2 * DAY)]);
    let removed: Vec<(&str, &str, u64)> = review
        .hosts_removed
        .rows
        .iter()
        .map(|r| (r.host.as_str(), r.group.as_str(), r.at_ms))
        .collect();
    assert_eq!(removed, vec![("old-1", "batch", START + 3_600_000)]);
}

#[test]
fn issue_14_review_compares_headroom_now_with_a_week_ago() {
    let dir = tempfile::tempdir().unwrap();
    let review = review(dir.path());
    let web = review.headroom.rows.iter().find(|r| r.group == "web").unwrap();
    // Two 4-core hosts in two zones at an 80 % target: losing a zone leaves 4 of 8 cores, so the safe
    // steady state is 40 %. A week ago the peak was 2 × 20 % × 4 = 1.6 cores (20 %): 20 points of headroom.
    // Now it is 2 × 35 % × 4 = 2.8 cores (35 %): 5 points.
    assert_eq!(web.status_now, GroupStatus::Safe);
    assert_eq!(web.status_before, Some(GroupStatus::Safe));
    assert_eq!(web.tightest_now.as_deref(), Some("cpu"));
    assert!((web.headroom_now.unwrap() - 0.05).abs() < 1e-9, "{web:?}");
    assert!((web.headroom_before.unwrap() - 0.20).abs() < 1e-9, "{web:?}");
    // api-1 is alone in zone c and did not exist a week ago.
    let api = review.headroom.rows.iter().find(|r| r.group == "api").unwrap();
    assert_eq!(api.status_now, GroupStatus::SingleDomain);
    assert_eq!(api.status_before, None);
    assert!(
        review
            .headroom
            .look_at
            .contains("Cannot survive their worst loss now: api"),
        "{}",
        review.headroom.look_at
    );
    assert!(
        review
            .headroom
            .look_at
            .contains("web lost the most headroom this window: -15.0 %"),
        "{}",
        review.headroom.look_at
    );
}

#[test]
fn issue_14_review_renders_every_section_with_what_to_look_at() {
    let dir = tempfile::tempdir().unwrap();
    let review = review(dir.path());
    let md = render(&review, ReportFormat::Markdown).unwrap();
    let html = render(&review, ReportFormat::Html).unwrap();
    for title in [
        "Alarms fired per rule and host",
        "Time to resolve",
        "Noisiest rules",
        "Hosts most often flagged as outliers",
        "Data gaps by host",
        "Headroom per group",
        "Hosts added",
        "Hosts removed",
    ] {
        assert!(md.contains(&format!("## {title}")), "{title}\n{md}");
        assert!(html.contains(&format!("<h2>{title}")), "{title}");
    }
    assert_eq!(md.matches("*What to look at:*").count(), 8, "{md}");
    assert!(
        md.contains("| cpu-hot | warning | host web-1 | 4 | 3 | yes |"),
        "{md}"
    );
    assert!(html.contains("<th scope=\"col\">rule</th>"));
    assert!(html.contains("<main>") && html.contains("<header>"));
    assert!(!html.contains("<script"));
    let json: serde_json::Value =
        serde_json::from_str(&render(&review, ReportFormat::Json).unwrap()).unwrap();
    assert_eq!(json["alarms"]["rows"][0]["fired"], 4);
    assert_eq!(json["headroom"]["rows"].as_array().unwrap().len(), 3);
    let error = render(&review, ReportFormat::Csv).unwrap_err();
    assert!(matches!(error, ReportError::Usage(_)), "{error}");
}

#[test]
fn issue_14_review_of_a_missing_database_names_it() {
    let options = ReviewOptions {
        db: PathBuf::from("/nonexistent/headroom.db"),
        window: DEFAULT_WINDOW,
        now_ms: END,
        end: EndAt::Now,
    };
    let error = build_review(&options, &SizingConfig::default()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("/nonexistent/headroom.db: file not found"),
        "{error}"
    );
}
