//! One host's history for the web view: its raw samples of the last hour (at the sampling rate) and its
//! hourly rollups over the last weeks.
//!
//! `samples` has no per-host index (see docs/SCHEMA.md), but rows are appended in storage order, which is
//! close to time order: the first row id of the window is found by a binary search on `id` (a few dozen
//! primary-key lookups), and only rows from there on are read. Hourly rollups are one range of the
//! `(host_id, bucket_ms)` index.

use super::sketch::RollupStats;
use super::{Store, StoreError};
use crate::metrics::{Key, Metric, Stat, Values};
use rusqlite::{params, OptionalExtension};

/// One raw sample, reduced to the metrics asked for (the host page's charts), each under its name.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecentPoint {
    pub ts_ms: u64,
    #[serde(flatten)]
    pub values: Values,
}

/// One hour of one host: the mean and the highest sample of each metric asked for, from the hourly
/// rollup (`cpu_busy_mean`, `cpu_busy_max`, …).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HourPoint {
    pub bucket_ms: u64,
    #[serde(flatten)]
    pub values: Values,
}

impl Store {
    /// First `samples.id` whose row was stored at or after `from_ms` by its timestamp, found by bisection
    /// over ids (rows arrive in about time order; a late row only makes the search start a little early
    /// or late, and the time filter of the caller keeps the answer exact for what it reads).
    fn first_row_from(&self, from_ms: u64) -> Result<Option<i64>, StoreError> {
        let err = self.sql_error("find recent samples");
        let bounds: (Option<i64>, Option<i64>) = self
            .conn
            .query_row("SELECT MIN(id), MAX(id) FROM samples", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(&err)?;
        let (Some(mut low), Some(mut high)) = bounds else {
            return Ok(None);
        };
        let mut statement = self
            .conn
            .prepare_cached("SELECT id, ts_ms FROM samples WHERE id >= ?1 ORDER BY id LIMIT 1")
            .map_err(&err)?;
        // Invariant: rows before `low` are older than the window; `high` is a candidate.
        while low < high {
            let middle = low + (high - low) / 2;
            let row: Option<(i64, i64)> = statement
                .query_row(params![middle], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(&err)?;
            match row {
                Some((id, ts_ms)) if (ts_ms as u64) < from_ms => low = id + 1,
                Some(_) => high = middle,
                None => break,
            }
        }
        Ok(Some(low))
    }

    /// `host`'s raw samples with `ts_ms >= from_ms`, oldest first, with the values of `metrics`; empty for
    /// an unknown host.
    pub fn host_recent(
        &self,
        host: &str,
        from_ms: u64,
        metrics: &[Metric],
    ) -> Result<Vec<RecentPoint>, StoreError> {
        let Some(record) = self.hosts.get(host) else {
            return Ok(Vec::new());
        };
        let Some(first) = self.first_row_from(from_ms)? else {
            return Ok(Vec::new());
        };
        let err = self.sql_error("read recent samples");
        // The columns of `samples` are the catalogue's names.
        let columns: String = metrics.iter().map(|m| format!(", {}", m.name())).collect();
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT ts_ms{columns} FROM samples WHERE id >= ?1 AND host_id = ?2 AND ts_ms >= ?3 ORDER BY id"
            ))
            .map_err(&err)?;
        let rows = statement
            .query_map(params![first, record.id, from_ms as i64], |r| {
                let values = metrics
                    .iter()
                    .enumerate()
                    .map(|(i, m)| Ok((Key::of(*m), r.get::<_, Option<f64>>(i + 1)?)))
                    .collect::<Result<Vec<_>, rusqlite::Error>>()?;
                Ok(RecentPoint {
                    ts_ms: r.get::<_, i64>(0)? as u64,
                    values: Values(values),
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(&err)?;
        let mut rows = rows;
        rows.sort_by_key(|p| p.ts_ms);
        Ok(rows)
    }

    /// `host`'s hourly rollups with `from_ms <= bucket_ms < to_ms`, oldest first, with the mean and the
    /// highest sample of each of `metrics`.
    pub fn host_hours(
        &self,
        host: &str,
        from_ms: u64,
        to_ms: u64,
        metrics: &[Metric],
    ) -> Result<Vec<HourPoint>, StoreError> {
        let Some(record) = self.hosts.get(host) else {
            return Ok(Vec::new());
        };
        let err = self.sql_error("read rollup_hour");
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT bucket_ms, stats FROM rollup_hour WHERE host_id = ?1 AND bucket_ms >= ?2 \
                 AND bucket_ms < ?3 ORDER BY bucket_ms",
            )
            .map_err(&err)?;
        let rows = statement
            .query_map(params![record.id, from_ms as i64, to_ms as i64], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(&err)?;
        rows.into_iter()
            .map(|(bucket_ms, blob)| {
                let stats = RollupStats::decode(&blob).map_err(|e| StoreError::BadBlob {
                    path: self.path.clone(),
                    what: "rollup stats",
                    detail: e.to_string(),
                })?;
                let values = metrics
                    .iter()
                    .flat_map(|m| {
                        let seen = stats.get(m.index()).filter(|s| s.count > 0);
                        [
                            (Key::stat(*m, Stat::Mean), seen.map(|s| s.mean())),
                            (Key::stat(*m, Stat::Max), seen.map(|s| s.max)),
                        ]
                    })
                    .collect();
                Ok(HourPoint {
                    bucket_ms,
                    values: Values(values),
                })
            })
            .collect()
    }
}

/// One alarm transition (pending, firing, resolved), as stored in `alarm_events`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlarmHistoryRow {
    /// When the transition happened, collector clock.
    pub at_ms: u64,
    pub rule: String,
    pub kind: String,
    pub severity: String,
    /// "host" or "group".
    pub subject_type: String,
    pub subject: String,
    /// "pending", "firing" or "resolved".
    pub status: String,
    pub value: Option<f64>,
    pub active_since_ms: Option<u64>,
    pub fired_ms: Option<u64>,
    pub summary: String,
    pub runbook: String,
}

/// A (host, metric) newly flagged as a peer outlier, as stored in `outlier_flags`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OutlierFlagRow {
    /// End of the window that flagged it, collector clock.
    pub at_ms: u64,
    pub host: String,
    pub group: String,
    pub metric: String,
    pub value: f64,
    pub group_median: f64,
    pub score: f64,
    pub explanation: String,
}

/// Alarm transitions and outlier flags written together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryRows {
    pub alarms: Vec<AlarmHistoryRow>,
    pub outliers: Vec<OutlierFlagRow>,
}

impl HistoryRows {
    pub fn is_empty(&self) -> bool {
        self.alarms.is_empty() && self.outliers.is_empty()
    }
}

/// Alarm and outlier history is kept this long (the longest window a review reads is far shorter).
pub const HISTORY_RETENTION_MS: u64 = 400 * 86_400_000;

impl Store {
    /// Appends alarm transitions and outlier flags in one transaction, and forgets rows older than
    /// [`HISTORY_RETENTION_MS`] before the newest one written.
    pub fn record_history(&mut self, rows: &HistoryRows) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let err = |e| StoreError::from_sqlite(&path, "record alarm and outlier history", e);
        let transaction = self.conn.transaction().map_err(err)?;
        {
            let mut alarm = transaction
                .prepare_cached(
                    "INSERT INTO alarm_events (at_ms, rule, kind, severity, subject_type, subject, status, value, \
                     active_since_ms, fired_ms, summary, runbook) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
                     ?11, ?12)",
                )
                .map_err(err)?;
            for row in &rows.alarms {
                alarm
                    .execute(params![
                        row.at_ms as i64,
                        row.rule,
                        row.kind,
                        row.severity,
                        row.subject_type,
                        row.subject,
                        row.status,
                        row.value,
                        row.active_since_ms.map(|v| v as i64),
                        row.fired_ms.map(|v| v as i64),
                        row.summary,
                        row.runbook
                    ])
                    .map_err(err)?;
            }
            let mut outlier = transaction
                .prepare_cached(
                    "INSERT INTO outlier_flags (at_ms, host, group_name, metric, value, group_median, score, \
                     explanation) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(err)?;
            for row in &rows.outliers {
                outlier
                    .execute(params![
                        row.at_ms as i64,
                        row.host,
                        row.group,
                        row.metric,
                        row.value,
                        row.group_median,
                        row.score,
                        row.explanation
                    ])
                    .map_err(err)?;
            }
            let newest = rows
                .alarms
                .iter()
                .map(|r| r.at_ms)
                .chain(rows.outliers.iter().map(|r| r.at_ms))
                .max()
                .unwrap_or(0);
            let horizon = newest.saturating_sub(HISTORY_RETENTION_MS) as i64;
            transaction
                .execute("DELETE FROM alarm_events WHERE at_ms < ?1", params![horizon])
                .map_err(err)?;
            transaction
                .execute("DELETE FROM outlier_flags WHERE at_ms < ?1", params![horizon])
                .map_err(err)?;
        }
        transaction.commit().map_err(err)
    }

