//! What each page of the web view shows, as plain data: built by pure functions from the live fleet, the
//! analytics reports, the store's rows and the sizing report, with `now_ms` passed in. The JSON form of a
//! page is this data serialized; the HTML form (`html.rs`) renders the same value.

use super::history::{fleet_page_values, HistoryPoint};
use crate::analytics::{AlarmReport, AlarmRow, OutlierReport, OutlierRow};
use crate::identity::registry::CertRecord;
use crate::live::fleet::{HostStatus, HostView};
use crate::live::summary::summarize;
use crate::metrics::{metrics_in, Key, Place, Values};
use crate::sizing::{GroupReport, SizingReport};
use crate::store::history::{HourPoint, RecentPoint};
use crate::store::query::StoredGap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Rows of the fleet page with at most this many hosts list them by name.
pub const NAMES_PER_ROW: usize = 12;

/// A host named on a page, with whether it is flagged as an outlier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostName {
    pub host: String,
    pub status: HostStatus,
    pub flagged: bool,
}

/// One group × zone row of the fleet page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetRow {
    pub group: String,
    pub zone: String,
    pub hosts: u32,
    pub hosts_up: u32,
    pub hosts_stale: u32,
    pub hosts_down: u32,
    /// The catalogue's fleet-page statistics across the row's hosts (`cpu_busy_p99`, …), flat.
    #[serde(flatten)]
    pub values: Values,
    /// The row's hosts by name when there are at most [`NAMES_PER_ROW`]; flagged hosts always.
    pub named_hosts: Vec<HostName>,
    /// The last hour, one point per history step.
    pub history: Vec<HistoryPoint>,
}

/// A group's sizing verdict in one line, for the fleet page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizingLine {
    pub group: String,
    pub status: String,
    pub binding: Option<String>,
    pub worst_case: Option<String>,
    pub hosts_to_add: String,
}

/// `GET /fleet`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetPage {
    pub generated_ms: u64,
    /// A line the operator must read first (the demo's shortened windows).
    pub notice: Option<String>,
    pub hosts_up: u32,
    pub hosts_stale: u32,
    pub hosts_down: u32,
    /// Firing alarms first, then pending.
    pub alarms: Vec<AlarmRow>,
    pub outliers: Vec<OutlierRow>,
    pub rows: Vec<FleetRow>,
    pub history_step_ms: u64,
    /// Per group, from the latest sizing report; empty until one was computed.
    pub sizing: Vec<SizingLine>,
    pub sizing_window: String,
    /// Where the sizing's window starts (UTC): on the hour at or before `sizing_window` back, so that the
    /// minute refresh reads only what is new (`store::kept_stats`).
    #[serde(default)]
    pub sizing_from: Option<String>,
    /// Where the sizing's window ends (UTC): the last minute the rollup has finished, a minute or two
    /// ago (`report_cli::ReportOptions::rolled_up_only`).
    #[serde(default)]
    pub sizing_through: Option<String>,
}

fn flagged_hosts(outliers: &OutlierReport) -> BTreeSet<&str> {
    outliers.outliers.iter().map(|o| o.host.as_str()).collect()
}

/// Firing before pending, then by rule and subject.
fn active_alarms(alarms: &AlarmReport) -> Vec<AlarmRow> {
    let mut rows = alarms.alarms.clone();
    rows.sort_by(|a, b| {
        (a.status != "firing", &a.rule, &a.subject).cmp(&(b.status != "firing", &b.rule, &b.subject))
    });
    rows
}

/// One line per group of a sizing report.
pub fn sizing_lines(report: &SizingReport) -> Vec<SizingLine> {
    report.groups.iter().map(sizing_line).collect()
}

fn sizing_line(group: &GroupReport) -> SizingLine {
    SizingLine {
        group: group.name.clone(),
        status: crate::sizing::report::status_text(group.status).to_string(),
        binding: group.binding.map(|r| r.label()),
        worst_case: group.worst_case.as_ref().map(|case| {
            format!(
                "losing {} leaves {}",
                crate::sizing::report::case_text(case),
                crate::sizing::report::after_loss(case)
            )
        }),
        hosts_to_add: crate::sizing::report::hosts_to_add_text(group),
    }
}

/// Everything the fleet page reads besides the live hosts.
pub struct FleetInputs<'a> {
    pub outliers: &'a OutlierReport,
    pub alarms: &'a AlarmReport,
    pub history: &'a super::history::FleetHistory,
    pub sizing: Option<&'a SizingReport>,
    pub sizing_window: String,
    pub notice: Option<String>,
}

