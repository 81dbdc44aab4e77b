//! The catalogue walk: every metric is stored, shown by `fleet` (live and windowed), exportable and usable in
//! an alarm rule, under one name.

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

#[test]
fn every_metric_is_stored_raw_and_rolled_up_and_shown_by_the_fleet_view() {
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
    let check = |store: &Store, source: &str, from_ms: u64, to_ms: u64| {
        let (hosts, used) = stored_hosts(store, from_ms, to_ms).unwrap();
        assert_eq!(used, source);
        let rows = compute_rows(&hosts, &["group".to_string()]);
        assert_eq!(rows.len(), 1);
        for metric in Metric::ALL {
            let shown = rows[0]
                .metrics
                .iter()
                .find(|s| s.metric == metric.name())
                .unwrap_or_else(|| panic!("{metric} not shown by the {source} fleet view"));
            assert!(
                (shown.mean - expected(metric)).abs() < 1e-9,
                "{metric}: {shown:?}"
            );
        }
    };
    check(&store, "raw", T0_MS, T0_MS + 60_000);
    store
        .maintain(T0_MS + 3 * 3_600_000, &Retention::default())
        .unwrap();
    check(&store, "rollup", T0_MS - 3_600_000, T0_MS + 3 * 3_600_000);
}

#[test]
fn every_metric_is_shown_by_the_live_fleet_view() {
    use crate::live::fleet::{FleetSettings, FleetState};
    let mut fleet = FleetState::new(FleetSettings::default());
    let sample = headroom_common::wire::Sample {
        seq: 1,
        timestamp_ms: T0_MS,
        ..Default::default()
    };
    fleet.on_stored("web-1", sample, every_metric(), T0_MS);
    let rows = compute_rows(&crate::views::window::live_hosts(&fleet.hosts(T0_MS)), &[]);
    for metric in Metric::ALL {
        let shown = rows[0].metrics.iter().find(|s| s.metric == metric.name());
        assert_eq!(shown.map(|s| s.max), Some(expected(metric)), "{metric}");
    }
}

#[test]
fn every_metric_can_be_used_in_an_alarm_rule_and_old_names_warn() {
    for metric in Metric::ALL {
        let text = format!(
            "[[rule]]\nname = \"r\"\nkind = \"threshold\"\nseverity = \"warning\"\nfor = \"0s\"\n\
             runbook = \"x\"\nmetric = \"{metric}\"\nop = \">\"\nvalue = 1.0\n"
        );
        let rules = crate::analytics::alarms::parse(&text, "rules.toml").unwrap();
        assert_eq!(rules.rules[0].condition.metric(), Some(metric));
        assert!(rules.warnings.is_empty());
    }
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
