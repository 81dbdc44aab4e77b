//! The sizing arithmetic for one group: peaks from per-minute group sums, utilisation after losing each
//! failure domain or the k largest hosts, the safe steady-state level, headroom, binding constraint, data
//! gaps and membership changes. See docs/SIZING.md for the formulas with worked examples.

use std::collections::BTreeMap;

use super::config::{GroupSizing, SizingConfig};
use super::forecast::{forecast, Forecast, ForecastOutcome};
use super::planner::{pressure, within, Pool, PoolResource};
use super::{
    DataGaps, Distribution, DomainSummary, GroupInput, GroupReport, GroupStatus, HostInput, HostShape,
    HostSpan, LoadSource, LossCase, LossKind, MinuteSum, Resource, ResourceReport, SizingInput, SizingReport,
    DAY_MS, MINUTE_MS, SCHEMA_VERSION,
};

/// A host whose last sample is older than this at the end of the window has left the group; one that first
/// reported later than this after the window began has joined it. Ten minutes rides over a restart.
pub const PRESENCE_GRACE_MS: u64 = 10 * MINUTE_MS;

/// A day needs this many minutes of data to yield a daily peak for the forecast.
const MIN_MINUTES_PER_DAY: usize = 60;

/// Window and peak settings shared by every group of a report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowParams {
    /// First millisecond of the window.
    pub window_start_ms: u64,
    /// End of the window, exclusive: "now".
    pub window_end_ms: u64,
    /// Percentile of per-minute sums that is the peak.
    pub percentile: f64,
    /// Forecast horizon.
    pub horizon_days: f64,
}

/// Sizes every group of `input` with the settings of `config`; groups come out sorted by name.
pub fn size_fleet(input: &SizingInput, config: &SizingConfig) -> SizingReport {
    let params = WindowParams {
        window_start_ms: input.window_start_ms,
        window_end_ms: input.window_end_ms,
        percentile: config.percentile,
        horizon_days: config.horizon.as_secs_f64() / 86_400.0,
    };
    let mut groups: Vec<GroupReport> = input
        .groups
        .iter()
        .map(|group| size_group(group, config.for_group(&group.name), &params))
        .collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    SizingReport {
        schema_version: SCHEMA_VERSION,
        window_start_ms: input.window_start_ms,
        window_end_ms: input.window_end_ms,
        percentile: config.percentile,
        horizon_days: params.horizon_days,
        groups,
    }
}

/// The nearest-rank percentile ([`headroom_common::percentile`]) with `percentile` in 0..=100: the smallest
/// value with at least `percentile` % of values at or below it. Reorders `values`; `None` when empty.
pub fn percentile_nearest_rank(values: &mut [f64], percentile: f64) -> Option<f64> {
    headroom_common::percentile::nearest_rank(values, (percentile / 100.0).clamp(0.0, 1.0))
}

/// A failure domain while it is being built: its label and the present hosts in it.
struct Domain {
    name: String,
    kind: LossKind,
    hosts: Vec<usize>,
}

