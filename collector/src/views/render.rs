//! Renders the fleet summary and the host list as a terminal table (human units), CSV (raw numbers in
//! machine units, one header row) or pretty JSON.

use crate::live::fleet::HostView;
use crate::live::summary::FleetSummary;
use crate::metrics::{metrics_in, summary_columns, Metric, Place};
use comfy_table::{presets, CellAlignment, Table};
use serde::Serialize;

use headroom_common::schema::versioned;
pub use headroom_common::schema::SCHEMA_VERSION;

/// Body of every error response of the JSON API (and of the web pages' JSON form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// Output format of the command-line views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Csv,
}

/// What the command line asked for: a format, and whether a table or CSV starts with its header (and a
/// table with its summary lines). `--no-header` leaves only the data rows, for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    pub format: Format,
    pub header: bool,
}

impl From<Format> for Output {
    fn from(format: Format) -> Output {
        Output { format, header: true }
    }
}

/// Shown in a table cell for a value nobody reported.
const MISSING: &str = "-";

fn or_missing<T>(value: Option<T>, show: impl Fn(T) -> String) -> String {
    value.map(show).unwrap_or_else(|| MISSING.to_string())
}

pub use headroom_common::units::human_bytes_per_s;

/// A windowed metric's value with the unit the metric catalogue gives it; bytes in binary units (GiB, MiB/s)
/// like the other tables. A name the catalogue does not know is printed as a plain number.
pub fn metric_value(metric: &str, value: f64) -> String {
    match Metric::from_name(metric) {
        Some(metric) => table_value(metric, value),
        None if value.abs() >= 1000.0 => format!("{value:.0}"),
        None => format!("{value:.2}"),
    }
}

/// A metric's value as the terminal tables print it: the catalogue's format for its unit, bytes in binary
/// units.
pub fn table_value(metric: Metric, value: f64) -> String {
    use crate::metrics::{format_in, Unit};
    match metric.def().unit {
        Unit::Bytes => headroom_common::units::human_bytes(value),
        Unit::BytesPerSecond => human_bytes_per_s(value),
        unit => format_in(unit, value),
    }
}

/// A label value as a table shows it: "" (no label) becomes "-".
fn label(value: &str) -> &str {
    if value.is_empty() {
        MISSING
    } else {
        value
    }
}

