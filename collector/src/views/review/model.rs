//! The weekly operational review as data (pure): what the database's alarm transitions, outlier flags,
//! agent-reported gaps, hosts and two sizing reports (now and one window earlier) say about the window.
//! Every section carries a sentence on what to look at, worked out from its rows.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::sizing::report::{percent, utc};
use crate::sizing::{GroupReport, GroupStatus, SizingReport, PRESENCE_GRACE_MS};
use crate::store::history::{AlarmHistoryRow, OutlierFlagRow};
use crate::store::query::{StoredGap, StoredHost};
use headroom_common::percentile::nearest_rank;

/// Version of the JSON form; bumped when a field changes meaning or goes away.
pub const REVIEW_SCHEMA_VERSION: u32 = 1;

/// A firing that resolved within this long is noise: a rule that does it often is a candidate to tune.
pub const NOISY_WITHIN_MS: u64 = 5 * 60_000;

/// Hosts listed in the outlier section.
pub const OUTLIER_HOSTS_LISTED: usize = 10;

/// What the review is built from.
#[derive(Debug, Clone)]
pub struct ReviewInput<'a> {
    pub window_start_ms: u64,
    /// Exclusive.
    pub window_end_ms: u64,
    /// Alarm transitions inside the window, oldest first.
    pub alarms: &'a [AlarmHistoryRow],
    /// Outlier flags inside the window.
    pub outliers: &'a [OutlierFlagRow],
    /// Agent-reported gaps overlapping the window.
    pub gaps: &'a [StoredGap],
    /// Every host the database knows.
    pub hosts: &'a [StoredHost],
    /// Sizing as of the window's end, and as of its start (a week ago for a 7-day review).
    pub sizing_now: &'a SizingReport,
    pub sizing_before: &'a SizingReport,
}

/// One section: a title, what to look at, and its rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section<T> {
    pub title: &'static str,
    pub look_at: String,
    pub rows: Vec<T>,
}

/// Firings of one rule on one subject.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmCount {
    pub rule: String,
    pub severity: String,
    /// `host` or `group`.
    pub subject_type: String,
    pub subject: String,
    /// Transitions to firing in the window.
    pub fired: u32,
    /// Transitions from firing to resolved in the window.
    pub resolved: u32,
    /// The last transition in the window left it firing.
    pub firing_at_end: bool,
    pub runbook: String,
}

/// How long firings of one rule took to resolve (nearest-rank percentiles).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolveTime {
    /// A rule, or `(all rules)`.
    pub rule: String,
    pub resolved: u32,
    pub p50_ms: u64,
    pub p90_ms: u64,
    pub max_ms: u64,
}

/// A rule whose firings often resolved within [`NOISY_WITHIN_MS`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoisyRule {
    pub rule: String,
    pub fired: u32,
    /// Firings resolved within [`NOISY_WITHIN_MS`] of firing.
    pub short: u32,
    /// `short / fired`.
    pub short_share: f64,
}

/// A host flagged as a peer outlier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutlierHost {
    pub host: String,
    pub group: String,
    /// Times it became flagged in the window.
    pub flags: u32,
    /// The metrics it was flagged on, sorted.
    pub metrics: Vec<String>,
    /// The explanation of its latest flag.
    pub latest: String,
}

/// A host's agent-reported gaps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostGaps {
    pub host: String,
    pub gaps: u32,
    /// Samples the agent dropped.
    pub samples: u64,
    pub first_ms: u64,
    pub last_ms: u64,
    /// Distinct reasons, sorted.
    pub reasons: Vec<String>,
}