/// Sizes one group.
pub fn size_group(group: &GroupInput, settings: &GroupSizing, params: &WindowParams) -> GroupReport {
    let span = |host: &HostInput| HostSpan {
        name: host.name.clone(),
        first_seen_ms: host.first_seen_ms,
        last_seen_ms: host.last_seen_ms,
    };
    let is_present = |host: &HostInput| host.last_seen_ms + PRESENCE_GRACE_MS >= params.window_end_ms;
    let mut present: Vec<&HostInput> = group.hosts.iter().filter(|host| is_present(host)).collect();
    present.sort_by(|a, b| a.name.cmp(&b.name));
    let mut left: Vec<HostSpan> = group
        .hosts
        .iter()
        .filter(|host| !is_present(host))
        .map(span)
        .collect();
    left.sort_by(|a, b| a.name.cmp(&b.name));
    let mut joined: Vec<HostSpan> = group
        .hosts
        .iter()
        .filter(|host| host.first_seen_ms > params.window_start_ms + PRESENCE_GRACE_MS)
        .map(span)
        .collect();
    joined.sort_by(|a, b| a.name.cmp(&b.name));
    let minutes: Vec<&MinuteSum> = group
        .minutes
        .iter()
        .filter(|row| (params.window_start_ms..params.window_end_ms).contains(&row.minute_start_ms))
        .collect();
    let gaps = data_gaps(&group.hosts, &minutes, params);

    let mut notes = Vec::new();
    if !joined.is_empty() {
        notes.push(format!(
            "{} joined during the window ({}); minutes before they joined count only the hosts there then",
            hosts_phrase(joined.len()),
            names(&joined)
        ));
    }
    if !left.is_empty() {
        notes.push(format!(
            "{} left during the window ({}); their capacity is not counted, the load they carried is",
            hosts_phrase(left.len()),
            names(&left)
        ));
    }
    if gaps.missing_minutes > 0 {
        notes.push(format!(
            "{} of {} minutes have no data",
            gaps.missing_minutes, gaps.expected_minutes
        ));
    }
    if gaps.partial_minutes > 0 {
        notes.push(format!(
            "{} minutes had fewer hosts reporting than were in the group; their sums are low, so the peak \
             may be understated",
            gaps.partial_minutes
        ));
    }

    let mut report = GroupReport {
        name: group.name.clone(),
        status: GroupStatus::Empty,
        hosts: present.len() as u32,
        domains: Vec::new(),
        k: settings.k,
        resources: Vec::new(),
        binding: None,
        worst_case: None,
        hosts_to_add: None,
        removable_hosts: Vec::new(),
        added_host: None,
        days_to_safe_target: None,
        joined,
        left,
        gaps,
        notes,
    };
    if present.is_empty() {
        report.notes.insert(
            0,
            "no host of the group is reporting at the end of the window".to_string(),
        );
        return report;
    }

    // Failure domains: zones by name, then every unzoned host on its own.
    let mut zones: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut domains = Vec::new();
    for (index, host) in present.iter().enumerate() {
        match host.zone.as_deref() {
            Some(zone) => zones.entry(zone).or_default().push(index),
            None => domains.push(Domain {
                name: host.name.clone(),
                kind: LossKind::Host,
                hosts: vec![index],
            }),
        }
    }
    let mut zone_domains: Vec<Domain> = zones
        .into_iter()
        .map(|(name, hosts)| Domain {
            name: name.to_string(),
            kind: LossKind::Zone,
            hosts,
        })
        .collect();
    zone_domains.append(&mut domains);
    let domains = zone_domains;
    report.domains = domains
        .iter()
        .map(|domain| DomainSummary {
            name: domain.name.clone(),
            kind: domain.kind,
            hosts: domain.hosts.len() as u32,
        })
        .collect();
    report.added_host = Some(median_host(&present));

    if minutes.is_empty() && settings.little.is_none() {
        report.status = GroupStatus::NoData;
        report.notes.insert(
            0,
            "no load data in the window, so nothing could be sized".to_string(),
        );
        return report;
    }

    // The resources to size and each host's capacity of it.
    let mut resources: Vec<(Resource, f64, Vec<f64>)> = vec![
        (
            Resource::Cpu,
            settings.targets.cpu,
            present.iter().map(|host| host.cores).collect(),
        ),
        (
            Resource::Memory,
            settings.targets.memory,
            present.iter().map(|host| host.memory_bytes).collect(),
        ),
    ];
    for (&port, &limit) in &settings.max_connections {
        resources.push((
            Resource::Connections { port },
            settings.targets.connections,
            vec![f64::from(limit); present.len()],
        ));
    }
    let mut unsized_ports: Vec<u16> = minutes
        .iter()
        .flat_map(|row| row.established_by_port.iter().map(|(port, _)| *port))
        .filter(|port| !settings.max_connections.contains_key(port))
        .collect();
    unsized_ports.sort_unstable();
    unsized_ports.dedup();
    if !unsized_ports.is_empty() {
        let ports: Vec<String> = unsized_ports.iter().map(u16::to_string).collect();
        report.notes.push(format!(
            "connections on port {} are measured but not sized: set max_connections for the port in [sizing]",
            ports.join(", ")
        ));
    }

    let host_names: Vec<&str> = present.iter().map(|host| host.name.as_str()).collect();
    let minute_starts_ms: Vec<u64> = minutes.iter().map(|row| row.minute_start_ms).collect();
    for (resource, target, capacity) in resources {
        let series: Vec<f64> = minutes.iter().map(|row| load_of(row, resource)).collect();
        let little = settings
            .little
            .filter(|little| resource == Resource::Connections { port: little.port });
        let sized = size_resource(
            resource,
            target,
            &capacity,
            &host_names,
            series,
            &minute_starts_ms,
            little.map(|little| little.concurrency()),
            &domains,
            settings.k,
            params,
        );
        if let Some(little) = little {
            report.notes.push(format!(
                "{}: load from Little's law: {} requests/s × {} ms = {} concurrent connections{}",
                resource.label(),
                little.request_rate_per_s,
                little.latency_ms,
                little.concurrency(),
                sized
                    .measured_peak
                    .map(|peak| format!(" (measured peak {peak})"))
                    .unwrap_or_default()
            ));
        }
        report.resources.push(sized);
    }

    // The binding constraint presses hardest after its worst loss; equal pressures (all infinite in a single
    // domain) are ordered by utilisation now against the target.
    let binding = report
        .resources
        .iter()
        .map(|resource| {
            let worst_pressure = pressure(resource.peak, resource.target, resource.worst.survivor_capacity);
            (
                resource,
                worst_pressure,
                resource.current_utilisation / resource.target,
            )
        })
        .max_by(|a, b| a.1.total_cmp(&b.1).then(a.2.total_cmp(&b.2)));
    if let Some((resource, _, _)) = binding {
        report.binding = Some(resource.resource);
        report.worst_case = Some(resource.worst.clone());
    }

    let pool = Pool {
        resources: report
            .resources
            .iter()
            .map(|resource| {
                let capacity = host_capacity(resource.resource, &present, settings);
                let mut sorted_capacity = capacity.clone();
                sorted_capacity.sort_by(f64::total_cmp);
                PoolResource {
                    peak: resource.peak,
                    target: resource.target,
                    total: resource.capacity,
                    domain_capacity: domains
                        .iter()
                        .map(|domain| domain.hosts.iter().map(|&host| capacity[host]).sum())
                        .collect(),
                    sorted_capacity,
                }
            })
            .collect(),
        domain_is_zone: domains
            .iter()
            .map(|domain| domain.kind == LossKind::Zone)
            .collect(),
        k: settings.k as usize,
    };
    let all_safe = report.resources.iter().all(|resource| resource.safe);
    report.status = if domains.len() == 1 {
        GroupStatus::SingleDomain
    } else if all_safe {
        GroupStatus::Safe
    } else {
        GroupStatus::Unsafe
    };
    let template: Vec<f64> = report
        .resources
        .iter()
        .map(|resource| {
            let shape = report.added_host.as_ref().expect("hosts are present");
            match resource.resource {
                Resource::Cpu => shape.cores,
                Resource::Memory => shape.memory_bytes,
                Resource::Connections { port } => {
                    settings.max_connections.get(&port).map_or(0.0, |&l| l.into())
                }
            }
        })
        .collect();
    report.hosts_to_add = pool.hosts_to_add(&template);
    if report.status == GroupStatus::SingleDomain {
        let only = &domains[0];
        report.notes.insert(
            0,
            match only.kind {
                LossKind::Zone => format!(
                    "cannot survive a zone loss: all {} in zone \"{}\"; add hosts in a second zone",
                    hosts_phrase(only.hosts.len()),
                    only.name
                ),
                _ => format!(
                    "cannot survive a host loss: \"{}\" is the only host; add hosts",
                    only.name
                ),
            },
        );
    } else if report.hosts_to_add.is_none() {
        report.notes.push(format!(
            "more than {} hosts would be needed; check the capacities and max_connections",
            super::planner::MAX_HOSTS_TO_ADD
        ));
    }
    if report.status == GroupStatus::Safe {
        let hosts: Vec<(usize, String, Vec<f64>)> = domains
            .iter()
            .enumerate()
            .flat_map(|(d, domain)| domain.hosts.iter().map(move |&host| (d, host)))
            .map(|(d, host)| {
                let capacity = report
                    .resources
                    .iter()
                    .map(|resource| host_capacity(resource.resource, &present[host..=host], settings)[0])
                    .collect();
                (d, present[host].name.clone(), capacity)
            })
            .collect();
        report.removable_hosts = pool.removable(&hosts);
    }
    report.days_to_safe_target = report
        .resources
        .iter()
        .filter_map(|resource| match resource.forecast.outcome {
            ForecastOutcome::Crosses { days } => Some(days),
            ForecastOutcome::AlreadyOver => Some(0.0),
            _ => None,
        })
        .min_by(f64::total_cmp);
    report
}