pub fn fleet_page(hosts: &[HostView], inputs: FleetInputs<'_>, now_ms: u64) -> FleetPage {
    let summary = summarize(hosts, now_ms);
    let flagged = flagged_hosts(inputs.outliers);
    let rows = summary
        .groups
        .iter()
        .map(|row| {
            let in_row = hosts
                .iter()
                .filter(|h| h.group == row.group && h.zone == row.zone);
            let named_hosts = in_row
                .filter(|h| row.hosts as usize <= NAMES_PER_ROW || flagged.contains(h.host.as_str()))
                .map(|h| HostName {
                    host: h.host.clone(),
                    status: h.status,
                    flagged: flagged.contains(h.host.as_str()),
                })
                .collect();
            FleetRow {
                group: row.group.clone(),
                zone: row.zone.clone(),
                hosts: row.hosts,
                hosts_up: row.hosts_up,
                hosts_stale: row.hosts_stale,
                hosts_down: row.hosts_down,
                values: fleet_page_values(row),
                named_hosts,
                history: inputs.history.row(&row.group, &row.zone),
            }
        })
        .collect();
    FleetPage {
        generated_ms: now_ms,
        notice: inputs.notice,
        hosts_up: summary.hosts_up,
        hosts_stale: summary.hosts_stale,
        hosts_down: summary.hosts_down,
        alarms: active_alarms(inputs.alarms),
        outliers: inputs.outliers.outliers.clone(),
        rows,
        history_step_ms: inputs.history.step_ms(),
        sizing: inputs.sizing.map(sizing_lines).unwrap_or_default(),
        sizing_window: inputs.sizing_window,
        sizing_from: inputs
            .sizing
            .map(|report| crate::sizing::report::utc(report.window_start_ms)),
        sizing_through: inputs
            .sizing
            .map(|report| crate::sizing::report::utc(report.window_end_ms)),
    }
}

/// A column of the group page's host table: its key in `?sort=`, its heading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Column {
    pub key: &'static str,
    pub heading: &'static str,
    pub numeric: bool,
}

/// The group page's columns ahead of its metrics.
const FACT_COLUMNS: [Column; 3] = [
    Column {
        key: "host",
        heading: "Host",
        numeric: false,
    },
    Column {
        key: "zone",
        heading: "Zone",
        numeric: false,
    },
    Column {
        key: "status",
        heading: "Status",
        numeric: false,
    },
];

/// The group page's columns, in order; every one sorts. After the host's facts come the metrics the
/// catalogue puts on the group page, keyed by their short name, headed by their title.
pub fn columns() -> Vec<Column> {
    FACT_COLUMNS
        .into_iter()
        .chain(metrics_in(Place::GroupPage).into_iter().map(|metric| {
            let show = &metric.def().show;
            Column {
                key: show.short,
                heading: show.title,
                numeric: true,
            }
        }))
        .collect()
}

/// One host of the group page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostRow {
    pub host: String,
    pub zone: String,
    pub status: HostStatus,
    pub flagged: bool,
    /// The group page's metrics under their names, in column order.
    #[serde(flatten)]
    pub values: Values,
}

impl HostRow {
    /// The value in the metric column whose key is `key`.
    fn number(&self, key: &str) -> Option<f64> {
        self.values
            .0
            .iter()
            .find(|(k, _)| k.metric.def().show.short == key)
            .and_then(|(_, v)| *v)
    }
}

/// The group's sizing as the group page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSizing {
    pub window: String,
    /// Where the window starts (UTC), as [`FleetPage::sizing_from`].
    pub from: String,
    /// Where the window ends (UTC), as [`FleetPage::sizing_through`].
    pub through: String,
    pub line: SizingLine,
    pub days_to_safe_target: Option<f64>,
    pub notes: Vec<String>,
    /// The full model output for the group.
    pub report: GroupReport,
}

/// `GET /groups/{group}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupPage {
    pub generated_ms: u64,
    pub group: String,
    pub sort: String,
    pub descending: bool,
    pub columns: Vec<Column>,
    pub hosts: Vec<HostRow>,
    pub outliers: Vec<OutlierRow>,
    pub alarms: Vec<AlarmRow>,
    pub sizing: Option<GroupSizing>,
    /// Why sizing is missing, when it is.
    pub sizing_error: Option<String>,
    pub report_html: String,
    pub report_csv: String,
}

