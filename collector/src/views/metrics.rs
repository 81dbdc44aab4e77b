//! `GET /metrics`: the collector's own health in the Prometheus text format (0.0.4), for Prometheus to scrape.
//!
//! Counters recorded on the hot paths come from `crate::telemetry`; the rest is read at scrape time into a
//! `Snapshot` (a plain struct, so its encoding is tested without a server) from the live fleet, the
//! database file, the alarm runtime and the kernel's UDP socket table.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::path::Path;

/// The Content-Type of the text format.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Values read when `/metrics` is scraped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub connected_agents: u64,
    pub hosts_up: u64,
    pub hosts_stale: u64,
    pub hosts_down: u64,
    /// The database file with its WAL; `None` without storage.
    pub database_bytes: Option<u64>,
    /// Seconds since the newest minute the rollups cover; `None` without storage or before the first pass.
    pub rollup_lag_seconds: Option<f64>,
    /// Datagrams the kernel dropped on the QUIC socket (receive buffer full); `None` when unreadable.
    pub udp_receive_errors: Option<u64>,
    pub alarm_deliveries: u64,
    pub alarm_delivery_failures: u64,
    pub alarm_deliveries_dropped: u64,
    pub alarms_firing: u64,
    pub alarms_pending: u64,
    pub outliers_flagged: u64,
    pub storage_degraded: bool,
    pub version: &'static str,
    /// The remote_write exporter's status; `None` when export is off.
    pub export: Option<crate::export::ExportStatus>,
    /// Age of the oldest stored row the remote has not acknowledged (0 when caught up); with `export`.
    pub export_lag_seconds: f64,
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        gauge(
            &mut encoder,
            "connected_agents",
            "Agents with an open QUIC session",
            None,
            self.connected_agents as i64,
        )?;
        labelled(
            &mut encoder,
            "hosts",
            "Hosts known to the collector, by status (up, stale, down)",
            MetricType::Gauge,
            "status",
            &[
                ("up", self.hosts_up),
                ("stale", self.hosts_stale),
                ("down", self.hosts_down),
            ],
        )?;
        if let Some(bytes) = self.database_bytes {
            gauge(
                &mut encoder,
                "database_size",
                "Size of the database file and its write-ahead log",
                Some(&Unit::Bytes),
                bytes as i64,
            )?;
        }
        if let Some(lag) = self.rollup_lag_seconds {
            gauge(
                &mut encoder,
                "rollup_lag",
                "Time since the end of the newest minute rolled up",
                Some(&Unit::Seconds),
                lag,
            )?;
        }
        gauge(
            &mut encoder,
            "storage_degraded",
            "1 while the database refuses writes (agents keep their samples meanwhile)",
            None,
            i64::from(self.storage_degraded),
        )?;
        if let Some(errors) = self.udp_receive_errors {
            counter(
                &mut encoder,
                "udp_receive_errors",
                "Datagrams the kernel dropped on the QUIC socket because its receive buffer was full",
                errors,
            )?;
        }
        labelled(
            &mut encoder,
            "alarm_deliveries",
            "Alarm batches sent to Alertmanager or the webhook, by result (delivered, failed, dropped)",
            MetricType::Counter,
            "result",
            &[
                ("delivered", self.alarm_deliveries),
                ("failed", self.alarm_delivery_failures),
                ("dropped", self.alarm_deliveries_dropped),
            ],
        )?;
        labelled(
            &mut encoder,
            "alarms",
            "Alarms now pending or firing",
            MetricType::Gauge,
            "status",
            &[("pending", self.alarms_pending), ("firing", self.alarms_firing)],
        )?;
        gauge(
            &mut encoder,
            "outliers_flagged",
            "(host, metric) pairs flagged as peer outliers in the last window",
            None,
            self.outliers_flagged as i64,
        )?;
        if let Some(export) = &self.export {
            labelled(
                &mut encoder,
                "export_rows",
                "Stored rows by export result: sent (since start), dropped (refused for good by the remote), \
                 gap (deleted by raw retention before they were sent)",
                MetricType::Counter,
                "result",
                &[
                    ("sent", export.sent_rows),
                    ("dropped", export.dropped_rows),
                    ("gap", export.gap_rows),
                ],
            )?;
            gauge(
                &mut encoder,
                "export_lag",
                "Age of the oldest stored row the remote_write receiver has not acknowledged; 0 when caught up",
                Some(&Unit::Seconds),
                self.export_lag_seconds,
            )?;
            gauge(
                &mut encoder,
                "export_backlog_rows",
                "Stored rows not yet acknowledged by the remote_write receiver",
                None,
                export.backlog_rows,
            )?;
            counter(
                &mut encoder,
                "export_retries",
                "remote_write requests retried (5xx, 429 or network errors)",
                export.retries,
            )?;
            counter(
                &mut encoder,
                "export_sent_bytes",
                "Compressed remote_write request bytes acknowledged by the receiver",
                export.sent_bytes,
            )?;
        }
        labelled(
            &mut encoder,
            "build_info",
            "Always 1; the collector's version as a label",
            MetricType::Gauge,
            "version",
            &[(self.version, 1)],
        )
    }
}

