//! Fleet views over a time window, grouped by any labels: for every stored metric, across hosts, the count,
//! mean, p50, p90, p99, p99.9, max and the host at the max.
//!
//! What is computed, exactly: each host's value is its mean of the metric over the window (the live view
//! uses each Up or Stale host's latest value instead); the percentiles are then taken across those per-host
//! values by the nearest-rank method (`summary::percentile`), so every percentile is a value some host had.
//! Windows up to one hour read the raw `samples` rows; longer ones read the minute and hour rollups, whose
//! count and sum give the same mean. A host's mean over a window is its typical level; the p99 across hosts
//! then names how the worst 1 % of hosts ran, which a fleet-wide mean of samples would hide.

use crate::live::fleet::{HostStatus, HostView};
use crate::live::summary::percentile;
use crate::store::sketch::{MetricStats, RollupStats};
use crate::store::{Metric, Store, StoreError};
use crate::views::end::{stale_note, EndAt};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest window answered from raw rows; longer windows use rollups.
pub const RAW_WINDOW_MAX_MS: u64 = 3_600_000;

/// Human description of what a view computes, carried in every answer.
pub const COMPUTED: &str =
    "per host: mean of the metric over the window (live: latest value of up and stale \
hosts); across hosts: count, mean, nearest-rank p50/p90/p99/p99.9, max and the host at the max";

/// One host's per-metric means over the window, in [`Metric::ALL`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct HostMeans {
    pub host: String,
    pub labels: BTreeMap<String, String>,
    pub means: Vec<Option<f64>>,
}

/// One metric across the hosts of one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSpread {
    pub metric: String,
    /// Hosts that had the metric in the window.
    pub count: usize,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub max_host: String,
}

/// One combination of the grouping labels' values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewRow {
    /// Label → value for each `by` label; "" where a host lacks the label.
    pub key: BTreeMap<String, String>,
    pub hosts: usize,
    pub metrics: Vec<MetricSpread>,
}

/// Body of `GET /api/v1/fleet?by=…&window=…`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetView {
    /// "live" or the window as given, like "1h".
    pub window: String,
    pub from_ms: Option<u64>,
    pub to_ms: u64,
    /// "live", "raw" or "rollup".
    pub source: String,
    pub by: Vec<String>,
    pub computed: String,
    pub rows: Vec<ViewRow>,
    /// The per-host statistic over the window (`mean`, `p50`, `p90`, `p99`, `p99.9`, `max`).
    #[serde(default)]
    pub stat: String,
    /// Per row, the distribution of every sample of its hosts over the window (merged sketches): `count` is
    /// samples, `max_host` the host with the largest sample. Only with a sketch statistic.
    #[serde(default)]
    pub pooled: Vec<ViewRow>,
    /// Statements to read first, like stale data.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// The per-host statistic of a windowed view, from the rollup sketches (or, for `mean`, sums and counts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    Mean,
    Quantile(f64),
    Max,
}

impl std::str::FromStr for Stat {
    type Err = String;

    fn from_str(text: &str) -> Result<Stat, String> {
        match text {
            "mean" => Ok(Stat::Mean),
            "p50" => Ok(Stat::Quantile(0.50)),
            "p90" => Ok(Stat::Quantile(0.90)),
            "p99" => Ok(Stat::Quantile(0.99)),
            "p99.9" => Ok(Stat::Quantile(0.999)),
            "max" => Ok(Stat::Max),
            other => Err(format!(
                "stat \"{other}\" is not a per-host statistic (use mean, p50, p90, p99, p99.9 or max)"
            )),
        }
    }
}

impl Stat {
    /// As the command line spells it.
    pub fn label(self) -> String {
        match self {
            Stat::Mean => "mean".to_string(),
            Stat::Quantile(q) => format!("p{}", (q * 1000.0).round() / 10.0),
            Stat::Max => "max".to_string(),
        }
    }

    /// The statistic of one host's merged rollup of a metric.
    pub fn of(self, stats: &MetricStats) -> Option<f64> {
        if stats.count == 0 {
            return None;
        }
        match self {
            Stat::Mean => Some(stats.mean()),
            Stat::Quantile(q) => stats.quantile(q),
            Stat::Max => Some(stats.max),
        }
    }
}

/// A host's name and its merged rollup over the window.
pub type MergedHost = (String, RollupStats);

