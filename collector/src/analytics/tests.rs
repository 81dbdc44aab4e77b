//! Tests of the analytics runtime's state: history feeding, outlier windows and alarm reports, on an
//! injected clock.

use super::*;
use crate::analytics::alarms::AlarmState;

const T0_MS: u64 = 1_700_000_000_000;

fn settings(rules: Option<&str>) -> AnalyticsSettings {
    AnalyticsSettings {
        rules: rules.map(|text| crate::analytics::alarms::parse(text, "test.toml").unwrap()),
        rules_file: None,
        alertmanager: None,
        alarm_ca_pem: None,
        webhook: None,
        alarm_interval_ms: 1_000,
        outliers: OutlierSettings {
            flag_windows: 2,
            window_count: 3,
            clear_windows: 2,
            ..OutlierSettings::default()
        },
        database: None,
        api_url: "http://127.0.0.1:9601".to_string(),
    }
}

fn labels(group: &str) -> BTreeMap<String, String> {
    [("group".to_string(), group.to_string())].into_iter().collect()
}

fn cpu(pct: f64) -> HostMetrics {
    HostMetrics {
        cpu_busy_pct: Some(pct),
        ..HostMetrics::default()
    }
}

const RULES: &str = r#"
[[rule]]
name = "cpu-hot"
kind = "threshold"
severity = "critical"
for = "1s"
runbook = "https://runbooks.example/cpu-hot"
metric = "cpu_busy_pct"
op = ">"
value = 90.0

[[rule]]
name = "host-silent"
kind = "missing"
severity = "warning"
for = "0s"
grace = "3s"
runbook = "restart the agent"
"#;

#[test]
fn a_hot_host_fires_after_its_for_and_a_silent_one_goes_missing() {
    let analytics = Analytics::new(settings(Some(RULES)));
    let mut engine = AlarmEngine::new(analytics.settings().rules.clone().unwrap());
    let tracker = OutlierTracker::new(analytics.settings().outliers.clone());
    for step in 0..5u64 {
        let now = T0_MS + step * 1_000;
        analytics.observe("hot", &labels("web"), &cpu(97.0), now, now);
        if step == 0 {
            analytics.observe("quiet", &labels("web"), &cpu(10.0), now, now);
        }
        analytics.evaluate(&mut engine, &tracker, now);
    }
    let report = analytics.alarm_report();
    let firing: Vec<(&str, &str, &str)> = report
        .alarms
        .iter()
        .map(|a| (a.rule.as_str(), a.subject.as_str(), a.status.as_str()))
        .collect();
    assert_eq!(
        firing,
        [("cpu-hot", "hot", "firing"), ("host-silent", "quiet", "firing")]
    );
    assert_eq!(report.alarms[0].runbook, "https://runbooks.example/cpu-hot");
    // The silent host speaks again: its alarm resolves at the next evaluation.
    let now = T0_MS + 5_000;
    analytics.observe("quiet", &labels("web"), &cpu(10.0), now, now);
    let events = analytics.evaluate(&mut engine, &tracker, now);
    assert!(events
        .iter()
        .any(|e| e.rule == "host-silent" && e.status == AlarmStatus::Resolved));
    assert!(matches!(
        engine.state_of(
            "host-silent",
            &crate::analytics::alarms::Subject::Host("quiet".into())
        ),
        Some(AlarmState::Resolved { .. })
    ));
}

#[test]
fn replays_and_catch_up_samples_stay_out_of_the_history() {
    let analytics = Analytics::new(settings(Some(RULES)));
    analytics.observe("a", &labels("web"), &cpu(50.0), T0_MS, T0_MS);
    // The same sample stored after it was seen live, then one from an hour-old backlog.
    analytics.observe("a", &labels("web"), &cpu(50.0), T0_MS, T0_MS + 500);
    analytics.observe("a", &labels("web"), &cpu(99.0), T0_MS + 1, T0_MS + 3_600_000);
    let cells = analytics.cells();
    let cell = lock(&cells[0]);
    assert_eq!(cell.input.history.len(), 1);
    assert_eq!(cell.input.last_seen_ms, T0_MS + 3_600_000);
}

#[test]
fn windows_are_means_scored_against_peers_and_explained() {
    let analytics = Analytics::new(settings(None));
    let mut tracker = OutlierTracker::new(analytics.settings().outliers.clone());
    for window in 0..3u64 {
        let end = T0_MS + (window + 1) * 60_000;
        for host in 0..8 {
            let value = if host == 7 { 95.0 } else { 30.0 + host as f64 };
            for second in 0..3 {
                let at = end - 59_000 + second * 1_000;
                analytics.observe(&format!("web-{host}"), &labels("web"), &cpu(value), at, at);
            }
        }
        // A group of two is too small to score.
        analytics.observe("db-1", &labels("db"), &cpu(50.0), end - 1_000, end - 1_000);
        analytics.close_window(&mut tracker, end);
    }
    let report = analytics.outlier_report(None);
    assert_eq!(report.outliers.len(), 1, "{report:?}");
    let row = &report.outliers[0];
    assert_eq!(
        (row.host.as_str(), row.metric.as_str()),
        ("web-7", "cpu_busy_pct")
    );
    assert!(
        row.explanation
            .starts_with("web-7 cpu_busy_pct 95.0% vs group median"),
        "{}",
        row.explanation
    );
    assert!(report
        .skipped
        .iter()
        .any(|s| s.group == "db" && s.reason.contains("fewer than 5")));
    assert!(analytics.outlier_report(Some("db")).outliers.is_empty());
}

#[test]
fn history_holds_the_longest_window_at_one_reading_a_second() {
    assert_eq!(history_capacity(None), MIN_HISTORY);
    let rules = crate::analytics::alarms::parse(
        r#"
[[rule]]
name = "retrans"
kind = "percentile"
severity = "warning"
for = "1m"
runbook = "x"
metric = "retrans_per_s"
quantile = 99.9
over = "5m"
op = ">"
value = 10.0
"#,
        "t.toml",
    )
    .unwrap();
    assert_eq!(history_capacity(Some(&rules)), 302);
}

/// While one host's state is locked (its rules being evaluated), samples of every other host go in, and
/// the host list itself is free: ingest never waits for a whole evaluation.
#[test]
fn observe_is_not_held_up_by_a_host_being_evaluated() {
    let analytics = Analytics::new(settings(Some(RULES)));
    analytics.observe("busy", &labels("web"), &cpu(50.0), T0_MS, T0_MS);
    analytics.observe("other", &labels("web"), &cpu(50.0), T0_MS, T0_MS);
    let cells = analytics.cells();
    let held = lock(&cells[0]);
    assert_eq!(held.input.host, "busy");
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let feeder = {
        let analytics = Arc::clone(&analytics);
        std::thread::spawn(move || {
            let later = T0_MS + 1_000;
            analytics.observe("other", &labels("web"), &cpu(60.0), later, later);
            analytics.observe("new-host", &labels("db"), &cpu(70.0), later, later);
            done_tx.send(()).unwrap();
        })
    };
    done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("observe of other hosts finished while one host was locked");
    drop(held);
    feeder.join().unwrap();
    let cells = analytics.cells();
    assert_eq!(cells.len(), 3);
    assert_eq!(lock(&cells[1]).input.history.len(), 2);
}
