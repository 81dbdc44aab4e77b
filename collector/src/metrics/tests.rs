//! The catalogue walk: every metric is stored, shown by `fleet` (live and windowed), exportable and usable in
//! an alarm rule, under one name; and the catalogue's own consistency.

use super::*;
use crate::store::{HostBatch, HostInfo, Retention, SampleRow, Store};
use crate::views::window::{compute_rows, stored_hosts};
use std::collections::HashSet;

/// A Monday at 00:00 UTC.
const T0_MS: u64 = 1_700_438_400_000;

/// A distinct value per metric, whole so that integer columns keep it exactly.
fn expected(metric: Metric) -> f64 {
    (metric.index() as f64 + 1.0) * 10.0
}

/// Derived metrics carrying every catalogue metric, set through the field of the same name.
fn every_metric() -> HostMetrics {
    let fields: serde_json::Map<String, serde_json::Value> = Metric::ALL
        .iter()
        .map(|m| (m.name().to_string(), serde_json::json!(expected(*m) as u64)))
        .collect();
    serde_json::from_value(serde_json::Value::Object(fields)).expect("every catalogue name is a field")
}

#[test]
fn the_catalogue_is_in_enum_order_with_unique_names() {
    let mut names = HashSet::new();
    for (i, def) in CATALOGUE.iter().enumerate() {
        assert_eq!(def.metric.index(), i, "{}", def.name);
        assert_eq!(Metric::ALL[i], def.metric);
        assert!(names.insert(def.name), "{} twice", def.name);
        for old in def.deprecated_names {
            assert!(names.insert(old), "{old} twice");
            assert_eq!(Metric::lookup(old), Some(Lookup::Deprecated(def.metric)));
        }
        assert_eq!(Metric::from_name(def.name), Some(def.metric));
        assert!(!def.help.is_empty(), "{} has no help", def.name);
    }
    assert_eq!(Metric::from_name("cpu"), None);
}

#[test]
fn every_metric_is_read_from_the_derived_field_of_its_name() {
    let metrics = every_metric();
    for metric in Metric::ALL {
        assert_eq!(metric.value(&metrics), Some(expected(metric)), "{metric}");
    }
    // And the JSON of a host shows it under that name.
    let json = serde_json::to_value(&metrics).unwrap();
    for metric in Metric::ALL {
        assert_eq!(json[metric.name()].as_f64(), Some(expected(metric)), "{metric}");
    }
}

#[test]
fn every_metric_is_exportable_under_a_valid_unique_prometheus_name() {
    let mut seen = HashSet::new();
    for def in &CATALOGUE {
        let name = def.export_name;
        assert!(name.starts_with("headroom_"), "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name} is not a Prometheus metric name"
        );
        assert!(seen.insert(name), "{name} twice");
    }
}

