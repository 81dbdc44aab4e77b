//! Fleet summary: one row per (group, zone) with host counts by status and exact percentiles across hosts.
//!
//! Only Up and Stale hosts contribute metrics. A Down host is counted (in `hosts_down` of the fleet and of its
//! row) but its last values are left out of means, percentiles and sums: they describe a moment that may be
//! minutes old, and mixing them with live values would hide that the host is gone. A Stale host is still in:
//! its values are a few intervals old, which is the best knowledge there is, and dropping it would make a
//! briefly lagging host vanish from capacity figures.

use crate::live::fleet::{FleetState, HostMetrics, HostStatus, HostView};
use crate::metrics::{summary_columns, Metric, Stat, Storage};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

impl FleetState {
    /// The summary of every host at `now_ms`. It lives here, not in `fleet`, so that imports flow one way:
    /// the summary reads the fleet's host views; the fleet knows nothing of summaries.
    pub fn summary(&self, now_ms: u64) -> FleetSummary {
        self.summary_draft(now_ms).finish()
    }

    /// The numbers the summary needs, copied out of the fleet: cheap enough to take under the fleet's lock,
    /// finished after it (see [`SummaryDraft`]).
    pub fn summary_draft(&self, now_ms: u64) -> SummaryDraft {
        let mut draft = SummaryDraft::new(now_ms);
        self.glance(now_ms, |host| {
            draft.add(host.group, host.zone, host.status, host.metrics)
        });
        draft
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
    let mut draft = SummaryDraft::new(now_ms);
    for host in hosts {
        draft.add(&host.group, &host.zone, host.status, &host.metrics);
    }
    draft.finish()
}

/// A fleet summary being gathered: per (group, zone) row its host counts and, for each metric the summary
/// shows, the finite values of the row's hosts that are not down, in the order the hosts came. Gathering
/// copies numbers only; the sorting and the percentiles wait for [`SummaryDraft::finish`], which can run
/// after the fleet's lock is released and away from the threads that carry ingest.
#[derive(Debug, Clone)]
pub struct SummaryDraft {
    now_ms: u64,
    /// The distinct metrics of the summary's columns, in catalogue order.
    metrics: Vec<Metric>,
    /// Group, then zone.
    rows: BTreeMap<String, BTreeMap<String, RowDraft>>,
}

#[derive(Debug, Clone, Default)]
struct RowDraft {
    up: u32,
    stale: u32,
    down: u32,
    /// Indexed like `SummaryDraft::metrics`.
    values: Vec<Vec<f64>>,
}

impl SummaryDraft {
    pub fn new(now_ms: u64) -> Self {
        let mut metrics: Vec<Metric> = summary_columns().map(|(metric, _)| metric).collect();
        metrics.dedup();
        SummaryDraft {
            now_ms,
            metrics,
            rows: BTreeMap::new(),
        }
    }

    /// Counts one host in its row and, unless it is down, keeps its values of the summary's metrics.
    pub fn add(&mut self, group: &str, zone: &str, status: HostStatus, metrics: &HostMetrics) {
        if !self.rows.contains_key(group) {
            self.rows.insert(group.to_string(), BTreeMap::new());
        }
        let zones = self.rows.get_mut(group).expect("inserted above");
        if !zones.contains_key(zone) {
            let row = RowDraft {
                values: vec![Vec::new(); self.metrics.len()],
                ..RowDraft::default()
            };
            zones.insert(zone.to_string(), row);
        }
        let row = zones.get_mut(zone).expect("inserted above");
        match status {
            HostStatus::Up => row.up += 1,
            HostStatus::Stale => row.stale += 1,
            HostStatus::Down => {
                row.down += 1;
                return;
            }
        }
        for (values, metric) in row.values.iter_mut().zip(&self.metrics) {
            values.extend(metric.value(metrics).filter(|v| v.is_finite()));
        }
    }

