//! Fleet summary: one row per (group, zone) with host counts by status and exact percentiles across hosts.
//!
//! Only Up and Stale hosts contribute metrics. A Down host is counted (in `hosts_down` of the fleet and of its
//! row) but its last values are left out of means, percentiles and sums: they describe a moment that may be
//! minutes old, and mixing them with live values would hide that the host is gone. A Stale host is still in:
//! its values are a few intervals old, which is the best knowledge there is, and dropping it would make a
//! briefly lagging host vanish from capacity figures.

use crate::live::fleet::{FleetState, HostStatus, HostView};
use crate::metrics::{summary_columns, Metric, Stat, Storage};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

impl FleetState {
    /// The summary of every host at `now_ms`. It lives here, not in `fleet`, so that imports flow one way:
    /// the summary reads the fleet's host views; the fleet knows nothing of summaries.
    pub fn summary(&self, now_ms: u64) -> FleetSummary {
        summarize(&self.hosts(now_ms), now_ms)
    }
}

/// The whole fleet at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetSummary {
    /// When the summary was computed, Unix milliseconds.
    pub generated_ms: u64,
    pub hosts_up: u32,
    pub hosts_stale: u32,
    pub hosts_down: u32,
    /// Sorted by group, then zone; "" (no label) sorts first.
    pub groups: Vec<GroupSummary>,
}

/// One (group, zone) pair: host counts, then one value per column of the catalogue's live summary
/// ([`summary_columns`]), each `None` when no live host of the row reported its metric. JSON and CSV carry
/// the columns flat under their catalogue keys (`cpu_busy_p99`, `tcp_established_sum`, …), in catalogue
/// order, integers for metrics stored as integers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupSummary {
    /// The "group" label; "" for hosts without one.
    pub group: String,
    /// The "zone" label; "" for hosts without one.
    pub zone: String,
    /// Every host of the row, whatever its status.
    pub hosts: u32,
    pub hosts_up: u32,
    pub hosts_stale: u32,
    pub hosts_down: u32,
    /// Indexed like [`summary_columns`]; shorter (a default row) reads as `None`.
    pub values: Vec<Option<f64>>,
}

/// Position of a column of the summary in [`GroupSummary::values`].
fn column_index(metric: Metric, stat: Stat) -> Option<usize> {
    summary_columns().position(|(m, column)| m == metric && column.stat == stat)
}

impl GroupSummary {
    /// The row's value of `stat` across hosts of `metric`; `None` when no live host reported it or the
    /// summary has no such column.
    pub fn value(&self, metric: Metric, stat: Stat) -> Option<f64> {
        column_index(metric, stat).and_then(|index| self.values.get(index).copied().flatten())
    }

    /// Sets one column's value (tests and generated fleets).
    ///
    /// # Panics
    /// When the catalogue declares no such summary column: a caller naming one is a programming error.
    pub fn set(&mut self, metric: Metric, stat: Stat, value: Option<f64>) {
        let index = column_index(metric, stat)
            .unwrap_or_else(|| panic!("the live summary has no {stat:?} column of {metric}"));
        if self.values.len() <= index {
            self.values.resize(summary_columns().count(), None);
        }
        self.values[index] = value;
    }
}

/// The fixed columns ahead of the metric columns.
const HOST_COLUMNS: [&str; 6] = ["group", "zone", "hosts", "hosts_up", "hosts_stale", "hosts_down"];

impl Serialize for GroupSummary {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let columns: Vec<_> = summary_columns().collect();
        let mut out = serializer.serialize_struct("GroupSummary", HOST_COLUMNS.len() + columns.len())?;
        out.serialize_field("group", &self.group)?;
        out.serialize_field("zone", &self.zone)?;
        out.serialize_field("hosts", &self.hosts)?;
        out.serialize_field("hosts_up", &self.hosts_up)?;
        out.serialize_field("hosts_stale", &self.hosts_stale)?;
        out.serialize_field("hosts_down", &self.hosts_down)?;
        for (index, (metric, column)) in columns.into_iter().enumerate() {
            let value = self.values.get(index).copied().flatten();
            match metric.def().storage {
                Storage::Integer => out.serialize_field(column.key, &value.map(|v| v.round() as u64))?,
                Storage::Real => out.serialize_field(column.key, &value)?,
            }
        }
        out.end()
    }
}