/// Every host's `stat` of every metric over `[from_ms, to_ms)` from the rollup sketches, and its merged
/// rollup for the pooled rows.
pub fn sketch_hosts(
    store: &Store,
    from_ms: u64,
    to_ms: u64,
    stat: Stat,
) -> Result<(Vec<HostMeans>, Vec<MergedHost>), StoreError> {
    let mut hosts = Vec::new();
    let mut merged = Vec::new();
    for host in store.host_window_stats(from_ms, to_ms)? {
        let means = (0..Metric::ALL.len())
            .map(|index| host.stats.get(index).and_then(|stats| stat.of(stats)))
            .collect();
        hosts.push(HostMeans {
            host: host.host.clone(),
            labels: host.labels,
            means,
        });
        merged.push((host.host, host.stats));
    }
    Ok((hosts, merged))
}

/// Per row of `by`, the distribution of every sample of its hosts: merged sketches.
pub fn pooled_rows(hosts: &[HostMeans], merged: &[MergedHost], by: &[String]) -> Vec<ViewRow> {
    // Per row: hosts, merged rollup, and per metric the largest sample and its host.
    type Pool = (usize, RollupStats, Vec<Option<(f64, String)>>);
    let mut groups: BTreeMap<Vec<String>, Pool> = BTreeMap::new();
    for (host, (name, stats)) in hosts.iter().zip(merged) {
        let key = by
            .iter()
            .map(|label| host.labels.get(label).cloned().unwrap_or_default())
            .collect();
        let entry = groups
            .entry(key)
            .or_insert_with(|| (0, RollupStats::default(), vec![None; Metric::ALL.len()]));
        entry.0 += 1;
        entry.1.merge(stats);
        for (index, top) in entry.2.iter_mut().enumerate() {
            if let Some(stats) = stats.get(index).filter(|s| s.count > 0) {
                if top.as_ref().is_none_or(|(max, _)| stats.max > *max) {
                    *top = Some((stats.max, name.clone()));
                }
            }
        }
    }
    groups
        .into_iter()
        .map(|(key, (count, stats, tops))| ViewRow {
            key: by.iter().cloned().zip(key).collect(),
            hosts: count,
            metrics: Metric::ALL
                .iter()
                .enumerate()
                .filter_map(|(index, metric)| {
                    let pooled = stats.get(index).filter(|s| s.count > 0)?;
                    let at = |q: f64| pooled.quantile(q).unwrap_or(f64::NAN);
                    Some(MetricSpread {
                        metric: metric.name().to_string(),
                        count: pooled.count as usize,
                        mean: pooled.mean(),
                        p50: at(0.50),
                        p90: at(0.90),
                        p99: at(0.99),
                        p999: at(0.999),
                        max: pooled.max,
                        max_host: tops[index].as_ref().map(|(_, h)| h.clone()).unwrap_or_default(),
                    })
                })
                .collect(),
        })
        .collect()
}

/// Window length in ms from text like "5m", "1d", "30d"; `None` for "live".
pub fn parse_window(text: &str) -> Result<Option<u64>, String> {
    if text == "live" {
        return Ok(None);
    }
    let duration = humantime::parse_duration(text)
        .map_err(|e| format!("window \"{text}\" is not a duration ({e}); use live, 5m, 1h, 1d, 7d or 30d"))?;
    let ms = duration.as_millis() as u64;
    if !(60_000..=366 * 86_400_000).contains(&ms) {
        return Err(format!(
            "window \"{text}\" is out of range (use live or 1m to 366d)"
        ));
    }
    Ok(Some(ms))
}

/// Grouping labels from text like "group,zone"; empty means one row for the whole fleet.
pub fn parse_by(text: &str) -> Result<Vec<String>, String> {
    let by: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(bad) = by.iter().find(|l| {
        !l.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    }) {
        return Err(format!(
            "label \"{bad}\" in by is not a label name (letters, digits, _ - .)"
        ));
    }
    Ok(by)
}

/// The live view's per-host values: the latest derived metrics of every host that is not Down.
pub fn live_hosts(views: &[HostView]) -> Vec<HostMeans> {
    views
        .iter()
        .filter(|v| v.status != HostStatus::Down)
        .map(|v| HostMeans {
            host: v.host.clone(),
            labels: v.labels.clone(),
            means: Metric::ALL.iter().map(|m| m.value(&v.metrics)).collect(),
        })
        .collect()
}