    /// Alarm transitions with `from_ms <= at_ms < to_ms`, oldest first.
    pub fn alarm_history(&self, from_ms: u64, to_ms: u64) -> Result<Vec<AlarmHistoryRow>, StoreError> {
        self.rows_between(
            "read alarm_events",
            "SELECT at_ms, rule, kind, severity, subject_type, subject, status, value, active_since_ms, \
                 fired_ms, summary, runbook FROM alarm_events WHERE at_ms >= ?1 AND at_ms < ?2 ORDER BY at_ms, id",
            from_ms,
            to_ms,
            |r| {
                Ok(AlarmHistoryRow {
                    at_ms: r.get::<_, i64>(0)? as u64,
                    rule: r.get(1)?,
                    kind: r.get(2)?,
                    severity: r.get(3)?,
                    subject_type: r.get(4)?,
                    subject: r.get(5)?,
                    status: r.get(6)?,
                    value: r.get(7)?,
                    active_since_ms: r.get::<_, Option<i64>>(8)?.map(|v| v as u64),
                    fired_ms: r.get::<_, Option<i64>>(9)?.map(|v| v as u64),
                    summary: r.get(10)?,
                    runbook: r.get(11)?,
                })
            },
        )
    }

    /// Outlier flags with `from_ms <= at_ms < to_ms`, oldest first.
    pub fn outlier_history(&self, from_ms: u64, to_ms: u64) -> Result<Vec<OutlierFlagRow>, StoreError> {
        self.rows_between(
            "read outlier_flags",
            "SELECT at_ms, host, group_name, metric, value, group_median, score, explanation \
                 FROM outlier_flags WHERE at_ms >= ?1 AND at_ms < ?2 ORDER BY at_ms, id",
            from_ms,
            to_ms,
            |r| {
                Ok(OutlierFlagRow {
                    at_ms: r.get::<_, i64>(0)? as u64,
                    host: r.get(1)?,
                    group: r.get(2)?,
                    metric: r.get(3)?,
                    value: r.get(4)?,
                    group_median: r.get(5)?,
                    score: r.get(6)?,
                    explanation: r.get(7)?,
                })
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(at_ms: u64, status: &str) -> AlarmHistoryRow {
        AlarmHistoryRow {
            at_ms,
            rule: "cpu-hot".into(),
            kind: "threshold".into(),
            severity: "warning".into(),
            subject_type: "host".into(),
            subject: "web-1".into(),
            status: status.into(),
            value: Some(95.0),
            active_since_ms: Some(at_ms.saturating_sub(5_000)),
            fired_ms: (status != "pending").then_some(at_ms),
            summary: "web-1 CPU busy 95 %".into(),
            runbook: "https://runbooks.example.invalid/cpu".into(),
        }
    }

    #[test]
    fn history_round_trips_and_old_rows_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open(&dir.path().join("h.db"), 1_000).unwrap();
        store
            .record_history(&HistoryRows {
                alarms: vec![alarm(10_000, "firing")],
                outliers: vec![OutlierFlagRow {
                    at_ms: 10_000,
                    host: "web-4".into(),
                    group: "web".into(),
                    metric: "cpu_busy_pct".into(),
                    value: 92.0,
                    group_median: 31.0,
                    score: 14.9,
                    explanation: "web-4 cpu_busy_pct 92.0% vs group median 31.0%".into(),
                }],
            })
            .unwrap();
        store
            .record_history(&HistoryRows {
                alarms: vec![alarm(70_000, "resolved")],
                outliers: Vec::new(),
            })
            .unwrap();
        let alarms = store.alarm_history(0, 100_000).unwrap();
        assert_eq!(alarms, vec![alarm(10_000, "firing"), alarm(70_000, "resolved")]);
        assert_eq!(store.alarm_history(20_000, 100_000).unwrap().len(), 1);
        assert_eq!(store.outlier_history(0, 100_000).unwrap()[0].host, "web-4");
        // A row written 400 days later pushes the first ones out.
        store
            .record_history(&HistoryRows {
                alarms: vec![alarm(HISTORY_RETENTION_MS + 20_000, "firing")],
                outliers: Vec::new(),
            })
            .unwrap();
        assert!(store.outlier_history(0, 100_000).unwrap().is_empty());
        assert_eq!(store.alarm_history(0, u64::MAX >> 2).unwrap().len(), 2);
    }
}