/// The sort a request asked for, checked against [`columns`]: unknown keys sort by host.
pub fn parse_sort(sort: Option<&str>, order: Option<&str>) -> (String, bool) {
    let columns = columns();
    let key = sort
        .filter(|key| columns.iter().any(|c| c.key == *key))
        .unwrap_or("host");
    let numeric = columns.iter().any(|c| c.key == key && c.numeric);
    // Numbers read best largest first, names in alphabetical order, unless the request says otherwise.
    let descending = match order {
        Some("asc") => false,
        Some("desc") => true,
        _ => numeric,
    };
    (key.to_string(), descending)
}

/// Everything the group page reads besides the live hosts.
pub struct GroupInputs<'a> {
    pub outliers: &'a OutlierReport,
    pub alarms: &'a AlarmReport,
    pub sizing: Result<Option<&'a SizingReport>, String>,
    pub sizing_window: String,
}

pub fn group_page(
    group: &str,
    hosts: &[HostView],
    inputs: GroupInputs<'_>,
    sort: (String, bool),
    now_ms: u64,
) -> GroupPage {
    let flagged = flagged_hosts(inputs.outliers);
    let shown = metrics_in(Place::GroupPage);
    let mut rows: Vec<HostRow> = hosts
        .iter()
        .filter(|h| h.group == group)
        .map(|h| HostRow {
            host: h.host.clone(),
            zone: h.zone.clone(),
            status: h.status,
            flagged: flagged.contains(h.host.as_str()),
            values: Values(shown.iter().map(|m| (Key::of(*m), m.value(&h.metrics))).collect()),
        })
        .collect();
    let (key, descending) = sort;
    rows.sort_by(|a, b| {
        let order = match key.as_str() {
            "zone" => a.zone.cmp(&b.zone),
            "status" => a.status.cmp(&b.status),
            "host" => a.host.cmp(&b.host),
            // Missing values sort last whichever the direction.
            numeric => match (a.number(numeric), b.number(numeric)) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => return std::cmp::Ordering::Less,
                (None, Some(_)) => return std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            },
        };
        let order = if descending { order.reverse() } else { order };
        order.then_with(|| a.host.cmp(&b.host))
    });
    let (sizing, sizing_error) = match inputs.sizing {
        Ok(Some(report)) => (
            report
                .groups
                .iter()
                .find(|g| g.name == group)
                .map(|g| GroupSizing {
                    window: inputs.sizing_window.clone(),
                    from: crate::sizing::report::utc(report.window_start_ms),
                    through: crate::sizing::report::utc(report.window_end_ms),
                    line: sizing_line(g),
                    days_to_safe_target: g.days_to_safe_target,
                    notes: g.notes.clone(),
                    report: g.clone(),
                }),
            None,
        ),
        Ok(None) => (None, None),
        Err(error) => (None, Some(error)),
    };
    let sizing_error = sizing_error.or_else(|| {
        sizing
            .is_none()
            .then(|| format!("no sizing for {group:?} yet: the group needs a minute of rolled-up data"))
    });
    let window = &inputs.sizing_window;
    GroupPage {
        generated_ms: now_ms,
        group: group.to_string(),
        sort: key,
        descending,
        columns: columns(),
        hosts: rows,
        outliers: inputs
            .outliers
            .outliers
            .iter()
            .filter(|o| o.group == group)
            .cloned()
            .collect(),
        alarms: active_alarms(inputs.alarms)
            .into_iter()
            .filter(|a| a.subject == group || hosts.iter().any(|h| h.host == a.subject && h.group == group))
            .collect(),
        sizing,
        sizing_error,
        report_html: format!("/report.html?window={window}"),
        report_csv: format!("/report.csv?window={window}"),
    }
}

/// One listening port of the host page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListenerRow {
    pub port: u16,
    pub established: u32,
    pub accept_queue: u32,
    /// 0 when the kernel did not say.
    pub accept_queue_limit: u32,
    pub accept_queue_fill_pct: Option<f64>,
}

/// A data gap as pages show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapLine {
    pub host: String,
    pub from_ms: u64,
    pub to_ms: u64,
    pub count: u64,
    pub reason: String,
}

impl From<&StoredGap> for GapLine {
    fn from(gap: &StoredGap) -> Self {
        GapLine {
            host: gap.host.clone(),
            from_ms: gap.from_ms,
            to_ms: gap.to_ms,
            count: gap.count,
            reason: gap.reason.clone(),
        }
    }
}