/// Every stored host's per-metric mean over `[from_ms, to_ms)`: raw rows when the window is at most an
/// hour, rollups beyond. Returns the source used ("raw" or "rollup").
pub fn stored_hosts(
    store: &Store,
    from_ms: u64,
    to_ms: u64,
) -> Result<(Vec<HostMeans>, &'static str), StoreError> {
    if to_ms.saturating_sub(from_ms) <= RAW_WINDOW_MAX_MS {
        let mut means = store.host_raw_means(from_ms, to_ms)?;
        let out = store
            .hosts()?
            .into_iter()
            .filter_map(|h| {
                let means = means.remove(&h.name)?;
                Some(HostMeans {
                    host: h.name,
                    labels: h.labels,
                    means,
                })
            })
            .collect();
        return Ok((out, "raw"));
    }
    // One merged rollup per host carries every metric: each host's rollups are read once.
    let out = store
        .host_window_stats(from_ms, to_ms)?
        .into_iter()
        .map(|host| HostMeans {
            host: host.host,
            labels: host.labels,
            means: (0..Metric::ALL.len())
                .map(|index| {
                    host.stats
                        .get(index)
                        .filter(|s| s.count > 0)
                        .map(|s| s.sum / s.count as f64)
                })
                .collect(),
        })
        .filter(|host| host.means.iter().any(Option::is_some))
        .collect();
    Ok((out, "rollup"))
}

/// Rows per combination of the `by` labels, sorted by key; each with every metric some host had.
pub fn compute_rows(hosts: &[HostMeans], by: &[String]) -> Vec<ViewRow> {
    let mut groups: BTreeMap<Vec<String>, Vec<&HostMeans>> = BTreeMap::new();
    for host in hosts {
        let key = by
            .iter()
            .map(|label| host.labels.get(label).cloned().unwrap_or_default())
            .collect();
        groups.entry(key).or_default().push(host);
    }
    let mut values: Vec<(f64, &str)> = Vec::new();
    let mut sorted: Vec<f64> = Vec::new();
    groups
        .into_iter()
        .map(|(key, members)| {
            let mut metrics = Vec::new();
            for (index, metric) in Metric::ALL.iter().enumerate() {
                values.clear();
                values.extend(members.iter().filter_map(|h| {
                    let value = h.means.get(index).copied().flatten()?;
                    value.is_finite().then_some((value, h.host.as_str()))
                }));
                if values.is_empty() {
                    continue;
                }
                // Ties at the max go to the first host by name, so the answer is stable.
                let (max, max_host) = values.iter().fold((f64::NEG_INFINITY, ""), |best, &(v, h)| {
                    if v > best.0 || (v == best.0 && h < best.1) {
                        (v, h)
                    } else {
                        best
                    }
                });
                sorted.clear();
                sorted.extend(values.iter().map(|(v, _)| *v));
                sorted.sort_by(f64::total_cmp);
                let at = |q: f64| percentile(&sorted, q).unwrap_or(f64::NAN);
                metrics.push(MetricSpread {
                    metric: metric.name().to_string(),
                    count: sorted.len(),
                    mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
                    p50: at(0.50),
                    p90: at(0.90),
                    p99: at(0.99),
                    p999: at(0.999),
                    max,
                    max_host: max_host.to_string(),
                });
            }
            ViewRow {
                key: by.iter().cloned().zip(key).collect(),
                hosts: members.len(),
                metrics,
            }
        })
        .collect()
}

