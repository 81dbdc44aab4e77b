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

/// Whether a shown value is the one [`every_metric`] gave `metric`.
fn close(shown: Option<f64>, metric: Metric) -> bool {
    shown.is_some_and(|v| (v - expected(metric)).abs() < 1e-9)
}

/// What a walk found wrong, one line per metric and path, reported together.
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    fn check(&mut self, ok: bool, metric: Metric, what: &str) {
        if !ok {
            self.0.push(format!("{metric}: {what}"));
        }
    }

    fn assert_none(self, heading: &str) {
        assert!(self.0.is_empty(), "{heading}:\n{}", self.0.join("\n"));
    }
}

/// A database in `dir` holding three samples of host `web-1` (group `web`), one a second from [`T0_MS`],
/// each carrying every metric.
fn store_with_every_metric(dir: &std::path::Path) -> Store {
    let (mut store, _) = Store::open(&dir.join("headroom.db"), T0_MS).unwrap();
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
    store
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

    let mut found = Findings::default();
    let mut check = |ok: bool, metric: Metric, what: &str| found.check(ok, metric, what);

    // (a) Stored and read back.
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with_every_metric(dir.path());
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
            labels: std::sync::Arc::new([("group".to_string(), "web".to_string())].into()),
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

    found.assert_none("the catalogue walk found gaps");
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

#[test]
fn the_views_declarations_are_consistent() {
    let mut shorts = HashSet::new();
    let mut orders = HashSet::new();
    for def in &CATALOGUE {
        let show = &def.show;
        assert!(shorts.insert(show.short), "short name {} twice", show.short);
        assert!(orders.insert(show.order), "display order {} twice", show.order);
        assert!(!show.title.is_empty(), "{} has no title", def.name);
        for place in show.places {
            if let Place::FleetPage(stat) = place {
                // The fleet page reads the live summary: the statistic must be one of its columns.
                assert!(
                    def.summary.iter().any(|column| column.stat == *stat),
                    "{} is on the fleet page as {stat:?}, which its summary columns lack",
                    def.name
                );
            }
        }
    }
}

/// The cells of a borderless table line: columns are at least two spaces apart, a cell has single spaces.
fn cells(line: &str) -> Vec<String> {
    line.trim()
        .split("  ")
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .map(String::from)
        .collect()
}

/// The views that show only some metrics, walked both ways: every metric the catalogue places in the
/// `hosts` table is a column of it (with its value) and in the host list's JSON and CSV; every metric it
/// places on a web page is there (the fleet page's columns and charts, the group page's sortable columns,
/// the host page's charts of the last hour and the last 30 days, with the JSON of each page carrying the
/// values); and a metric placed nowhere is absent from those lists. Each path is the one production uses.
#[test]
fn issue_9_every_metric_shows_where_its_catalogue_entry_places_it() {
    use crate::analytics::{AlarmReport, OutlierReport};
    use crate::live::fleet::{FleetSettings, FleetState};
    use crate::views::render::{render_hosts, table_value, Format};
    use crate::views::web::history::FleetHistory;
    use crate::views::web::{html, model};

    let mut found = Findings::default();
    let mut check = |ok: bool, metric: Metric, what: &str| found.check(ok, metric, what);
    let placed = |metric: Metric, kind: Place| metrics_in(kind).contains(&metric);

    let mut fleet = FleetState::new(FleetSettings::default());
    let hello = headroom_common::wire::Hello {
        protocol_version: 1,
        agent_version: "0.1.0".into(),
        instance_id: 1,
        interval_ms: 1_000,
        labels: [("group".to_string(), "web".to_string())].into(),
        capacity: headroom_common::wire::Capacity {
            cores: 4,
            memory_bytes: 8 << 30,
        },
        facts: Default::default(),
    };
    fleet.on_hello("web-1", &hello, T0_MS);
    let sample = headroom_common::wire::Sample {
        seq: 1,
        timestamp_ms: T0_MS,
        ..Default::default()
    };
    fleet.on_stored("web-1", std::sync::Arc::new(sample), &every_metric(), T0_MS);
    let hosts = fleet.hosts(T0_MS);

    // The `hosts` table: a column under the short name with the value; the JSON and CSV carry every metric.
    let table = render_hosts(&hosts, Format::Table);
    let mut lines = table.lines();
    let header = cells(lines.next().unwrap_or_default());
    let row = cells(lines.next().unwrap_or_default());
    assert_eq!(header.len(), row.len(), "{table}");
    let json: serde_json::Value = serde_json::from_str(&render_hosts(&hosts, Format::Json)).unwrap();
    let csv_text = render_hosts(&hosts, Format::Csv);
    let mut csv_lines = csv_text.lines();
    let csv_header: Vec<&str> = csv_lines.next().unwrap_or_default().split(',').collect();
    let csv_row: Vec<&str> = csv_lines.next().unwrap_or_default().split(',').collect();
    for metric in Metric::ALL {
        let short = metric.def().show.short;
        let column = header.iter().position(|h| h == short);
        if placed(metric, Place::HostsTable) {
            let shown = column.map(|i| row[i].as_str());
            check(
                shown == Some(table_value(metric, expected(metric)).as_str()),
                metric,
                &format!("hosts table column {short:?} shows {shown:?}"),
            );
        } else {
            check(
                column.is_none(),
                metric,
                "in the hosts table, which its entry does not say",
            );
        }
        check(
            close(json[0][metric.name()].as_f64(), metric),
            metric,
            "not in the hosts JSON with its value",
        );
        let in_csv = csv_header
            .iter()
            .position(|h| *h == metric.name())
            .and_then(|i| csv_row.get(i))
            .and_then(|v| v.parse::<f64>().ok());
        check(
            close(in_csv, metric),
            metric,
            "not in the hosts CSV with its value",
        );
    }

    // The fleet page: a column and a chart per fleet-page statistic, its value in the JSON, then and now.
    let summary = fleet.summary(T0_MS);
    let mut history = FleetHistory::new(60_000, 3_600_000);
    history.record(&summary, T0_MS);
    let (outliers, alarms) = (OutlierReport::default(), AlarmReport::default());
    let page = model::fleet_page(
        &hosts,
        model::FleetInputs {
            outliers: &outliers,
            alarms: &alarms,
            history: &history,
            sizing: None,
            sizing_window: "1d".into(),
            notice: None,
        },
        T0_MS,
    );
    let page_html = html::fleet(&page);
    let page_json = serde_json::to_value(&page).unwrap();
    for metric in Metric::ALL {
        let stats: Vec<Stat> = metric
            .def()
            .show
            .places
            .iter()
            .filter_map(|place| match place {
                Place::FleetPage(stat) => Some(*stat),
                _ => None,
            })
            .collect();
        let title = metric.def().show.title;
        if stats.is_empty() {
            check(
                !page_html.contains(&format!(">{title}, ")),
                metric,
                "a fleet page column, which its entry does not say",
            );
        }
        for stat in stats {
            let heading = format!("{title}, {}", stat.name());
            let key = Key::stat(metric, stat).name();
            check(
                page_html.contains(&format!(">{heading}</th>")),
                metric,
                &format!("no fleet page column \"{heading}\""),
            );
            check(
                page_html.contains(&format!("aria-label=\"{heading}: 1 points")),
                metric,
                &format!("no fleet page chart \"{heading}\" of its last hour"),
            );
            check(
                close(page_json["rows"][0][&key].as_f64(), metric),
                metric,
                &format!("no {key} with its value in the fleet page JSON"),
            );
            check(
                close(page_json["rows"][0]["history"][0][&key].as_f64(), metric),
                metric,
                &format!("no {key} with its value in the fleet page history"),
            );
        }
    }
    // What the demo and other clients read back is what was sent.
    let read_back: model::FleetPage = serde_json::from_value(page_json.clone()).unwrap();
    assert_eq!(read_back, page);

    // The group page: a sortable column per group-page metric, its value in the JSON.
    let group = model::group_page(
        "web",
        &hosts,
        model::GroupInputs {
            outliers: &outliers,
            alarms: &alarms,
            sizing: Ok(None),
            sizing_window: "1d".into(),
        },
        model::parse_sort(None, None),
        T0_MS,
    );
    let group_html = html::group(&group);
    let group_json = serde_json::to_value(&group).unwrap();
    for metric in Metric::ALL {
        let show = &metric.def().show;
        let column = group.columns.iter().find(|c| c.key == show.short);
        let heading = format!(">{}</a>", show.title);
        if placed(metric, Place::GroupPage) {
            check(
                column.is_some_and(|c| c.heading == show.title && c.numeric),
                metric,
                "no group page column",
            );
            check(group_html.contains(&heading), metric, "no group page heading");
            check(
                model::parse_sort(Some(show.short), None) == (show.short.to_string(), true),
                metric,
                "the group page does not sort by it",
            );
            check(
                close(group_json["hosts"][0][metric.name()].as_f64(), metric),
                metric,
                "not in the group page JSON with its value",
            );
        } else {
            check(
                column.is_none(),
                metric,
                "a group page column, which its entry does not say",
            );
        }
    }

    // The host page: charts of the raw samples of the last hour and of the hourly rollups, read from the
    // store with the metrics the catalogue places there.
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with_every_metric(dir.path());
    store
        .maintain(T0_MS + 3 * 3_600_000, &Retention::default())
        .unwrap();
    let last_hour = store
        .host_recent("web-1", T0_MS, &metrics_in(Place::HostLastHour))
        .unwrap();
    let last_30_days = store
        .host_hours(
            "web-1",
            T0_MS - 3_600_000,
            T0_MS + 3_600_000,
            &metrics_in(Place::HostDays),
        )
        .unwrap();
    let host = model::host_page(
        hosts[0].clone(),
        model::HostInputs {
            outliers: &outliers,
            alarms: &alarms,
            last_hour,
            last_30_days,
            gaps: Vec::new(),
            certificates: Vec::new(),
        },
        T0_MS,
    );
    let host_html = html::host(&host);
    let host_json = serde_json::to_value(&host).unwrap();
    for metric in Metric::ALL {
        let title = metric.def().show.title;
        let hour_chart = format!("aria-label=\"{title} over the last hour: 3 points");
        if placed(metric, Place::HostLastHour) {
            check(
                host_html.contains(&hour_chart),
                metric,
                "no host page chart of the last hour",
            );
            check(
                close(host_json["last_hour"][2][metric.name()].as_f64(), metric),
                metric,
                "not in the host page's last hour with its value",
            );
        } else {
            check(
                !host_html.contains(&hour_chart),
                metric,
                "charted, which its entry does not say",
            );
        }
        let days_chart = format!("aria-label=\"hourly mean {title} over 30 days: 1 points");
        if placed(metric, Place::HostDays) {
            check(
                host_html.contains(&days_chart),
                metric,
                "no host page chart of 30 days",
            );
            for stat in [Stat::Mean, Stat::Max] {
                let key = Key::stat(metric, stat).name();
                check(
                    close(host_json["last_30_days"][0][&key].as_f64(), metric),
                    metric,
                    &format!("no {key} with its value in the host page's 30 days"),
                );
            }
        } else {
            check(
                !host_html.contains(&days_chart),
                metric,
                "charted, which its entry does not say",
            );
        }
    }

    found.assert_none("the views disagree with the catalogue");
}

/// Where a catalogue name (see the test below) may be spelled in a string literal outside the catalogue
/// and tests, and why; `*` stands for any name. Anything else spells a second list: take the name from the
/// catalogue (`Metric::name`, `Key::name`) instead.
const SPELLED_ELSEWHERE: &[(&str, &[&str], &str)] = &[
    (
        "common/src/derive.rs",
        &["psi_cpu_some_avg10", "psi_memory_some_avg10", "psi_io_some_avg10"],
        "serde aliases: the JSON names of an earlier release, still read",
    ),
    (
        "collector/src/store/schema.rs",
        &["*"],
        "released migrations are frozen SQL, never edited; the store writes and reads `samples` through \
         the catalogue's names (`metric_columns`), so the catalogue walk fails on a column they lack",
    ),
    (
        "collector/src/store/rollup.rs",
        &["mem_used_bytes", "tcp_established"],
        "columns of `group_minutes`, the per-group sums sizing reads (docs/SCHEMA.md), not metric columns",
    ),
    (
        "collector/src/store/group_columns.rs",
        &["mem_used_bytes"],
        "a column of `group_minutes`, the per-group sums sizing reads (docs/SCHEMA.md)",
    ),
    (
        "collector/src/store/query.rs",
        &["mem_used_bytes", "tcp_established"],
        "columns of `group_minutes`, the per-group sums sizing reads (docs/SCHEMA.md)",
    ),
    (
        "collector/src/app/demo.rs",
        &["cpu_busy_pct"],
        "the demo's alarm rules file, written as a user writes one (the demo's tests load it)",
    ),
    (
        "collector/src/ingest/validate.rs",
        &["swap_used_bytes"],
        "the wire field `memory.swap_used_bytes` named in a validation error, not the metric",
    ),
    (
        "agent/src/sample_view.rs",
        &["load1"],
        "the agent's `sample` table names the raw /proc/loadavg readings; the agent does not link the \
         collector's catalogue",
    ),
];

/// The string literals of Rust source, each with its line: plain, byte and raw strings; comments, char
/// literals and lifetimes are skipped.
fn string_literals(code: &str) -> Vec<(usize, String)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let (mut i, mut line) = (0, 1);
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    while i < bytes.len() {
        let rest = &bytes[i..];
        let after_ident = i > 0 && is_ident(bytes[i - 1]);
        if rest.starts_with(b"//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            let end = code[i + 2..].find("*/").map_or(bytes.len(), |e| i + 2 + e + 2);
            line += code[i..end].matches('\n').count();
            i = end;
        } else if !after_ident
            && (rest.starts_with(b"r\"") || rest.starts_with(b"r#") || rest.starts_with(b"br"))
        {
            let start = if rest[0] == b'b' { i + 2 } else { i + 1 };
            let hashes = bytes[start..].iter().take_while(|b| **b == b'#').count();
            if bytes.get(start + hashes) != Some(&b'"') {
                i += 1;
                continue;
            }
            let body = start + hashes + 1;
            let close = format!("\"{}", "#".repeat(hashes));
            let end = code[body..].find(&close).map_or(bytes.len(), |e| body + e);
            found.push((line, code[body..end].to_string()));
            line += code[i..end].matches('\n').count();
            i = end + close.len();
        } else if bytes[i] == b'"' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            let end = j.min(bytes.len());
            found.push((line, code[i + 1..end].to_string()));
            line += code[i..end].matches('\n').count();
            i = end + 1;
        } else if bytes[i] == b'\'' && !after_ident {
            // A char literal ('"', '\'', '\n') or a lifetime ('a): skip the literal whole, a lifetime's tick.
            if rest.get(1) == Some(&b'\\') {
                i += 2 + rest[2..].iter().position(|b| *b == b'\'').unwrap_or(0) + 1;
            } else if rest.get(2) == Some(&b'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else {
            if bytes[i] == b'\n' {
                line += 1;
            }
            i += 1;
        }
    }
    found
}

