//! The analytics runtime inside `serve`: ingest feeds every host's recent readings in, a task scores peer
//! outliers once per window and evaluates the alarm rules once per interval, delivers transitions (and
//! re-sends firing alarms) to Alertmanager or a webhook, and keeps the latest results for the JSON API.
//!
//! The scoring and the state machines are the pure cores in `crate::analytics::outliers` and `crate::analytics::alarms`; this file
//! only holds state, reads the clock and moves results between tasks.
//!
//! Times in the history are the collector's receive times (see `alarms::eval`). A sample much older than
//! its arrival (an agent catching up on its spool) is not added to the history: it does not describe now,
//! and the live samples sent meanwhile already did.

pub mod alarms;
pub mod outliers;
mod report;
mod runner;

pub use report::{AlarmReport, AlarmRow, OutlierReport, OutlierRow, ScrapeCounts, SkippedRow};
pub use runner::run;

use crate::analytics::alarms::{AlarmEngine, AlarmEvent, HostHistory, HostInput, KeptMetrics, RuleSet};
use crate::analytics::outliers::{HostWindow, Metric, MetricValues, OutlierSettings, OutlierTracker};
use crate::live::fleet::HostMetrics;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use tracing::warn;

/// How often the forecast behind `headroom` rules with `within` is recomputed from the database: forecasts
/// move by the day, and a report over the sizing window reads every group minute of it.
pub const FORECAST_REFRESH_MS: u64 = 3_600_000;

/// A sample older than this on arrival is catch-up and stays out of the history.
pub const CATCH_UP_AGE_MS: u64 = 10_000;

/// Readings kept per host when no rule asks for a longer window.
const MIN_HISTORY: usize = 16;
/// Readings kept per host at most (one hour at one sample a second).
const MAX_HISTORY: usize = 3_600;

/// Why the analytics settings could not be built from the config.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Rules(#[from] crate::analytics::alarms::RulesError),
    #[error(
        "alarms.ca {path}: {detail} (give a readable PEM file with the alarm receiver's CA certificate)"
    )]
    Ca { path: PathBuf, detail: String },
}

/// Everything the runtime needs besides the clock.
#[derive(Debug, Clone)]
pub struct AnalyticsSettings {
    pub rules: Option<RuleSet>,
    /// Where the rules came from, for the API.
    pub rules_file: Option<PathBuf>,
    /// Alertmanager base URL.
    pub alertmanager: Option<String>,
    /// Webhook URL.
    pub webhook: Option<String>,
    /// Extra CA certificates (PEM) for https:// targets, read from `alarms.ca`.
    pub alarm_ca_pem: Option<Vec<u8>>,
    pub alarm_interval_ms: u64,
    pub outliers: OutlierSettings,
    /// The collector database, for windowed fleet views; `None` in tests without storage.
    pub database: Option<PathBuf>,
    /// The API's base URL, for the alerts' generatorURL.
    pub api_url: String,
    /// The `[sizing]` settings `headroom` rules size groups with.
    pub sizing: crate::sizing::SizingConfig,
}

/// Readings per host the rules need: the longest window, at one reading a second, plus slack. A rule's
/// `for` needs no readings (its state machine keeps when the condition began).
pub fn history_capacity(rules: Option<&RuleSet>) -> usize {
    let longest_ms = rules.map_or(0, |set| {
        set.rules
            .iter()
            .map(|rule| match rule.condition {
                crate::analytics::alarms::Condition::Percentile { over_ms, .. }
                | crate::analytics::alarms::Condition::RateOfChange { over_ms, .. } => over_ms,
                crate::analytics::alarms::Condition::Headroom {
                    over_ms,
                    within_days: None,
                } => over_ms,
                _ => 0,
            })
            .max()
            .unwrap_or(0)
    });
    ((longest_ms / 1000) as usize + 2).clamp(MIN_HISTORY, MAX_HISTORY)
}