/// The view as the API answers it. `store` is needed for windows other than live. `stat` is the per-host
/// statistic (default mean); `end` where the window ends (default now).
pub fn fleet_view(
    live: &[HostView],
    store: Option<&Store>,
    by: Vec<String>,
    window_text: &str,
    now_ms: u64,
    stat: Option<Stat>,
    end: EndAt,
) -> Result<FleetView, String> {
    let window_ms = parse_window(window_text)?;
    let stat = stat.unwrap_or(Stat::Mean);
    let mut pooled = Vec::new();
    let mut notes = Vec::new();
    let mut to_ms = now_ms;
    let (hosts, source, from_ms) = match window_ms {
        None => (live_hosts(live), "live", None),
        Some(window_ms) => {
            let store = store.ok_or("windowed views need the collector database; it is not open")?;
            let newest_ms = store.newest_sample_ms().map_err(|e| e.to_string())?;
            to_ms = end
                .resolve(now_ms, newest_ms)
                .ok_or("end latest: the database holds no samples yet")?;
            notes.extend(stale_note(newest_ms, to_ms));
            let from_ms = to_ms.saturating_sub(window_ms);
            if stat == Stat::Mean {
                let (hosts, source) = stored_hosts(store, from_ms, to_ms).map_err(|e| e.to_string())?;
                (hosts, source, Some(from_ms))
            } else {
                let (hosts, merged) = sketch_hosts(store, from_ms, to_ms, stat).map_err(|e| e.to_string())?;
                pooled = pooled_rows(&hosts, &merged, &by);
                (hosts, "rollup", Some(from_ms))
            }
        }
    };
    let computed = if window_ms.is_some() {
        format!(
            "per host: {} over {window_text}; across hosts: count, mean, nearest-rank p50/p90/p99/p99.9, max \
             and the host at the max{}",
            stat.label(),
            if pooled.is_empty() {
                ""
            } else {
                "; pooled: every sample of the row's hosts (merged sketches, within 1 %)"
            }
        )
    } else {
        COMPUTED.to_string()
    };
    Ok(FleetView {
        window: window_text.to_string(),
        from_ms,
        to_ms,
        source: source.to_string(),
        rows: compute_rows(&hosts, &by),
        by,
        computed,
        stat: stat.label(),
        pooled,
        notes,
    })
}

