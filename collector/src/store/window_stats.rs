//! Per-host statistics over a window, merged from the minute and hour rollups: what long-window fleet views
//! (`fleet --window W --stat S`) and per-host memory sizing read. One merged rollup per host, so a 30-day
//! window costs about 720 hour blobs per host and never a scan of raw samples.

use super::sketch::RollupStats;
use super::{Store, StoreError};
use std::collections::BTreeMap;

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
        let mut out = Vec::new();
        for host in self.hosts()? {
            if host.last_seen_ms < from_ms || host.first_seen_ms >= to_ms {
                continue;
            }
            let Some(record) = self.hosts.get(&host.name) else {
                continue;
            };
            let stats = self.host_rollup(record.id, from_ms, to_ms)?;
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

    /// The newest sample time any host reported (Unix ms); `None` for an empty database.
    pub fn newest_sample_ms(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.hosts()?.iter().map(|host| host.last_seen_ms).max())
    }
}
