//! The `headroom` alarm kind, pure. The live variant sizes a group's recent load (each host's readings over
//! the rule's window, summed per minute) with the same model as `sizing` (`crate::sizing::size_fleet`, at
//! the configured peak statistic), so the alarm and the report never disagree on what "safe" means. The
//! forecast variant reads a digest of a sizing report computed elsewhere, rarely, from the database. Data
//! and `now` in, verdicts out.

use std::collections::{BTreeMap, VecDeque};

use super::HostInput;
use crate::metrics::Metric;
use crate::sizing::report::{case_text, forecast_text, hosts_to_add_text, percent};
use crate::sizing::{
    self, ForecastOutcome, GroupReport, GroupStatus, MinuteSum, Resource, SizingConfig, SizingInput,
    SizingReport, MINUTE_MS,
};

/// Default window of the live variant.
pub const DEFAULT_OVER_MS: u64 = 15 * MINUTE_MS;

/// One host's established connections per listening port, minute by minute, over the last minutes: what a
/// live `headroom` rule sizes connections from. Like the rollup's per-port sums for the report, a minute
/// holds, per port, the sum over the samples that listed the port and how many did, so its mean is the
/// host's mean over the samples that measured it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortMinutes {
    /// Oldest first: the minute's start and its ports, in port order.
    minutes: VecDeque<(u64, Vec<PortCount>)>,
}

/// One port's established connections over a minute's samples that listed it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PortCount {
    port: u16,
    established_sum: u64,
    samples: u32,
}

impl PortMinutes {
    /// Counts one sample's listeners, as (port, established), taken at `at_ms` (samples in time order),
    /// and forgets minutes that start more than `keep_ms` before the minute holding `at_ms`.
    pub fn add(&mut self, at_ms: u64, listeners: impl IntoIterator<Item = (u16, u32)>, keep_ms: u64) {
        let minute_ms = at_ms / MINUTE_MS * MINUTE_MS;
        let mut recycled = None;
        while let Some(&(oldest_ms, _)) = self.minutes.front() {
            if oldest_ms + keep_ms >= minute_ms {
                break;
            }
            recycled = self.minutes.pop_front().map(|(_, ports)| ports);
        }
        if self
            .minutes
            .back()
            .is_none_or(|(last_ms, _)| *last_ms < minute_ms)
        {
            let mut ports = recycled.unwrap_or_default();
            ports.clear();
            self.minutes.push_back((minute_ms, ports));
        }
        let (_, ports) = self.minutes.back_mut().expect("a minute was just ensured");
        for (port, established) in listeners {
            match ports.binary_search_by_key(&port, |count| count.port) {
                Ok(at) => {
                    ports[at].established_sum += u64::from(established);
                    ports[at].samples += 1;
                }
                Err(at) => ports.insert(
                    at,
                    PortCount {
                        port,
                        established_sum: u64::from(established),
                        samples: 1,
                    },
                ),
            }
        }
    }

    /// Per minute that starts at or after the minute holding `from_ms`: each port's mean established
    /// connections over the samples that listed it, in port order.
    pub fn means_since(&self, from_ms: u64) -> BTreeMap<u64, Vec<(u16, f64)>> {
        let first_ms = from_ms / MINUTE_MS * MINUTE_MS;
        self.minutes
            .iter()
            .filter(|(minute_ms, ports)| *minute_ms >= first_ms && !ports.is_empty())
            .map(|(minute_ms, ports)| {
                let means = ports
                    .iter()
                    .map(|count| {
                        (
                            count.port,
                            count.established_sum as f64 / f64::from(count.samples),
                        )
                    })
                    .collect();
                (*minute_ms, means)
            })
            .collect()
    }
}

/// One host's part of its group's live load: its capacity and its per-minute means over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveHost {
    pub name: String,
    pub zone: Option<String>,
    pub cores: f64,
    pub memory_bytes: f64,
    pub first_ms: u64,
    pub last_ms: u64,
    /// Per minute start: the mean busy cores and the mean used memory of the host's readings in it.
    pub minutes: BTreeMap<u64, (f64, Option<f64>)>,
    /// Per minute start: the mean established connections per listening port, in port order.
    pub established_by_minute: BTreeMap<u64, Vec<(u16, f64)>>,
    /// The host's used memory at the peak statistic over the window.
    pub memory_used_peak_bytes: Option<f64>,
}

