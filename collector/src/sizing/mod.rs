//! Failover sizing: for every service group, whether the survivors hold the group's peak load after losing
//! its largest failure domain or its k largest hosts, how many hosts to add or may be removed, which limit
//! binds first, and when the trend crosses the safe level. Pure: the inputs carry the window and its end
//! ("now"); storage and the command line live elsewhere. The model is written out in docs/SIZING.md.

pub mod config;
pub mod forecast;
mod gaps;
mod html;
mod model;
mod planner;
mod render;
pub mod report;
mod resource;
pub mod scenario;
pub(crate) mod svg;
#[cfg(test)]
mod tests;

use serde::Serialize;

pub use config::{
    parse_section, peak_label, Balance, GroupSizing, LittleLaw, MemoryMode, RawSizing, SizingConfig, Targets,
    ZoneLosses,
};
pub use forecast::{theil_sen, Forecast, ForecastOutcome, TrendLine};
pub use model::{size_fleet, size_group, PRESENCE_GRACE_MS};
pub use render::{render, ReportFormat};
pub use resource::percentile_nearest_rank;
pub use scenario::{size_with_scenarios, Scenario, ScenarioReport, WhatIfOptions};

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

/// Version of the JSON document [`render`] writes; raised whenever a field changes meaning or goes.
pub const SCHEMA_VERSION: u32 = 2;

/// Milliseconds in a minute and in a day; minute rows and daily peaks are aligned to these (UTC).
pub const MINUTE_MS: u64 = 60_000;

/// The name reports give the group of hosts without a group label.
pub const UNGROUPED: &str = "(no group)";
/// See [`MINUTE_MS`].
pub const DAY_MS: u64 = 86_400_000;

/// Everything the model needs: the window and, per group, its hosts and its per-minute sums.
#[derive(Debug, Clone, PartialEq)]
pub struct SizingInput {
    /// First millisecond of the window (Unix time).
    pub window_start_ms: u64,
    /// End of the window, exclusive; this is "now" for the model and the forecast.
    pub window_end_ms: u64,
    /// One entry per service group.
    pub groups: Vec<GroupInput>,
}

/// One service group over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupInput {
    /// The value of the group label.
    pub name: String,
    /// Every host seen in the group during the window, including those that left.
    pub hosts: Vec<HostInput>,
    /// Group-level sums, one row per minute that had data, in any order.
    pub minutes: Vec<MinuteSum>,
}

/// A host's capacity and the span of the window during which it reported.
#[derive(Debug, Clone, PartialEq)]
pub struct HostInput {
    /// Host name, from its certificate.
    pub name: String,
    /// Failure domain (the zone label); a host without one is its own domain.
    pub zone: Option<String>,
    /// Logical CPUs.
    pub cores: f64,
    /// Physical memory.
    pub memory_bytes: f64,
    /// First sample of the host inside the window.
    pub first_seen_ms: u64,
    /// Last sample of the host inside the window.
    pub last_seen_ms: u64,
    /// The host's own used memory at the peak statistic over the window (per-host memory sizing); `None`
    /// when only group sums are known, and the group's peak is then shared in proportion to memory.
    pub memory_used_peak_bytes: Option<f64>,
}

/// The group's load in one minute, summed across the hosts that reported in it.
#[derive(Debug, Clone, PartialEq)]
pub struct MinuteSum {
    /// Start of the minute (Unix time, a multiple of [`MINUTE_MS`]).
    pub minute_start_ms: u64,
    /// Busy CPU summed across hosts, in cores.
    pub cpu_busy_cores: f64,
    /// Used memory summed across hosts.
    pub memory_used_bytes: f64,
    /// Established connections summed across hosts, per service port.
    pub established_by_port: Vec<(u16, f64)>,
    /// How many hosts contributed to the sums.
    pub hosts_reporting: u32,
}

/// The model's output for the whole fleet: what every renderer formats.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizingReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Start of the window (Unix ms).
    pub window_start_ms: u64,
    /// End of the window (Unix ms); the report is "as of" this instant.
    pub window_end_ms: u64,
    /// The percentile that defines a peak, like 99.9 (100 is the maximum).
    pub percentile: f64,
    /// The same as the report spells it: `p99.9`, `p99` or `max`.
    pub peak_statistic: String,
    /// Statements about the whole report, shown first (stale data).
    pub notes: Vec<String>,
    /// How far ahead the forecast looks.
    pub horizon_days: f64,
    /// One report per group, sorted by name.
    pub groups: Vec<GroupReport>,
    /// What-if scenarios, each with every group sized under it; empty without `--growth` and friends.
    pub scenarios: Vec<scenario::ScenarioReport>,
    /// Groups ranked by days until they stop surviving their worst loss: unsafe now first, then the
    /// soonest forecast crossing; groups with no crossing in the horizon are left out.
    pub ranking: Vec<RankedGroup>,
}