/// How long each host's per-port connection minutes are kept: the longest window of a live `headroom`
/// rule, or 0 (not kept) without one.
pub fn port_minutes_kept_ms(rules: Option<&RuleSet>) -> u64 {
    rules.map_or(0, |set| {
        set.rules
            .iter()
            .filter_map(|rule| match rule.condition {
                crate::analytics::alarms::Condition::Headroom {
                    over_ms,
                    within_days: None,
                } => Some(over_ms),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    })
}

/// Per-metric sum and count of one host's readings in the current outlier window.
#[derive(Debug, Clone, Copy)]
struct WindowSums {
    sums: [f64; Metric::COUNT],
    counts: [u32; Metric::COUNT],
}

impl Default for WindowSums {
    fn default() -> Self {
        WindowSums {
            sums: [0.0; Metric::COUNT],
            counts: [0; Metric::COUNT],
        }
    }
}

impl WindowSums {
    fn add(&mut self, values: &MetricValues) {
        for metric in Metric::ALL {
            if let Some(value) = values.get(metric) {
                self.sums[metric.index()] += value;
                self.counts[metric.index()] += 1;
            }
        }
    }

    /// The window's means, or `None` when the host sent nothing in it; resets for the next window.
    fn take(&mut self) -> Option<MetricValues> {
        if self.counts.iter().all(|&c| c == 0) {
            return None;
        }
        let mut values = MetricValues::default();
        for metric in Metric::ALL {
            let count = self.counts[metric.index()];
            values.set(
                metric,
                (count > 0).then(|| self.sums[metric.index()] / f64::from(count)),
            );
        }
        *self = WindowSums::default();
        Some(values)
    }
}

/// One host's state: ingest writes it, the evaluation and the window close read it, each under the host's
/// own lock, so that evaluating 10,000 hosts never holds up a sample of any of them for longer than that
/// one host's rules take.
#[derive(Debug)]
struct HostCell {
    input: HostInput,
    last_sample_ms: u64,
    window: WindowSums,
}

/// One host's analytics state as its connection holds it, so that each stored sample reaches the host's cell
/// without the host list's lock and a lookup by name. A cell is never removed from the list, so a slot stays
/// the host's for as long as it is held.
#[derive(Debug, Clone)]
pub struct HostSlot(Arc<Mutex<HostCell>>);

/// The hosts by name. The list is shared copy-on-write: a reader takes a reference under the lock and
/// walks it without, and adding a host copies the list only while such a walk holds it.
#[derive(Debug, Default)]
struct Hosts {
    index: HashMap<String, usize>,
    cells: Arc<Vec<Arc<Mutex<HostCell>>>>,
}

/// Shared between ingest (writes readings), the runtime task (scores, evaluates) and the API (reads reports).
#[derive(Debug)]
pub struct Analytics {
    settings: AnalyticsSettings,
    history_capacity: usize,
    /// The metrics the rules read, the only ones each host's history keeps.
    kept_metrics: KeptMetrics,
    /// [`port_minutes_kept_ms`] of the rules.
    port_minutes_kept_ms: u64,
    hosts: Mutex<Hosts>,
    outliers: Mutex<OutlierReport>,
    alarms: Mutex<AlarmReport>,
    /// Where alarm transitions and new outlier flags are kept; unset in tests without storage.
    history: std::sync::OnceLock<crate::store::StoreHandle>,
    /// A forecast digest not yet handed to the alarm engine.
    forecast: Mutex<Option<crate::analytics::alarms::headroom::ForecastDigest>>,
}

/// The host's labels as a live sample gave them; copied only when they changed.
fn set_labels(input: &mut HostInput, labels: &BTreeMap<String, String>) {
    if *input.labels != *labels {
        input.labels = Arc::new(labels.clone());
    }
}

/// The host's labels as its latest hello gave them, shared with the live view (issue 12).
fn share_labels(input: &mut HostInput, labels: &Arc<BTreeMap<String, String>>) {
    if !Arc::ptr_eq(&input.labels, labels) {
        input.labels = Arc::clone(labels);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is whole before the lock is released; a panic elsewhere leaves usable state.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Analytics {
    pub fn new(settings: AnalyticsSettings) -> Arc<Analytics> {
        let history_capacity = history_capacity(settings.rules.as_ref());
        let port_minutes_kept_ms = port_minutes_kept_ms(settings.rules.as_ref());
        let kept_metrics = KeptMetrics::for_rules(settings.rules.as_ref());
        let outliers = OutlierReport {
            window_ms: settings.outliers.window_ms,
            flag_windows: settings.outliers.flag_windows,
            window_count: settings.outliers.window_count,
            threshold_score: settings.outliers.threshold_score,
            peer_label: settings.outliers.peer_label.clone(),
            ..OutlierReport::default()
        };
        let alarms = AlarmReport {
            rules_file: settings.rules_file.as_ref().map(|p| p.display().to_string()),
            rules: settings.rules.as_ref().map_or(0, |r| r.rules.len()),
            interval_ms: settings.alarm_interval_ms,
            ..AlarmReport::default()
        };
        Arc::new(Analytics {
            settings,
            history_capacity,
            kept_metrics,
            port_minutes_kept_ms,
            hosts: Mutex::new(Hosts::default()),
            outliers: Mutex::new(outliers),
            alarms: Mutex::new(alarms),
            history: std::sync::OnceLock::new(),
            forecast: Mutex::new(None),
        })
    }

    pub fn settings(&self) -> &AnalyticsSettings {
        &self.settings
    }

    /// Keep alarm transitions and outlier flags in `store` from now on (the alarms page and the review
    /// read them back).
    pub fn keep_history(&self, store: crate::store::StoreHandle) {
        let _ = self.history.set(store);
    }

    /// Hands history rows to the store writer without holding up the caller.
    fn record(&self, rows: crate::store::history::HistoryRows) {
        let Some(store) = self.history.get().cloned() else {
            return;
        };
        if rows.is_empty() {
            return;
        }
        tokio::spawn(async move {
            if let Err(error) = store.record_history(rows).await {
                warn!(%error, "alarm and outlier history not stored");
            }
        });
    }

    /// One stored or live sample of `host` (identity from its certificate), received at `now_ms`.
    ///
    /// A sample not newer than the last one observed (a live sample stored again later, a replay) only
    /// counts as hearing from the host. Allocates only for a host seen for the first time or whose labels
    /// changed, and, with a live `headroom` rule, for a new listening port or the first minutes of per-port
    /// counts (a minute's list is reused once the oldest is forgotten). Holds the host list's lock for one
    /// lookup, then only this host's lock. A connection's stored samples go through [`Analytics::observe_slot`]
    /// instead, which needs neither the lookup nor the comparison of labels.
    pub fn observe(
        &self,
        host: &str,
        labels: &BTreeMap<String, String>,
        metrics: &HostMetrics,
        sample_ms: u64,
        now_ms: u64,
    ) {
        let cell = self.cell(host, now_ms, || Arc::new(labels.clone()));
        let mut cell = lock(&cell);
        set_labels(&mut cell.input, labels);
        self.take_reading(&mut cell, metrics, sample_ms, now_ms);
    }

    /// One stored sample of the host `slot` was bound to by [`Analytics::bind`], with the labels of that hello.
    pub fn observe_slot(&self, slot: &HostSlot, metrics: &HostMetrics, sample_ms: u64, now_ms: u64) {
        self.take_reading(&mut lock(&slot.0), metrics, sample_ms, now_ms);
    }

    fn take_reading(&self, cell: &mut HostCell, metrics: &HostMetrics, sample_ms: u64, now_ms: u64) {
        let input = &mut cell.input;
        input.last_seen_ms = input.last_seen_ms.max(now_ms);
        let last_ms = cell.last_sample_ms;
        if sample_ms <= last_ms {
            return;
        }
        if last_ms > 0 {
            // The host's interval, learnt from consecutive samples, sets how fresh a threshold's value must be.
            input.interval_ms = (sample_ms - last_ms).clamp(100, 3_600_000) as u32;
        }
        cell.last_sample_ms = sample_ms;
        if sample_ms + CATCH_UP_AGE_MS < now_ms {
            return;
        }
        let values = MetricValues::from_metrics(metrics);
        let at_ms = now_ms.max(input.history.latest_ms().unwrap_or(0));
        input.history.push(at_ms, values);
        if self.port_minutes_kept_ms > 0 {
            let listeners = metrics.listeners.iter().map(|l| (l.port, l.established));
            input.ports.add(at_ms, listeners, self.port_minutes_kept_ms);
        }
        cell.window.add(&values);
    }

    /// A hello of `host`: its labels and the capacity it announced (cores, memory, for `headroom` rules).
    /// Returns the host's slot, which the connection keeps for its stored samples ([`Analytics::observe_slot`]):
    /// the labels of a connection are those of its hello.
    pub fn bind(
        &self,
        host: &str,
        labels: &Arc<BTreeMap<String, String>>,
        cores: u32,
        memory_bytes: u64,
        now_ms: u64,
    ) -> HostSlot {
        let cell = self.cell(host, now_ms, || Arc::clone(labels));
        {
            let mut cell = lock(&cell);
            share_labels(&mut cell.input, labels);
            cell.input.cores = cores;
            cell.input.memory_bytes = memory_bytes;
        }
        HostSlot(cell)
    }

    /// A sizing report computed from the database at `computed_ms` (by whoever owns the database, as
    /// [`alarms::forecast_refresh::ForecastRefresh`] plans), digested for `headroom` rules with `within`;
    /// the next evaluation picks it up.
    pub fn set_forecast(&self, report: &crate::sizing::SizingReport, computed_ms: u64) {
        *lock(&self.forecast) = Some(crate::analytics::alarms::headroom::forecast_digest(
            report,
            computed_ms,
        ));
    }

    /// The groups a `headroom` rule with `within` watches now: those with a host in its scope.
    pub fn forecast_groups(&self) -> std::collections::BTreeSet<String> {
        let Some(rules) = self.settings.rules.as_ref() else {
            return std::collections::BTreeSet::new();
        };
        let mut groups = std::collections::BTreeSet::new();
        for cell in self.cells().iter() {
            let cell = lock(cell);
            let group = alarms::forecast_refresh::watched_group(rules, &cell.input.labels);
            alarms::forecast_refresh::add_group(&mut groups, group);
        }
        groups
    }

    /// Whether a `headroom` rule with `within` needs forecasts.
    pub fn wants_forecast(&self) -> bool {
        self.settings.rules.as_ref().is_some_and(|rules| {
            rules.rules.iter().any(|rule| {
                matches!(
                    rule.condition,
                    crate::analytics::alarms::Condition::Headroom {
                        within_days: Some(_),
                        ..
                    }
                )
            })
        })
    }

    /// A new estimate of how far the clock of the host `slot` was bound to by [`Analytics::bind`] is ahead of
    /// the collector's, for `clock_skew` rules.
    pub fn observe_clock(&self, slot: &HostSlot, offset_ms: i64) {
        lock(&slot.0).input.clock_offset_ms = Some(offset_ms);
    }

    /// The cell of `host`, added when new with `labels`.
    fn cell(
        &self,
        host: &str,
        now_ms: u64,
        labels: impl FnOnce() -> Arc<BTreeMap<String, String>>,
    ) -> Arc<Mutex<HostCell>> {
        let mut hosts = lock(&self.hosts);
        let hosts = &mut *hosts;
        if let Some(&slot) = hosts.index.get(host) {
            return Arc::clone(&hosts.cells[slot]);
        }
        let cell = Arc::new(Mutex::new(HostCell {
            input: HostInput {
                host: host.to_string(),
                labels: labels(),
                interval_ms: crate::live::fleet::DEFAULT_INTERVAL_MS,
                last_seen_ms: now_ms,
                clock_offset_ms: None,
                cores: 0,
                memory_bytes: 0,
                history: HostHistory::keeping(self.history_capacity, self.kept_metrics),
                ports: Default::default(),
            },
            last_sample_ms: 0,
            window: WindowSums::default(),
        }));
        hosts.index.insert(host.to_string(), hosts.cells.len());
        // Copies the list only if an evaluation or a window close is walking it right now.
        Arc::make_mut(&mut hosts.cells).push(Arc::clone(&cell));
        cell
    }

    /// The hosts as of now, to walk without the list's lock.
    fn cells(&self) -> Arc<Vec<Arc<Mutex<HostCell>>>> {
        Arc::clone(&lock(&self.hosts).cells)
    }

    /// The outlier report, optionally only one group's rows.
    pub fn outlier_report(&self, group: Option<&str>) -> OutlierReport {
        let mut report = lock(&self.outliers).clone();
        if let Some(group) = group {
            report.outliers.retain(|o| o.group == group);
            report.skipped.retain(|s| s.group == group);
        }
        report
    }

    pub fn alarm_report(&self) -> AlarmReport {
        lock(&self.alarms).clone()
    }

    /// What `/metrics` shows of the outliers and alarms, counted under their locks: a scrape copies no report,
    /// however many hosts are flagged or alarms firing.
    pub fn scrape_counts(&self) -> ScrapeCounts {
        let outliers_flagged = lock(&self.outliers).outliers.len() as u64;
        let alarms = lock(&self.alarms);
        let status = |wanted: &str| alarms.alarms.iter().filter(|a| a.status == wanted).count() as u64;
        ScrapeCounts {
            outliers_flagged,
            alarms_firing: status("firing"),
            alarms_pending: status("pending"),
            delivered_batches: alarms.delivered_batches,
            failed_batches: alarms.failed_batches,
            dropped_batches: alarms.dropped_batches,
        }
    }

    /// Closes the current outlier window at `now_ms`: each host's mean over it, scored against its peers.
    pub fn close_window(&self, tracker: &mut OutlierTracker, now_ms: u64) {
        let peer_label = &self.settings.outliers.peer_label;
        let windows: Vec<HostWindow> = self
            .cells()
            .iter()
            .filter_map(|cell| {
                let mut cell = lock(cell);
                Some(HostWindow {
                    values: cell.window.take()?,
                    host: cell.input.host.clone(),
                    group: cell.input.labels.get(peer_label).cloned().unwrap_or_default(),
                })
            })
            .collect();
        let window = tracker.observe(&windows, now_ms);
        let mut report = lock(&self.outliers);
        report.last_window_ms = Some(now_ms);
        let outliers: Vec<OutlierRow> = tracker.outliers().iter().map(OutlierRow::from).collect();
        // A (host, metric) not flagged after the previous window is a new flag, kept for the review.
        let new_flags = outliers
            .iter()
            .filter(|o| {
                !report
                    .outliers
                    .iter()
                    .any(|p| p.host == o.host && p.metric == o.metric)
            })
            .map(|o| crate::store::history::OutlierFlagRow {
                at_ms: now_ms,
                host: o.host.clone(),
                group: o.group.clone(),
                metric: o.metric.clone(),
                value: o.value,
                group_median: o.group_median,
                score: o.score,
                explanation: o.explanation.clone(),
            })
            .collect();
        report.outliers = outliers;
        report.skipped = window.skipped.iter().map(SkippedRow::from).collect();
        drop(report);
        self.record(crate::store::history::HistoryRows {
            alarms: Vec::new(),
            outliers: new_flags,
        });
    }

    /// Evaluates every rule at `now_ms`; returns the transitions and updates the alarm report.
    ///
    /// Each host is locked only while its own rules are evaluated, so ingest waits at most that long.
    pub fn evaluate(
        &self,
        engine: &mut AlarmEngine,
        tracker: &OutlierTracker,
        now_ms: u64,
    ) -> Vec<AlarmEvent> {
        if let Some(digest) = lock(&self.forecast).take() {
            engine.set_forecast(digest);
        }
        let cells = self.cells();
        let events = engine.evaluate_each(Some(tracker), now_ms, |visit| {
            for cell in cells.iter() {
                visit(&lock(cell).input);
            }
        });
        let mut report = lock(&self.alarms);
        report.evaluated_ms = Some(now_ms);
        report.alarms = engine.active().iter().map(AlarmRow::from).collect();
        drop(report);
        let alarms = events
            .iter()
            .map(|event| {
                let row = AlarmRow::from(event);
                crate::store::history::AlarmHistoryRow {
                    at_ms: now_ms,
                    rule: row.rule,
                    kind: row.kind,
                    severity: row.severity,
                    subject_type: row.subject_type,
                    subject: row.subject,
                    status: row.status,
                    value: row.value,
                    active_since_ms: row.active_since_ms,
                    fired_ms: row.fired_ms,
                    summary: row.summary,
                    runbook: row.runbook,
                }
            })
            .collect();
        self.record(crate::store::history::HistoryRows {
            alarms,
            outliers: Vec::new(),
        });
        events
    }
}

#[cfg(test)]
mod tests;