impl<'de> Deserialize<'de> for GroupSummary {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = GroupSummary;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a fleet summary row")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<GroupSummary, A::Error> {
                let keys: Vec<&str> = summary_columns().map(|(_, column)| column.key).collect();
                let mut row = GroupSummary {
                    values: vec![None; keys.len()],
                    ..GroupSummary::default()
                };
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "group" => row.group = map.next_value()?,
                        "zone" => row.zone = map.next_value()?,
                        "hosts" => row.hosts = map.next_value()?,
                        "hosts_up" => row.hosts_up = map.next_value()?,
                        "hosts_stale" => row.hosts_stale = map.next_value()?,
                        "hosts_down" => row.hosts_down = map.next_value()?,
                        other => match keys.iter().position(|k| *k == other) {
                            Some(index) => row.values[index] = map.next_value()?,
                            // A column a newer collector added: skipped, as fields are only added.
                            None => {
                                map.next_value::<serde::de::IgnoredAny>()?;
                            }
                        },
                    }
                }
                Ok(row)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// Exact percentile of already sorted values, `q` in 0.0..=1.0: headroom's nearest-rank definition
/// ([`headroom_common::percentile`]), so it is always a value some host actually had.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    headroom_common::percentile::nearest_rank_sorted(sorted, q)
}

/// Mean, p50, p99 and max of one metric across hosts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Spread {
    mean: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
    max: Option<f64>,
}

fn spread(mut values: Vec<f64>) -> Spread {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return Spread::default();
    }
    values.sort_by(f64::total_cmp);
    Spread {
        mean: Some(values.iter().sum::<f64>() / values.len() as f64),
        p50: percentile(&values, 0.50),
        p99: percentile(&values, 0.99),
        max: values.last().copied(),
    }
}

/// Sum of the values present; `None` when none is, so "no data" never reads as zero.
fn sum_present(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values
        .flatten()
        .filter(|v| v.is_finite())
        .fold(None, |sum, v| Some(sum.unwrap_or(0.0) + v))
}

fn summarize_group(group: &str, zone: &str, hosts: &[&HostView]) -> GroupSummary {
    let count = |status: HostStatus| hosts.iter().filter(|h| h.status == status).count() as u32;
    let live: Vec<&HostView> = hosts
        .iter()
        .copied()
        .filter(|h| h.status != HostStatus::Down)
        .collect();
    // Each metric's spread is computed once, however many of its columns the summary shows.
    let mut spreads: BTreeMap<Metric, Spread> = BTreeMap::new();
    let values = summary_columns()
        .map(|(metric, column)| {
            let of_hosts = || live.iter().map(|h| metric.value(&h.metrics));
            let mut spread_of = || {
                *spreads
                    .entry(metric)
                    .or_insert_with(|| spread(of_hosts().flatten().collect()))
            };
            match column.stat {
                Stat::Mean => spread_of().mean,
                Stat::P50 => spread_of().p50,
                Stat::P99 => spread_of().p99,
                Stat::Max => spread_of().max,
                Stat::Sum => sum_present(of_hosts()),
            }
        })
        .collect();
    GroupSummary {
        group: group.to_string(),
        zone: zone.to_string(),
        hosts: hosts.len() as u32,
        hosts_up: count(HostStatus::Up),
        hosts_stale: count(HostStatus::Stale),
        hosts_down: count(HostStatus::Down),
        values,
    }
}

/// Host lists of several collectors as one: a host that moved between collectors is listed by each, and the
/// view heard from most recently wins (a connected one on a tie). Sorted by host name.
pub fn merge_hosts(lists: Vec<Vec<HostView>>) -> Vec<HostView> {
    let mut merged: std::collections::BTreeMap<String, HostView> = std::collections::BTreeMap::new();
    for view in lists.into_iter().flatten() {
        match merged.get(&view.host) {
            Some(kept) if (kept.last_seen_ms, kept.connected) >= (view.last_seen_ms, view.connected) => {}
            _ => {
                merged.insert(view.host.clone(), view);
            }
        }
    }
    merged.into_values().collect()
}