fn host_capacity(resource: Resource, hosts: &[&HostInput], settings: &GroupSizing) -> Vec<f64> {
    match resource {
        Resource::Cpu => hosts.iter().map(|host| host.cores).collect(),
        Resource::Memory => hosts.iter().map(|host| host.memory_bytes).collect(),
        Resource::Connections { port } => {
            let limit = settings
                .max_connections
                .get(&port)
                .map_or(0.0, |&limit| f64::from(limit));
            vec![limit; hosts.len()]
        }
    }
}

fn load_of(row: &MinuteSum, resource: Resource) -> f64 {
    match resource {
        Resource::Cpu => row.cpu_busy_cores,
        Resource::Memory => row.memory_used_bytes,
        Resource::Connections { port } => row
            .established_by_port
            .iter()
            .filter(|(p, _)| *p == port)
            .map(|(_, count)| count)
            .sum(),
    }
}

/// The figures for one resource: peak, every loss case, the worst, the safe level, distribution, forecast.
#[allow(clippy::too_many_arguments)]
fn size_resource(
    resource: Resource,
    target: f64,
    host_capacity: &[f64],
    host_names: &[&str],
    series: Vec<f64>,
    minute_starts_ms: &[u64],
    configured_peak: Option<f64>,
    domains: &[Domain],
    k: u32,
    params: &WindowParams,
) -> ResourceReport {
    let capacity: f64 = host_capacity.iter().sum();
    let mut sorted = series.clone();
    let measured_peak = percentile_nearest_rank(&mut sorted, params.percentile);
    let peak = configured_peak.or(measured_peak).unwrap_or(0.0);
    let case = |kind: LossKind, name: String, lost_capacity: f64| {
        let survivor_capacity = capacity - lost_capacity;
        LossCase {
            kind,
            name,
            lost_capacity,
            survivor_capacity,
            utilisation: (survivor_capacity > 1e-9).then(|| peak / survivor_capacity),
        }
    };
    let domain_losses: Vec<LossCase> = domains
        .iter()
        .map(|domain| {
            let lost = domain.hosts.iter().map(|&host| host_capacity[host]).sum();
            case(domain.kind, domain.name.clone(), lost)
        })
        .collect();
    // The k largest hosts by this resource; ties go to the earlier name, so the report is stable.
    let mut by_size: Vec<usize> = (0..host_capacity.len()).collect();
    by_size.sort_by(|&a, &b| host_capacity[b].total_cmp(&host_capacity[a]).then(a.cmp(&b)));
    let largest: Vec<usize> = by_size.into_iter().take(k as usize).collect();
    let largest_names = largest
        .iter()
        .map(|&host| host_names[host])
        .collect::<Vec<_>>()
        .join(",");
    let host_loss = case(
        LossKind::LargestHosts,
        largest_names,
        largest.iter().map(|&host| host_capacity[host]).sum(),
    );
    // The worst case loses the most capacity; a domain wins a tie with the host case, and the first domain
    // wins among equal domains.
    let mut worst = host_loss.clone();
    for loss in &domain_losses {
        let at_least = loss.lost_capacity + 1e-9 >= worst.lost_capacity;
        let more = loss.lost_capacity > worst.lost_capacity + 1e-9;
        if (at_least && worst.kind == LossKind::LargestHosts) || more {
            worst = loss.clone();
        }
    }
    let current_utilisation = if capacity > 0.0 { peak / capacity } else { 0.0 };
    let safe_steady_state = if capacity > 0.0 {
        target * worst.survivor_capacity.max(0.0) / capacity
    } else {
        0.0
    };
    let safe = within(pressure(peak, target, worst.survivor_capacity));
    let distribution = (!series.is_empty() && capacity > 0.0).then(|| distribution(&series, capacity));
    let forecast = if configured_peak.is_some() {
        Forecast {
            daily_peaks: Vec::new(),
            trend: None,
            outcome: ForecastOutcome::NotMeasured,
        }
    } else {
        forecast(
            daily_peaks(&series, minute_starts_ms, capacity, params),
            safe_steady_state,
            params.horizon_days,
        )
    };
    ResourceReport {
        resource,
        unit: resource.unit(),
        load_source: if configured_peak.is_some() {
            LoadSource::LittlesLaw
        } else {
            LoadSource::Measured
        },
        capacity,
        peak,
        measured_peak,
        target,
        current_utilisation,
        domain_losses,
        host_loss,
        worst,
        safe_steady_state,
        headroom: safe_steady_state - current_utilisation,
        headroom_load: safe_steady_state * capacity - peak,
        safe,
        distribution,
        forecast,
    }
}