/// A group's headroom now and one window earlier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupHeadroom {
    pub group: String,
    pub status_now: GroupStatus,
    /// `None`: the group did not exist then.
    pub status_before: Option<GroupStatus>,
    /// The resource with the least headroom now (`cpu`, `memory`, `connections:443`).
    pub tightest_now: Option<String>,
    /// Its headroom (safe steady state minus current utilisation, a fraction of capacity).
    pub headroom_now: Option<f64>,
    /// The least headroom across resources one window earlier.
    pub headroom_before: Option<f64>,
    pub hosts_to_add_now: Option<u32>,
    /// The earliest forecast crossing of the safe level, in days; `None` when none is forecast.
    pub days_to_safe_target: Option<f64>,
}

/// A host that joined or stopped reporting in the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostChange {
    pub host: String,
    pub group: String,
    pub zone: String,
    /// First sample (added) or last sample (removed).
    pub at_ms: u64,
}

/// The whole review.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Review {
    pub schema_version: u32,
    pub window_start_ms: u64,
    pub window_end_ms: u64,
    /// Statements about the whole review (stale data).
    pub notes: Vec<String>,
    pub alarms: Section<AlarmCount>,
    pub resolve_times: Section<ResolveTime>,
    pub noisy_rules: Section<NoisyRule>,
    pub outlier_hosts: Section<OutlierHost>,
    pub gaps: Section<HostGaps>,
    pub headroom: Section<GroupHeadroom>,
    pub hosts_added: Section<HostChange>,
    pub hosts_removed: Section<HostChange>,
}

/// Minutes, as a reader says them: `42 s`, `7 min`, `3.5 h`.
pub fn duration_text(ms: u64) -> String {
    if ms < 60_000 {
        format!("{} s", ms / 1000)
    } else if ms < 3_600_000 {
        format!("{} min", ms / 60_000)
    } else {
        format!("{:.1} h", ms as f64 / 3_600_000.0)
    }
}

/// Builds the review.
pub fn build(input: &ReviewInput) -> Review {
    Review {
        schema_version: REVIEW_SCHEMA_VERSION,
        window_start_ms: input.window_start_ms,
        window_end_ms: input.window_end_ms,
        notes: Vec::new(),
        alarms: alarm_counts(input.alarms),
        resolve_times: resolve_times(input.alarms),
        noisy_rules: noisy_rules(input.alarms),
        outlier_hosts: outlier_hosts(input.outliers),
        gaps: host_gaps(input.gaps),
        headroom: headroom(input.sizing_now, input.sizing_before),
        hosts_added: hosts_added(input),
        hosts_removed: hosts_removed(input),
    }
}

/// Firing-to-resolved durations per rule: each resolved transition that had fired.
fn resolved_durations(alarms: &[AlarmHistoryRow]) -> BTreeMap<&str, Vec<u64>> {
    let mut out: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for row in alarms.iter().filter(|r| r.status == "resolved") {
        if let Some(fired_ms) = row.fired_ms {
            out.entry(&row.rule)
                .or_default()
                .push(row.at_ms.saturating_sub(fired_ms));
        }
    }
    out
}

fn alarm_counts(alarms: &[AlarmHistoryRow]) -> Section<AlarmCount> {
    let mut counts: BTreeMap<(&str, &str), AlarmCount> = BTreeMap::new();
    for row in alarms {
        let count = counts
            .entry((&row.rule, &row.subject))
            .or_insert_with(|| AlarmCount {
                rule: row.rule.clone(),
                severity: row.severity.clone(),
                subject_type: row.subject_type.clone(),
                subject: row.subject.clone(),
                fired: 0,
                resolved: 0,
                firing_at_end: false,
                runbook: row.runbook.clone(),
            });
        match row.status.as_str() {
            "firing" => {
                count.fired += 1;
                count.firing_at_end = true;
            }
            "resolved" => {
                if row.fired_ms.is_some() {
                    count.resolved += 1;
                }
                count.firing_at_end = false;
            }
            _ => {}
        }
    }
    let mut rows: Vec<AlarmCount> = counts.into_values().filter(|c| c.fired > 0).collect();
    rows.sort_by(|a, b| {
        b.fired
            .cmp(&a.fired)
            .then(a.rule.cmp(&b.rule))
            .then(a.subject.cmp(&b.subject))
    });
    let still: Vec<String> = rows
        .iter()
        .filter(|r| r.firing_at_end)
        .map(|r| format!("{} on {}", r.rule, r.subject))
        .collect();
    let look_at = match rows.first() {
        None => "No alarm fired in the window.".to_string(),
        Some(top) => {
            let mut text = format!(
                "Start with {} on {} ({} firings): was its runbook followed, and is the cause fixed?",
                top.rule, top.subject, top.fired
            );
            if !still.is_empty() {
                text.push_str(&format!(" Still firing at the end: {}.", still.join(", ")));
            }
            text
        }
    };
    Section {
        title: "Alarms fired per rule and host",
        look_at,
        rows,
    }
}