/// The catalogue walk. For every metric: (a) the store keeps it and gives it back (raw rows, the export
/// queue's rows, and the minute and hour rollups through the windowed view); (b) `fleet` shows it (a row of
/// `fleet --by` and `fleet --window`, as a table and as JSON, and every live-summary column the catalogue
/// gives it in the table header and as a JSON key); (c) the remote_write exporter sends it under its series
/// name; (d) an alarm rule naming it parses and, evaluated on a sample carrying it, goes pending with the
/// sample's value. Every path is the one production uses, so a metric dropped from any of them is listed.
#[test]
fn issue_9_every_metric_is_stored_shown_exported_and_usable_in_an_alarm_rule() {
    use crate::analytics::alarms::{AlarmEngine, AlarmStatus, EvalInputs, HostHistory, HostInput};
    use crate::analytics::outliers::MetricValues;
    use crate::export::series::{export_name, SeriesBuilder};
    use crate::live::fleet::{FleetSettings, FleetState};
    use crate::views::render::{render_fleet, render_fleet_view, Format};
    use crate::views::window::live_hosts;
    use crate::views::FleetView;

    let mut missing: Vec<String> = Vec::new();
    let mut check = |ok: bool, metric: Metric, what: &str| {
        if !ok {
            missing.push(format!("{metric}: {what}"));
        }
    };
    let close =
        |shown: Option<f64>, metric: Metric| shown.is_some_and(|v| (v - expected(metric)).abs() < 1e-9);

    // (a) Stored and read back.
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = Store::open(&dir.path().join("headroom.db"), T0_MS).unwrap();
    let rows = (0..3)
        .map(|i| SampleRow {
            seq: i + 1,
            ts_ms: T0_MS + i * 1_000,
            clock_offset_ms: 0,
            metrics: every_metric(),
            detail: Vec::new(),
        })
        .collect();
    let hello = HostInfo {
        labels: [("group".to_string(), "web".to_string())].into(),
        cores: 4,
        memory_bytes: 8 << 30,
        interval_ms: 1000,
        agent_version: "0.1.0".into(),
    };
    store
        .commit_batches(&[HostBatch {
            host: "web-1".into(),
            instance_id: 1,
            received_ms: T0_MS,
            hello: Some(hello),
            rows,
            gaps: Vec::new(),
        }])
        .unwrap();
    let queued = store.export_rows_after(0, 10).unwrap();
    assert_eq!(queued.len(), 3);
    for metric in Metric::ALL {
        let stored = queued[0].values.get(metric.index()).copied().flatten();
        check(
            close(stored, metric),
            metric,
            "not read back from the samples table",
        );
    }

    // (b) Shown by `fleet`: the windowed view over raw rows and over rollups, the live `fleet --by`, and
    // the live summary's columns.
    let mut views = Vec::new();
    let (hosts, used) = stored_hosts(&store, T0_MS, T0_MS + 60_000).unwrap();
    views.push((used, compute_rows(&hosts, &["group".to_string()])));
    store
        .maintain(T0_MS + 3 * 3_600_000, &Retention::default())
        .unwrap();
    let (hosts, used) = stored_hosts(&store, T0_MS - 3_600_000, T0_MS + 3 * 3_600_000).unwrap();
    assert_eq!(used, "rollup");
    views.push((used, compute_rows(&hosts, &["group".to_string()])));
    let mut fleet = FleetState::new(FleetSettings::default());
    let sample = headroom_common::wire::Sample {
        seq: 1,
        timestamp_ms: T0_MS,
        ..Default::default()
    };
    fleet.on_stored("web-1", std::sync::Arc::new(sample), &every_metric(), T0_MS);
    views.push(("live", compute_rows(&live_hosts(&fleet.hosts(T0_MS)), &[])));
    for (source, rows) in views {
        let view = FleetView {
            rows,
            ..FleetView::default()
        };
        let table = render_fleet_view(&view, Format::Table);
        let json: serde_json::Value = serde_json::from_str(&render_fleet_view(&view, Format::Json)).unwrap();
        for metric in Metric::ALL {
            let in_table = table
                .lines()
                .any(|line| line.split_whitespace().nth(1) == Some(metric.name()));
            check(in_table, metric, &format!("no row of the {source} fleet table"));
            let entry = json["rows"][0]["metrics"]
                .as_array()
                .and_then(|all| all.iter().find(|m| m["metric"] == metric.name()));
            check(
                close(entry.and_then(|m| m["mean"].as_f64()), metric),
                metric,
                &format!("not in the {source} fleet JSON with its value"),
            );
        }
    }
    let summary = fleet.summary(T0_MS);
    let table = render_fleet(&summary, Format::Table);
    let header = table.lines().nth(1).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(&render_fleet(&summary, Format::Json)).unwrap();
    for (metric, column) in summary_columns() {
        if let Some(title) = column.header {
            check(
                header.contains(title),
                metric,
                &format!("no \"{title}\" column in the fleet table"),
            );
        }
        check(
            close(json["groups"][0][column.key].as_f64(), metric),
            metric,
            &format!("no {} key with its value in the fleet JSON", column.key),
        );
    }

    // (c) Exportable: the exporter's series from the export queue's rows.
    let mut builder = SeriesBuilder::new(&Default::default());
    builder.set_hosts(store.export_hosts().unwrap());
    let batch = builder.build(&queued);
    for metric in Metric::ALL {
        let name = export_name(metric);
        let series = batch.request.timeseries.iter().find(|s| {
            s.labels
                .iter()
                .any(|l| l.name == "__name__" && l.value == name.name)
        });
        let value = series
            .and_then(|s| s.samples.first())
            .map(|s| s.value / name.scale);
        check(
            close(value, metric),
            metric,
            &format!("not exported as {}", name.name),
        );
    }

    // (d) Usable in an alarm rule: parsed, then evaluated on the sample as ingest feeds it.
    for metric in Metric::ALL {
        let text = format!(
            "[[rule]]\nname = \"r\"\nkind = \"threshold\"\nseverity = \"warning\"\nfor = \"1m\"\n\
             runbook = \"x\"\nmetric = \"{metric}\"\nop = \">\"\nvalue = {}\n",
            expected(metric) - 1.0
        );
        let rules = match crate::analytics::alarms::parse(&text, "rules.toml") {
            Ok(rules) if rules.warnings.is_empty() && rules.rules[0].condition.metric() == Some(metric) => {
                rules
            }
            _ => {
                check(false, metric, "an alarm rule naming it does not parse");
                continue;
            }
        };
        let mut history = HostHistory::new(8);
        history.push(T0_MS, MetricValues::from_metrics(&every_metric()));
        let hosts = [HostInput {
            host: "web-1".into(),
            labels: [("group".to_string(), "web".to_string())].into(),
            interval_ms: 1_000,
            last_seen_ms: T0_MS,
            clock_offset_ms: None,
            cores: 4,
            memory_bytes: 8 << 30,
            history,
            ports: Default::default(),
        }];
        let events = AlarmEngine::new(rules).evaluate(
            EvalInputs {
                hosts: &hosts,
                outliers: None,
            },
            T0_MS,
        );
        let pending = events
            .iter()
            .find(|e| e.status == AlarmStatus::Pending)
            .and_then(|e| e.value);
        check(
            close(pending, metric),
            metric,
            "an alarm rule on it does not go pending",
        );
    }

    assert!(
        missing.is_empty(),
        "the catalogue walk found gaps:\n{}",
        missing.join("\n")
    );
}