/// What one evaluation of a headroom rule concluded for a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The group is past its safe level (live) or will be within the rule's days (forecast).
    pub holds: bool,
    /// Live: the binding resource's utilisation after its worst loss, in percent. Forecast: days until
    /// unsafe.
    pub value: Option<f64>,
    /// One line naming the binding resource, the worst loss and the hosts to add.
    pub detail: String,
}

/// The host's readings since `from_ms` as per-minute means, or `None` when its capacity is unknown (no
/// hello yet) or it sent nothing in the window.
pub fn live_host(host: &HostInput, zone_label: &str, from_ms: u64, percentile: f64) -> Option<LiveHost> {
    if host.cores == 0 {
        return None;
    }
    let cores = f64::from(host.cores);
    let mut cpu: BTreeMap<u64, (f64, u32)> = BTreeMap::new();
    let mut first_ms = u64::MAX;
    let mut last_ms = 0;
    for (at_ms, busy_pct) in host.history.since(Metric::CpuBusyPct, from_ms) {
        let entry = cpu.entry(at_ms / MINUTE_MS * MINUTE_MS).or_default();
        entry.0 += busy_pct / 100.0 * cores;
        entry.1 += 1;
        first_ms = first_ms.min(at_ms);
        last_ms = last_ms.max(at_ms);
    }
    if cpu.is_empty() {
        return None;
    }
    let mut memory: BTreeMap<u64, (f64, u32)> = BTreeMap::new();
    let mut used: Vec<f64> = Vec::new();
    for (at_ms, bytes) in host.history.since(Metric::MemUsedBytes, from_ms) {
        let entry = memory.entry(at_ms / MINUTE_MS * MINUTE_MS).or_default();
        entry.0 += bytes;
        entry.1 += 1;
        used.push(bytes);
    }
    let minutes = cpu
        .into_iter()
        .map(|(minute, (sum, count))| {
            let memory = memory.get(&minute).map(|(sum, count)| sum / f64::from(*count));
            (minute, (sum / f64::from(count), memory))
        })
        .collect();
    Some(LiveHost {
        name: host.host.clone(),
        zone: host.labels.get(zone_label).cloned(),
        cores,
        memory_bytes: host.memory_bytes as f64,
        first_ms,
        last_ms,
        minutes,
        established_by_minute: host.ports.means_since(from_ms),
        memory_used_peak_bytes: sizing::percentile_nearest_rank(&mut used, percentile),
    })
}

/// Sizes `group` from its hosts' live minutes over `from_ms..now_ms` with the sizing model and settings.
pub fn size_live_group(
    group: &str,
    hosts: &[LiveHost],
    from_ms: u64,
    now_ms: u64,
    config: &SizingConfig,
) -> Option<GroupReport> {
    let mut sums: BTreeMap<u64, MinuteSum> = BTreeMap::new();
    let empty = |minute| MinuteSum {
        minute_start_ms: minute,
        cpu_busy_cores: 0.0,
        memory_used_bytes: 0.0,
        established_by_port: Vec::new(),
        hosts_reporting: 0,
    };
    for host in hosts {
        for (&minute, &(busy_cores, used_bytes)) in &host.minutes {
            let sum = sums.entry(minute).or_insert_with(|| empty(minute));
            sum.cpu_busy_cores += busy_cores;
            sum.memory_used_bytes += used_bytes.unwrap_or(0.0);
            sum.hosts_reporting += 1;
        }
        // Connections per port: the sum over hosts of each host's mean, as the rollup sums them.
        for (&minute, means) in &host.established_by_minute {
            let sum = sums.entry(minute).or_insert_with(|| empty(minute));
            for &(port, mean) in means {
                match sum.established_by_port.binary_search_by_key(&port, |(p, _)| *p) {
                    Ok(at) => sum.established_by_port[at].1 += mean,
                    Err(at) => sum.established_by_port.insert(at, (port, mean)),
                }
            }
        }
    }
    let input = SizingInput {
        window_start_ms: from_ms,
        window_end_ms: now_ms,
        groups: vec![sizing::GroupInput {
            name: group.to_string(),
            hosts: hosts
                .iter()
                .map(|host| sizing::HostInput {
                    name: host.name.clone(),
                    zone: host.zone.clone(),
                    cores: host.cores,
                    memory_bytes: host.memory_bytes,
                    first_seen_ms: host.first_ms,
                    last_seen_ms: host.last_ms,
                    memory_used_peak_bytes: host.memory_used_peak_bytes,
                })
                .collect(),
            minutes: sums.into_values().collect(),
        }],
    };
    sizing::size_fleet(&input, config).groups.pop()
}

