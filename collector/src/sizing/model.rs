//! The sizing arithmetic for one group: peaks from per-minute group sums, utilisation after losing each
//! failure domain or the k largest hosts, the safe steady-state level, headroom, binding constraint, data
//! gaps and membership changes. See docs/SIZING.md for the formulas with worked examples.

use std::collections::BTreeMap;

use super::config::{Balance, GroupSizing, LittleLaw, MemoryMode, SizingConfig, ZoneLosses};
use super::forecast::{forecast, ForecastOutcome};
use super::planner::{load_factor, per_host_utilisation, within, Pool, PoolResource, RemovableHost, Spread};
use super::{
    DataGaps, Distribution, DomainSummary, GroupInput, GroupReport, GroupStatus, HostInput, HostShape,
    HostSpan, LittleFigures, LoadSource, LossCase, LossKind, MinuteSum, Placement, Resource, ResourceReport,
    SizingInput, SizingReport, DAY_MS, MINUTE_MS, SCHEMA_VERSION,
};

/// A host whose last sample is older than this at the end of the window has left the group; one that first
/// reported later than this after the window began has joined it. Ten minutes rides over a restart.
pub const PRESENCE_GRACE_MS: u64 = 10 * MINUTE_MS;

/// A day needs data in this many of its 1,440 minutes (95 %) to count as complete for the forecast.
const MIN_MINUTES_PER_DAY: usize = 1_368;

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
    /// How far back the trend looks.
    pub trend_window_ms: u64,
}

