//! The fleet page's last hour per group × zone: the statistics across the row's hosts that the catalogue
//! puts on the fleet page (`Place::FleetPage`: p99 CPU and memory, the sum of established connections),
//! recorded from the live summary every step (a minute by default) into a bounded ring. Pure: the caller
//! passes the summary and `now_ms`.

use crate::live::summary::{FleetSummary, GroupSummary};
use crate::metrics::{fleet_page_columns, Key, Values};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// One step of one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    pub at_ms: u64,
    /// The fleet page's values (`cpu_busy_p99`, …).
    #[serde(flatten)]
    pub values: Values,
}

/// A summary row's values of the fleet page's columns, in display order.
pub fn fleet_page_values(row: &GroupSummary) -> Values {
    Values(
        fleet_page_columns()
            .into_iter()
            .map(|(metric, stat)| (Key::stat(metric, stat), row.value(metric, stat)))
            .collect(),
    )
}

/// Rows keyed by (group, zone), each at most `capacity` points `step_ms` apart.
#[derive(Debug, Clone)]
pub struct FleetHistory {
    step_ms: u64,
    capacity: usize,
    last_ms: Option<u64>,
    rows: BTreeMap<(String, String), VecDeque<HistoryPoint>>,
}

impl FleetHistory {
    /// Keeps `window_ms` of history at one point per `step_ms`.
    pub fn new(step_ms: u64, window_ms: u64) -> FleetHistory {
        let step_ms = step_ms.max(1);
        FleetHistory {
            step_ms,
            capacity: (window_ms / step_ms).max(2) as usize,
            last_ms: None,
            rows: BTreeMap::new(),
        }
    }

    pub fn step_ms(&self) -> u64 {
        self.step_ms
    }

    /// Whether a point is due at `now_ms`.
    pub fn due(&self, now_ms: u64) -> bool {
        self.last_ms.is_none_or(|last| now_ms >= last + self.step_ms)
    }

    /// Records one point per row of `summary`. Rows absent from the summary keep their history until it
    /// ages out; a row silent for a whole window is dropped.
    pub fn record(&mut self, summary: &FleetSummary, now_ms: u64) {
        self.last_ms = Some(now_ms);
        for row in &summary.groups {
            let points = self
                .rows
                .entry((row.group.clone(), row.zone.clone()))
                .or_default();
            points.push_back(HistoryPoint {
                at_ms: now_ms,
                values: fleet_page_values(row),
            });
            while points.len() > self.capacity {
                points.pop_front();
            }
        }
        let horizon = now_ms.saturating_sub(self.step_ms * self.capacity as u64);
        self.rows
            .retain(|_, points| points.back().is_some_and(|p| p.at_ms > horizon));
    }

    /// The points of one row, oldest first.
    pub fn row(&self, group: &str, zone: &str) -> Vec<HistoryPoint> {
        self.rows
            .get(&(group.to_string(), zone.to_string()))
            .map(|points| points.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Metric, Stat};

    fn summary(cpu: f64) -> FleetSummary {
        let mut row = GroupSummary {
            group: "web".into(),
            zone: "a".into(),
            ..GroupSummary::default()
        };
        row.set(Metric::CpuBusyPct, Stat::P99, Some(cpu));
        FleetSummary {
            groups: vec![row],
            ..FleetSummary::default()
        }
    }

    #[test]
    fn the_ring_keeps_one_window_and_records_only_when_due() {
        let mut history = FleetHistory::new(60_000, 180_000);
        assert!(history.due(0));
        for minute in 0..5u64 {
            history.record(&summary(minute as f64), minute * 60_000);
        }
        assert!(!history.due(4 * 60_000 + 59_999));
        assert!(history.due(5 * 60_000));
        let row = history.row("web", "a");
        assert_eq!(row.len(), 3);
        assert_eq!(
            row[0].values.get(Key::stat(Metric::CpuBusyPct, Stat::P99)),
            Some(2.0)
        );
        assert_eq!(row[2].at_ms, 240_000);
        assert!(history.row("web", "b").is_empty());
        // A row that stops appearing ages out after a window.
        history.record(&FleetSummary::default(), 10 * 60_000);
        assert!(history.row("web", "a").is_empty());
    }
}
