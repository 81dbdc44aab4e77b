//! Per-host statistics over a window, merged from the minute and hour rollups: what long-window fleet views
//! (`fleet --window W --stat S`) and per-host memory sizing read. One merged rollup per host, so a 30-day
//! window costs about 720 hour blobs per host and never a scan of raw samples.

use super::merge::Wanted;
use super::sketch::RollupStats;
use super::{Store, StoreError};
use crate::metrics::Metric;
use rusqlite::params;
use std::collections::{BTreeMap, HashMap};

/// One host's merged rollup over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct HostWindowStats {
    /// Host name.
    pub host: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Every metric's count, sum, min, max and sketch over the window.
    pub stats: RollupStats,
}

impl Store {
    /// Every host with rolled-up data in `[from_ms, to_ms)`, by name.
    pub fn host_window_stats(&self, from_ms: u64, to_ms: u64) -> Result<Vec<HostWindowStats>, StoreError> {
        self.in_read_snapshot("read rollups", || self.host_window_stats_now(from_ms, to_ms))
    }

    fn host_window_stats_now(&self, from_ms: u64, to_ms: u64) -> Result<Vec<HostWindowStats>, StoreError> {
        let plan = self.rollup_plan(from_ms, to_ms)?;
        let mut out = Vec::new();
        for host in self.hosts()? {
            if host.last_seen_ms < from_ms || host.first_seen_ms >= to_ms {
                continue;
            }
            let Some(record) = self.hosts.get(&host.name) else {
                continue;
            };
            let stats = self.host_rollup(record.id, &plan, Wanted::All)?;
            if stats.metrics.iter().any(Option::is_some) {
                out.push(HostWindowStats {
                    host: host.name,
                    labels: host.labels,
                    stats,
                });
            }
        }
        Ok(out)
    }

    /// Every host's mean of each metric ([`Metric::ALL`] order) over the raw rows in `[from_ms, to_ms)`, by
    /// host name; hosts without a row in the window are absent.
    pub fn host_raw_means(
        &self,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<HashMap<String, Vec<Option<f64>>>, StoreError> {
        let averages: String = Metric::ALL
            .iter()
            .map(|m| format!("AVG({})", m.name()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT h.name, {averages} FROM samples s JOIN hosts h ON h.id = s.host_id \
             WHERE s.ts_ms >= ?1 AND s.ts_ms < ?2 GROUP BY s.host_id"
        );
        let err = self.sql_error("read samples for a fleet view");
        let mut statement = self.conn.prepare(&sql).map_err(&err)?;
        let means = statement
            .query_map(params![from_ms as i64, to_ms as i64], |row| {
                let mut means = Vec::with_capacity(Metric::ALL.len());
                for index in 0..Metric::ALL.len() {
                    means.push(row.get::<_, Option<f64>>(index + 1)?);
                }
                Ok((row.get::<_, String>(0)?, means))
            })
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(&err)?;
        Ok(means)
    }

    /// The newest sample time any host reported (Unix ms); `None` for an empty database.
    pub fn newest_sample_ms(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.hosts()?.iter().map(|host| host.last_seen_ms).max())
    }
}
