//! One resource of one group (CPU, memory or a port's connections): its peak, every loss case, the
//! worst, the safe steady-state level, the per-minute distribution and the forecast.

use std::collections::BTreeMap;

use super::config::{Balance, GroupSizing, LittleLaw, MemoryMode, ZoneLosses};
use super::forecast::forecast;
use super::planner::{load_factor, per_host_utilisation, within, Spread};
use super::WindowParams;
use super::{
    Distribution, HostInput, LittleFigures, LoadSource, LossCase, LossKind, MinuteSum, Resource,
    ResourceReport, DAY_MS,
};

/// The nearest-rank percentile ([`headroom_common::percentile`]) with `percentile` in 0..=100: the smallest
/// value with at least `percentile` % of values at or below it. Reorders `values`; `None` when empty.
pub fn percentile_nearest_rank(values: &mut [f64], percentile: f64) -> Option<f64> {
    headroom_common::percentile::nearest_rank(values, (percentile / 100.0).clamp(0.0, 1.0))
}

/// A failure domain while it is being built: its label and the present hosts in it.
pub(super) struct Domain {
    pub(super) name: String,
    pub(super) kind: LossKind,
    pub(super) hosts: Vec<usize>,
}

/// A day needs data in this many of its 1,440 minutes (95 %) to count as complete for the forecast.
const MIN_MINUTES_PER_DAY: usize = 1_368;

/// The present hosts and their domains, with what every resource's loss cases need.
pub(super) struct Layout<'a> {
    hosts: &'a [&'a HostInput],
    domains: &'a [Domain],
    /// Used memory over physical memory per present host, at the peak statistic.
    pub(super) memory_ratios: Vec<f64>,
    /// True when some host's memory use was estimated from the group sum.
    pub(super) memory_estimated: bool,
    balance: Balance,
    k: usize,
    /// Per domain, whether its loss is sized (every domain, unless a scenario names one).
    pub(super) lossable: Vec<bool>,
    /// Zeros, for resources without per-host ratios.
    zeros: Vec<f64>,
}

impl<'a> Layout<'a> {
    pub(super) fn new(
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

    pub(super) fn spread_of(&self, resource: Resource, settings: &GroupSizing) -> Spread {
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

    pub(super) fn ratios_for(&self, spread: Spread) -> &[f64] {
        match spread {
            Spread::PerHost { .. } => &self.memory_ratios,
            _ => &self.zeros,
        }
    }

    /// Share of the load's carriers a loss takes: by cores with capacity balance, by count with equal.
    pub(super) fn lost_share(&self, lost: &[usize]) -> f64 {
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
    pub(super) fn largest(&self, capacity: &[f64]) -> Vec<usize> {
        let mut by_size: Vec<usize> = (0..capacity.len()).collect();
        by_size.sort_by(|&a, &b| capacity[b].total_cmp(&capacity[a]).then(a.cmp(&b)));
        by_size.truncate(self.k);
        by_size
    }
}

pub(super) fn host_capacity(resource: Resource, hosts: &[&HostInput], settings: &GroupSizing) -> Vec<f64> {
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

pub(super) fn load_of(row: &MinuteSum, resource: Resource) -> f64 {
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
pub(super) fn most_loaded(
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
pub(super) fn size_resource(
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
/// Per-minute utilisation: quantiles and a 5 %-bin histogram.
pub(super) fn distribution(series: &[f64], capacity: f64) -> Distribution {
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
pub(super) fn daily_peaks(
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