/// Data gaps per host over all stored time: samples an agent reported it could not keep.
pub fn gap_counts(store: &Store) -> Result<BTreeMap<String, u64>, StoreError> {
    let mut out = BTreeMap::new();
    for gap in store.gaps(0, u64::MAX / 2)? {
        *out.entry(gap.host).or_insert(0) += gap.count;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, group: &str, zone: &str, cpu: f64) -> HostMeans {
        let mut means = vec![None; Metric::ALL.len()];
        means[Metric::CpuBusyPct.index()] = Some(cpu);
        HostMeans {
            host: name.to_string(),
            labels: [("group", group), ("zone", zone)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            means,
        }
    }

    #[test]
    fn rows_carry_percentiles_across_hosts_and_the_host_at_the_max() {
        // 1,000 web hosts with cpu 1..=1000 (host w-1000 hottest) and one db host.
        let mut hosts: Vec<HostMeans> = (1..=1000)
            .map(|i| {
                host(
                    &format!("w-{i:04}"),
                    "web",
                    if i % 2 == 0 { "a" } else { "b" },
                    f64::from(i),
                )
            })
            .collect();
        hosts.push(host("db-1", "db", "a", 42.0));
        let rows = compute_rows(&hosts, &["group".to_string()]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].key["group"], "db");
        let web = &rows[1].metrics[0];
        assert_eq!(web.metric, "cpu_busy_pct");
        assert_eq!(rows[1].metrics.len(), 1, "metrics nobody had are left out");
        assert_eq!(
            (web.count, web.p50, web.p90, web.p99, web.p999),
            (1000, 500.0, 900.0, 990.0, 999.0)
        );
        assert_eq!((web.max, web.max_host.as_str()), (1000.0, "w-1000"));
        assert!((web.mean - 500.5).abs() < 1e-9);

        let by_both = compute_rows(&hosts, &["group".to_string(), "zone".to_string()]);
        let keys: Vec<String> = by_both
            .iter()
            .map(|r| format!("{}/{}", r.key["group"], r.key["zone"]))
            .collect();
        assert_eq!(keys, ["db/a", "web/a", "web/b"]);
        assert_eq!(by_both[1].metrics[0].max_host, "w-1000");
        assert_eq!(by_both[2].metrics[0].max_host, "w-0999");
        let fleet = compute_rows(&hosts, &[]);
        assert_eq!((fleet.len(), fleet[0].hosts), (1, 1001));
    }

    #[test]
    fn windows_and_labels_are_checked() {
        assert_eq!(parse_window("live"), Ok(None));
        assert_eq!(parse_window("5m"), Ok(Some(300_000)));
        assert_eq!(parse_window("30d"), Ok(Some(30 * 86_400_000)));
        assert!(parse_window("10s").unwrap_err().contains("out of range"));
        assert!(parse_window("soon").unwrap_err().contains("not a duration"));
        assert_eq!(parse_by("group, zone").unwrap(), ["group", "zone"]);
        assert!(parse_by("group;drop").is_err());
    }

    #[test]
    fn per_host_statistic_from_sketches_and_a_pooled_row() {
        use crate::live::fleet::HostMetrics;
        use crate::store::{HostBatch, HostInfo, Retention, SampleRow};
        // A Monday at 00:00 UTC.
        const T0: u64 = 1_700_438_400_000;
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open(&dir.path().join("headroom.db"), T0).unwrap();
        let batch = |host: &str, values: Vec<f64>| HostBatch {
            host: host.into(),
            instance_id: 1,
            received_ms: T0,
            hello: Some(HostInfo {
                labels: [("group".to_string(), "web".to_string())].into_iter().collect(),
                cores: 4,
                memory_bytes: 1 << 30,
                interval_ms: 1000,
                agent_version: "0.1.0".into(),
            }),
            rows: values
                .into_iter()
                .enumerate()
                .map(|(i, cpu)| SampleRow {
                    seq: i as u64 + 1,
                    ts_ms: T0 + i as u64 * 5_000,
                    metrics: HostMetrics {
                        cpu_busy_pct: Some(cpu),
                        ..HostMetrics::default()
                    },
                    clock_offset_ms: 0,
                    detail: Vec::new(),
                })
                .collect(),
            gaps: Vec::new(),
        };
        // web-a: 10, 20, …, 100 % in minute 0; web-b: 50 % ten times.
        store
            .commit_batches(&[
                batch("web-a", (1..=10).map(|i| f64::from(i) * 10.0).collect()),
                batch("web-b", vec![50.0; 10]),
            ])
            .unwrap();
        store.maintain(T0 + 2 * 60_000, &Retention::default()).unwrap();
        let by = vec!["group".to_string()];
        let view = |stat: &str| {
            fleet_view(
                &[],
                Some(&store),
                by.clone(),
                "2h",
                T0 + 2 * 60_000,
                Some(stat.parse().unwrap()),
                EndAt::Now,
            )
            .unwrap()
        };
        let cpu = |rows: &[ViewRow]| {
            rows[0]
                .metrics
                .iter()
                .find(|m| m.metric == "cpu_busy_pct")
                .cloned()
                .unwrap()
        };
        // Per host max: 100 and 50; across the two hosts p50 (nearest rank 1 of 2) is 50, max 100 on web-a.
        let max = view("max");
        assert_eq!(max.stat, "max");
        assert!(
            max.computed.starts_with("per host: max over 2h"),
            "{}",
            max.computed
        );
        let per_host = cpu(&max.rows);
        assert_eq!((per_host.count, per_host.p50, per_host.max), (2, 50.0, 100.0));
        assert_eq!(per_host.max_host, "web-a");
        // Pooled: the 20 samples 10, 20, 30, 40, 50 ×11, 60, …, 100: mean (550 + 500)/20 = 52.5 exactly,
        // median (rank 10) 50 within the sketch's 1 %, max 100 on web-a.
        let pooled = cpu(&max.pooled);
        assert_eq!(pooled.count, 20);
        assert!((pooled.mean - 52.5).abs() < 1e-9, "{pooled:?}");
        assert!((pooled.p50 - 50.0).abs() <= 0.5, "{pooled:?}");
        assert_eq!((pooled.max, pooled.max_host.as_str()), (100.0, "web-a"));
        // Per host p50: web-a's 10 values have median rank 5 = 50 (within 1 %), web-b 50.
        let p50 = cpu(&view("p50").rows);
        assert!((p50.max - 50.0).abs() <= 0.5, "{p50:?}");
        assert!("p95"
            .parse::<Stat>()
            .unwrap_err()
            .contains("use mean, p50, p90, p99, p99.9 or max"));
        // A window ending an hour after the data says so first.
        let later = fleet_view(
            &[],
            Some(&store),
            by.clone(),
            "2h",
            T0 + 3_600_000,
            Some(Stat::Max),
            EndAt::Now,
        )
        .unwrap();
        assert!(later.notes[0].starts_with("stale data"), "{:?}", later.notes);
        let latest = fleet_view(
            &[],
            Some(&store),
            by,
            "2h",
            T0 + 3_600_000,
            Some(Stat::Max),
            EndAt::Latest,
        )
        .unwrap();
        assert!(latest.notes.is_empty());
        assert_eq!(cpu(&latest.rows).max, 100.0);
    }
}
