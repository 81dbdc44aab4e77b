//! Tests of the analytics runtime's state: history feeding, outlier windows and alarm reports, on an
//! injected clock.

use super::*;
use crate::analytics::alarms::{AlarmState, AlarmStatus};
use std::time::Duration;

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
        sizing: crate::sizing::SizingConfig::default(),
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
    // /metrics counts the same alarms without copying the report.
    let counts = analytics.scrape_counts();
    assert_eq!(
        (counts.alarms_firing, counts.alarms_pending),
        (2, 0),
        "{counts:?}"
    );
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

/// Issue 12: a host's labels are kept once, by the live view, and the analytics hold the same copy; a
/// reconnect with the same labels keeps it, and new labels replace it in both.
#[test]
fn issue_12_the_analytics_and_the_live_view_share_one_copy_of_a_hosts_labels() {
    let analytics = Analytics::new(settings(Some(RULES)));
    let mut fleet = crate::live::fleet::FleetState::new(crate::live::fleet::FleetSettings::default());
    let hello = |group: &str| crate::live::fleet::test_hello(&[("group", group)], 1);
    let shared = fleet.on_hello("web-1", &hello("web"), T0_MS);
    let slot = analytics.bind("web-1", &shared, 8, 32 << 30, T0_MS);
    assert!(Arc::ptr_eq(&lock(&slot.0).input.labels, &shared));
    assert_eq!(
        Arc::strong_count(&shared),
        3,
        "the live view, the analytics and this test"
    );

    let again = fleet.on_hello("web-1", &hello("web"), T0_MS + 1_000);
    assert!(Arc::ptr_eq(&again, &shared), "the same labels keep their copy");
    let slot = analytics.bind("web-1", &again, 8, 32 << 30, T0_MS + 1_000);
    assert!(Arc::ptr_eq(&lock(&slot.0).input.labels, &shared));

    let moved = fleet.on_hello("web-1", &hello("db"), T0_MS + 2_000);
    assert_eq!(*moved, labels("db"));
    let slot = analytics.bind("web-1", &moved, 8, 32 << 30, T0_MS + 2_000);
    assert!(Arc::ptr_eq(&lock(&slot.0).input.labels, &moved));
    drop((again, slot));
    assert_eq!(Arc::strong_count(&shared), 1, "the old copy is gone from both");
}

#[test]
fn issue_12_a_connections_slot_feeds_its_host_with_the_labels_of_its_hello() {
    let analytics = Analytics::new(settings(Some(RULES)));
    let mut engine = AlarmEngine::new(analytics.settings().rules.clone().unwrap());
    let tracker = OutlierTracker::new(analytics.settings().outliers.clone());
    // Seen before under another group, through a live sample.
    analytics.observe("hot", &labels("db"), &cpu(10.0), T0_MS - 1_000, T0_MS - 1_000);
    let slot = analytics.bind("hot", &Arc::new(labels("web")), 8, 32 << 30, T0_MS);
    for step in 0..5u64 {
        let now = T0_MS + step * 1_000;
        analytics.observe_slot(&slot, &cpu(97.0), now, now);
        analytics.evaluate(&mut engine, &tracker, now);
    }
    let cells = analytics.cells();
    assert_eq!(cells.len(), 1, "one cell per host, however it is fed");
    {
        let cell = lock(&cells[0]);
        assert_eq!(*cell.input.labels, labels("web"));
        assert_eq!((cell.input.cores, cell.input.memory_bytes), (8, 32 << 30));
        // The live sample and the five stored ones.
        assert_eq!(cell.input.history.len(), 6);
        assert_eq!(cell.input.last_seen_ms, T0_MS + 4_000);
    }
    let report = analytics.alarm_report();
    assert!(
        report
            .alarms
            .iter()
            .any(|a| a.rule == "cpu-hot" && a.subject == "hot" && a.status == "firing"),
        "{report:?}"
    );
    // A replay through the slot only counts as hearing from the host, as through `observe`.
    analytics.observe_slot(&slot, &cpu(99.0), T0_MS + 4_000, T0_MS + 9_000);
    let cell = lock(&cells[0]);
    assert_eq!(cell.input.history.len(), 6);
    assert_eq!(cell.input.last_seen_ms, T0_MS + 9_000);
}

