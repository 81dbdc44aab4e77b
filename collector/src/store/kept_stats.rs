//! One metric's statistics per host over a window that starts on an hour and ends where the rollup has got
//! to, kept between reads so that a read a minute later costs the minute's rollups, not the window's.
//!
//! [`Store::hosts_metric_stats`] reads every host's rollups over the whole window: at 20,000 hosts and a
//! day, about 480,000 hour blobs and, at the window's two ragged ends, up to 2.4 million minute blobs, for
//! each refresh of the web view's sizing report, once a minute (bench/RESULTS.md). [`KeptHostStats`] keeps
//! two merged parts per host: the whole hours `[from, hours_to)` from `rollup_hour` and the minutes since
//! `[hours_to, to)` from `rollup_minute`. A later read with the same start adds only what is new: the
//! minutes since the last read, and an hour when the rollup has built one (the minutes part then starts
//! again after it). When the start moves to the next hour the hours are read again, once an hour. The
//! window's start is rounded down to the hour, so there is no ragged minute end at the start to re-read.
//!
//! The answer is [`Store::hosts_metric_stats`]'s over the same window (same counts, extremes and sketch; the
//! sum may differ in its last bits, being added in another order), with one difference: a late row merged
//! into a minute or an hour after that rollup was read here shows only once that part is read again (the
//! minutes when the next hour is built, the hours when the start moves), within the hour.

use super::merge::{RollupMerger, Wanted};
use super::rollup::{HOUR_MS, MINUTE_MS};
use super::sketch::MetricStats;
use super::{Store, StoreError};
use crate::metrics::Metric;
use std::collections::HashMap;

/// See the module documentation.
#[derive(Debug)]
pub struct KeptHostStats {
    metric: Metric,
    /// `[from, hours_to)` the hours part covers, once read.
    hours: Option<(u64, u64)>,
    /// Per host row id: the metric over [`KeptHostStats::hours`].
    by_host_hours: HashMap<i64, MetricStats>,
    /// `[hours_to, to)` the minutes part covers.
    minutes: (u64, u64),
    /// Per host row id: the metric over [`KeptHostStats::minutes`].
    by_host_minutes: HashMap<i64, MetricStats>,
    /// Rollup blobs the last read took from the database.
    blobs_read: u64,
}

impl KeptHostStats {
    /// Nothing kept yet: the first read reads the whole window.
    pub fn new(metric: Metric) -> KeptHostStats {
        KeptHostStats {
            metric,
            hours: None,
            by_host_hours: HashMap::new(),
            minutes: (0, 0),
            by_host_minutes: HashMap::new(),
            blobs_read: 0,
        }
    }

    /// How many rollup blobs the last [`KeptHostStats::read`] took from the database.
    pub fn blobs_read(&self) -> u64 {
        self.blobs_read
    }

    /// `[from, to)` the last read answered for.
    pub fn window(&self) -> Option<(u64, u64)> {
        self.hours.map(|(from, _)| (from, self.minutes.1))
    }

    /// The metric over `[from_ms rounded down to the hour, to_ms rounded up to the minute)` for every host
    /// with rollups there, by host name; see the module documentation. The window ends at the rollup's
    /// progress ([`Store::rollup_marks`]) when `to_ms` is past it: a minute is read once it is finished.
    pub fn read(
        &mut self,
        store: &Store,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<HashMap<String, MetricStats>, StoreError> {
        let answer = store.in_read_snapshot("read rollups", || self.read_now(store, from_ms, to_ms));
        if answer.is_err() {
            // A part may hold some of what the failed read added: the next read starts over.
            self.forget();
        }
        answer
    }

    fn read_now(
        &mut self,
        store: &Store,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<HashMap<String, MetricStats>, StoreError> {
        self.blobs_read = 0;
        let from = from_ms - from_ms % HOUR_MS;
        // A minute read before the rollup has finished it would not be read again.
        let through = store.rollup_marks()?.rolled_up_through_ms;
        let to = (to_ms.div_ceil(MINUTE_MS) * MINUTE_MS).min(through - through % MINUTE_MS);
        let wanted = Wanted::One(self.metric.index());
        if to <= from {
            self.forget();
            return Ok(HashMap::new());
        }
        // The whole hours the rollup has built, as every window read plans them.
        let hours_to = store.rollup_plan(from, to)?.hours.map_or(from, |(_, end)| end);

        match self.hours {
            Some((kept_from, kept_to)) if kept_from == from && kept_to <= hours_to => {
                if kept_to < hours_to {
                    self.add_hours(store, kept_to, hours_to, wanted)?;
                }
            }
            _ => {
                self.by_host_hours.clear();
                if from < hours_to {
                    self.add_hours(store, from, hours_to, wanted)?;
                }
            }
        }
        self.hours = Some((from, hours_to));

        let (minutes_from, minutes_to) = self.minutes;
        if minutes_from != hours_to || minutes_to > to || minutes_to < hours_to {
            self.by_host_minutes.clear();
            self.minutes = (hours_to, hours_to);
        }
        if self.minutes.1 < to {
            self.add_minutes(store, self.minutes.1, to, wanted)?;
            self.minutes.1 = to;
        }

        let mut out = HashMap::new();
        for (name, record) in &store.hosts {
            let hours = self.by_host_hours.get(&record.id);
            let minutes = self.by_host_minutes.get(&record.id);
            let merged = match (hours, minutes) {
                (Some(hours), Some(minutes)) => {
                    let mut both = hours.clone();
                    both.merge(minutes);
                    both
                }
                (Some(one), None) | (None, Some(one)) => one.clone(),
                (None, None) => continue,
            };
            out.insert(name.clone(), merged);
        }
        Ok(out)
    }

    fn forget(&mut self) {
        self.hours = None;
        self.by_host_hours.clear();
        self.minutes = (0, 0);
        self.by_host_minutes.clear();
    }

    /// Adds every host's hours in `[from, to)` to the hours part: one indexed range read per host.
    fn add_hours(&mut self, store: &Store, from: u64, to: u64, wanted: Wanted) -> Result<(), StoreError> {
        let mut totals = Vec::new();
        for record in store.hosts.values() {
            let mut total = RollupMerger::sparse(wanted);
            let blobs = store.add_hour_rollups(record.id, from, to, &mut total)?;
            self.blobs_read += blobs;
            if blobs > 0 {
                totals.push((record.id, total));
            }
        }
        // Merged once every host's hours were read, so a failed read adds nothing.
        for (host_id, total) in totals {
            merge_into(&mut self.by_host_hours, host_id, total, self.metric);
        }
        Ok(())
    }

    /// Adds every host's minutes in `[from, to)` to the minutes part: one range read for all hosts.
    fn add_minutes(&mut self, store: &Store, from: u64, to: u64, wanted: Wanted) -> Result<(), StoreError> {
        let mut totals: HashMap<i64, RollupMerger> = HashMap::new();
        self.blobs_read += store.add_every_hosts_minutes(from, to, wanted, &mut totals)?;
        for (host_id, total) in totals {
            merge_into(&mut self.by_host_minutes, host_id, total, self.metric);
        }
        Ok(())
    }
}

/// Merges `metric` of `total` into `host_id`'s entry of `part`.
fn merge_into(part: &mut HashMap<i64, MetricStats>, host_id: i64, total: RollupMerger, metric: Metric) {
    let Some(Some(stats)) = total.finish().metrics.into_iter().nth(metric.index()) else {
        return;
    };
    match part.get_mut(&host_id) {
        Some(kept) => kept.merge(&stats),
        None => {
            part.insert(host_id, stats);
        }
    }
}