fn percentiles(rule: String, durations: &[u64]) -> ResolveTime {
    let mut values: Vec<f64> = durations.iter().map(|d| *d as f64).collect();
    let at = |values: &mut [f64], q: f64| nearest_rank(values, q).unwrap_or(0.0) as u64;
    ResolveTime {
        rule,
        resolved: durations.len() as u32,
        p50_ms: at(&mut values, 0.5),
        p90_ms: at(&mut values, 0.9),
        max_ms: durations.iter().copied().max().unwrap_or(0),
    }
}

fn resolve_times(alarms: &[AlarmHistoryRow]) -> Section<ResolveTime> {
    let by_rule = resolved_durations(alarms);
    let all: Vec<u64> = by_rule.values().flatten().copied().collect();
    let mut rules: Vec<ResolveTime> = by_rule
        .iter()
        .map(|(rule, durations)| percentiles(rule.to_string(), durations))
        .collect();
    rules.sort_by(|a, b| b.p90_ms.cmp(&a.p90_ms).then(a.rule.cmp(&b.rule)));
    let look_at = match rules.first() {
        None => "No alarm resolved in the window.".to_string(),
        Some(slowest) => format!(
            "Slowest to resolve: {} (p90 {}). A long tail means the runbook does not lead to a fix, or the \
             alarm wakes someone who cannot act on it.",
            slowest.rule,
            duration_text(slowest.p90_ms)
        ),
    };
    let mut rows = Vec::with_capacity(rules.len() + 1);
    if !all.is_empty() {
        rows.push(percentiles("(all rules)".to_string(), &all));
    }
    rows.extend(rules);
    Section {
        title: "Time to resolve (firing to resolved, nearest rank)",
        look_at,
        rows,
    }
}

fn noisy_rules(alarms: &[AlarmHistoryRow]) -> Section<NoisyRule> {
    let mut fired: BTreeMap<&str, u32> = BTreeMap::new();
    for row in alarms.iter().filter(|r| r.status == "firing") {
        *fired.entry(&row.rule).or_default() += 1;
    }
    let durations = resolved_durations(alarms);
    let mut rows: Vec<NoisyRule> = durations
        .iter()
        .filter_map(|(rule, durations)| {
            let short = durations.iter().filter(|d| **d <= NOISY_WITHIN_MS).count() as u32;
            let fired = fired.get(rule).copied().unwrap_or(0).max(short);
            (short > 0).then(|| NoisyRule {
                rule: rule.to_string(),
                fired,
                short,
                short_share: f64::from(short) / f64::from(fired),
            })
        })
        .collect();
    rows.sort_by(|a, b| b.short.cmp(&a.short).then(a.rule.cmp(&b.rule)));
    let look_at = match rows.first() {
        None => format!(
            "No firing resolved within {}: no rule looks noisy.",
            duration_text(NOISY_WITHIN_MS)
        ),
        Some(top) => format!(
            "Candidates to tune: {} resolved {} of {} firings within {}. A longer `for`, a wider window or a \
             percentile rule would page only for what lasts.",
            top.rule,
            top.short,
            top.fired,
            duration_text(NOISY_WITHIN_MS)
        ),
    };
    Section {
        title: "Noisiest rules (fired and resolved within minutes)",
        look_at,
        rows,
    }
}