/// A plain table in the style of `kubectl get`: no borders, numbers right-aligned; the header row when
/// `show_header`.
pub(crate) fn table(
    header: &[&str],
    rows: Vec<Vec<String>>,
    numeric_from_column: usize,
    show_header: bool,
) -> String {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    if show_header {
        table.set_header(header.to_vec());
    }
    for row in rows {
        table.add_row(row);
    }
    for index in numeric_from_column..header.len().min(table.column_count()) {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    // The borderless preset pads the last column; trailing blanks only get in the way of diffs and greps.
    table
        .lines()
        .map(|line| format!("{}\n", line.trim_end()))
        .collect()
}

pub(crate) fn json<T: Serialize + ?Sized>(value: &T) -> String {
    // These types have string map keys and derived serializers only, so serialization cannot fail.
    let mut out = serde_json::to_string_pretty(value).expect("views serialize to JSON");
    out.push('\n');
    out
}

/// One CSV header row (when `header`) and a row per record. With no records the header row is still written,
/// taken from a default record, so a script reading the file always finds the columns.
pub(crate) fn csv_rows<T: Serialize + Default>(records: &[T], header: bool) -> String {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(header)
        .from_writer(Vec::new());
    if records.is_empty() {
        if !header {
            return String::new();
        }
        writer
            .serialize(T::default())
            .expect("flat records serialize to CSV");
        let text = String::from_utf8(writer.into_inner().expect("writing to memory")).expect("csv is utf-8");
        return text
            .lines()
            .next()
            .map(|header| format!("{header}\n"))
            .unwrap_or_default();
    }
    for record in records {
        writer.serialize(record).expect("flat records serialize to CSV");
    }
    String::from_utf8(writer.into_inner().expect("writing to memory")).expect("csv is utf-8")
}

/// The fleet summary: a header line with host counts, then one row per group and zone. The metric columns
/// are the catalogue's live summary columns that have a table header, each value in its metric's unit.
pub fn render_fleet(summary: &FleetSummary, output: impl Into<Output>) -> String {
    let Output { format, header } = output.into();
    match format {
        Format::Json => json(&versioned(summary)),
        Format::Csv => csv_rows(&summary.groups, header),
        Format::Table => {
            let shown: Vec<(usize, Metric, &str)> = summary_columns()
                .enumerate()
                .filter_map(|(index, (metric, column))| column.header.map(|h| (index, metric, h)))
                .collect();
            let columns: Vec<&str> = ["group", "zone", "hosts", "stale", "down"]
                .into_iter()
                .chain(shown.iter().map(|(_, _, h)| *h))
                .collect();
            let rows = summary
                .groups
                .iter()
                .map(|group| {
                    let counts = [
                        label(&group.group).to_string(),
                        label(&group.zone).to_string(),
                        group.hosts.to_string(),
                        group.hosts_stale.to_string(),
                        group.hosts_down.to_string(),
                    ];
                    let values = shown.iter().map(|(index, metric, _)| {
                        or_missing(group.values.get(*index).copied().flatten(), |v| {
                            table_value(*metric, v)
                        })
                    });
                    counts.into_iter().chain(values).collect()
                })
                .collect();
            let body = table(&columns, rows, 2, header);
            if !header {
                return body;
            }
            format!(
                "hosts: {} up, {} stale, {} down\n{body}",
                summary.hosts_up, summary.hosts_stale, summary.hosts_down,
            )
        }
    }
}

/// The host table's columns ahead of its metrics, and after them (the numbers start at the first metric).
const HOST_FACTS: [&str; 4] = ["host", "status", "group", "zone"];
const HOST_TRAILER: [&str; 2] = ["clock", "failed"];

/// Columns of the host table: the facts, every metric the catalogue puts in the `hosts` table (its short
/// header, in display order), then the clock and the failed families.
fn host_columns() -> Vec<&'static str> {
    HOST_FACTS
        .into_iter()
        .chain(
            metrics_in(Place::HostsTable)
                .into_iter()
                .map(|m| m.def().show.short),
        )
        .chain(HOST_TRAILER)
        .collect()
}

/// The host list, one row per host in the given order.
pub fn render_hosts(hosts: &[HostView], output: impl Into<Output>) -> String {
    let Output { format, header } = output.into();
    match format {
        Format::Json => json(hosts),
        Format::Csv => crate::views::hosts_csv::render(hosts, header),
        Format::Table => {
            let rows = hosts.iter().map(host_row).collect();
            table(&host_columns(), rows, HOST_FACTS.len(), header)
        }
    }
}

fn host_row(host: &HostView) -> Vec<String> {
    let m = &host.metrics;
    let facts = [
        host.host.clone(),
        host.status.name().to_string(),
        label(&host.group).to_string(),
        label(&host.zone).to_string(),
    ];
    let values = metrics_in(Place::HostsTable)
        .into_iter()
        .map(|metric| or_missing(metric.value(m), |v| table_value(metric, v)));
    let failed = if m.failed.is_empty() {
        MISSING.to_string()
    } else {
        m.failed.join(",")
    };
    facts
        .into_iter()
        .chain(values)
        .chain([clock_offset(host), failed])
        .collect()
}

/// The host clock's offset from the collector's in seconds, with "!" when it is past `fleet.max_clock_skew`.
fn clock_offset(host: &HostView) -> String {
    or_missing(host.clock_offset_ms, |offset_ms| {
        let flag = if host.clock_skewed { "!" } else { "" };
        format!("{:+.1}s{flag}", offset_ms as f64 / 1000.0)
    })
}

