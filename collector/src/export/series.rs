//! Stored rows → Prometheus series (pure): each catalogue metric under its `export_name`, host capacity and
//! per-port series, labels, one `WriteRequest` per batch with samples in order per series, and what an HTTP
//! status means for a batch.
//!
//! Names follow Prometheus conventions: a `headroom_` prefix, base units (bytes; ratios 0–1 where the store
//! keeps percent), `_total` only on counters (headroom stores rates and gauges, so there are none), and rates
//! named `_per_second`. docs/METRICS.md lists every name; a test checks that it does.

use super::proto::{Label, MetricMetadata, Sample, TimeSeries, WriteRequest, METRIC_TYPE_GAUGE};
use crate::metrics::{Metric, Unit};
use crate::store::export::{ExportHost, ExportRow};
use std::collections::{BTreeMap, HashMap};

/// How a series is exported: its name, the factor from the stored unit, help and unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExportName {
    pub name: &'static str,
    /// Stored value × scale = exported value (percent → ratio is 0.01).
    pub scale: f64,
    pub unit: &'static str,
    pub help: &'static str,
}

const fn gauge(name: &'static str, scale: f64, unit: &'static str, help: &'static str) -> ExportName {
    ExportName {
        name,
        scale,
        unit,
        help,
    }
}

/// The export of a catalogue metric: its `export_name`, and percent stored → ratio exported.
pub fn export_name(metric: Metric) -> ExportName {
    let def = metric.def();
    let (scale, unit) = match def.unit {
        Unit::Percent => (0.01, "ratio"),
        Unit::Bytes => (1.0, "bytes"),
        Unit::BytesPerSecond => (1.0, "bytes"),
        Unit::PerSecond | Unit::Count | Unit::Load => (1.0, ""),
    };
    gauge(def.export_name, scale, unit, def.help)
}

/// Series not tied to a stored scalar: host capacity (for group sums in PromQL) and per-port listener state.
pub const HOST_CORES: ExportName = gauge("headroom_host_cpu_cores", 1.0, "", "CPU cores of the host");
pub const HOST_MEMORY: ExportName = gauge("headroom_host_memory_bytes", 1.0, "bytes", "Memory of the host");
pub const PORT_ESTABLISHED: ExportName = gauge(
    "headroom_port_established_connections",
    1.0,
    "",
    "Established connections on a listening port (label port)",
);
pub const PORT_ACCEPT_QUEUE_FILL: ExportName = gauge(
    "headroom_port_accept_queue_fill_ratio",
    1.0,
    "ratio",
    "Accept-queue fill of a listening port, share of its limit (label port)",
);

/// Every exported name, in the order docs/METRICS.md lists them.
pub fn all_export_names() -> Vec<ExportName> {
    let mut out: Vec<ExportName> = Metric::ALL.iter().map(|m| export_name(*m)).collect();
    out.extend([HOST_CORES, HOST_MEMORY, PORT_ESTABLISHED, PORT_ACCEPT_QUEUE_FILL]);
    out
}

pub use headroom_common::names::{is_label_name, label_name};

/// Which series of a host a sample belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum SeriesKind {
    Metric(usize),
    Cores,
    Memory,
    PortEstablished(u16),
    PortFill(u16),
}

/// What one batch turned into.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub request: WriteRequest,
    /// Rows (host-samples) the batch carries.
    pub rows: usize,
    /// Samples across all series.
    pub samples: usize,
    /// `samples.id` of the last row: the cursor once the remote acknowledges the batch.
    pub last_id: i64,
    /// Rows left out because their timestamp was not after the host's previous exported one (a clock that
    /// went back): a remote refuses out-of-order samples, and the whole batch with them.
    pub out_of_order: usize,
}