#[tokio::test]
async fn windows_are_means_scored_against_peers_and_explained() {
    // Closed on a blocking thread as the runtime closes them: the tracker that comes back carries the
    // windows before it.
    let analytics = Arc::new(Analytics::new(settings(None)));
    let mut passes = runner::Passes::new(analytics.settings());
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
        (passes, _) = runner::apart(&analytics, passes, move |analytics, passes| {
            analytics.close_window(&mut passes.tracker, end)
        })
        .await;
    }
    let report = analytics.outlier_report(None);
    assert_eq!(report.outliers.len(), 1, "{report:?}");
    assert_eq!(analytics.scrape_counts().outliers_flagged, 1);
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

#[tokio::test]
async fn a_pass_that_records_history_keeps_its_state_on_the_passes_thread() {
    // An evaluation that records transitions hands them to the store writer through a runtime task: from
    // the passes thread too, without panicking (which would start the alarm states over at every pass).
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = crate::store::Store::open(&dir.path().join("headroom.db"), T0_MS).unwrap();
    let (handle, _writer) = crate::store::spawn_writer(store, 16);
    let analytics = Arc::new(Analytics::new(settings(Some(RULES))));
    analytics.keep_history(handle);
    let passes = runner::Passes::new(analytics.settings());
    let statuses = hot_host_through_the_passes_thread(&analytics, passes).await;
    assert!(
        statuses.contains(&(1, "cpu-hot".to_string(), AlarmStatus::Firing)),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_pass_that_panics_starts_the_passes_over_and_the_next_one_runs() {
    let analytics = Arc::new(Analytics::new(settings(Some(RULES))));
    let passes = runner::Passes::new(analytics.settings());
    let (passes, result) = runner::apart(&analytics, passes, |_, passes| {
        passes.engine = None;
        panic!("a pass that fails");
    })
    .await;
    assert_eq!(result, None::<()>);
    assert!(passes.engine.is_some(), "the rules' engine is built again");
    // The engine that comes back from each pass carries its states to the next: the alarm fires after its
    // `for` of 1 s.
    let statuses: Vec<(u64, AlarmStatus)> = hot_host_through_the_passes_thread(&analytics, passes)
        .await
        .into_iter()
        .map(|(step, _, status)| (step, status))
        .collect();
    assert_eq!(statuses, [(0, AlarmStatus::Pending), (1, AlarmStatus::Firing)]);
}

/// A hot host observed and evaluated through the passes thread once a second for 3 s: each step's alarm
/// transitions as (step, rule, status). Panics if a pass panicked.
async fn hot_host_through_the_passes_thread(
    analytics: &Arc<Analytics>,
    mut passes: runner::Passes,
) -> Vec<(u64, String, AlarmStatus)> {
    let mut statuses = Vec::new();
    for step in 0..3u64 {
        let now = T0_MS + step * 1_000;
        analytics.observe("hot", &labels("web"), &cpu(97.0), now, now);
        let events;
        (passes, events) = runner::apart(analytics, passes, move |analytics, passes| {
            let engine = passes.engine.as_mut().expect("rules given");
            analytics.evaluate(engine, &passes.tracker, now)
        })
        .await;
        let events = events.expect("the pass did not panic");
        statuses.extend(events.into_iter().map(|e| (step, e.rule, e.status)));
    }
    statuses
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

const HEADROOM_RULES: &str = r#"
[[rule]]
name = "group-headroom"
kind = "headroom"
severity = "warning"
for = "30s"
over = "15m"
runbook = "add the hosts named in the alarm, in the zones named, before the load grows further"

[[rule]]
name = "group-headroom-forecast"
kind = "headroom"
severity = "info"
for = "0s"
within = "30d"
runbook = "plan the hosts the sizing report names"
"#;

/// Issue 10: three 8-core hosts, one per zone, fed through the runtime as ingest feeds it. At 50 % busy (12
/// cores of 24) losing a zone puts 12 cores on 16: 75 %, safe under 80 %. At 60 % (14.4 cores) it would be
/// 90 %: the headroom alarm goes pending, fires after its `for`, and names the binding resource, the worst
/// loss and the hosts to add: one host in zone a leaves losing a at 14.4/16 = 90 %; a second in b makes
/// the worst loss a 16-core zone, 14.4/24 = 60 %.
#[test]
fn issue_10_the_headroom_alarm_fires_from_the_live_load_and_names_what_to_add() {
    let analytics = Analytics::new(settings(Some(HEADROOM_RULES)));
    let mut engine = AlarmEngine::new(analytics.settings().rules.clone().unwrap());
    engine.set_sizing(analytics.settings().sizing.clone());
    let tracker = OutlierTracker::new(analytics.settings().outliers.clone());
    let hosts = [("web-a", "a"), ("web-b", "b"), ("web-c", "c")];
    let mut labelled = Vec::new();
    for (host, zone) in hosts {
        let mut labels = labels("web");
        labels.insert("zone".to_string(), zone.to_string());
        analytics.bind(host, &Arc::new(labels.clone()), 8, 32 << 30, T0_MS);
        labelled.push((host, labels));
    }
    let run = |engine: &mut AlarmEngine, from_s: u64, to_s: u64, busy_pct: f64| {
        let mut events = Vec::new();
        for second in from_s..to_s {
            let now = T0_MS + second * 1_000;
            for (host, labels) in &labelled {
                analytics.observe(host, labels, &cpu(busy_pct), now, now);
            }
            if second % 10 == 0 {
                events.extend(analytics.evaluate(engine, &tracker, now));
            }
        }
        events
    };
    let quiet = run(&mut engine, 0, 300, 50.0);
    assert!(quiet.iter().all(|e| e.rule != "group-headroom"), "{quiet:?}");
    let hot = run(&mut engine, 300, 600, 60.0);
    let fired: Vec<&AlarmEvent> = hot
        .iter()
        .filter(|e| e.rule == "group-headroom" && e.status == AlarmStatus::Firing)
        .collect();
    assert_eq!(fired.len(), 1, "{hot:?}");
    assert_eq!(
        fired[0].subject,
        crate::analytics::alarms::Subject::Group("web".into())
    );
    assert_eq!(fired[0].kind, "headroom");
    assert_eq!(fired[0].labels.get("group").map(String::as_str), Some("web"));
    // Five minutes at 60 %: the peak minute is wholly hot, and the alarm as it stands says so.
    let report = analytics.alarm_report();
    let row = report
        .alarms
        .iter()
        .find(|a| a.rule == "group-headroom")
        .expect("the headroom alarm");
    assert_eq!(row.status, "firing");
    assert!((row.value.unwrap() - 90.0).abs() < 1e-6, "{row:?}");
    assert_eq!(
        row.summary,
        "group-headroom on web: cpu would run at 90.0 % after losing zone \"a\" (target 80.0 %; now 60.0 %, \
         safe level 53.3 %); hosts to add: 2 (+1 in a, +1 in b)"
    );

    // The forecast variant waits for a forecast, then fires on a group the digest calls unsafe within 30
    // days, and stays quiet for one beyond it.
    assert!(!report.alarms.iter().any(|a| a.rule == "group-headroom-forecast"));
    let sized = crate::sizing::SizingReport {
        schema_version: 2,
        window_start_ms: T0_MS,
        window_end_ms: T0_MS,
        percentile: 99.9,
        peak_statistic: "p99.9".into(),
        notes: Vec::new(),
        horizon_days: 90.0,
        groups: Vec::new(),
        scenarios: Vec::new(),
        ranking: vec![crate::sizing::RankedGroup {
            group: "web".into(),
            days_until_unsafe: 12.0,
            resource: Some(crate::sizing::Resource::Cpu),
        }],
    };
    let mut digest = crate::analytics::alarms::headroom::forecast_digest(&sized, T0_MS);
    assert!(digest.groups.is_empty(), "only groups in the report are digested");
    digest.groups.insert(
        "web".into(),
        crate::analytics::alarms::headroom::GroupForecast {
            days_until_unsafe: Some(12.0),
            detail: "cpu: crosses in 12 days".into(),
        },
    );
    engine.set_forecast(digest);
    let events = run(&mut engine, 600, 601, 60.0);
    let forecast = events
        .iter()
        .find(|e| e.rule == "group-headroom-forecast")
        .expect("the forecast alarm");
    assert_eq!(forecast.status, AlarmStatus::Firing);
    assert_eq!(forecast.value, Some(12.0));
    assert!(
        forecast
            .summary
            .contains("cpu: crosses in 12 days (alarm within 30 days)"),
        "{}",
        forecast.summary
    );
}

/// Issue 10: connections through the runtime as ingest feeds them. Three 8-core hosts, one per zone, at
/// 25 % busy (6 cores of 24: 6/16 = 37.5 % after a zone loss), each with 800 established connections on
/// 443 against MaxConnections 1,000: 2,400 on the 2,000 left after a zone loss is 120 %. The live rule
/// fires on connections and names the port; a host without a group label is forecast under the name
/// reports give it.
#[test]
fn issue_10_the_live_headroom_rule_sizes_connections_fed_by_ingest() {
    let analytics = Analytics::new(settings(Some(HEADROOM_RULES)));
    let mut engine = AlarmEngine::new(analytics.settings().rules.clone().unwrap());
    let mut sizing = analytics.settings().sizing.clone();
    sizing.defaults.max_connections.insert(443, 1_000);
    engine.set_sizing(sizing);
    let tracker = OutlierTracker::new(analytics.settings().outliers.clone());
    let mut metrics = cpu(25.0);
    metrics.listeners = vec![headroom_common::wire::Listener {
        port: 443,
        established: 800,
        accept_queue: 0,
        accept_queue_limit: 128,
    }];
    let mut labelled = Vec::new();
    for (host, zone) in [("web-a", "a"), ("web-b", "b"), ("web-c", "c")] {
        let mut labels = labels("web");
        labels.insert("zone".to_string(), zone.to_string());
        analytics.bind(host, &Arc::new(labels.clone()), 8, 32 << 30, T0_MS);
        labelled.push((host, labels));
    }
    let mut events = Vec::new();
    for second in 0..300 {
        let now = T0_MS + second * 1_000;
        for (host, labels) in &labelled {
            analytics.observe(host, labels, &metrics, now, now);
        }
        if second % 10 == 0 {
            events.extend(analytics.evaluate(&mut engine, &tracker, now));
        }
    }
    let fired = events
        .iter()
        .find(|e| e.rule == "group-headroom" && e.status == AlarmStatus::Firing)
        .unwrap_or_else(|| panic!("{events:?}"));
    assert!((fired.value.unwrap() - 120.0).abs() < 1e-9, "{fired:?}");
    assert!(
        fired
            .summary
            .starts_with("group-headroom on web: connections on port 443 would run at 120.0 % after losing")
            && fired
                .summary
                .ends_with("or raise port 443's connection limit (sizing.max_connections)"),
        "{}",
        fired.summary
    );

    // Hosts without a group label: reports call their group "(no group)", and so does the forecast.
    let ungrouped = BTreeMap::new();
    analytics.observe("lone", &ungrouped, &cpu(10.0), T0_MS + 300_000, T0_MS + 300_000);
    let mut digest = crate::analytics::alarms::headroom::ForecastDigest {
        computed_ms: T0_MS,
        ..Default::default()
    };
    digest.groups.insert(
        crate::sizing::UNGROUPED.into(),
        crate::analytics::alarms::headroom::GroupForecast {
            days_until_unsafe: Some(3.0),
            detail: "cpu: crosses in 3 days".into(),
        },
    );
    engine.set_forecast(digest);
    let events = analytics.evaluate(&mut engine, &tracker, T0_MS + 301_000);
    let lone = events
        .iter()
        .find(|e| e.rule == "group-headroom-forecast")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(lone.value, Some(3.0));
}