/// Sizes every group of `input` with the settings of `config`; groups come out sorted by name.
pub fn size_fleet(input: &SizingInput, config: &SizingConfig) -> SizingReport {
    let params = WindowParams {
        window_start_ms: input.window_start_ms,
        window_end_ms: input.window_end_ms,
        percentile: config.percentile,
        horizon_days: config.horizon.as_secs_f64() / 86_400.0,
        trend_window_ms: config.trend_window.as_millis() as u64,
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
        peak_statistic: super::config::peak_label(config.percentile),
        notes: Vec::new(),
        horizon_days: params.horizon_days,
        ranking: super::rank_groups(&groups),
        groups,
        scenarios: Vec::new(),
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
        placement: Vec::new(),
        added_host: None,
        memory: settings.memory,
        balance: settings.balance,
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
    report.memory = settings.memory;
    report.balance = settings.balance;

    if minutes.is_empty() {
        report.status = GroupStatus::NoData;
        report.notes.insert(
            0,
            if settings.little.is_some() {
                "no measured minutes in the window: Little's law alone does not show the group is safe, so \
                 nothing was sized"
                    .to_string()
            } else {
                "no load data in the window, so nothing could be sized".to_string()
            },
        );
        return report;
    }

    let layout = Layout::new(&present, &domains, settings, &minutes, params.percentile);
    if let Some(shape) = report.added_host.as_mut() {
        let mut ratios = layout.memory_ratios.clone();
        shape.memory_used_bytes =
            percentile_nearest_rank(&mut ratios, 50.0).unwrap_or(0.0) * shape.memory_bytes;
    }
    if layout.memory_estimated {
        report.notes.push(
            "per-host memory use is not known for every host: the group's memory peak is shared in \
             proportion to each host's memory"
                .to_string(),
        );
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

    let minute_starts_ms: Vec<u64> = minutes.iter().map(|row| row.minute_start_ms).collect();
    let mut spreads = Vec::new();
    for (resource, target, capacity) in resources {
        let series: Vec<f64> = minutes.iter().map(|row| load_of(row, resource)).collect();
        let little = settings
            .little
            .filter(|little| resource == Resource::Connections { port: little.port });
        let spread = layout.spread_of(resource, settings);
        let sized = size_resource(
            resource,
            target,
            &capacity,
            series,
            &minute_starts_ms,
            little,
            &layout,
            spread,
            params,
        );
        if let Some(little) = little {
            report.notes.push(format!(
                "{}: Little's law: {} requests/s × {} ms = {:.1} concurrent, plus the square-root staffing \
                 margin {} × √{:.1} = {:.1} connections; measured peak {}; {} binds",
                resource.label(),
                little.request_rate_per_s,
                little.latency_ms,
                little.concurrency(),
                little.beta,
                little.concurrency(),
                little.with_margin(),
                sized
                    .measured_peak
                    .map_or("none".to_string(), |peak| format!("{peak:.1}")),
                if sized.load_source == LoadSource::LittlesLaw {
                    "Little's law"
                } else {
                    "the measured peak"
                }
            ));
        }
        spreads.push(spread);
        report.resources.push(sized);
    }
    if let Some(memory) = report.resources.iter().find(|r| r.resource == Resource::Memory) {
        report.notes.push(memory_statement(settings, memory));
    }

    // The binding constraint presses hardest after its worst loss; equal pressures (all infinite in a single
    // domain) are ordered by utilisation now against the target.
    let binding = report
        .resources
        .iter()
        .map(|resource| {
            let worst_pressure = resource.pressure.unwrap_or(f64::INFINITY);
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

    let shape = report.added_host.clone().expect("hosts are present");
    let pool = Pool {
        resources: report
            .resources
            .iter()
            .zip(&spreads)
            .map(|(resource, &spread)| {
                let capacity = host_capacity(resource.resource, &present, settings);
                let ratios = layout.ratios_for(spread);
                let mut sorted_capacity = capacity.clone();
                sorted_capacity.sort_by(f64::total_cmp);
                PoolResource {
                    peak: resource.peak,
                    target: resource.target,
                    spread,
                    total: resource.capacity,
                    domain_capacity: domains
                        .iter()
                        .map(|domain| domain.hosts.iter().map(|&host| capacity[host]).sum())
                        .collect(),
                    domain_min: domains
                        .iter()
                        .map(|domain| {
                            domain
                                .hosts
                                .iter()
                                .map(|&host| capacity[host])
                                .fold(f64::INFINITY, f64::min)
                        })
                        .collect(),
                    domain_ratio_max: domains
                        .iter()
                        .map(|domain| domain.hosts.iter().map(|&host| ratios[host]).fold(0.0, f64::max))
                        .collect(),
                    sorted_capacity,
                }
            })
            .collect(),
        domain_is_zone: domains
            .iter()
            .map(|domain| domain.kind == LossKind::Zone)
            .collect(),
        domain_hosts: domains.iter().map(|domain| domain.hosts.len()).collect(),
        domain_lossable: layout.lossable.clone(),
        new_domains_lossable: settings.zone_losses == ZoneLosses::All,
        k: settings.k as usize,
        balance: settings.balance,
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
        .map(|resource| match resource.resource {
            Resource::Cpu => shape.cores,
            Resource::Memory => shape.memory_bytes,
            Resource::Connections { port } => settings.max_connections.get(&port).map_or(0.0, |&l| l.into()),
        })
        .collect();
    let plan = pool.hosts_to_add(&template);
    report.hosts_to_add = plan.as_ref().map(|(count, _)| *count);
    report.placement = plan
        .map(|(_, placed)| {
            placed
                .into_iter()
                .map(|(domain, hosts)| Placement {
                    zone: domain.map(|d| domains[d].name.clone()),
                    hosts,
                })
                .collect()
        })
        .unwrap_or_default();
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
        let over_now = report
            .resources
            .iter()
            .find(|r| r.spread == "per_host" && r.current_utilisation > r.target + 1e-9);
        let over_after = report
            .resources
            .iter()
            .find(|r| r.spread == "per_host" && !r.safe);
        report.notes.push(match (over_now, over_after) {
            (Some(memory), _) => format!(
                "{}: a host's own memory use ({}) is over the target now; added hosts do not lower it \
                 (per-host memory): give it more memory or move work off it",
                memory.worst.binding_hosts.first().cloned().unwrap_or_default(),
                percent_text(memory.current_utilisation)
            ),
            (None, Some(memory)) => format!(
                "memory (per host): {} stays over the target after the worst loss however many hosts are \
                 added, because losing a zone moves the same share of load: give the hosts more memory, \
                 lower memory_per_load if less memory follows the load, or add a zone",
                memory.worst.binding_hosts.first().cloned().unwrap_or_default()
            ),
            (None, None) => format!(
                "more than {} hosts would be needed; check the capacities and max_connections",
                super::planner::MAX_HOSTS_TO_ADD
            ),
        });
    }
    if report.status == GroupStatus::Safe {
        let hosts: Vec<RemovableHost> = domains
            .iter()
            .enumerate()
            .flat_map(|(d, domain)| domain.hosts.iter().map(move |&host| (d, host)))
            .map(|(d, host)| RemovableHost {
                domain: d,
                name: present[host].name.clone(),
                capacity: report
                    .resources
                    .iter()
                    .map(|resource| host_capacity(resource.resource, &present[host..=host], settings)[0])
                    .collect(),
                ratio: spreads
                    .iter()
                    .map(|&spread| layout.ratios_for(spread)[host])
                    .collect(),
            })
            .collect();
        report.removable_hosts = pool.removable(&hosts);
        if report.removable_hosts.len() >= super::planner::MAX_REMOVABLE {
            report.notes.push(format!(
                "at least {} hosts could be removed; only the first {} are listed",
                super::planner::MAX_REMOVABLE,
                super::planner::MAX_REMOVABLE
            ));
        }
    }
    report.days_to_safe_target = report
        .resources
        .iter()
        .filter_map(|resource| match resource.forecast.outcome {
            ForecastOutcome::Crosses { days, .. } => Some(days),
            ForecastOutcome::AlreadyOver => Some(0.0),
            _ => None,
        })
        .min_by(f64::total_cmp);
    report
}

fn percent_text(fraction: f64) -> String {
    format!("{:.1} %", fraction * 100.0)
}

/// Why the group is or is not memory-bound, in the words of its memory mode.
fn memory_statement(settings: &GroupSizing, memory: &ResourceReport) -> String {
    let verdict = if memory.safe {
        "not memory-bound"
    } else {
        "memory-bound"
    };
    match settings.memory {
        MemoryMode::PerHost => format!(
            "memory is sized per host (memory = \"per_host\"{}): each surviving host keeps its own use{}; the \
             fullest host is at {} now and {} after the worst loss, against {}: {verdict}",
            if settings.memory_per_load > 0.0 {
                format!(", memory_per_load = {}", settings.memory_per_load)
            } else {
                String::new()
            },
            if settings.memory_per_load > 0.0 {
                format!(
                    " and {:.0} % of it grows with the load it takes over",
                    settings.memory_per_load * 100.0
                )
            } else {
                ", which does not move to it".to_string()
            },
            percent_text(memory.current_utilisation),
            memory.worst.utilisation.map_or("nothing survives".to_string(), percent_text),
            percent_text(memory.target),
        ),
        MemoryMode::Shared => format!(
            "memory is shared (memory = \"shared\"): it moves to the survivors with the load, {} after the \
             worst loss against {}: {verdict}",
            memory.worst.utilisation.map_or("nothing survives".to_string(), percent_text),
            percent_text(memory.target),
        ),
    }
}

/// The present hosts and their domains, with what every resource's loss cases need.
struct Layout<'a> {
    hosts: &'a [&'a HostInput],
    domains: &'a [Domain],
    /// Used memory over physical memory per present host, at the peak statistic.
    memory_ratios: Vec<f64>,
    /// True when some host's memory use was estimated from the group sum.
    memory_estimated: bool,
    balance: Balance,
    k: usize,
    /// Per domain, whether its loss is sized (every domain, unless a scenario names one).
    lossable: Vec<bool>,
    /// Zeros, for resources without per-host ratios.
    zeros: Vec<f64>,
}

impl<'a> Layout<'a> {
    fn new(
        hosts: &'a [&'a HostInput],
        domains: &'a [Domain],
        settings: &GroupSizing,
        minutes: &[&MinuteSum],
        percentile: f64,
    ) -> Layout<'a> {
        let total_memory: f64 = hosts.iter().map(|host| host.memory_bytes).sum();
        let mut sums: Vec<f64> = minutes.iter().map(|row| row.memory_used_bytes).collect();
        let group_peak = percentile_nearest_rank(&mut sums, percentile).unwrap_or(0.0);
        let mut memory_estimated = false;
        let memory_ratios = hosts
            .iter()
            .map(|host| {
                if host.memory_bytes <= 0.0 {
                    return 0.0;
                }
                match host.memory_used_peak_bytes {
                    Some(used) => used / host.memory_bytes,
                    None => {
                        memory_estimated = true;
                        if total_memory > 0.0 {
                            group_peak / total_memory
                        } else {
                            0.0
                        }
                    }
                }
            })
            .collect();
        Layout {
            hosts,
            domains,
            memory_ratios,
            memory_estimated: memory_estimated && settings.memory == MemoryMode::PerHost,
            balance: settings.balance,
            k: settings.k as usize,
            lossable: domains
                .iter()
                .map(|domain| match &settings.zone_losses {
                    ZoneLosses::All => true,
                    ZoneLosses::Only(zone) => domain.kind == LossKind::Zone && &domain.name == zone,
                    ZoneLosses::None => false,
                })
                .collect(),
            zeros: vec![0.0; hosts.len()],
        }
    }

    fn spread_of(&self, resource: Resource, settings: &GroupSizing) -> Spread {
        let balanced = match self.balance {
            Balance::Capacity => Spread::Capacity,
            Balance::Equal => Spread::Equal,
        };
        match resource {
            Resource::Cpu => balanced,
            Resource::Memory => match settings.memory {
                MemoryMode::Shared => balanced,
                MemoryMode::PerHost => {
                    let mut ratios = self.memory_ratios.clone();
                    let template_ratio = percentile_nearest_rank(&mut ratios, 50.0).unwrap_or(0.0);
                    Spread::PerHost {
                        per_load: settings.memory_per_load,
                        template_ratio,
                    }
                }
            },
            // Every host has the same MaxConnections, so an equal share and a capacity share are the same.
            Resource::Connections { .. } => Spread::Capacity,
        }
    }

    fn ratios_for(&self, spread: Spread) -> &[f64] {
        match spread {
            Spread::PerHost { .. } => &self.memory_ratios,
            _ => &self.zeros,
        }
    }

    /// Share of the load's carriers a loss takes: by cores with capacity balance, by count with equal.
    fn lost_share(&self, lost: &[usize]) -> f64 {
        match self.balance {
            Balance::Capacity => {
                let total: f64 = self.hosts.iter().map(|host| host.cores).sum();
                if total <= 0.0 {
                    return 1.0;
                }
                lost.iter().map(|&host| self.hosts[host].cores).sum::<f64>() / total
            }
            Balance::Equal => lost.len() as f64 / self.hosts.len().max(1) as f64,
        }
    }

    /// The k largest hosts by `capacity` (ties to the earlier name).
    fn largest(&self, capacity: &[f64]) -> Vec<usize> {
        let mut by_size: Vec<usize> = (0..capacity.len()).collect();
        by_size.sort_by(|&a, &b| capacity[b].total_cmp(&capacity[a]).then(a.cmp(&b)));
        by_size.truncate(self.k);
        by_size
    }
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

/// Most binding hosts a loss case names.
const BINDING_HOSTS_LISTED: usize = 10;

/// Utilisation of the most loaded host among `survivors` (host indexes) and which hosts those are.
fn most_loaded(
    layout: &Layout,
    spread: Spread,
    peak: f64,
    capacity: &[f64],
    survivors: &[usize],
    factor: f64,
) -> (Option<f64>, Vec<String>) {
    if survivors.is_empty() {
        return (None, Vec::new());
    }
    let name = |host: usize| layout.hosts[host].name.clone();
    match spread {
        Spread::Capacity => {
            let total: f64 = survivors.iter().map(|&host| capacity[host]).sum();
            ((total > 1e-9).then(|| peak / total), Vec::new())
        }
        Spread::Equal => {
            let smallest = survivors
                .iter()
                .map(|&host| capacity[host])
                .fold(f64::INFINITY, f64::min);
            if smallest <= 1e-9 {
                return (None, Vec::new());
            }
            let binding = survivors
                .iter()
                .filter(|&&host| capacity[host] <= smallest)
                .take(BINDING_HOSTS_LISTED)
                .map(|&host| name(host))
                .collect();
            (Some(peak / survivors.len() as f64 / smallest), binding)
        }
        Spread::PerHost { per_load, .. } => {
            let ratios = &layout.memory_ratios;
            let fullest = survivors
                .iter()
                .copied()
                .max_by(|&a, &b| ratios[a].total_cmp(&ratios[b]).then(b.cmp(&a)))
                .expect("survivors");
            (
                Some(per_host_utilisation(ratios[fullest], per_load, factor)),
                vec![name(fullest)],
            )
        }
    }
}

/// The figures for one resource: peak, every loss case, the worst, the safe level, distribution, forecast.
#[allow(clippy::too_many_arguments)]
fn size_resource(
    resource: Resource,
    target: f64,
    host_capacity: &[f64],
    series: Vec<f64>,
    minute_starts_ms: &[u64],
    little: Option<LittleLaw>,
    layout: &Layout,
    spread: Spread,
    params: &WindowParams,
) -> ResourceReport {
    let capacity: f64 = host_capacity.iter().sum();
    let mut sorted = series.clone();
    let measured_peak = percentile_nearest_rank(&mut sorted, params.percentile);
    let peak_minute_ms = measured_peak.and_then(|peak| {
        series
            .iter()
            .zip(minute_starts_ms)
            .filter(|(load, _)| **load == peak)
            .map(|(_, start)| *start)
            .min()
    });
    // Little's law never hides a measured number: the larger of the two is the load.
    let little_load = little.map(|little| little.with_margin());
    let (peak, load_source) = match (measured_peak, little_load) {
        (Some(measured), Some(configured)) if configured > measured => (configured, LoadSource::LittlesLaw),
        (None, Some(configured)) => (configured, LoadSource::LittlesLaw),
        (measured, _) => (measured.unwrap_or(0.0), LoadSource::Measured),
    };
    let all: Vec<usize> = (0..layout.hosts.len()).collect();
    let case = |kind: LossKind, name: String, lost: &[usize], domain_loss: bool| {
        let lost_capacity: f64 = lost.iter().map(|&host| host_capacity[host]).sum();
        let factor = load_factor(layout.lost_share(lost));
        let survivors: Vec<usize> = all.iter().copied().filter(|host| !lost.contains(host)).collect();
        let (utilisation, binding_hosts) = match spread {
            // N+k with an equal share: N − k hosts carry the load, and any k others may be the ones that
            // fail, so the smallest host of all may be among the survivors.
            Spread::Equal if !domain_loss && !survivors.is_empty() => {
                let smallest = host_capacity.iter().copied().fold(f64::INFINITY, f64::min);
                let binding = all
                    .iter()
                    .filter(|&&host| host_capacity[host] <= smallest)
                    .take(BINDING_HOSTS_LISTED)
                    .map(|&host| layout.hosts[host].name.clone())
                    .collect();
                (
                    (smallest > 1e-9).then(|| peak / survivors.len() as f64 / smallest),
                    binding,
                )
            }
            // Likewise the fullest host of all may survive k others.
            Spread::PerHost { .. } if !domain_loss && !survivors.is_empty() => {
                most_loaded(layout, spread, peak, host_capacity, &all, factor)
            }
            _ => most_loaded(layout, spread, peak, host_capacity, &survivors, factor),
        };
        LossCase {
            kind,
            name,
            lost_capacity,
            survivor_capacity: capacity - lost_capacity,
            utilisation,
            binding_hosts,
        }
    };
    let domain_losses: Vec<LossCase> = layout
        .domains
        .iter()
        .zip(&layout.lossable)
        .filter(|(_, lossable)| **lossable)
        .map(|(domain, _)| case(domain.kind, domain.name.clone(), &domain.hosts, true))
        .collect();
    // The k largest hosts: by this resource, or by cores for per-host memory (the load they drop moves).
    let cores: Vec<f64> = layout.hosts.iter().map(|host| host.cores).collect();
    let largest = match spread {
        Spread::PerHost { .. } => layout.largest(&cores),
        _ => layout.largest(host_capacity),
    };
    let largest_names = largest
        .iter()
        .map(|&host| layout.hosts[host].name.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let host_loss = case(LossKind::LargestHosts, largest_names, &largest, false);
    // Without any loss (a scenario that names a zone the group does not have, and no hosts), the worst
    // case is losing nothing.
    // The worst case leaves the most loaded survivor; among equals the one losing more capacity, a domain
    // over the host case, and the first domain.
    let severity = |loss: &LossCase| loss.utilisation.unwrap_or(f64::INFINITY);
    let mut worst = host_loss.clone();
    for loss in &domain_losses {
        let (a, b) = (severity(loss), severity(&worst));
        let tie = (a - b).abs() <= 1e-12 || (a.is_infinite() && b.is_infinite());
        let more = loss.lost_capacity > worst.lost_capacity + 1e-9;
        let at_least = loss.lost_capacity + 1e-9 >= worst.lost_capacity;
        if (!tie && a > b) || (tie && (more || (at_least && worst.kind == LossKind::LargestHosts))) {
            worst = loss.clone();
        }
    }
    let (now, now_hosts) = most_loaded(layout, spread, peak, host_capacity, &all, 1.0);
    let current_utilisation = now.unwrap_or(0.0);
    // The highest utilisation now that keeps the worst case at the target; the worst case scales with the
    // load, so it is the target times now over after.
    let safe_steady_state = match worst.utilisation {
        None => 0.0,
        Some(after) if after > 1e-12 && current_utilisation > 1e-12 => target * current_utilisation / after,
        Some(_) => match spread {
            Spread::Capacity if capacity > 0.0 => target * worst.survivor_capacity.max(0.0) / capacity,
            Spread::PerHost { per_load, .. } => {
                target / per_host_utilisation(1.0, per_load, load_factor(layout.lost_share(&[])))
            }
            _ => target,
        },
    };
    let safe = match worst.utilisation {
        None => peak <= 0.0,
        Some(after) => within(after / target),
    };
    // How far the load can grow before the worst case reaches the target, as peak over that load. For
    // per-host memory only the share that follows load grows: with ratio r and share m, the worst case is
    // r(1 − m) + (grows with load), so the pressure is (after − r(1 − m)) / (target − r(1 − m)).
    let pressure = match (worst.utilisation, spread) {
        (None, _) => (peak <= 0.0).then_some(0.0),
        (Some(_), _) if peak <= 0.0 && !matches!(spread, Spread::PerHost { .. }) => Some(0.0),
        (Some(after), Spread::PerHost { per_load, .. }) => {
            let fixed = current_utilisation * (1.0 - per_load);
            if target > fixed + 1e-12 {
                Some(((after - fixed) / (target - fixed)).max(0.0))
            } else if after <= target + 1e-9 {
                Some(1.0)
            } else {
                None
            }
        }
        (Some(after), _) => Some(after / target),
    };
    // Load units per point of utilisation now: capacity, or the equal-share capacity of the smallest host.
    let load_per_utilisation = if current_utilisation > 1e-12 {
        peak / current_utilisation
    } else {
        capacity
    };
    let _ = now_hosts;
    let distribution = (!series.is_empty() && load_per_utilisation > 0.0)
        .then(|| distribution(&series, load_per_utilisation));
    let forecast = forecast(
        &daily_peaks(&series, minute_starts_ms, load_per_utilisation, params),
        params.window_end_ms as f64 / DAY_MS as f64,
        safe_steady_state,
        params.horizon_days,
    );
    ResourceReport {
        resource,
        unit: resource.unit(),
        load_source,
        spread: match spread {
            Spread::Capacity => "capacity",
            Spread::Equal => "equal",
            Spread::PerHost { .. } => "per_host",
        },
        peak_minute_ms,
        littles_law: little.map(|little| LittleFigures {
            mean_concurrency: little.concurrency(),
            beta: little.beta,
            with_margin: little.with_margin(),
        }),
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
        headroom_load: (safe_steady_state - current_utilisation) * load_per_utilisation,
        safe,
        pressure,
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
    HostShape {
        cores,
        memory_bytes,
        memory_used_bytes: 0.0,
    }
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

/// The peak of each complete UTC day in the trend window, as utilisation: (day number, peak). A day counts
/// when it lies wholly inside the window and has data in at least [`MIN_MINUTES_PER_DAY`] of its minutes,
/// so the answer does not depend on the time of day a report runs and no partial day is placed after "now".
fn daily_peaks(
    series: &[f64],
    minute_starts_ms: &[u64],
    load_per_utilisation: f64,
    params: &WindowParams,
) -> Vec<(u64, f64)> {
    if load_per_utilisation <= 0.0 {
        return Vec::new();
    }
    let trend_from_ms = params
        .window_end_ms
        .saturating_sub(params.trend_window_ms)
        .max(params.window_start_ms);
    let mut days: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for (load, start) in series.iter().zip(minute_starts_ms) {
        days.entry(start / DAY_MS).or_default().push(*load);
    }
    days.into_iter()
        .filter(|(day, loads)| {
            loads.len() >= MIN_MINUTES_PER_DAY
                && day * DAY_MS >= trend_from_ms
                && (day + 1) * DAY_MS <= params.window_end_ms
        })
        .filter_map(|(day, mut loads)| {
            let peak = percentile_nearest_rank(&mut loads, params.percentile)?;
            Some((day, peak / load_per_utilisation))
        })
        .collect()
}