fn hosts_phrase(count: usize) -> String {
    if count == 1 {
        "1 host".to_string()
    } else {
        format!("{count} hosts")
    }
}

/// Up to ten names, then how many more.
fn names(spans: &[HostSpan]) -> String {
    let mut text: Vec<&str> = spans.iter().take(10).map(|span| span.name.as_str()).collect();
    let more = spans.len().saturating_sub(10);
    let more_text = format!("and {more} more");
    if more > 0 {
        text.push(&more_text);
    }
    text.join(", ")
}

/// The lower median host by cores, then memory: the shape the group is mostly made of.
fn median_host(hosts: &[&HostInput]) -> HostShape {
    let mut shapes: Vec<(f64, f64)> = hosts.iter().map(|host| (host.cores, host.memory_bytes)).collect();
    shapes.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let (cores, memory_bytes) = shapes[(shapes.len() - 1) / 2];
    HostShape { cores, memory_bytes }
}

/// Missing minutes (no row at all) and partial ones (fewer hosts reporting than were in the group then).
fn data_gaps(hosts: &[HostInput], minutes: &[&MinuteSum], params: &WindowParams) -> DataGaps {
    let start = params.window_start_ms;
    let expected = params.window_end_ms.saturating_sub(start).div_ceil(MINUTE_MS) as usize;
    let index = |ms: u64| (ms.saturating_sub(start) / MINUTE_MS) as usize;
    // Hosts in the group per minute, from each host's first and last sample (a difference array).
    let mut change = vec![0i64; expected + 1];
    for host in hosts {
        let first = index(host.first_seen_ms.max(start)).min(expected);
        let last = index(host.last_seen_ms).min(expected.saturating_sub(1));
        if host.last_seen_ms >= start && first <= last {
            change[first] += 1;
            change[last + 1] -= 1;
        }
    }
    let mut in_group = Vec::with_capacity(expected);
    let mut running = 0i64;
    for delta in &change[..expected] {
        running += delta;
        in_group.push(running);
    }
    let mut seen = vec![false; expected];
    let mut partial_minutes = 0;
    for row in minutes {
        let at = index(row.minute_start_ms);
        if at < expected && !seen[at] {
            seen[at] = true;
            if i64::from(row.hosts_reporting) < in_group[at] {
                partial_minutes += 1;
            }
        }
    }
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut run_start = None;
    for (at, present) in seen.iter().chain(std::iter::once(&true)).enumerate() {
        match (present, run_start) {
            (false, None) => run_start = Some(at),
            (true, Some(from)) => {
                runs.push((start + from as u64 * MINUTE_MS, start + at as u64 * MINUTE_MS));
                run_start = None;
            }
            _ => {}
        }
    }
    let missing_minutes = seen.iter().filter(|present| !**present).count() as u64;
    runs.sort_by(|a, b| (b.1 - b.0).cmp(&(a.1 - a.0)).then(a.0.cmp(&b.0)));
    runs.truncate(5);
    DataGaps {
        expected_minutes: expected as u64,
        missing_minutes,
        partial_minutes,
        longest_gaps: runs,
    }
}

