//! The text renderers over a [`SizingReport`] (JSON: the full model, versioned; CSV: one row per group with
//! every figure; Markdown: for a ticket) and the wording every renderer shares, HTML and SVG included
//! (times, percentages, loss cases, markup escaping). Pure: strings out. `render` picks a renderer.

use std::time::{Duration, SystemTime};

use super::forecast::ForecastOutcome;
use super::{
    GroupReport, GroupStatus, LoadSource, LossCase, RankedGroup, Resource, ResourceReport, SizingReport,
};

/// Every group's rows in reading order: per group the baseline, then each scenario beside it, with the
/// scenario's name ("baseline" for the first).
pub fn rows(report: &SizingReport) -> Vec<(&str, &GroupReport)> {
    let mut out = Vec::new();
    for group in &report.groups {
        out.push(("baseline", group));
        for scenario in &report.scenarios {
            if let Some(row) = scenario.groups.iter().find(|g| g.name == group.name) {
                out.push((scenario.name.as_str(), row));
            }
        }
    }
    // Groups that exist only in a scenario: none today (scenarios add hosts to existing groups only).
    out
}

/// The ranking that goes with a row of [`rows`]: the baseline's, or the scenario's of that name.
pub fn ranking_of<'a>(report: &'a SizingReport, scenario: &str) -> &'a [RankedGroup] {
    report
        .scenarios
        .iter()
        .find(|s| s.name == scenario)
        .map(|s| s.ranking.as_slice())
        .unwrap_or(&report.ranking)
}

/// A group's place in a ranking (1 is the soonest unsafe) and its days, or `None` when it is not ranked.
pub fn rank_of(ranking: &[RankedGroup], group: &str) -> Option<(usize, f64)> {
    ranking
        .iter()
        .position(|r| r.group == group)
        .map(|index| (index + 1, ranking[index].days_until_unsafe))
}

/// Days until unsafe as the ranking says it: "unsafe now" or "41 days".
pub fn days_until_unsafe_text(ranked: &RankedGroup) -> String {
    if ranked.days_until_unsafe <= 0.0 {
        "unsafe now".to_string()
    } else {
        format!("{:.0} days", ranked.days_until_unsafe)
    }
}

pub(super) fn render_json(report: &SizingReport) -> String {
    let mut text = serde_json::to_string_pretty(report).expect("the report serialises");
    text.push('\n');
    text
}

/// UTC time like `2024-05-01T12:00:00Z`.
pub(crate) fn utc(ms: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A fraction as a percentage with one decimal: `0.5333` → `53.3 %`.
pub(crate) fn percent(fraction: f64) -> String {
    format!("{:.1} %", fraction * 100.0)
}

/// A load or capacity in its unit, short: cores with one decimal, bytes in GiB, connections whole.
pub(crate) fn amount(resource: Resource, value: f64) -> String {
    match resource {
        Resource::Cpu => format!("{value:.1} cores"),
        Resource::Memory => format!("{:.1} GiB", value / (1u64 << 30) as f64),
        Resource::Connections { .. } => format!("{value:.0} conns"),
    }
}

/// A loss case as a reader says it: `zone "b"`, `host "h7"`, `2 largest hosts (h1,h2)`, and the surviving
/// hosts that bind when they are not all equal: `zone "a" (binds: h3, h4)`.
pub(crate) fn case_text(case: &LossCase) -> String {
    let text = loss_text(case);
    if case.binding_hosts.is_empty() {
        text
    } else {
        format!("{text} (binds: {})", case.binding_hosts.join(", "))
    }
}

fn loss_text(case: &LossCase) -> String {
    match case.kind {
        super::LossKind::Zone => format!("zone \"{}\"", case.name),
        super::LossKind::Host => format!("host \"{}\"", case.name),
        super::LossKind::LargestHosts => {
            let count = case.name.split(',').filter(|name| !name.is_empty()).count();
            format!("{count} largest hosts ({})", case.name)
        }
    }
}

/// Utilisation after a loss, or "nothing survives".
pub(crate) fn after_loss(case: &LossCase) -> String {
    case.utilisation.map_or("nothing survives".to_string(), percent)
}

pub(crate) fn status_text(status: GroupStatus) -> &'static str {
    match status {
        GroupStatus::Safe => "safe",
        GroupStatus::Unsafe => "unsafe",
        GroupStatus::SingleDomain => "cannot survive a zone loss",
        GroupStatus::Empty => "empty",
        GroupStatus::NoData => "no data",
    }
}

pub(crate) fn hosts_to_add_text(group: &GroupReport) -> String {
    match (group.status, group.hosts_to_add) {
        (GroupStatus::Empty | GroupStatus::NoData, _) => "-".to_string(),
        (GroupStatus::SingleDomain, None) => "add a second zone".to_string(),
        (_, None) => "too many".to_string(),
        (_, Some(0)) if !group.removable_hosts.is_empty() => {
            format!("0 (may remove {})", group.removable_hosts.len())
        }
        (_, Some(0)) => "0".to_string(),
        (_, Some(count)) => format!("{count} ({})", placement_text(group)),
    }
}