/// The fleet summary of the given hosts (their status already computed) at `now_ms`.
pub fn summarize(hosts: &[HostView], now_ms: u64) -> FleetSummary {
    let mut rows: BTreeMap<(&str, &str), Vec<&HostView>> = BTreeMap::new();
    for host in hosts {
        rows.entry((host.group.as_str(), host.zone.as_str()))
            .or_default()
            .push(host);
    }
    let count = |status: HostStatus| hosts.iter().filter(|h| h.status == status).count() as u32;
    FleetSummary {
        generated_ms: now_ms,
        hosts_up: count(HostStatus::Up),
        hosts_stale: count(HostStatus::Stale),
        hosts_down: count(HostStatus::Down),
        groups: rows
            .iter()
            .map(|((group, zone), members)| summarize_group(group, zone, members))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::fleet::HostMetrics;

    fn host(name: &str, group: &str, zone: &str, status: HostStatus, cpu: f64) -> HostView {
        HostView {
            host: name.into(),
            status,
            connected: true,
            disconnected_ms: None,
            group: group.into(),
            zone: zone.into(),
            labels: BTreeMap::new(),
            cores: 4,
            memory_bytes: 1 << 30,
            interval_ms: 1000,
            agent_version: "0.1.0".into(),
            last_seen_ms: 0,
            last_sample_ms: Some(0),
            seq: Some(1),
            clock_offset_ms: None,
            clock_skewed: false,
            metrics: HostMetrics {
                cpu_busy_pct: Some(cpu),
                mem_used_pct: Some(cpu / 2.0),
                net_rx_bytes_per_s: Some(1_000.0),
                net_tx_bytes_per_s: Some(10.0),
                tcp_established: Some(cpu as u64),
                listen_overflows_per_s: Some(0.5),
                ..HostMetrics::default()
            },
        }
    }

    #[test]
    fn issue_13_host_lists_of_several_collectors_merge_newest_first() {
        let mut moved_old = host("web-1", "web", "a", HostStatus::Down, 10.0);
        moved_old.last_seen_ms = 1_000;
        moved_old.connected = false;
        let mut moved_new = host("web-1", "web", "a", HostStatus::Up, 90.0);
        moved_new.last_seen_ms = 5_000;
        let other = host("db-1", "db", "b", HostStatus::Up, 30.0);
        let merged = merge_hosts(vec![
            vec![moved_new.clone(), other.clone()],
            vec![moved_old.clone()],
        ]);
        assert_eq!(merged, vec![other.clone(), moved_new.clone()]);
        // The order the collectors are given in does not matter.
        let reversed = merge_hosts(vec![vec![moved_old], vec![other, moved_new.clone()]]);
        assert_eq!(reversed[1], moved_new);
        let summary = summarize(&reversed, 6_000);
        assert_eq!(summary.groups.iter().map(|g| g.hosts).sum::<u32>(), 2);
    }

    #[test]
    fn nearest_rank_percentiles_of_one_to_hundred() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.50), Some(50.0));
        assert_eq!(percentile(&values, 0.99), Some(99.0));
        assert_eq!(
            percentile(&values, 0.07),
            Some(7.0),
            "floating-point noise must not skip a rank"
        );
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        assert_eq!(percentile(&values, 1.0), Some(100.0));
        assert_eq!(percentile(&values, 1.5), None);
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[3.0, 9.0], 0.5), Some(3.0));
        assert_eq!(percentile(&[3.0, 9.0], 0.51), Some(9.0));
    }

    #[test]
    fn one_row_per_group_and_zone_sorted() {
        let mut hosts = Vec::new();
        for group in ["web", "db"] {
            for zone in ["c", "a", "b"] {
                for i in 0..3 {
                    let name = format!("{group}-{zone}-{i}");
                    hosts.push(host(&name, group, zone, HostStatus::Up, 10.0 * f64::from(i + 1)));
                }
            }
        }
        let summary = summarize(&hosts, 42);
        assert_eq!(summary.generated_ms, 42);
        assert_eq!(summary.hosts_up, 18);
        let keys: Vec<(&str, &str)> = summary
            .groups
            .iter()
            .map(|g| (g.group.as_str(), g.zone.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("db", "a"),
                ("db", "b"),
                ("db", "c"),
                ("web", "a"),
                ("web", "b"),
                ("web", "c")
            ]
        );
        let row = &summary.groups[0];
        assert_eq!(row.hosts, 3);
        assert_eq!(row.value(Metric::CpuBusyPct, Stat::Mean), Some(20.0));
        assert_eq!(row.value(Metric::CpuBusyPct, Stat::P50), Some(20.0));
        assert_eq!(row.value(Metric::CpuBusyPct, Stat::P99), Some(30.0));
        assert_eq!(row.value(Metric::CpuBusyPct, Stat::Max), Some(30.0));
        assert_eq!(row.value(Metric::MemUsedPct, Stat::Max), Some(15.0));
        assert_eq!(row.value(Metric::NetRxBytesPerS, Stat::Sum), Some(3_000.0));
        assert_eq!(row.value(Metric::NetTxBytesPerS, Stat::Sum), Some(30.0));
        assert_eq!(row.value(Metric::TcpEstablished, Stat::Sum), Some(60.0));
        assert_eq!(row.value(Metric::TcpEstablished, Stat::Max), Some(30.0));
        assert_eq!(row.value(Metric::ListenOverflowsPerS, Stat::Sum), Some(1.5));
    }

    #[test]
    fn down_hosts_are_counted_but_excluded_from_metrics() {
        let hosts = vec![
            host("a", "web", "z1", HostStatus::Up, 10.0),
            host("b", "web", "z1", HostStatus::Stale, 20.0),
            host("c", "web", "z1", HostStatus::Down, 99.0),
            host("d", "", "", HostStatus::Down, 50.0),
        ];
        let summary = summarize(&hosts, 0);
        assert_eq!(
            (summary.hosts_up, summary.hosts_stale, summary.hosts_down),
            (1, 1, 2)
        );
        assert_eq!(summary.groups.len(), 2);
        let unlabelled = &summary.groups[0];
        assert_eq!((unlabelled.group.as_str(), unlabelled.zone.as_str()), ("", ""));
        assert_eq!(unlabelled.hosts_down, 1);
        assert_eq!(
            unlabelled.value(Metric::CpuBusyPct, Stat::Max),
            None,
            "only a down host: no live data"
        );
        assert_eq!(
            unlabelled.value(Metric::NetRxBytesPerS, Stat::Sum),
            None,
            "no data is not zero traffic"
        );
        assert_eq!(unlabelled.value(Metric::TcpEstablished, Stat::Sum), None);
        let web = &summary.groups[1];
        assert_eq!(
            (web.hosts, web.hosts_up, web.hosts_stale, web.hosts_down),
            (3, 1, 1, 1)
        );
        assert_eq!(web.value(Metric::CpuBusyPct, Stat::Max), Some(20.0));
        assert_eq!(web.value(Metric::CpuBusyPct, Stat::Mean), Some(15.0));
        assert_eq!(web.value(Metric::NetRxBytesPerS, Stat::Sum), Some(2_000.0));
    }

    #[test]
    fn issue_9_summary_columns_keep_their_names_and_types() {
        let summary = summarize(&[host("a", "web", "z1", HostStatus::Up, 12.0)], 7);
        let json = serde_json::to_string(&summary.groups[0]).unwrap();
        assert_eq!(
            json,
            "{\"group\":\"web\",\"zone\":\"z1\",\"hosts\":1,\"hosts_up\":1,\"hosts_stale\":0,\"hosts_down\":0,\
             \"cpu_busy_mean\":12.0,\"cpu_busy_p50\":12.0,\"cpu_busy_p99\":12.0,\"cpu_busy_max\":12.0,\
             \"mem_used_pct_mean\":6.0,\"mem_used_pct_p50\":6.0,\"mem_used_pct_p99\":6.0,\"mem_used_pct_max\":6.0,\
             \"net_rx_bytes_per_s\":1000.0,\"net_tx_bytes_per_s\":10.0,\"tcp_established_sum\":12,\
             \"tcp_established_max\":12,\"listen_overflows_per_s\":0.5}"
        );
        // A key this release does not know is skipped; one it knows but missing reads as no data.
        let row: GroupSummary =
            serde_json::from_str("{\"group\":\"db\",\"hosts\":2,\"cpu_busy_p99\":50.0,\"later_key\":[1]}")
                .unwrap();
        assert_eq!((row.group.as_str(), row.hosts), ("db", 2));
        assert_eq!(row.value(Metric::CpuBusyPct, Stat::P99), Some(50.0));
        assert_eq!(row.value(Metric::CpuBusyPct, Stat::Max), None);
    }

    #[test]
    fn summary_round_trips_through_json() {
        let summary = summarize(&[host("a", "web", "z1", HostStatus::Up, 12.5)], 7);
        let json = serde_json::to_string(&summary).unwrap();
        assert_eq!(serde_json::from_str::<FleetSummary>(&json).unwrap(), summary);
    }
}