fn outlier_hosts(outliers: &[OutlierFlagRow]) -> Section<OutlierHost> {
    let mut by_host: BTreeMap<&str, (OutlierHost, BTreeSet<String>)> = BTreeMap::new();
    for row in outliers {
        let (host, metrics) = by_host.entry(&row.host).or_insert_with(|| {
            (
                OutlierHost {
                    host: row.host.clone(),
                    group: row.group.clone(),
                    flags: 0,
                    metrics: Vec::new(),
                    latest: String::new(),
                },
                BTreeSet::new(),
            )
        });
        host.flags += 1;
        host.latest = row.explanation.clone();
        metrics.insert(row.metric.clone());
    }
    let mut rows: Vec<OutlierHost> = by_host
        .into_values()
        .map(|(mut host, metrics)| {
            host.metrics = metrics.into_iter().collect();
            host
        })
        .collect();
    rows.sort_by(|a, b| b.flags.cmp(&a.flags).then(a.host.cmp(&b.host)));
    rows.truncate(OUTLIER_HOSTS_LISTED);
    let look_at = match rows.first() {
        None => "No host was flagged as an outlier among its peers.".to_string(),
        Some(top) => format!(
            "{} was flagged {} times ({}): a host that keeps differing from its group has a different job, \
             hardware or fault; look at its host page, and move it to its own group if the difference is by \
             design.",
            top.host,
            top.flags,
            top.metrics.join(", ")
        ),
    };
    Section {
        title: "Hosts most often flagged as outliers",
        look_at,
        rows,
    }
}

fn host_gaps(gaps: &[StoredGap]) -> Section<HostGaps> {
    let mut by_host: BTreeMap<&str, (HostGaps, BTreeSet<String>)> = BTreeMap::new();
    for gap in gaps {
        let (row, reasons) = by_host.entry(&gap.host).or_insert_with(|| {
            (
                HostGaps {
                    host: gap.host.clone(),
                    gaps: 0,
                    samples: 0,
                    first_ms: gap.from_ms,
                    last_ms: gap.to_ms,
                    reasons: Vec::new(),
                },
                BTreeSet::new(),
            )
        });
        row.gaps += 1;
        row.samples += gap.count;
        row.first_ms = row.first_ms.min(gap.from_ms);
        row.last_ms = row.last_ms.max(gap.to_ms);
        reasons.insert(gap.reason.clone());
    }
    let mut rows: Vec<HostGaps> = by_host
        .into_values()
        .map(|(mut row, reasons)| {
            row.reasons = reasons.into_iter().collect();
            row
        })
        .collect();
    rows.sort_by(|a, b| b.samples.cmp(&a.samples).then(a.host.cmp(&b.host)));
    let look_at = match rows.first() {
        None => "No agent reported a data gap: every sample of the window is stored.".to_string(),
        Some(top) => format!(
            "{} lost {} samples ({}): its minutes understate the load. A full spool means the collector was \
             out of reach longer than the spool holds: raise spool.max_bytes or fix the path.",
            top.host,
            top.samples,
            top.reasons.join(", ")
        ),
    };
    Section {
        title: "Data gaps by host (reported by agents)",
        look_at,
        rows,
    }
}

/// The resource with the least headroom: (its label, its headroom).
fn tightest(group: &GroupReport) -> Option<(String, f64)> {
    group
        .resources
        .iter()
        .min_by(|a, b| a.headroom.total_cmp(&b.headroom))
        .map(|r| (r.resource.label(), r.headroom))
}