/// Builds batches; remembers each host's last exported timestamp so order per series holds across batches.
#[derive(Debug, Default)]
pub struct SeriesBuilder {
    /// Added to every series unless the series has the label itself.
    extra_labels: Vec<Label>,
    /// Each host's labels without `__name__` (sorted), by `hosts.id`; refreshed when a host is unknown.
    host_labels: HashMap<i64, Vec<Label>>,
    hosts: BTreeMap<i64, ExportHost>,
    last_ts: HashMap<i64, u64>,
    /// Metadata is sent with the first batch only; engines keep it.
    metadata_sent: bool,
}

impl SeriesBuilder {
    pub fn new(extra_labels: &BTreeMap<String, String>) -> Self {
        SeriesBuilder {
            extra_labels: extra_labels
                .iter()
                .map(|(name, value)| Label {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            ..SeriesBuilder::default()
        }
    }

    /// True when a row's host is not known yet (the caller re-reads `hosts` and calls [`Self::set_hosts`]).
    pub fn needs_hosts(&self, rows: &[ExportRow]) -> bool {
        rows.iter().any(|r| !self.hosts.contains_key(&r.host_id))
    }

    pub fn set_hosts(&mut self, hosts: BTreeMap<i64, ExportHost>) {
        self.host_labels.clear();
        self.hosts = hosts;
    }

    fn labels_of(&mut self, host_id: i64) -> &[Label] {
        let hosts = &self.hosts;
        let extra = &self.extra_labels;
        self.host_labels.entry(host_id).or_insert_with(|| {
            let mut labels: BTreeMap<String, String> = BTreeMap::new();
            if let Some(host) = hosts.get(&host_id) {
                for (name, value) in &host.labels {
                    if !value.is_empty() {
                        labels.insert(label_name(name), value.clone());
                    }
                }
                labels.insert("host".into(), host.name.clone());
                for (name, value) in [("group", &host.group), ("zone", &host.zone)] {
                    if !value.is_empty() {
                        labels.insert(name.into(), value.clone());
                    }
                }
            } else {
                labels.insert("host".into(), format!("host-id-{host_id}"));
            }
            // The exporter sets port itself; a host label of that name would clash with per-port series.
            labels.remove("port");
            for label in extra {
                labels
                    .entry(label.name.clone())
                    .or_insert_with(|| label.value.clone());
            }
            labels
                .into_iter()
                .map(|(name, value)| Label { name, value })
                .collect()
        })
    }

    /// One request for `rows` (in id order). Series are per host and kind; samples within a series keep the
    /// rows' order, and a host's rows whose timestamp does not move forward are left out and counted.
    pub fn build(&mut self, rows: &[ExportRow]) -> Batch {
        let mut index: HashMap<(i64, SeriesKind), usize> = HashMap::new();
        let mut series: Vec<TimeSeries> = Vec::new();
        let mut batch = Batch {
            last_id: rows.last().map(|r| r.id).unwrap_or(0),
            ..Batch::default()
        };
        for row in rows {
            if let Some(last) = self.last_ts.get(&row.host_id) {
                if row.ts_ms <= *last {
                    batch.out_of_order += 1;
                    continue;
                }
            }
            self.last_ts.insert(row.host_id, row.ts_ms);
            batch.rows += 1;
            let timestamp = row.ts_ms as i64;
            let (cores, memory) = self
                .hosts
                .get(&row.host_id)
                .map(|h| (h.cores, h.memory_bytes))
                .unwrap_or((0, 0));
            let mut points: Vec<(SeriesKind, ExportName, f64)> = Vec::with_capacity(32);
            for (i, value) in row.values.iter().enumerate() {
                if let (Some(value), Some(metric)) = (value, Metric::ALL.get(i)) {
                    let name = export_name(*metric);
                    points.push((SeriesKind::Metric(i), name, value * name.scale));
                }
            }
            if cores > 0 {
                points.push((SeriesKind::Cores, HOST_CORES, f64::from(cores)));
            }
            if memory > 0 {
                points.push((SeriesKind::Memory, HOST_MEMORY, memory as f64));
            }
            for listener in &row.listeners {
                points.push((
                    SeriesKind::PortEstablished(listener.port),
                    PORT_ESTABLISHED,
                    f64::from(listener.established),
                ));
                if listener.accept_queue_limit > 0 {
                    points.push((
                        SeriesKind::PortFill(listener.port),
                        PORT_ACCEPT_QUEUE_FILL,
                        f64::from(listener.accept_queue) / f64::from(listener.accept_queue_limit),
                    ));
                }
            }
            for (kind, name, value) in points {
                if !value.is_finite() {
                    continue;
                }
                let slot = match index.get(&(row.host_id, kind)) {
                    Some(slot) => *slot,
                    None => {
                        let mut labels = self.labels_of(row.host_id).to_vec();
                        labels.push(Label {
                            name: "__name__".into(),
                            value: name.name.into(),
                        });
                        if let SeriesKind::PortEstablished(port) | SeriesKind::PortFill(port) = kind {
                            labels.push(Label {
                                name: "port".into(),
                                value: port.to_string(),
                            });
                        }
                        labels.sort_by(|a, b| a.name.cmp(&b.name));
                        series.push(TimeSeries {
                            labels,
                            samples: Vec::new(),
                        });
                        index.insert((row.host_id, kind), series.len() - 1);
                        series.len() - 1
                    }
                };
                series[slot].samples.push(Sample { value, timestamp });
                batch.samples += 1;
            }
        }
        batch.request.timeseries = series;
        if !self.metadata_sent && batch.samples > 0 {
            self.metadata_sent = true;
            batch.request.metadata = all_export_names()
                .into_iter()
                .map(|n| MetricMetadata {
                    r#type: METRIC_TYPE_GAUGE,
                    metric_family_name: n.name.into(),
                    help: n.help.into(),
                    unit: n.unit.into(),
                })
                .collect();
        }
        batch
    }
}

/// What to do with a batch after the remote answered with an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Stored: move the cursor.
    Sent,
    /// 5xx or 429: send the same batch again after a backoff.
    Retry,
    /// Another status the remote_write spec says never to retry (4xx): drop the batch, count its rows.
    Drop,
}

pub fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Sent,
        429 | 500..=599 => Verdict::Retry,
        400..=499 => Verdict::Drop,
        // 1xx and 3xx are not answers a receiver gives to a write; trying again is the safe choice.
        _ => Verdict::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use headroom_common::wire::Listener;