/// Where added hosts go: `+2 in zone-b, +1 in zone-c`, or `+1 unzoned`.
pub(crate) fn placement_text(group: &GroupReport) -> String {
    group
        .placement
        .iter()
        .map(|placement| match &placement.zone {
            Some(zone) => format!("+{} in {zone}", placement.hosts),
            None => format!("+{} unzoned", placement.hosts),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn forecast_text(resource: &ResourceReport) -> String {
    match resource.forecast.outcome {
        ForecastOutcome::Crosses {
            earliest_days,
            latest_days,
            ..
        } => match latest_days {
            Some(latest) => {
                format!("between {earliest_days:.0} and {latest:.0} days (Theil–Sen, 90 % interval)")
            }
            None => format!("in {earliest_days:.0} days or later (Theil–Sen, 90 % interval)"),
        },
        ForecastOutcome::AlreadyOver => "already over".to_string(),
        ForecastOutcome::NotWithinHorizon => "not within the horizon".to_string(),
        ForecastOutcome::NotEnoughHistory => "not enough history".to_string(),
        ForecastOutcome::NotMeasured => "configured load, no trend".to_string(),
    }
}

/// The resource of a kind that presses hardest (for connections, the tightest port).
fn tightest(group: &GroupReport, matches: impl Fn(Resource) -> bool) -> Option<&ResourceReport> {
    group
        .resources
        .iter()
        .filter(|resource| matches(resource.resource))
        .max_by(|a, b| {
            let pressure = |r: &ResourceReport| r.worst.utilisation.map_or(f64::INFINITY, |u| u / r.target);
            pressure(a).total_cmp(&pressure(b))
        })
}

/// The CSV header; every figure of a group, resources flattened with a prefix.
pub const CSV_RESOURCE_FIELDS: &[&str] = &[
    "peak",
    "capacity",
    "target",
    "current_utilisation",
    "worst_utilisation",
    "worst_case",
    "safe_steady_state",
    "headroom",
    "headroom_load",
    "safe",
    "forecast_outcome",
    "forecast_days",
];

fn csv_header() -> Vec<String> {
    let mut header: Vec<String> = [
        "scenario",
        "group",
        "status",
        "hosts",
        "domains",
        "k",
        "binding",
        "worst_case",
        "hosts_to_add",
        "removable_hosts",
        "days_to_safe_target",
        "hosts_joined",
        "hosts_left",
        "expected_minutes",
        "missing_minutes",
        "partial_minutes",
        "connections_port",
        "connections_load_source",
        "unsafe_rank",
        "days_until_unsafe",
    ]
    .iter()
    .map(|name| name.to_string())
    .collect();
    for prefix in ["cpu", "memory", "connections"] {
        header.extend(
            CSV_RESOURCE_FIELDS
                .iter()
                .map(|field| format!("{prefix}_{field}")),
        );
    }
    header
}

fn number(value: f64) -> String {
    // Rust's shortest round-trip formatting, so a reader gets back exactly the JSON's numbers.
    format!("{value}")
}

fn optional(value: Option<f64>) -> String {
    value.map(number).unwrap_or_default()
}

fn resource_cells(resource: Option<&ResourceReport>) -> Vec<String> {
    let Some(r) = resource else {
        return vec![String::new(); CSV_RESOURCE_FIELDS.len()];
    };
    let (outcome, days) = match r.forecast.outcome {
        ForecastOutcome::Crosses { days, .. } => ("crosses", Some(days)),
        ForecastOutcome::AlreadyOver => ("already_over", None),
        ForecastOutcome::NotWithinHorizon => ("not_within_horizon", None),
        ForecastOutcome::NotEnoughHistory => ("not_enough_history", None),
        ForecastOutcome::NotMeasured => ("not_measured", None),
    };
    vec![
        number(r.peak),
        number(r.capacity),
        number(r.target),
        number(r.current_utilisation),
        optional(r.worst.utilisation),
        case_text(&r.worst),
        number(r.safe_steady_state),
        number(r.headroom),
        number(r.headroom_load),
        r.safe.to_string(),
        outcome.to_string(),
        optional(days),
    ]
}

pub(super) fn render_csv(report: &SizingReport) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(csv_header()).expect("writing to memory");
    for (scenario, group) in rows(report) {
        let connections = tightest(group, |r| matches!(r, Resource::Connections { .. }));
        let mut row = vec![
            scenario.to_string(),
            group.name.clone(),
            serde_json::to_value(group.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            group.hosts.to_string(),
            group.domains.len().to_string(),
            group.k.to_string(),
            group.binding.map(|b| b.label()).unwrap_or_default(),
            group.worst_case.as_ref().map(case_text).unwrap_or_default(),
            group.hosts_to_add.map(|n| n.to_string()).unwrap_or_default(),
            group.removable_hosts.len().to_string(),
            optional(group.days_to_safe_target),
            group.joined.len().to_string(),
            group.left.len().to_string(),
            group.gaps.expected_minutes.to_string(),
            group.gaps.missing_minutes.to_string(),
            group.gaps.partial_minutes.to_string(),
            match connections.map(|r| r.resource) {
                Some(Resource::Connections { port }) => port.to_string(),
                _ => String::new(),
            },
            connections
                .map(|r| match r.load_source {
                    LoadSource::Measured => "measured",
                    LoadSource::LittlesLaw => "littles_law",
                })
                .unwrap_or_default()
                .to_string(),
        ];
        let rank = rank_of(ranking_of(report, scenario), &group.name);
        row.push(rank.map(|(place, _)| place.to_string()).unwrap_or_default());
        row.push(optional(rank.map(|(_, days)| days)));
        row.extend(resource_cells(tightest(group, |r| r == Resource::Cpu)));
        row.extend(resource_cells(tightest(group, |r| r == Resource::Memory)));
        row.extend(resource_cells(connections));
        writer.write_record(row).expect("writing to memory");
    }
    String::from_utf8(writer.into_inner().expect("flushing to memory")).expect("csv of strings is utf-8")
}

/// Escapes the characters that would break a Markdown table cell.
fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

pub(super) fn render_markdown(report: &SizingReport) -> String {
    let mut out = String::new();
    out.push_str("# Failover sizing report\n\n");
    for note in &report.notes {
        out.push_str(&format!("**{}**\n\n", md_cell(note)));
    }
    out.push_str(&format!(
        "Window {} to {}; peak = {} of per-minute group sums; forecast horizon {:.0} days.\n\n",
        utc(report.window_start_ms),
        utc(report.window_end_ms),
        report.peak_statistic,
        report.horizon_days
    ));
    out.push_str(
        "| group | scenario | status | hosts | domains | binding | worst case | now | after worst loss | \
         safe level | hosts to add | safe level crossed |\n",
    );
    out.push_str("|---|---|---|--:|--:|---|---|--:|--:|--:|--:|---|\n");
    for (scenario, group) in rows(report) {
        let binding = group.resources.iter().find(|r| Some(r.resource) == group.binding);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            md_cell(&group.name),
            md_cell(scenario),
            status_text(group.status),
            group.hosts,
            group.domains.len(),
            group
                .binding
                .map(|b| b.label())
                .unwrap_or_else(|| "-".to_string()),
            group
                .worst_case
                .as_ref()
                .map(|c| md_cell(&case_text(c)))
                .unwrap_or_else(|| "-".to_string()),
            binding
                .map(|r| percent(r.current_utilisation))
                .unwrap_or_else(|| "-".to_string()),
            binding
                .map(|r| after_loss(&r.worst))
                .unwrap_or_else(|| "-".to_string()),
            binding
                .map(|r| percent(r.safe_steady_state))
                .unwrap_or_else(|| "-".to_string()),
            hosts_to_add_text(group),
            match group.days_to_safe_target {
                Some(days) if days <= 0.0 => "already over".to_string(),
                Some(days) => format!("in {days:.0} days"),
                None => "not within the horizon".to_string(),
            },
        ));
    }
    if !report.ranking.is_empty() {
        out.push_str("\n## Days until a group stops surviving its worst loss\n\n| group | days until unsafe | resource |\n|---|--:|---|\n");
        for ranked in &report.ranking {
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                md_cell(&ranked.group),
                days_until_unsafe_text(ranked),
                ranked.resource.map(|r| r.label()).unwrap_or_else(|| "-".into())
            ));
        }
    }
    for group in &report.groups {
        out.push_str(&format!("\n## {}\n\n", md_cell(&group.name)));
        for note in &group.notes {
            out.push_str(&format!("- {}\n", md_cell(note)));
        }
        if !group.removable_hosts.is_empty() {
            out.push_str(&format!(
                "- could remove {} while staying safe: {}\n",
                group.removable_hosts.len(),
                group.removable_hosts.join(", ")
            ));
        }
        if group.resources.is_empty() {
            continue;
        }
        out.push_str(
            "\n| resource | peak | capacity | now | worst loss | after it | target | safe level | headroom | \
             trend |\n|---|--:|--:|--:|---|--:|--:|--:|--:|---|\n",
        );
        for r in &group.resources {
            out.push_str(&format!(
                "| {}{} | {} | {} | {} | {} | {} | {} | {} | {:+.1} pts | {} |\n",
                r.resource.label(),
                if r.load_source == LoadSource::LittlesLaw {
                    " (Little's law)"
                } else {
                    ""
                },
                amount(r.resource, r.peak),
                amount(r.resource, r.capacity),
                percent(r.current_utilisation),
                md_cell(&case_text(&r.worst)),
                after_loss(&r.worst),
                percent(r.target),
                percent(r.safe_steady_state),
                r.headroom * 100.0,
                forecast_text(r),
            ));
        }
    }
    out
}

/// Escapes text for HTML element content and double-quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