/// Per-minute utilisation: quantiles and a 5 %-bin histogram.
fn distribution(series: &[f64], capacity: f64) -> Distribution {
    let mut utilisation: Vec<f64> = series.iter().map(|load| load / capacity).collect();
    let mut histogram = vec![0u64; 20];
    for value in &utilisation {
        let bin = ((value * 20.0).floor().max(0.0) as usize).min(19);
        histogram[bin] += 1;
    }
    let mut quantile = |p: f64| percentile_nearest_rank(&mut utilisation, p).unwrap_or(0.0);
    Distribution {
        minutes: series.len() as u64,
        p50: quantile(50.0),
        p90: quantile(90.0),
        p99: quantile(99.0),
        max: quantile(100.0),
        histogram,
    }
}

/// The peak of each UTC day with enough data, as utilisation, placed at the day's midpoint in days from
/// the window's end.
fn daily_peaks(
    series: &[f64],
    minute_starts_ms: &[u64],
    capacity: f64,
    params: &WindowParams,
) -> Vec<(f64, f64)> {
    if capacity <= 0.0 {
        return Vec::new();
    }
    let mut days: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for (load, start) in series.iter().zip(minute_starts_ms) {
        days.entry(start / DAY_MS).or_default().push(*load);
    }
    days.into_iter()
        .filter(|(_, loads)| loads.len() >= MIN_MINUTES_PER_DAY)
        .filter_map(|(day, mut loads)| {
            let peak = percentile_nearest_rank(&mut loads, params.percentile)?;
            let midpoint_ms = (day * DAY_MS + DAY_MS / 2) as f64;
            Some((
                (midpoint_ms - params.window_end_ms as f64) / DAY_MS as f64,
                peak / capacity,
            ))
        })
        .collect()
}