#[test]
fn string_literals_are_found_outside_comments_and_char_literals() {
    let code = "// \"not\"\nlet a = '\"'; let b = \"one \\\" two\";\n/* \"no\" */ let c: &'static str = r#\"three \"x\"\"#;";
    let found: Vec<(usize, String)> = string_literals(code);
    assert_eq!(
        found,
        [(2, "one \\\" two".to_string()), (3, "three \"x\"".to_string())]
    );
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// No metric name of the catalogue (current or deprecated, its Prometheus name, or a key of its live summary
/// columns) is spelled as a string literal in the code of
/// the agent, the collector or `common`, outside the catalogue itself and tests (files named `tests.rs`
/// and everything from a `#[cfg(test)] mod` on), except where [`SPELLED_ELSEWHERE`] says why. A name in a
/// literal is a word of it (`"SELECT ts_ms, cpu_busy_pct FROM"` spells one). Every exception must still be
/// needed, so the list stays true.
#[test]
fn issue_9_no_metric_name_is_spelled_outside_the_catalogue() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the collector sits in the workspace");
    let names: HashSet<&str> = CATALOGUE
        .iter()
        .flat_map(|def| {
            [def.name, def.export_name]
                .into_iter()
                .chain(def.deprecated_names.iter().copied())
                .chain(def.summary.iter().map(|column| column.key))
        })
        .collect();
    let mut files = Vec::new();
    for krate in ["agent", "collector", "common"] {
        rust_files(&root.join(krate).join("src"), &mut files);
    }
    assert!(files.len() > 50, "only {} source files found", files.len());
    let mut spelled: Vec<String> = Vec::new();
    let mut excused: HashSet<&str> = HashSet::new();
    for path in files {
        let relative = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        if relative == "collector/src/metrics/mod.rs" || path.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {relative}: {e}"));
        let lines: Vec<&str> = text.lines().collect();
        let code_lines = lines
            .windows(2)
            .position(|pair| pair[0].trim() == "#[cfg(test)]" && pair[1].trim_start().starts_with("mod "))
            .unwrap_or(lines.len());
        let code = lines[..code_lines].join("\n");
        for (line, literal) in string_literals(&code) {
            for word in literal.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !names.contains(word) {
                    continue;
                }
                match SPELLED_ELSEWHERE.iter().find(|(file, allowed, _)| {
                    *file == relative && allowed.iter().any(|name| *name == "*" || *name == word)
                }) {
                    Some((file, _, _)) => {
                        excused.insert(file);
                    }
                    None => spelled.push(format!("{relative}:{line}: \"{word}\"")),
                }
            }
        }
    }
    assert!(
        spelled.is_empty(),
        "metric names spelled outside the catalogue (read them from `Metric`, or add the place with why to \
         SPELLED_ELSEWHERE):\n{}",
        spelled.join("\n")
    );
    for (file, names, why) in SPELLED_ELSEWHERE {
        assert!(
            excused.contains(file),
            "{file} no longer spells {names:?} ({why}): remove it from SPELLED_ELSEWHERE"
        );
    }
}