/// The live verdict: the group holds when the model calls it unsafe, i.e. its load is past the level at
/// which it survives its worst loss. A group in one failure domain has no safe level and does not fire
/// (the sizing report says so); nor does one without data.
pub fn live_verdict(report: &GroupReport) -> Verdict {
    let binding = report
        .resources
        .iter()
        .find(|r| Some(r.resource) == report.binding);
    let Some(binding) = binding else {
        return Verdict {
            holds: false,
            value: None,
            detail: format!("{}: no load measured in the window", report.name),
        };
    };
    let after = binding.worst.utilisation;
    let resource = match binding.resource {
        Resource::Connections { port } => format!("connections on port {port}"),
        other => other.label(),
    };
    let mut detail = format!(
        "{resource} would run at {} after losing {} (target {}; now {}, safe level {})",
        after.map_or_else(|| "more than it has".to_string(), percent),
        case_text(&binding.worst),
        percent(binding.target),
        percent(binding.current_utilisation),
        percent(binding.safe_steady_state),
    );
    match (report.status, binding.resource) {
        (GroupStatus::Unsafe, Resource::Connections { port }) => detail.push_str(&format!(
            "; hosts to add: {}, or raise port {port}'s connection limit (sizing.max_connections)",
            hosts_to_add_text(report)
        )),
        (GroupStatus::Unsafe, _) => {
            detail.push_str(&format!("; hosts to add: {}", hosts_to_add_text(report)))
        }
        (GroupStatus::SingleDomain, _) => detail.push_str("; all hosts in one failure domain: no safe level"),
        _ => {}
    }
    Verdict {
        holds: report.status == GroupStatus::Unsafe,
        value: after.map(|u| u * 100.0),
        detail,
    }
}

/// What the forecast variant needs of a sizing report, per group, and when it was computed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ForecastDigest {
    pub computed_ms: u64,
    pub groups: BTreeMap<String, GroupForecast>,
}

/// One group's forecast: days until it stops surviving its worst loss (0: already unsafe; `None`: not
/// within the horizon or not enough history) and the sentence saying so.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupForecast {
    pub days_until_unsafe: Option<f64>,
    pub detail: String,
}

/// The digest of `report` (its fleet-wide ranking and each group's forecast).
pub fn forecast_digest(report: &SizingReport, computed_ms: u64) -> ForecastDigest {
    let groups = report
        .groups
        .iter()
        .map(|group| {
            let ranked = report.ranking.iter().find(|r| r.group == group.name);
            let resource = ranked.and_then(|r| {
                group
                    .resources
                    .iter()
                    .find(|resource| Some(resource.resource) == r.resource)
            });
            let detail = match (ranked, resource) {
                (Some(ranked), _) if ranked.days_until_unsafe <= 0.0 => format!(
                    "unsafe now{}",
                    ranked
                        .resource
                        .map(|r| format!(" ({} binds)", r.label()))
                        .unwrap_or_default()
                ),
                (Some(_), Some(resource)) => {
                    format!("{}: {}", resource.resource.label(), forecast_text(resource))
                }
                _ => {
                    let history = group
                        .resources
                        .iter()
                        .any(|r| r.forecast.outcome == ForecastOutcome::NotEnoughHistory);
                    if history {
                        "not enough history to forecast (fewer than 7 complete days)".to_string()
                    } else {
                        format!(
                            "not forecast to become unsafe within {:.0} days",
                            report.horizon_days
                        )
                    }
                }
            };
            (
                group.name.clone(),
                GroupForecast {
                    days_until_unsafe: ranked.map(|r| r.days_until_unsafe),
                    detail,
                },
            )
        })
        .collect();
    ForecastDigest { computed_ms, groups }
}