/// One group in the fleet-wide ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankedGroup {
    /// The group.
    pub group: String,
    /// 0 when unsafe now, else the forecast days until the safe level is crossed.
    pub days_until_unsafe: f64,
    /// The resource whose forecast crosses first (or the binding one when unsafe now).
    pub resource: Option<Resource>,
}

/// The ranking of [`SizingReport::ranking`] from the groups' reports.
pub fn rank_groups(groups: &[GroupReport]) -> Vec<RankedGroup> {
    let mut ranking: Vec<RankedGroup> = groups
        .iter()
        .filter_map(|group| {
            if group.status == GroupStatus::Unsafe || group.status == GroupStatus::SingleDomain {
                return Some(RankedGroup {
                    group: group.name.clone(),
                    days_until_unsafe: 0.0,
                    resource: group.binding,
                });
            }
            let (days, resource) = group
                .resources
                .iter()
                .filter_map(|r| match r.forecast.outcome {
                    ForecastOutcome::Crosses { days, .. } => Some((days, r.resource)),
                    ForecastOutcome::AlreadyOver => Some((0.0, r.resource)),
                    _ => None,
                })
                .min_by(|a, b| a.0.total_cmp(&b.0))?;
            Some(RankedGroup {
                group: group.name.clone(),
                days_until_unsafe: days,
                resource: Some(resource),
            })
        })
        .collect();
    ranking.sort_by(|a, b| {
        a.days_until_unsafe
            .total_cmp(&b.days_until_unsafe)
            .then(a.group.cmp(&b.group))
    });
    ranking
}

/// How a group stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupStatus {
    /// Every loss case stays within every target.
    Safe,
    /// Some loss case exceeds a target; hosts must be added.
    Unsafe,
    /// All hosts share one failure domain, so losing it leaves nothing.
    SingleDomain,
    /// No host is reporting at the end of the window.
    Empty,
    /// Hosts exist but there is no load data in the window.
    NoData,
}

/// A resource the model sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resource {
    /// Busy cores against logical CPUs.
    Cpu,
    /// Used memory against physical memory.
    Memory,
    /// Established connections on one service port against its MaxConnections.
    Connections {
        /// The service port.
        port: u16,
    },
}

impl Resource {
    /// Short label: `cpu`, `memory`, `connections:443`.
    pub fn label(&self) -> String {
        match self {
            Resource::Cpu => "cpu".to_string(),
            Resource::Memory => "memory".to_string(),
            Resource::Connections { port } => format!("connections:{port}"),
        }
    }

    /// The unit of its load and capacity figures.
    pub fn unit(&self) -> &'static str {
        match self {
            Resource::Cpu => "cores",
            Resource::Memory => "bytes",
            Resource::Connections { .. } => "connections",
        }
    }
}

/// Where a resource's peak load comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadSource {
    /// The percentile of the measured per-minute group sums.
    Measured,
    /// Little's law from the configured request rate and latency.
    LittlesLaw,
}

/// One failure: a domain, or the k largest hosts for one resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LossCase {
    /// `zone`, `host` (an unzoned host, its own domain) or `largest_hosts`.
    pub kind: LossKind,
    /// The zone or host name, or the removed hosts joined with commas.
    pub name: String,
    /// Capacity that goes with it.
    pub lost_capacity: f64,
    /// Capacity left to carry the peak.
    pub survivor_capacity: f64,
    /// Utilisation of the most loaded survivor (with capacity balance, every survivor: peak over survivor
    /// capacity); `None` when nothing survives.
    pub utilisation: Option<f64>,
    /// The surviving hosts at that utilisation when they are not all equal (equal balance: the smallest;
    /// per-host memory: the fullest), at most ten.
    pub binding_hosts: Vec<String>,
}

/// What a [`LossCase`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// A labelled failure domain.
    Zone,
    /// An unzoned host, which is its own failure domain.
    Host,
    /// The k largest hosts by this resource (N+k).
    LargestHosts,
}

/// The spread of per-minute utilisation (load over current capacity) in the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Distribution {
    /// Minutes counted.
    pub minutes: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Highest minute.
    pub max: f64,
    /// Minutes per 5 %-wide bin from 0 % to 100 %; the last bin also holds everything above 100 %.
    pub histogram: Vec<u64>,
}