    fn row(id: i64, host_id: i64, ts_ms: u64, cpu_pct: f64) -> ExportRow {
        let mut values = vec![None; Metric::ALL.len()];
        values[Metric::CpuBusyPct.index()] = Some(cpu_pct);
        values[Metric::TcpEstablished.index()] = Some(12.0);
        ExportRow {
            id,
            host_id,
            ts_ms,
            values,
            listeners: vec![Listener {
                port: 443,
                established: 7,
                accept_queue: 16,
                accept_queue_limit: 128,
            }],
        }
    }

    fn hosts() -> BTreeMap<i64, ExportHost> {
        let host = |name: &str, group: &str| ExportHost {
            name: name.into(),
            group: group.into(),
            zone: "z1".into(),
            labels: [
                ("group".to_string(), group.to_string()),
                ("zone".to_string(), "z1".to_string()),
                ("rack-id".to_string(), "r7".to_string()),
            ]
            .into(),
            cores: 8,
            memory_bytes: 1 << 30,
        };
        [(1, host("web-1", "web")), (2, host("db-1", "db"))].into()
    }

    fn find<'a>(request: &'a WriteRequest, name: &str, host: &str) -> Vec<&'a TimeSeries> {
        request
            .timeseries
            .iter()
            .filter(|s| {
                s.labels.iter().any(|l| l.name == "__name__" && l.value == name)
                    && s.labels.iter().any(|l| l.name == "host" && l.value == host)
            })
            .collect()
    }

    #[test]
    fn every_export_name_follows_prometheus_conventions_and_is_documented() {
        let docs = include_str!("../../../docs/METRICS.md");
        let mut seen = std::collections::BTreeSet::new();
        for name in all_export_names() {
            assert!(
                name.name.starts_with("headroom_") && is_label_name(name.name),
                "{}",
                name.name
            );
            assert!(seen.insert(name.name), "{} twice", name.name);
            assert!(
                !name.name.ends_with("_total"),
                "{}: no counters are exported",
                name.name
            );
            assert!(
                !name.name.contains("pct") && !name.name.contains("percent"),
                "{}",
                name.name
            );
            if name.unit == "ratio" {
                assert!(name.name.ends_with("_ratio"), "{}", name.name);
            }
            assert!(
                docs.contains(&format!("`{}`", name.name)),
                "docs/METRICS.md lacks {}",
                name.name
            );
        }
    }

    #[test]
    fn rows_become_labelled_series_in_order_with_base_units() {
        let mut builder = SeriesBuilder::new(&[("collector".to_string(), "eu-1".to_string())].into());
        assert!(builder.needs_hosts(&[row(1, 1, 1000, 50.0)]));
        builder.set_hosts(hosts());
        let rows = [
            row(10, 1, 1_000, 50.0),
            row(11, 2, 1_000, 20.0),
            row(12, 1, 2_000, 75.0),
        ];
        let batch = builder.build(&rows);
        assert_eq!((batch.rows, batch.last_id, batch.out_of_order), (3, 12, 0));
        let cpu = find(&batch.request, "headroom_cpu_busy_ratio", "web-1");
        assert_eq!(cpu.len(), 1);
        let samples: Vec<(i64, f64)> = cpu[0].samples.iter().map(|s| (s.timestamp, s.value)).collect();
        assert_eq!(samples, vec![(1_000, 0.5), (2_000, 0.75)]);
        let names: Vec<&str> = cpu[0].labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            ["__name__", "collector", "group", "host", "rack_id", "zone"]
        );
        let port = find(&batch.request, "headroom_port_accept_queue_fill_ratio", "db-1");
        assert_eq!(port[0].samples[0].value, 0.125);
        assert!(port[0]
            .labels
            .iter()
            .any(|l| l.name == "port" && l.value == "443"));
        let cores = find(&batch.request, "headroom_host_cpu_cores", "web-1");
        assert_eq!(cores[0].samples.len(), 2);
        // Metadata goes out once.
        assert!(!batch.request.metadata.is_empty());
        let again = builder.build(&[row(13, 1, 3_000, 10.0)]);
        assert!(again.request.metadata.is_empty());
        assert_eq!(
            batch.samples,
            3 * 6,
            "cpu, tcp, cores, memory and two port series per row"
        );
    }

    #[test]
    fn a_host_clock_that_goes_back_is_left_out_not_sent_out_of_order() {
        let mut builder = SeriesBuilder::new(&BTreeMap::new());
        builder.set_hosts(hosts());
        builder.build(&[row(1, 1, 5_000, 1.0)]);
        let batch = builder.build(&[row(2, 1, 4_000, 1.0), row(3, 1, 6_000, 1.0), row(4, 2, 100, 1.0)]);
        assert_eq!((batch.rows, batch.out_of_order, batch.last_id), (2, 1, 4));
    }

    #[test]
    fn statuses_follow_the_remote_write_spec() {
        assert_eq!(verdict(204), Verdict::Sent);
        assert_eq!(verdict(200), Verdict::Sent);
        assert_eq!(verdict(429), Verdict::Retry);
        assert_eq!(verdict(503), Verdict::Retry);
        assert_eq!(verdict(400), Verdict::Drop);
        assert_eq!(verdict(413), Verdict::Drop);
    }
}
