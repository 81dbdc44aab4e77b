//! Per group and minute sums for sizing, in one place: what one host adds to its group's row of
//! `group_minutes` and `group_port_minutes` for one minute (its mean of each metric over the minute), and how
//! a late sample replaces that contribution (add the merged minute, take away the old one). The rollup
//! folds it into the tables; [`Store::raw_group_minutes`] gives the same sums for raw rows the rollup has
//! not reached yet, so a report's last minutes add up exactly as the rollup will.

use super::minute_entry::{row_listeners, CompactPorts};
use super::ports::{PortContributions, PortSums};
use super::schema::metric_columns;
use super::sketch::{MetricStats, RollupStats};
use super::{HostRecord, Store, StoreError};
use crate::metrics::Metric;
use rusqlite::params;
use std::collections::BTreeMap;

/// One minute: the step of the minute rollups and of the per-group minute sums.
pub const MINUTE_MS: u64 = 60_000;

/// What raw rows past the rollup add for one host and minute while a report sums them: the statistics of
/// [`Contribution::METRICS`] only, without sketches, and the ports. The rollup pass's
/// [`MinuteEntry`](super::minute_entry::MinuteEntry) keeps every metric with its sketch (~1.2 KiB even in
/// its compact form), and the raw tail of 20,000 hosts holds tens of thousands of entries at once.
#[derive(Debug, Default)]
struct SumsEntry {
    stats: [Option<MetricStats>; Contribution::METRICS.len()],
    ports: CompactPorts,
}

impl SumsEntry {
    /// [`MinuteEntry::add_row`](super::minute_entry::MinuteEntry::add_row) for what a [`Contribution`]
    /// reads, with the rollup's own arithmetic, so that the means come out bit for bit the same.
    fn add_row(&mut self, row: &rusqlite::Row<'_>, first: usize, ports: bool) -> rusqlite::Result<()> {
        for (slot, metric) in self.stats.iter_mut().zip(Contribution::METRICS) {
            if let Some(value) = row.get::<_, Option<f64>>(first + metric.index())? {
                match slot {
                    Some(stats) => stats.add_unsketched(value),
                    None => *slot = Some(MetricStats::unsketched(value)),
                }
            }
        }
        self.ports.add_listeners(&row_listeners(row, first, ports)?);
        Ok(())
    }

    /// The statistics as the rollup keeps them (each metric at its index), and the ports.
    fn into_parts(self) -> (RollupStats, PortSums) {
        let mut stats = RollupStats::default();
        for (slot, metric) in self.stats.into_iter().zip(Contribution::METRICS) {
            if let Some(metric_stats) = slot {
                if stats.metrics.len() <= metric.index() {
                    stats.metrics.resize(metric.index() + 1, None);
                }
                stats.metrics[metric.index()] = Some(metric_stats);
            }
        }
        (stats, self.ports.into_port_sums())
    }
}

/// What one host adds to its group's row of `group_minutes` for one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Contribution {
    pub(crate) hosts: i64,
    pub(crate) cpu_busy_cores: f64,
    pub(crate) cores: i64,
    pub(crate) mem_used_bytes: f64,
    pub(crate) mem_bytes: i64,
    pub(crate) tcp_established: f64,
}

impl Contribution {
    /// The only metrics a contribution reads (their means over the minute).
    pub(crate) const METRICS: [Metric; 3] =
        [Metric::CpuBusyPct, Metric::MemUsedBytes, Metric::TcpEstablished];

    /// The host's contribution with `stats` for the minute; nothing without them.
    fn of(stats: Option<&RollupStats>, host: &HostRecord) -> Contribution {
        let Some(stats) = stats else {
            return Contribution::default();
        };
        let mean = |m: Metric| {
            debug_assert!(
                Contribution::METRICS.contains(&m),
                "{m:?} is not in Contribution::METRICS"
            );
            stats.get(m.index()).map(|s| s.mean()).unwrap_or(0.0)
        };
        Contribution {
            hosts: 1,
            cpu_busy_cores: mean(Metric::CpuBusyPct) / 100.0 * f64::from(host.cores),
            cores: i64::from(host.cores),
            mem_used_bytes: mean(Metric::MemUsedBytes),
            mem_bytes: host.memory_bytes as i64,
            tcp_established: mean(Metric::TcpEstablished),
        }
    }

    /// The change to the group's row when the host's minute `old` (if any) becomes `merged`.
    pub(crate) fn replacing(
        old: Option<&RollupStats>,
        merged: &RollupStats,
        host: &HostRecord,
    ) -> Contribution {
        let mut change = Contribution::of(Some(merged), host);
        change.add(Contribution::of(old, host), -1.0);
        change
    }