/// A windowed fleet view: per row and metric, count, mean, percentiles across hosts, max and its host.
pub fn render_fleet_view(view: &crate::views::FleetView, output: impl Into<Output>) -> String {
    let Output { format, header } = output.into();
    #[derive(Default, Serialize)]
    struct Flat {
        key: String,
        hosts: usize,
        metric: String,
        count: usize,
        mean: f64,
        p50: f64,
        p90: f64,
        p99: f64,
        p999: f64,
        max: f64,
        max_host: String,
    }
    let key_of = |row: &crate::views::ViewRow| {
        let parts: Vec<String> = row.key.iter().map(|(k, v)| format!("{k}={}", label(v))).collect();
        if parts.is_empty() {
            "fleet".to_string()
        } else {
            parts.join(",")
        }
    };
    let pooled_key = |row: &crate::views::ViewRow| format!("pooled {}", key_of(row));
    let flat: Vec<Flat> = view
        .rows
        .iter()
        .map(|row| (key_of(row), row))
        .chain(view.pooled.iter().map(|row| (pooled_key(row), row)))
        .flat_map(|(key, row)| {
            row.metrics.iter().map(move |m| Flat {
                key: key.clone(),
                hosts: row.hosts,
                metric: m.metric.clone(),
                count: m.count,
                mean: m.mean,
                p50: m.p50,
                p90: m.p90,
                p99: m.p99,
                p999: m.p999,
                max: m.max,
                max_host: m.max_host.clone(),
            })
        })
        .collect();
    match format {
        Format::Json => json(&versioned(view)),
        Format::Csv => csv_rows(&flat, header),
        Format::Table => {
            let rows = flat
                .iter()
                .map(|f| {
                    let number = |v: f64| metric_value(&f.metric, v);
                    vec![
                        f.key.clone(),
                        f.metric.clone(),
                        f.count.to_string(),
                        number(f.mean),
                        number(f.p50),
                        number(f.p90),
                        number(f.p99),
                        number(f.p999),
                        number(f.max),
                        f.max_host.clone(),
                    ]
                })
                .collect();
            let columns = [
                "row", "metric", "hosts", "mean", "p50", "p90", "p99", "p99.9", "max", "max_host",
            ];
            let body = table(&columns, rows, 2, header);
            if !header {
                return body;
            }
            let notes: String = view
                .notes
                .iter()
                .map(|note| {
                    format!(
                        "{note}
"
                    )
                })
                .collect();
            format!(
                "{notes}window {} ({} data); {}
{body}",
                view.window, view.source, view.computed,
            )
        }
    }
}

/// Flagged peer outliers, each with its explanation, then the groups that were not scored.
pub fn render_outliers(report: &crate::analytics::OutlierReport, output: impl Into<Output>) -> String {
    let Output { format, header } = output.into();
    match format {
        Format::Json => json(&versioned(report)),
        Format::Csv => csv_rows(&report.outliers, header),
        Format::Table if !header => report
            .outliers
            .iter()
            .map(|row| format!("{}\n", row.explanation))
            .collect(),
        Format::Table => {
            let mut out = String::new();
            if report.last_window_ms.is_none() {
                out.push_str("no window scored yet (the first closes one window after start)\n");
            }
            if report.outliers.is_empty() {
                out.push_str("no outliers\n");
            }
            for row in &report.outliers {
                out.push_str(&row.explanation);
                out.push('\n');
            }
            for skipped in &report.skipped {
                let what = skipped
                    .metric
                    .as_ref()
                    .map_or(String::new(), |m| format!(" ({m})"));
                out.push_str(&format!(
                    "not scored: group {}{what}: {}\n",
                    label(&skipped.group),
                    skipped.reason
                ));
            }
            out
        }
    }
}

