//! Fleet summary: one row per (group, zone) with host counts by status and exact percentiles across hosts.
//!
//! Only Up and Stale hosts contribute metrics. A Down host is counted (in `hosts_down` of the fleet and of its
//! row) but its last values are left out of means, percentiles and sums: they describe a moment that may be
//! minutes old, and mixing them with live values would hide that the host is gone. A Stale host is still in:
//! its values are a few intervals old, which is the best knowledge there is, and dropping it would make a
//! briefly lagging host vanish from capacity figures.

use crate::live::fleet::{FleetState, HostStatus, HostView};
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

/// One (group, zone) pair. Every metric is `None` when no live host of the row reported it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    pub cpu_busy_mean: Option<f64>,
    pub cpu_busy_p50: Option<f64>,
    pub cpu_busy_p99: Option<f64>,
    pub cpu_busy_max: Option<f64>,
    pub mem_used_pct_mean: Option<f64>,
    pub mem_used_pct_p50: Option<f64>,
    pub mem_used_pct_p99: Option<f64>,
    pub mem_used_pct_max: Option<f64>,
    /// Sum over the row's live hosts.
    pub net_rx_bytes_per_s: Option<f64>,
    /// Sum over the row's live hosts.
    pub net_tx_bytes_per_s: Option<f64>,
    pub tcp_established_sum: Option<u64>,
    pub tcp_established_max: Option<u64>,
    /// Sum over the row's live hosts.
    pub listen_overflows_per_s: Option<f64>,
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
    let cpu = spread(live.iter().filter_map(|h| h.metrics.cpu_busy_pct).collect());
    let mem = spread(live.iter().filter_map(|h| h.metrics.mem_used_pct).collect());
    let established: Vec<u64> = live.iter().filter_map(|h| h.metrics.tcp_established).collect();
    GroupSummary {
        group: group.to_string(),
        zone: zone.to_string(),
        hosts: hosts.len() as u32,
        hosts_up: count(HostStatus::Up),
        hosts_stale: count(HostStatus::Stale),
        hosts_down: count(HostStatus::Down),
        cpu_busy_mean: cpu.mean,
        cpu_busy_p50: cpu.p50,
        cpu_busy_p99: cpu.p99,
        cpu_busy_max: cpu.max,
        mem_used_pct_mean: mem.mean,
        mem_used_pct_p50: mem.p50,
        mem_used_pct_p99: mem.p99,
        mem_used_pct_max: mem.max,
        net_rx_bytes_per_s: sum_present(live.iter().map(|h| h.metrics.net_rx_bytes_per_s)),
        net_tx_bytes_per_s: sum_present(live.iter().map(|h| h.metrics.net_tx_bytes_per_s)),
        tcp_established_sum: (!established.is_empty()).then(|| established.iter().sum()),
        tcp_established_max: established.iter().copied().max(),
        listen_overflows_per_s: sum_present(live.iter().map(|h| h.metrics.listen_overflows_per_s)),
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
        assert_eq!(row.cpu_busy_mean, Some(20.0));
        assert_eq!(row.cpu_busy_p50, Some(20.0));
        assert_eq!(row.cpu_busy_p99, Some(30.0));
        assert_eq!(row.cpu_busy_max, Some(30.0));
        assert_eq!(row.mem_used_pct_max, Some(15.0));
        assert_eq!(row.net_rx_bytes_per_s, Some(3_000.0));
        assert_eq!(row.net_tx_bytes_per_s, Some(30.0));
        assert_eq!(row.tcp_established_sum, Some(60));
        assert_eq!(row.tcp_established_max, Some(30));
        assert_eq!(row.listen_overflows_per_s, Some(1.5));
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
        assert_eq!(unlabelled.cpu_busy_max, None, "only a down host: no live data");
        assert_eq!(unlabelled.net_rx_bytes_per_s, None, "no data is not zero traffic");
        assert_eq!(unlabelled.tcp_established_sum, None);
        let web = &summary.groups[1];
        assert_eq!(
            (web.hosts, web.hosts_up, web.hosts_stale, web.hosts_down),
            (3, 1, 1, 1)
        );
        assert_eq!(web.cpu_busy_max, Some(20.0));
        assert_eq!(web.cpu_busy_mean, Some(15.0));
        assert_eq!(web.net_rx_bytes_per_s, Some(2_000.0));
    }

    #[test]
    fn summary_round_trips_through_json() {
        let summary = summarize(&[host("a", "web", "z1", HostStatus::Up, 12.5)], 7);
        let json = serde_json::to_string(&summary).unwrap();
        assert_eq!(serde_json::from_str::<FleetSummary>(&json).unwrap(), summary);
    }
}