#[test]
fn old_alarm_rule_names_still_work_with_a_warning() {
    let text = "[[rule]]\nname = \"pressure\"\nkind = \"percentile\"\nseverity = \"warning\"\nfor = \"0s\"\n\
                runbook = \"x\"\nmetric = \"psi_cpu_some_avg10\"\nop = \">\"\nvalue = 10.0\n\
                quantile = 99.0\nover = \"5m\"\n";
    let rules = crate::analytics::alarms::parse(text, "rules.toml").unwrap();
    assert_eq!(rules.rules[0].condition.metric(), Some(Metric::PsiCpu));
    assert_eq!(
        rules.warnings,
        ["rules.toml: line 1: rule \"pressure\": metric \"psi_cpu_some_avg10\" is deprecated; write \"psi_cpu\""]
    );
}

#[test]
fn values_print_in_their_unit() {
    assert_eq!(Metric::CpuBusyPct.format_value(92.04), "92.0%");
    assert_eq!(Metric::NetRxBytesPerS.format_value(1_234_567.0), "1.2 MB/s");
    assert_eq!(Metric::MemUsedBytes.format_value(2.5e9), "2.5 GB");
    assert_eq!(Metric::RetransPerS.format_value(3.12), "3.1/s");
    assert_eq!(Metric::TcpEstablished.format_value(412.0), "412");
    assert_eq!(Metric::Load1.format_value(1.5), "1.50");
}

#[test]
fn the_schema_doc_lists_every_metric() {
    let doc = include_str!("../../../docs/SCHEMA.md");
    for metric in Metric::ALL {
        assert!(
            doc.contains(&format!("`{metric}`")),
            "docs/SCHEMA.md does not list {metric}"
        );
    }
}