/// Pending and firing alarms with their runbooks.
pub fn render_alarms(report: &crate::analytics::AlarmReport, output: impl Into<Output>) -> String {
    let Output { format, header } = output.into();
    match format {
        Format::Json => json(&versioned(report)),
        Format::Csv => csv_rows(&report.alarms, header),
        Format::Table => {
            if !header && report.alarms.is_empty() {
                return String::new();
            }
            if report.rules_file.is_none() {
                return "alarms are off: set alarms.rules in the collector config (see deploy/alarms.toml)\n"
                    .to_string();
            }
            if report.alarms.is_empty() {
                return format!("no pending or firing alarms ({} rules)\n", report.rules);
            }
            let rows = report
                .alarms
                .iter()
                .map(|a| {
                    vec![
                        a.status.clone(),
                        a.severity.clone(),
                        a.rule.clone(),
                        a.subject.clone(),
                        a.summary.clone(),
                        a.runbook.clone(),
                    ]
                })
                .collect();
            table(
                &["status", "severity", "rule", "subject", "summary", "runbook"],
                rows,
                6,
                header,
            )
        }
    }
}

/// The host list with each host's count of data gaps (samples its agent could not keep).
pub fn render_hosts_with_gaps(
    hosts: &[HostView],
    gaps: &std::collections::BTreeMap<String, u64>,
    output: impl Into<Output>,
) -> String {
    let Output { format, header } = output.into();
    let gaps_of = |host: &HostView| gaps.get(&host.host).copied().unwrap_or(0);
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = hosts
                .iter()
                .map(|h| {
                    let mut value = serde_json::to_value(h).expect("views serialize to JSON");
                    value["gaps"] = gaps_of(h).into();
                    value
                })
                .collect();
            json(&rows)
        }
        Format::Csv => {
            let mut text = render_hosts(hosts, Format::Csv);
            let mut out = String::with_capacity(text.len() + 8 * hosts.len());
            let mut lines = text.lines();
            if let Some(first) = lines.next() {
                if header {
                    out.push_str(first);
                    out.push_str(",gaps\n");
                }
            }
            for (line, host) in lines.zip(hosts) {
                out.push_str(&format!("{line},{}\n", gaps_of(host)));
            }
            text.clear();
            out
        }
        Format::Table => {
            let mut rows: Vec<Vec<String>> = hosts.iter().map(host_row).collect();
            for (row, host) in rows.iter_mut().zip(hosts) {
                row.push(gaps_of(host).to_string());
            }
            let columns: Vec<&str> = host_columns().into_iter().chain(["gaps"]).collect();
            table(&columns, rows, HOST_FACTS.len(), header)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::fleet::{FleetSettings, FleetState};
    use crate::live::summary::GroupSummary;
    use crate::metrics::Stat;
    use headroom_common::wire::{
        Capacity, CpuSample, CpuTimes, Family, Hello, HostFacts, InterfaceCounters, MemorySample, Sample,
    };
    use std::collections::BTreeMap;

    const T0_MS: u64 = 1_700_000_000_000;

    /// A fleet of three live hosts (web/a, web/b, unlabelled) and one that went down.
    fn fleet() -> FleetState {
        let mut fleet = FleetState::new(FleetSettings::default());
        // (name, labels, busy ticks of 1 000 per second, received bytes per second)
        type Spec<'a> = (&'a str, &'a [(&'a str, &'a str)], u64, u64);
        let hosts: [Spec; 4] = [
            ("web-1", &[("group", "web"), ("zone", "a")], 250, 3 << 20),
            ("web-2", &[("group", "web"), ("zone", "b")], 500, 2_000),
            ("lone", &[], 125, 100),
            ("sim-gone", &[("group", "web"), ("zone", "a")], 900, 1),
        ];
        for (name, labels, busy_ticks, rx_bytes_per_tick) in hosts {
            let hello = Hello {
                protocol_version: 1,
                agent_version: "0.1.0".into(),
                instance_id: 1,
                interval_ms: 1_000,
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                capacity: Capacity {
                    cores: 2,
                    memory_bytes: 4_000,
                },
                facts: HostFacts::default(),
            };
            // The gone host last reported two minutes before the others.
            let start_ms = if name == "sim-gone" {
                T0_MS - 120_000
            } else {
                T0_MS
            };
            fleet.on_hello(name, &hello, start_ms);
            for step in 0..2u64 {
                let sample = Sample {
                    seq: step + 1,
                    timestamp_ms: start_ms + step * 1_000,
                    cpu: Some(CpuSample {
                        total: CpuTimes {
                            user: step * busy_ticks,
                            idle: step * (1_000 - busy_ticks),
                            ..Default::default()
                        },
                        cores: 2,
                        ..Default::default()
                    }),
                    memory: Some(MemorySample {
                        total_bytes: 4_000,
                        used_bytes: 1_000,
                        available_bytes: 3_000,
                        ..Default::default()
                    }),
                    network: vec![InterfaceCounters {
                        name: "eth0".into(),
                        rx_bytes: step * rx_bytes_per_tick,
                        tx_bytes: step * 10,
                        ..Default::default()
                    }],
                    failed: if name == "lone" {
                        vec![Family::Pressure]
                    } else {
                        Vec::new()
                    },
                    ..Default::default()
                };
                fleet.on_sample(name, sample, start_ms + step * 1_000);
            }
        }
        fleet
    }

    #[test]
    fn fleet_table_has_the_counts_line_and_human_units() {
        let text = render_fleet(&fleet().summary(T0_MS + 1_500), Format::Table);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("hosts: 3 up, 0 stale, 1 down"));
        assert!(lines.next().unwrap().contains("group"), "{text}");
        let unlabelled = lines.next().unwrap();
        assert!(
            unlabelled.trim_start().starts_with("-"),
            "no group is shown as -: {text}"
        );
        assert!(unlabelled.contains("12.5%"), "{text}");
        let web_a = lines.next().unwrap();
        assert!(web_a.contains("3.0 MiB/s"), "{text}");
        assert!(web_a.contains("25.0%"), "{text}");
        assert!(lines.next().unwrap().contains("2.0 KiB/s"), "{text}");
        assert_eq!(lines.next(), None);
    }

    #[test]
    fn fleet_csv_parses_back_to_the_same_numbers() {
        let summary = fleet().summary(T0_MS + 1_500);
        let text = render_fleet(&summary, Format::Csv);
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let rows: Vec<GroupSummary> = reader.deserialize().collect::<Result<_, _>>().unwrap();
        assert_eq!(rows, summary.groups);
        assert_eq!(
            rows[1].value(Metric::NetRxBytesPerS, Stat::Sum),
            Some(f64::from(3 << 20))
        );
        assert_eq!(rows[1].hosts_down, 1);
        assert_eq!(rows[0].value(Metric::CpuBusyPct, Stat::P99), Some(12.5));
        assert_eq!(
            rows[2].value(Metric::TcpEstablished, Stat::Sum),
            None,
            "missing stays missing, not zero"
        );
    }

    #[test]
    fn hosts_csv_parses_back_to_the_same_numbers() {
        let hosts = fleet().hosts(T0_MS + 1_500);
        let text = render_hosts(&hosts, Format::Csv);
        assert_eq!(text.lines().count(), 1 + hosts.len());
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(
            header.join(","),
            HOSTS_CSV_HEADER,
            "the columns users' scripts read"
        );
        let rows: Vec<BTreeMap<String, String>> = reader.deserialize().collect::<Result<_, _>>().unwrap();
        let lone = rows.iter().find(|r| r["host"] == "lone").unwrap();
        assert_eq!(lone["cpu_busy_pct"], "12.5");
        assert_eq!(lone["net_rx_bytes_per_s"], "100.0");
        assert_eq!(lone["failed"], "pressure");
        assert_eq!(lone["psi_io"], "", "not measured is empty");
        let gone = rows.iter().find(|r| r["host"] == "sim-gone").unwrap();
        assert_eq!(gone["status"], "down");
        assert_eq!(gone["labels"], "group=web;zone=a");
        assert_eq!(gone["clock_skewed"], "false");
        for (row, host) in rows.iter().zip(&hosts) {
            assert_eq!(row["host"], host.host);
            assert_eq!(row["listeners"], host.metrics.listeners.len().to_string());
            for metric in Metric::ALL {
                let shown = row[metric.name()].parse::<f64>().ok();
                assert_eq!(shown, metric.value(&host.metrics), "{metric} of {}", host.host);
            }
        }
    }

    /// The hosts CSV header as released: a change here breaks users' scripts.
    const HOSTS_CSV_HEADER: &str = "host,status,connected,group,zone,labels,cores,memory_bytes,interval_ms,\
        agent_version,last_seen_ms,last_sample_ms,seq,cpu_busy_pct,cpu_user_pct,cpu_nice_pct,cpu_system_pct,\
        cpu_idle_pct,cpu_iowait_pct,cpu_irq_pct,cpu_softirq_pct,cpu_steal_pct,load1,load5,load15,mem_used_pct,\
        mem_used_bytes,mem_available_bytes,swap_used_bytes,psi_cpu,psi_memory,psi_io,net_rx_bytes_per_s,\
        net_tx_bytes_per_s,tcp_established,tcp_time_wait,tcp_states_age_ms,retrans_per_s,listen_overflows_per_s,\
        listen_drops_per_s,active_opens_per_s,passive_opens_per_s,conntrack_fill_pct,max_accept_queue_fill_pct,\
        cpu_busiest_core_pct,listeners,failed,clock_offset_ms,clock_skewed";

    #[test]
    fn empty_csv_still_has_its_header_row() {
        let text = render_hosts(&[], Format::Csv);
        assert_eq!(text, format!("{HOSTS_CSV_HEADER}\n"));
        assert_eq!(text.lines().count(), 1);
        let text = render_fleet(&FleetSummary::default(), Format::Csv);
        assert!(text.starts_with("group,zone,hosts,"), "{text}");
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn json_is_pretty_and_parses_back() {
        let fleet = fleet();
        let hosts = fleet.hosts(T0_MS + 1_500);
        let text = render_hosts(&hosts, Format::Json);
        assert!(text.contains("\n  {\n"), "pretty: {text}");
        assert_eq!(serde_json::from_str::<Vec<HostView>>(&text).unwrap(), hosts);
        let summary = fleet.summary(T0_MS + 1_500);
        let text = render_fleet(&summary, Format::Json);
        assert_eq!(serde_json::from_str::<FleetSummary>(&text).unwrap(), summary);
    }

    #[test]
    fn hosts_table_shows_status_and_dashes() {
        let text = render_hosts(&fleet().hosts(T0_MS + 1_500), Format::Table);
        let gone = text.lines().find(|l| l.contains("sim-gone")).unwrap();
        assert!(gone.contains("down"), "{text}");
        let lone = text.lines().find(|l| l.contains("lone")).unwrap();
        assert!(lone.contains("pressure"), "{text}");
        assert!(lone.contains(" - "), "missing values show as -: {text}");
    }

    #[test]
    fn issue_15_windowed_values_show_units() {
        assert_eq!(metric_value("mem_used_bytes", 53_654_838_313.0), "50.0 GiB");
        assert_eq!(
            metric_value("net_rx_bytes_per_s", 3.5 * 1024.0 * 1024.0),
            "3.5 MiB/s"
        );
        assert_eq!(metric_value("cpu_busy_pct", 53.04), "53.0%");
        assert_eq!(metric_value("retrans_per_s", 3.12), "3.1/s");
        assert_eq!(metric_value("tcp_established", 412.0), "412");
        assert_eq!(metric_value("no_such_metric", 1.5), "1.50");
    }
}