/// The model's figures for one resource of one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceReport {
    /// Which resource.
    pub resource: Resource,
    /// `cores`, `bytes` or `connections`.
    pub unit: &'static str,
    /// Measured, or Little's law.
    pub load_source: LoadSource,
    /// How the load reaches the hosts: `capacity` (the sum counts), `equal` (the smallest host binds) or
    /// `per_host` (memory stays on its host).
    pub spread: &'static str,
    /// Start of the minute whose sum is the measured peak (Unix ms); `None` without data.
    pub peak_minute_ms: Option<u64>,
    /// Little's law: mean concurrency `rate × latency` and with the square-root staffing margin.
    pub littles_law: Option<LittleFigures>,
    /// Capacity of the hosts present now.
    pub capacity: f64,
    /// The group's peak load (percentile of per-minute sums, or Little's law concurrency).
    pub peak: f64,
    /// The measured peak, also when Little's law sets `peak`.
    pub measured_peak: Option<f64>,
    /// Highest acceptable utilisation, as a fraction.
    pub target: f64,
    /// Peak over capacity.
    pub current_utilisation: f64,
    /// Losing each failure domain in turn.
    pub domain_losses: Vec<LossCase>,
    /// Losing the k largest hosts by this resource.
    pub host_loss: LossCase,
    /// The worse of all cases above.
    pub worst: LossCase,
    /// Highest steady-state utilisation that keeps the worst case at the target.
    pub safe_steady_state: f64,
    /// `safe_steady_state - current_utilisation`, as a fraction of capacity (negative when short).
    pub headroom: f64,
    /// The same headroom in load units: how much more peak load the group can take.
    pub headroom_load: f64,
    /// Whether the worst case stays within the target.
    pub safe: bool,
    /// Peak load over the load this resource can carry after its worst loss at the target (above 1 is
    /// unsafe; null when nothing survives). Per-host memory that does not follow load never presses.
    pub pressure: Option<f64>,
    /// Per-minute utilisation over the window; `None` when there is nothing measured.
    pub distribution: Option<Distribution>,
    /// Trend of daily peaks against `safe_steady_state`.
    pub forecast: Forecast,
}

/// Little's law as the report states it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LittleFigures {
    /// `L = rate × latency`.
    pub mean_concurrency: f64,
    /// The margin's beta.
    pub beta: f64,
    /// `L + beta × sqrt(L)`.
    pub with_margin: f64,
}

/// Where the planner puts added hosts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    /// A zone name, or `None` for new unzoned hosts.
    pub zone: Option<String>,
    /// Hosts added there.
    pub hosts: u32,
}

/// A failure domain of the group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainSummary {
    /// Zone name, or the host name for an unzoned host.
    pub name: String,
    /// `zone` or `host`.
    pub kind: LossKind,
    /// Hosts present in it.
    pub hosts: u32,
}

/// A host that joined or left during the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostSpan {
    /// Host name.
    pub name: String,
    /// First sample in the window.
    pub first_seen_ms: u64,
    /// Last sample in the window.
    pub last_seen_ms: u64,
}

/// Where the window's data is incomplete.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataGaps {
    /// Minutes in the window.
    pub expected_minutes: u64,
    /// Minutes without any row.
    pub missing_minutes: u64,
    /// Minutes where fewer hosts reported than were in the group then; their sums are low.
    pub partial_minutes: u64,
    /// The longest runs of missing minutes, longest first, at most five: (start ms, end ms exclusive).
    pub longest_gaps: Vec<(u64, u64)>,
}

/// The shape of the host that "hosts to add" counts: the group's median host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostShape {
    /// Logical CPUs.
    pub cores: f64,
    /// Physical memory.
    pub memory_bytes: f64,
    /// Its baseline used memory (the median host's use), which per-host sizing charges to it.
    pub memory_used_bytes: f64,
}

/// The model's output for one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupReport {
    /// The group label value.
    pub name: String,
    /// Overall verdict.
    pub status: GroupStatus,
    /// Hosts present at the end of the window.
    pub hosts: u32,
    /// The failure domains of the present hosts.
    pub domains: Vec<DomainSummary>,
    /// Hosts lost at once in the N+k case.
    pub k: u32,
    /// Per resource, in order cpu, memory, connections by port.
    pub resources: Vec<ResourceReport>,
    /// The resource that limits the group first.
    pub binding: Option<Resource>,
    /// The worst loss case of the binding resource.
    pub worst_case: Option<LossCase>,
    /// Hosts shaped like `added_host` to add so every case is within target; `None` when adding hosts to the
    /// existing domains cannot make the group safe (see `notes`).
    pub hosts_to_add: Option<u32>,
    /// Hosts that could be removed while staying safe (smallest first), when the group is safe.
    pub removable_hosts: Vec<String>,
    /// Where those hosts go, so zones stay balanced: "+1 in b".
    pub placement: Vec<Placement>,
    /// The host shape `hosts_to_add` counts.
    pub added_host: Option<HostShape>,
    /// `per_host` or `shared`.
    pub memory: config::MemoryMode,
    /// `capacity` or `equal`.
    pub balance: config::Balance,
    /// The earliest crossing of the safe level across resources, in days; `None` when none is forecast.
    pub days_to_safe_target: Option<f64>,
    /// Hosts that started reporting after the window began.
    pub joined: Vec<HostSpan>,
    /// Hosts that stopped reporting before the window ended; not counted as capacity.
    pub left: Vec<HostSpan>,
    /// Missing and partial minutes.
    pub gaps: DataGaps,
    /// Plain statements a reader must see: single domain, unsized ports, gaps, departures.
    pub notes: Vec<String>,
}