/// The host's current certificate as the registry knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertificateLine {
    pub serial: String,
    pub issued_at_s: i64,
    pub not_after_s: i64,
    pub issued_by: String,
}

/// `GET /hosts/{host}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostPage {
    pub generated_ms: u64,
    pub host: HostView,
    pub outliers: Vec<OutlierRow>,
    pub alarms: Vec<AlarmRow>,
    /// Raw samples of the last hour, at the host's sampling rate.
    pub last_hour: Vec<RecentPoint>,
    /// Hourly rollups of the last 30 days.
    pub last_30_days: Vec<HourPoint>,
    pub listeners: Vec<ListenerRow>,
    pub gaps: Vec<GapLine>,
    pub certificate: Option<CertificateLine>,
}

/// What the host page reads from storage and the registry.
pub struct HostInputs<'a> {
    pub outliers: &'a OutlierReport,
    pub alarms: &'a AlarmReport,
    pub last_hour: Vec<RecentPoint>,
    pub last_30_days: Vec<HourPoint>,
    pub gaps: Vec<StoredGap>,
    pub certificates: Vec<CertRecord>,
}

pub fn host_page(view: HostView, inputs: HostInputs<'_>, now_ms: u64) -> HostPage {
    let listeners = view
        .metrics
        .listeners
        .iter()
        .map(|l| ListenerRow {
            port: l.port,
            established: l.established,
            accept_queue: l.accept_queue,
            accept_queue_limit: l.accept_queue_limit,
            accept_queue_fill_pct: (l.accept_queue_limit > 0)
                .then(|| f64::from(l.accept_queue) * 100.0 / f64::from(l.accept_queue_limit)),
        })
        .collect();
    // The newest certificate of the host that is still valid, else the newest.
    let now_s = (now_ms / 1000) as i64;
    let certificate = inputs
        .certificates
        .iter()
        .filter(|c| c.host == view.host)
        .max_by_key(|c| (c.not_after_s > now_s, c.issued_at_s))
        .map(|c| CertificateLine {
            serial: c.serial.clone(),
            issued_at_s: c.issued_at_s,
            not_after_s: c.not_after_s,
            issued_by: format!("{:?}", c.issued_by).to_lowercase(),
        });
    HostPage {
        generated_ms: now_ms,
        outliers: inputs
            .outliers
            .outliers
            .iter()
            .filter(|o| o.host == view.host)
            .cloned()
            .collect(),
        alarms: active_alarms(inputs.alarms)
            .into_iter()
            .filter(|a| a.subject == view.host || (a.subject_type == "group" && a.subject == view.group))
            .collect(),
        last_hour: inputs.last_hour,
        last_30_days: inputs.last_30_days,
        listeners,
        gaps: inputs
            .gaps
            .iter()
            .filter(|g| g.host == view.host)
            .map(GapLine::from)
            .collect(),
        certificate,
        host: view,
    }
}

/// `GET /alarms`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmsPage {
    pub generated_ms: u64,
    pub rules_file: Option<String>,
    pub rules: usize,
    pub evaluated_ms: Option<u64>,
    pub firing: Vec<AlarmRow>,
    pub pending: Vec<AlarmRow>,
    /// Alarms resolved in the last day, newest first.
    pub resolved: Vec<ResolvedAlarm>,
    pub outliers: Vec<OutlierRow>,
    pub gaps: Vec<GapLine>,
    pub delivered_batches: u64,
    pub failed_batches: u64,
}

/// An alarm that fired and resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolvedAlarm {
    pub rule: String,
    pub severity: String,
    pub subject: String,
    pub summary: String,
    pub runbook: String,
    pub fired_ms: Option<u64>,
    pub resolved_ms: u64,
}

pub fn alarms_page(
    alarms: &AlarmReport,
    outliers: &OutlierReport,
    resolved: Vec<ResolvedAlarm>,
    gaps: &[StoredGap],
    now_ms: u64,
) -> AlarmsPage {
    let active = active_alarms(alarms);
    let (firing, pending) = active.into_iter().partition(|a| a.status == "firing");
    AlarmsPage {
        generated_ms: now_ms,
        rules_file: alarms.rules_file.clone(),
        rules: alarms.rules,
        evaluated_ms: alarms.evaluated_ms,
        firing,
        pending,
        resolved,
        outliers: outliers.outliers.clone(),
        gaps: gaps.iter().map(GapLine::from).collect(),
        delivered_batches: alarms.delivered_batches,
        failed_batches: alarms.failed_batches,
    }
}