/// One metric with a single label, one series per `(label value, count)`.
fn labelled(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    key: &'static str,
    series: &[(&'static str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
    for &(value, count) in series {
        let label = [(key, value)];
        let metric = family.encode_family(&label)?;
        match metric_type {
            MetricType::Counter => ConstCounter::new(count).encode(metric)?,
            _ => ConstGauge::new(count as i64).encode(metric)?,
        }
    }
    Ok(())
}

/// A gauge without labels; `value` is an `i64` for counts and an `f64` for measurements.
fn gauge<V>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: V,
) -> Result<(), std::fmt::Error>
where
    ConstGauge<V>: EncodeMetric,
{
    let metric = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(metric)
}

/// The whole exposition: the recorded telemetry and the snapshot, every name prefixed `headroom_collector_`.
pub fn encode(telemetry: &crate::telemetry::Telemetry, snapshot: Snapshot) -> String {
    let mut registry = Registry::with_prefix("headroom_collector");
    telemetry.register(&mut registry);
    registry.register_collector(Box::new(snapshot));
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
    text
}

/// Sum of the `drops` column of the sockets bound to `port` in a `/proc/net/udp` or `/proc/net/udp6` table.
pub fn udp_drops(table: &str, port: u16) -> Option<u64> {
    let mut found = None;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(local) = fields.get(1) else { continue };
        let Some((_, port_hex)) = local.rsplit_once(':') else {
            continue;
        };
        if u16::from_str_radix(port_hex, 16).ok() != Some(port) {
            continue;
        }
        let drops = fields.last().and_then(|d| d.parse::<u64>().ok())?;
        found = Some(found.unwrap_or(0) + drops);
    }
    found
}

/// Drops on the process's UDP sockets bound to `port`, from both address families' tables.
pub fn read_udp_drops(port: u16) -> Option<u64> {
    let mut total = None;
    for table in ["/proc/self/net/udp", "/proc/self/net/udp6"] {
        if let Some(drops) = std::fs::read_to_string(table)
            .ok()
            .and_then(|t| udp_drops(&t, port))
        {
            total = Some(total.unwrap_or(0) + drops);
        }
    }
    total
}

/// The database file plus its `-wal` file, in bytes.
pub fn database_bytes(path: &Path) -> Option<u64> {
    let main = std::fs::metadata(path).ok()?.len();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = std::fs::metadata(Path::new(&wal)).map_or(0, |m| m.len());
    Some(main + wal)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 1131: 00000000000000000000000001000000:2581 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41234 2 0000000000000000 17
 1132: 00000000000000000000000001000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41235 2 0000000000000000 4
";

    #[test]
    fn udp_drops_are_read_for_the_quic_port_only() {
        assert_eq!(udp_drops(UDP6, 9601), Some(17));
        assert_eq!(udp_drops(UDP6, 53), Some(4));
        assert_eq!(udp_drops(UDP6, 9600), None);
    }

    #[test]
    fn snapshot_and_telemetry_encode_as_prometheus_text() {
        let telemetry = crate::telemetry::Telemetry::default();
        telemetry.samples_ingested.inc_by(3);
        let text = encode(
            &telemetry,
            Snapshot {
                connected_agents: 2,
                hosts_up: 2,
                hosts_down: 1,
                database_bytes: Some(4096),
                rollup_lag_seconds: Some(12.5),
                udp_receive_errors: Some(0),
                alarm_deliveries: 7,
                alarm_delivery_failures: 1,
                alarms_firing: 1,
                version: "0.1.0",
                ..Snapshot::default()
            },
        );
        for line in [
            "# TYPE headroom_collector_connected_agents gauge",
            "headroom_collector_connected_agents 2",
            "headroom_collector_hosts{status=\"down\"} 1",
            "headroom_collector_database_size_bytes 4096",
            "headroom_collector_rollup_lag_seconds 12.5",
            "headroom_collector_udp_receive_errors_total 0",
            "headroom_collector_alarm_deliveries_total{result=\"failed\"} 1",
            "headroom_collector_alarms{status=\"firing\"} 1",
            "headroom_collector_build_info{version=\"0.1.0\"} 1",
            "headroom_collector_samples_ingested_total 3",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}

#[cfg(test)]
mod export_tests {
    use super::*;

    #[test]
    fn issue_13_export_backlog_drops_and_gaps_are_scraped() {
        let export = crate::export::ExportStatus {
            sent_rows: 900,
            dropped_rows: 2,
            gap_rows: 40,
            backlog_rows: 15,
            retries: 3,
            oldest_unsent_ms: Some(1_700_000_000_000),
            ..Default::default()
        };
        // The oldest unsent row is 90.5 s old at the scrape.
        let lag = export.lag_seconds(1_700_000_090_500);
        assert_eq!(lag, 90.5);
        assert_eq!(
            crate::export::ExportStatus::default().lag_seconds(1_700_000_090_500),
            0.0,
            "caught up"
        );
        let text = encode(
            &crate::telemetry::Telemetry::default(),
            Snapshot {
                export: Some(export),
                export_lag_seconds: lag,
                ..Snapshot::default()
            },
        );
        for line in [
            "headroom_collector_export_rows_total{result=\"sent\"} 900",
            "headroom_collector_export_rows_total{result=\"dropped\"} 2",
            "headroom_collector_export_rows_total{result=\"gap\"} 40",
            "headroom_collector_export_backlog_rows 15",
            "headroom_collector_export_lag_seconds 90.5",
            "headroom_collector_export_retries_total 3",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        let off = encode(&crate::telemetry::Telemetry::default(), Snapshot::default());
        assert!(!off.contains("export_"), "nothing about export when it is off");
    }
}