/// A forecast older than this (three hourly refreshes missed in a row) is not acted on: an alarm should not
/// keep firing, or stay quiet, on what the database said hours ago.
pub const FORECAST_STALE_AFTER_MS: u64 = 3 * 3_600_000;

/// The forecast verdict at `now_ms`: the group holds when a forecast younger than
/// [`FORECAST_STALE_AFTER_MS`] says it becomes unsafe within `within_days`.
pub fn forecast_verdict(
    digest: Option<&ForecastDigest>,
    group: &str,
    within_days: f64,
    now_ms: u64,
) -> Verdict {
    let Some(digest) = digest else {
        return Verdict {
            holds: false,
            value: None,
            detail: "no forecast yet (computed from the database at start-up, then hourly)".to_string(),
        };
    };
    if now_ms.saturating_sub(digest.computed_ms) > FORECAST_STALE_AFTER_MS {
        return Verdict {
            holds: false,
            value: None,
            detail: format!(
                "the latest forecast ({}) is too old to act on: the hourly refreshes since failed (see the \
                 collector's log)",
                sizing::report::utc(digest.computed_ms)
            ),
        };
    }
    let Some(forecast) = digest.groups.get(group) else {
        return Verdict {
            holds: false,
            value: None,
            detail: format!(
                "not in the forecast of {}",
                sizing::report::utc(digest.computed_ms)
            ),
        };
    };
    Verdict {
        holds: forecast.days_until_unsafe.is_some_and(|days| days <= within_days),
        value: forecast.days_until_unsafe,
        detail: format!(
            "forecast of {}: {} (alarm within {within_days:.0} days)",
            sizing::report::utc(digest.computed_ms),
            forecast.detail
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::alarms::HostHistory;
    use crate::analytics::outliers::MetricValues;
    use crate::sizing::config::Balance;
    use crate::sizing::DAY_MS;

    const T0_MS: u64 = 1_700_438_400_000;

    /// A host that reported `busy_pct` every 10 s for the last 15 minutes before `now_ms`.
    fn host(name: &str, zone: Option<&str>, cores: u32, busy_pct: f64, now_ms: u64) -> HostInput {
        let mut history = HostHistory::new(1_000);
        for step in (0..90u64).rev() {
            let mut values = MetricValues::default();
            values.set(Metric::CpuBusyPct, Some(busy_pct));
            values.set(Metric::MemUsedBytes, Some(f64::from(cores) * 1e9));
            history.push(now_ms - step * 10_000, values);
        }
        HostInput {
            host: name.to_string(),
            labels: zone
                .map(|zone| std::sync::Arc::new([("zone".to_string(), zone.to_string())].into()))
                .unwrap_or_default(),
            interval_ms: 10_000,
            last_seen_ms: now_ms,
            clock_offset_ms: None,
            cores,
            memory_bytes: u64::from(cores) * 4_000_000_000,
            history,
            ports: Default::default(),
        }
    }

    fn verdict(hosts: &[HostInput], config: &SizingConfig, now_ms: u64) -> Verdict {
        let from_ms = now_ms - DEFAULT_OVER_MS;
        let live: Vec<LiveHost> = hosts
            .iter()
            .filter_map(|h| live_host(h, "zone", from_ms, config.percentile))
            .collect();
        live_verdict(&size_live_group("web", &live, from_ms, now_ms, config).unwrap())
    }

    #[test]
    fn issue_10_the_live_load_is_sized_with_the_groups_balance() {
        // Unzoned 32, 32, 8 and 8 cores carrying 8 + 8 + 4 + 4 = 24 busy cores. Capacity balance: losing a
        // 32-core host leaves 48: 50 %, safe. Equal balance: each of the 3 survivors carries 8 cores, 100 %
        // of an 8-core host; one more 8-core host: 24/4 = 6 cores, 75 %.
        let now_ms = T0_MS + 3_600_000;
        let hosts = [
            host("h1", None, 32, 25.0, now_ms),
            host("h2", None, 32, 25.0, now_ms),
            host("h3", None, 8, 50.0, now_ms),
            host("h4", None, 8, 50.0, now_ms),
        ];
        let capacity = verdict(&hosts, &SizingConfig::default(), now_ms);
        assert!(!capacity.holds, "{capacity:?}");
        assert!((capacity.value.unwrap() - 50.0).abs() < 1e-9, "{capacity:?}");
        let mut config = SizingConfig::default();
        let mut web = config.defaults.clone();
        web.balance = Balance::Equal;
        config.groups.insert("web".into(), web);
        let equal = verdict(&hosts, &config, now_ms);
        assert!(equal.holds, "{equal:?}");
        assert!((equal.value.unwrap() - 100.0).abs() < 1e-9, "{equal:?}");
        assert!(
            equal.detail.contains("(binds: h3, h4)")
                && equal.detail.ends_with("hosts to add: 1 (+1 unzoned)"),
            "{}",
            equal.detail
        );
    }

    #[test]
    fn a_host_without_capacity_or_readings_is_left_out_and_one_zone_never_fires() {
        let now_ms = T0_MS + 3_600_000;
        let mut unknown = host("h1", Some("a"), 8, 90.0, now_ms);
        unknown.cores = 0;
        assert_eq!(live_host(&unknown, "zone", now_ms - DEFAULT_OVER_MS, 99.9), None);
        let stale = host("h2", Some("a"), 8, 90.0, now_ms - 2 * DEFAULT_OVER_MS);
        assert_eq!(live_host(&stale, "zone", now_ms - DEFAULT_OVER_MS, 99.9), None);
        let one_zone = [
            host("h1", Some("a"), 8, 90.0, now_ms),
            host("h2", Some("a"), 8, 90.0, now_ms),
        ];
        let single = verdict(&one_zone, &SizingConfig::default(), now_ms);
        assert!(!single.holds);
        assert!(single.detail.ends_with("no safe level"), "{}", single.detail);
    }

    #[test]
    fn issue_10_port_minutes_keep_each_ports_mean_over_the_samples_that_listed_it() {
        let mut ports = PortMinutes::default();
        let keep_ms = 2 * MINUTE_MS;
        // Minute 0: 443 listed twice (100, 300), 80 once (6); minute 1: 443 once (50).
        ports.add(T0_MS, [(443, 100)], keep_ms);
        ports.add(T0_MS + 10_000, [(443, 300), (80, 6)], keep_ms);
        ports.add(T0_MS + MINUTE_MS, [(443, 50)], keep_ms);
        assert_eq!(
            ports.means_since(T0_MS + 30_000),
            BTreeMap::from([
                (T0_MS, vec![(80, 6.0), (443, 200.0)]),
                (T0_MS + MINUTE_MS, vec![(443, 50.0)]),
            ])
        );
        assert_eq!(ports.means_since(T0_MS + MINUTE_MS).len(), 1);
        // Three minutes on, minute 0 is more than two minutes before the newest and is forgotten.
        ports.add(T0_MS + 3 * MINUTE_MS, [(443, 10)], keep_ms);
        assert_eq!(
            ports.means_since(0).keys().copied().collect::<Vec<_>>(),
            vec![T0_MS + MINUTE_MS, T0_MS + 3 * MINUTE_MS]
        );
    }

    #[test]
    fn issue_10_the_live_rule_sizes_connections_per_port_and_names_the_port() {
        // Zones a, b, c with one 16-core host each at 25 % (4 busy cores each: CPU after losing a zone
        // 12/32 = 37.5 %), each holding 800 connections on 443 with MaxConnections 1,000. Connections:
        // 2,400 of 3,000 now; losing a zone leaves 2,000: 120 % > 100 %. One host more does not help (the
        // zone holding it can be the one lost: 2,400/2,000 again); one in each of two zones does: 2,400 of
        // 3,000 after any zone loss, 80 %.
        let now_ms = T0_MS + 3_600_000;
        let mut hosts = [
            host("web-a", Some("a"), 16, 25.0, now_ms),
            host("web-b", Some("b"), 16, 25.0, now_ms),
            host("web-c", Some("c"), 16, 25.0, now_ms),
        ];
        for host in &mut hosts {
            for step in (0..90u64).rev() {
                host.ports
                    .add(now_ms - step * 10_000, [(443, 800), (22, 1)], DEFAULT_OVER_MS);
            }
        }
        let mut config = SizingConfig::default();
        config.defaults.max_connections.insert(443, 1_000);
        let unsafe_now = verdict(&hosts, &config, now_ms);
        assert!(unsafe_now.holds, "{unsafe_now:?}");
        assert!((unsafe_now.value.unwrap() - 120.0).abs() < 1e-9, "{unsafe_now:?}");
        assert!(
            unsafe_now
                .detail
                .starts_with("connections on port 443 would run at 120.0 % after losing"),
            "{}",
            unsafe_now.detail
        );
        assert!(
            unsafe_now.detail.ends_with(
                "hosts to add: 2 (+1 in a, +1 in b), or raise port 443's connection limit \
                 (sizing.max_connections)"
            ),
            "{}",
            unsafe_now.detail
        );
        // 500 each: 1,500 of 2,000 after a zone loss, 75 %: connections still bind (CPU's pressure is
        // 37.5/80), within their target, and nothing fires.
        for host in &mut hosts {
            host.ports = PortMinutes::default();
            for step in (0..90u64).rev() {
                host.ports
                    .add(now_ms - step * 10_000, [(443, 500)], DEFAULT_OVER_MS);
            }
        }
        let fine = verdict(&hosts, &config, now_ms);
        assert!(
            !fine.holds
                && fine
                    .detail
                    .starts_with("connections on port 443 would run at 75.0 %"),
            "{}",
            fine.detail
        );
    }

    /// Zones a, b, c with one 16-core host each (48 cores), ten complete days whose peaks rise by a core a
    /// day from 10, ending at midnight: the safe level is 80 % × 32/48, i.e. 25.6 cores, which the line (one
    /// core a day, at about 19 to 20 cores at the end of the window) crosses in about six days.
    fn rising_report() -> SizingReport {
        let end_ms = T0_MS + 10 * DAY_MS;
        let hosts = ["a", "b", "c"]
            .iter()
            .map(|zone| sizing::HostInput {
                name: format!("web-{zone}"),
                zone: Some(zone.to_string()),
                cores: 16.0,
                memory_bytes: 64e9,
                first_seen_ms: T0_MS,
                last_seen_ms: end_ms - MINUTE_MS,
                memory_used_peak_bytes: None,
            })
            .collect();
        let minutes = (0..10 * 1440u64)
            .map(|minute| MinuteSum {
                minute_start_ms: T0_MS + minute * MINUTE_MS,
                cpu_busy_cores: 10.0 + (minute / 1440) as f64,
                memory_used_bytes: 30e9,
                established_by_port: Vec::new(),
                hosts_reporting: 3,
            })
            .collect();
        sizing::size_fleet(
            &SizingInput {
                window_start_ms: T0_MS,
                window_end_ms: end_ms,
                groups: vec![sizing::GroupInput {
                    name: "web".into(),
                    hosts,
                    minutes,
                }],
            },
            &SizingConfig::default(),
        )
    }

    #[test]
    fn issue_10_the_forecast_variant_fires_within_its_days_only() {
        let report = rising_report();
        let digest = forecast_digest(&report, T0_MS);
        let web = &digest.groups["web"];
        let days = web.days_until_unsafe.unwrap();
        assert_eq!(days, report.ranking[0].days_until_unsafe);
        assert!((5.0..7.0).contains(&days), "{web:?}");
        assert!(web.detail.starts_with("cpu: between"), "{web:?}");
        let soon = forecast_verdict(Some(&digest), "web", 30.0, T0_MS);
        assert!(soon.holds);
        assert_eq!(soon.value, Some(days));
        assert!(soon.detail.ends_with("(alarm within 30 days)"), "{}", soon.detail);
        assert!(!forecast_verdict(Some(&digest), "web", 4.0, T0_MS).holds);
        assert!(!forecast_verdict(Some(&digest), "db", 30.0, T0_MS).holds);
        let none = forecast_verdict(None, "web", 30.0, T0_MS);
        assert!(!none.holds && none.detail.starts_with("no forecast yet"));
        // Kept while refreshes fail for up to three hours, then no longer acted on.
        assert!(forecast_verdict(Some(&digest), "web", 30.0, T0_MS + FORECAST_STALE_AFTER_MS).holds);
        let stale = forecast_verdict(Some(&digest), "web", 30.0, T0_MS + FORECAST_STALE_AFTER_MS + 1);
        assert!(
            !stale.holds && stale.detail.contains("too old to act on"),
            "{}",
            stale.detail
        );
    }
}