fn headroom(now: &SizingReport, before: &SizingReport) -> Section<GroupHeadroom> {
    let rows: Vec<GroupHeadroom> = now
        .groups
        .iter()
        .map(|group| {
            let then = before.groups.iter().find(|g| g.name == group.name);
            let tight = tightest(group);
            GroupHeadroom {
                group: group.name.clone(),
                status_now: group.status,
                status_before: then.map(|g| g.status),
                tightest_now: tight.as_ref().map(|(label, _)| label.clone()),
                headroom_now: tight.map(|(_, headroom)| headroom),
                headroom_before: then.and_then(tightest).map(|(_, headroom)| headroom),
                hosts_to_add_now: group.hosts_to_add,
                days_to_safe_target: group.days_to_safe_target,
            }
        })
        .collect();
    let unsafe_now: Vec<&str> = rows
        .iter()
        .filter(|r| matches!(r.status_now, GroupStatus::Unsafe | GroupStatus::SingleDomain))
        .map(|r| r.group.as_str())
        .collect();
    let shrinking = rows
        .iter()
        .filter_map(|r| Some((r, r.headroom_now? - r.headroom_before?)))
        .filter(|(_, change)| *change < 0.0)
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let soonest = rows
        .iter()
        .filter_map(|r| Some((r, r.days_to_safe_target?)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let mut parts = Vec::new();
    if !unsafe_now.is_empty() {
        parts.push(format!(
            "Cannot survive their worst loss now: {} (see hosts to add).",
            unsafe_now.join(", ")
        ));
    }
    if let Some((row, change)) = shrinking {
        parts.push(format!(
            "{} lost the most headroom this window: {} of capacity.",
            row.group,
            percent(change)
        ));
    }
    if let Some((row, days)) = soonest {
        parts.push(format!(
            "{} crosses its safe level first, in about {days:.0} days.",
            row.group
        ));
    }
    if parts.is_empty() {
        parts.push("Every group survives its worst loss and none lost headroom this window.".to_string());
    }
    Section {
        title: "Headroom per group, now and one window earlier",
        look_at: parts.join(" "),
        rows,
    }
}

fn host_change(host: &StoredHost, at_ms: u64) -> HostChange {
    HostChange {
        host: host.name.clone(),
        group: host.group.clone(),
        zone: host.zone.clone(),
        at_ms,
    }
}

fn hosts_added(input: &ReviewInput) -> Section<HostChange> {
    let mut rows: Vec<HostChange> = input
        .hosts
        .iter()
        .filter(|h| h.first_seen_ms >= input.window_start_ms && h.first_seen_ms < input.window_end_ms)
        .map(|h| host_change(h, h.first_seen_ms))
        .collect();
    rows.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then(a.host.cmp(&b.host)));
    let look_at = if rows.is_empty() {
        "No host joined in the window.".to_string()
    } else {
        format!(
            "{} hosts joined: check each has its group and zone labels (sizing counts an unlabelled host as \
             its own group and failure domain).",
            rows.len()
        )
    };
    Section {
        title: "Hosts added",
        look_at,
        rows,
    }
}

fn hosts_removed(input: &ReviewInput) -> Section<HostChange> {
    // Silent for longer than the sizing model's grace at the end of the window: gone, not just late.
    let silent_before_ms = input.window_end_ms.saturating_sub(PRESENCE_GRACE_MS);
    let mut rows: Vec<HostChange> = input
        .hosts
        .iter()
        .filter(|h| h.last_seen_ms >= input.window_start_ms && h.last_seen_ms < silent_before_ms)
        .map(|h| host_change(h, h.last_seen_ms))
        .collect();
    rows.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then(a.host.cmp(&b.host)));
    let look_at = if rows.is_empty() {
        "No host stopped reporting in the window.".to_string()
    } else {
        format!(
            "{} hosts stopped reporting (last sample at the time shown): confirm each was retired on purpose; \
             one that was not is a silent host (`headroom-collector cert revoke --host NAME` for retired ones).",
            rows.len()
        )
    };
    Section {
        title: "Hosts removed (no sample for 10 minutes before the end)",
        look_at,
        rows,
    }
}

/// When a row happened, for the renderers.
pub fn time_text(ms: u64) -> String {
    utc(ms)
}
