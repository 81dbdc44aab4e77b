//! What the API and the command line show of analytics: the outliers of the last window and the alarms,
//! as serializable reports.

use crate::analytics::alarms::{AlarmEvent, AlarmStatus};
use crate::analytics::outliers::{Outlier, SkippedGroup};
use serde::{Deserialize, Serialize};

/// Outliers as of the last window, for the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutlierReport {
    pub window_ms: u64,
    pub flag_windows: u32,
    pub window_count: u32,
    pub threshold_score: f64,
    pub peer_label: String,
    /// End of the last scored window; `None` before the first.
    pub last_window_ms: Option<u64>,
    pub outliers: Vec<OutlierRow>,
    /// Groups (or metrics of them) not scored, and why.
    pub skipped: Vec<SkippedRow>,
}

/// One flagged (host, metric) with its one-line explanation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutlierRow {
    pub host: String,
    pub group: String,
    pub metric: String,
    pub value: f64,
    pub group_median: f64,
    pub mad: f64,
    pub spread: f64,
    pub score: f64,
    pub outlying_windows: u32,
    pub window_count: u32,
    pub since_ms: u64,
    /// Like `web-17 cpu_busy_pct 92.0% vs group median 31.0% (MAD 4.1) score 14.9, 7 of last 10 min, since …`.
    pub explanation: String,
}

impl From<&Outlier> for OutlierRow {
    fn from(o: &Outlier) -> Self {
        OutlierRow {
            host: o.host.clone(),
            group: o.group.clone(),
            metric: o.metric.name().to_string(),
            value: o.value,
            group_median: o.group_median,
            mad: o.mad,
            spread: o.spread,
            score: o.score,
            outlying_windows: o.outlying_windows,
            window_count: o.window_count,
            since_ms: o.since_ms,
            explanation: o.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRow {
    pub group: String,
    pub metric: Option<String>,
    pub hosts: usize,
    pub reason: String,
}

impl From<&SkippedGroup> for SkippedRow {
    fn from(s: &SkippedGroup) -> Self {
        SkippedRow {
            group: s.group.clone(),
            metric: s.metric.map(|m| m.name().to_string()),
            hosts: s.hosts,
            reason: s.reason.clone(),
        }
    }
}

/// The outlier and alarm figures `/metrics` exposes (`Analytics::scrape_counts`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrapeCounts {
    /// (host, metric) pairs flagged in the last outlier window.
    pub outliers_flagged: u64,
    pub alarms_firing: u64,
    pub alarms_pending: u64,
    pub delivered_batches: u64,
    pub failed_batches: u64,
    pub dropped_batches: u64,
}

/// Alarms as of the last evaluation, for the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlarmReport {
    /// The rules file; `None`: alarms are off (set alarms.rules in the collector config).
    pub rules_file: Option<String>,
    pub rules: usize,
    pub interval_ms: u64,
    pub evaluated_ms: Option<u64>,
    /// Pending and firing alarms, most severe first.
    pub alarms: Vec<AlarmRow>,
    pub delivered_batches: u64,
    pub failed_batches: u64,
    pub dropped_batches: u64,
}

/// One pending or firing alarm.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlarmRow {
    pub rule: String,
    pub kind: String,
    pub status: String,
    pub severity: String,
    /// "host" or "group".
    pub subject_type: String,
    pub subject: String,
    pub summary: String,
    pub runbook: String,
    pub value: Option<f64>,
    pub active_since_ms: Option<u64>,
    pub fired_ms: Option<u64>,
}

impl From<&AlarmEvent> for AlarmRow {
    fn from(e: &AlarmEvent) -> Self {
        let (subject_type, subject) = match &e.subject {
            crate::analytics::alarms::Subject::Host(name) => ("host", name.clone()),
            crate::analytics::alarms::Subject::Group(name) => ("group", name.clone()),
        };
        let status = match e.status {
            AlarmStatus::Pending => "pending",
            AlarmStatus::Firing => "firing",
            AlarmStatus::Resolved => "resolved",
        };
        AlarmRow {
            rule: e.rule.clone(),
            kind: e.kind.to_string(),
            status: status.to_string(),
            severity: e.severity.name().to_string(),
            subject_type: subject_type.to_string(),
            subject,
            summary: e.summary.clone(),
            runbook: e.runbook.clone(),
            value: e.value,
            active_since_ms: e.active_since_ms,
            fired_ms: e.fired_ms,
        }
    }
}