    /// The summary: each row's counts, and each column's mean, percentile, maximum or sum across its hosts.
    pub fn finish(self) -> FleetSummary {
        let mut summary = FleetSummary {
            generated_ms: self.now_ms,
            ..FleetSummary::default()
        };
        for (group, zones) in self.rows {
            for (zone, row) in zones {
                summary.hosts_up += row.up;
                summary.hosts_stale += row.stale;
                summary.hosts_down += row.down;
                summary
                    .groups
                    .push(finish_row(group.clone(), zone, row, &self.metrics));
            }
        }
        summary
    }
}

fn finish_row(group: String, zone: String, row: RowDraft, metrics: &[Metric]) -> GroupSummary {
    // A sum adds the values in the order the hosts came; a spread sorts its own copy. Each metric's spread is
    // computed once, however many of its columns the summary shows.
    let mut spreads: Vec<Option<Spread>> = vec![None; metrics.len()];
    let values = summary_columns()
        .map(|(metric, column)| {
            let index = metrics
                .iter()
                .position(|m| *m == metric)
                .expect("a metric of the summary");
            let of_hosts = &row.values[index];
            let mut spread_of = || *spreads[index].get_or_insert_with(|| spread(of_hosts.clone()));
            match column.stat {
                Stat::Mean => spread_of().mean,
                Stat::P50 => spread_of().p50,
                Stat::P99 => spread_of().p99,
                Stat::Max => spread_of().max,
                Stat::Sum => sum_present(of_hosts.iter().copied().map(Some)),
            }
        })
        .collect();
    GroupSummary {
        group,
        zone,
        hosts: row.up + row.stale + row.down,
        hosts_up: row.up,
        hosts_stale: row.stale,
        hosts_down: row.down,
        values,
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

    #[test]
    fn issue_12_the_fleets_own_summary_reads_what_its_host_views_show() {
        // The summary copied out of the fleet under its lock (`glance`) against the summary of the fleet's
        // cloned host views: labels, status and values must be read the same way.
        use crate::live::fleet::test_hello as hello;
        use headroom_common::wire::Sample;
        use std::sync::Arc;
        let mut fleet = FleetState::new(crate::live::fleet::FleetSettings::default());
        let t0 = 1_700_000_000_000u64;
        for i in 0..40u64 {
            let name = format!("h{i:02}");
            let labels: Vec<(&str, &str)> = match i % 4 {
                0 => vec![("group", "web"), ("zone", "a")],
                1 => vec![("group", "web"), ("zone", "b")],
                2 => vec![("group", "db")],
                _ => vec![],
            };
            // Hosts last heard 0 s, 4 s (stale) and 90 s (down) before the summary.
            let heard = t0 - [0, 4_000, 90_000][(i % 3) as usize];
            fleet.on_hello(&name, &hello(&labels, 1), heard);
            let metrics = HostMetrics {
                cpu_busy_pct: Some(if i == 5 { f64::NAN } else { i as f64 * 1.7 }),
                mem_used_pct: (i % 5 != 0).then_some(i as f64 / 3.0),
                tcp_established: Some(i * 11),
                net_rx_bytes_per_s: Some(1e6 / (i + 1) as f64),
                ..HostMetrics::default()
            };
            let sample = Arc::new(Sample {
                seq: 1,
                timestamp_ms: heard,
                ..Sample::default()
            });
            fleet.on_stored(&name, sample, &metrics, heard);
        }
        let summary = fleet.summary(t0);
        assert_eq!(summary, summarize(&fleet.hosts(t0), t0));
        assert_eq!(
            (summary.hosts_up, summary.hosts_stale, summary.hosts_down),
            (14, 13, 13)
        );
        assert_eq!(summary.groups.len(), 4, "{summary:?}");
        assert_eq!(
            (summary.groups[0].group.as_str(), summary.groups[0].zone.as_str()),
            ("", "")
        );
    }
}
