//! The sizing arithmetic for one group: peaks from per-minute group sums, utilisation after losing each
//! failure domain or the k largest hosts, the safe steady-state level, headroom, binding constraint, data
//! gaps and membership changes. See docs/SIZING.md for the formulas with worked examples.

use std::collections::BTreeMap;

use super::config::{GroupSizing, MemoryMode, SizingConfig, ZoneLosses};
use super::forecast::ForecastOutcome;
use super::gaps::data_gaps;
use super::planner::{Pool, PoolResource, RemovableHost};
use super::resource::{host_capacity, load_of, percentile_nearest_rank, size_resource, Domain, Layout};
use super::{
    DomainSummary, GroupInput, GroupReport, GroupStatus, HostInput, HostShape, HostSpan, LoadSource,
    LossKind, MinuteSum, Placement, Resource, ResourceReport, SizingInput, SizingReport, WindowParams,
    MINUTE_MS, SCHEMA_VERSION,
};

/// A host whose last sample is older than this at the end of the window has left the group; one that first
/// reported later than this after the window began has joined it. Ten minutes rides over a restart.
pub const PRESENCE_GRACE_MS: u64 = 10 * MINUTE_MS;

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