    pub(crate) fn add(&mut self, other: Contribution, sign: f64) {
        let s = sign as i64;
        self.hosts += s * other.hosts;
        self.cpu_busy_cores += sign * other.cpu_busy_cores;
        self.cores += s * other.cores;
        self.mem_used_bytes += sign * other.mem_used_bytes;
        self.mem_bytes += s * other.mem_bytes;
        self.tcp_established += sign * other.tcp_established;
    }
}

/// What raw rows past the rollup add to one group's sums for one minute (summed over its zones).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawGroupMinute {
    /// `hosts.group_name` ("" for hosts without a group label).
    pub group: String,
    pub minute_ms: u64,
    /// Hosts added to the minute (a host already rolled up for it adds none).
    pub hosts: i64,
    pub cpu_busy_cores: f64,
    pub mem_used_bytes: f64,
    /// Port → change of Σ over hosts of the host's mean established count.
    pub established_by_port: BTreeMap<u16, f64>,
}

impl Store {
    /// The sums raw rows past the rollup watermark (`samples.id` > `watermark`) with `from_ms <= ts_ms <
    /// to_ms` add per group and minute, with the rollup's own arithmetic ([`Contribution`]): for a minute
    /// at or after `cutoff_ms` each host's mean over the minute; for a finished minute (before `cutoff_ms`),
    /// which the rollup already holds in part, the change the next pass will make when it merges the rows.
    /// Per-port counts of minutes before `ports_from_ms` are left out, as the rolled-up figures they would
    /// change are.
    pub fn raw_group_minutes(
        &self,
        from_ms: u64,
        to_ms: u64,
        cutoff_ms: u64,
        watermark: i64,
        ports_from_ms: u64,
    ) -> Result<Vec<RawGroupMinute>, StoreError> {
        let err = self.sql_error("read raw samples");
        let sql = format!(
            "SELECT host_id, ts_ms, {}, detail FROM samples WHERE id > ?1 AND ts_ms >= ?2 AND ts_ms < ?3",
            metric_columns()
        );
        let mut statement = self.conn.prepare(&sql).map_err(&err)?;
        let mut rows = statement
            .query(params![watermark, from_ms as i64, to_ms as i64])
            .map_err(&err)?;
        let mut per_host: BTreeMap<(u64, i64), SumsEntry> = BTreeMap::new();
        while let Some(row) = rows.next().map_err(&err)? {
            let host_id: i64 = row.get(0).map_err(&err)?;
            let ts_ms = row.get::<_, i64>(1).map_err(&err)?.max(0) as u64;
            let minute = ts_ms - ts_ms % MINUTE_MS;
            per_host
                .entry((minute, host_id))
                .or_default()
                .add_row(row, 2, minute >= ports_from_ms)
                .map_err(&err)?;
        }
        drop(rows);
        drop(statement);

        let mut sums: BTreeMap<(String, u64), RawGroupMinute> = BTreeMap::new();
        let mut ports = PortContributions::default();
        for ((minute, host_id), entry) in per_host {
            let (stats, raw_ports) = entry.into_parts();
            let Some(host) = self
                .names_by_id
                .get(&host_id)
                .and_then(|name| self.hosts.get(name))
            else {
                continue;
            };
            let old = if minute < cutoff_ms {
                self.host_minute(host_id, minute)?
            } else {
                None
            };
            let (old_stats, old_ports) = match old {
                Some(old) => (Some(old.stats), old.ports),
                None => (None, PortSums::default()),
            };
            let mut merged = old_stats.clone().unwrap_or_default();
            merged.merge(&stats);
            let mut merged_ports = old_ports.clone();
            merged_ports.merge(&raw_ports);
            let change = Contribution::replacing(old_stats.as_ref(), &merged, host);
            let sum = sums
                .entry((host.group.clone(), minute))
                .or_insert_with(|| RawGroupMinute {
                    group: host.group.clone(),
                    minute_ms: minute,
                    ..RawGroupMinute::default()
                });
            sum.hosts += change.hosts;
            sum.cpu_busy_cores += change.cpu_busy_cores;
            sum.mem_used_bytes += change.mem_used_bytes;
            ports.replace(minute, &host.group, "", &old_ports, &merged_ports);
        }
        for ((minute, group, _, port), (_, established)) in ports.rows() {
            if let Some(sum) = sums.get_mut(&(group.clone(), *minute)) {
                *sum.established_by_port.entry(*port).or_default() += established;
            }
        }
        Ok(sums.into_values().collect())
    }
}
