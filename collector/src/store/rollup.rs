//! Background maintenance on the writer's connection: sync each host's last seq to `hosts`, roll raw
//! samples up into 1-minute and 1-hour rows, keep `group_minutes` and `group_port_minutes` for sizing, and
//! delete what is past its retention. Every step is small and commits on its own, so ingest waits at most one step.
//!
//! Why on the writer's connection, between batches: SQLite has one write lock per database. A second
//! connection would not write in parallel, it would wait for the lock (or make ingest wait for it), so the
//! writer interleaves its own maintenance steps with group commits and gives batches priority.
//!
//! Raw rows are rolled up in passes over rowid order (the order they were stored in), not by time: rows
//! that arrive late (an agent catching up after an outage) land at the end of the table and are merged
//! into existing minute and hour rows, which mergeable statistics allow. A pass accumulates complete
//! minutes of every host in memory, then flushes them in chunks; each minute row is stamped with the pass
//! that wrote it, so a flush interrupted by a crash is redone without counting anything twice.

use super::group_sums::Contribution;
use super::meta::{
    get_meta, set_meta, META_HOSTS_SYNCED_ROWID, META_HOUR_BUILT, META_HOUR_NEXT_HOST, META_PASS_CUTOFF,
    META_PASS_END, META_RAW_CUTOFF, META_RAW_ROWID,
};
use super::minute_entry::MinuteEntry;
use super::ports::{read_ports, PortContributions, PortSums};
use super::sketch::RollupStats;
use super::{query_i64, Store, StoreError};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{BTreeMap, HashMap};

pub use super::group_sums::MINUTE_MS;
pub const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// A minute is rolled up once the collector clock is this far past its end, so that samples still in
/// flight (batched by agents, queued for commit) are in the same pass rather than merged in late.
pub const ROLLUP_DELAY_MS: u64 = 10_000;
const SCAN_CHUNK_ROWS: usize = 5_000;
/// Bounds a pass's memory: about 1.3 KiB per (host, minute) of a busy host (`minute_entry.rs` measures
/// 1.2 KiB for the entry; the rest is its slot in `Pass::entries`), so ~65 MB at the cap.
const MAX_PASS_ENTRIES: usize = 50_000;
const FLUSH_CHUNK_ENTRIES: usize = 500;
const HOUR_BUILD_CHUNK_HOSTS: usize = 200;
/// How often maintenance writes each host's last seq to `hosts`; rows stored since are read back on open.
const HOST_SYNC_INTERVAL_MS: u64 = 10_000;

/// How long each kind of data is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw_ms: u64,
    pub minute_rollups_ms: u64,
    /// Hourly rollups, `group_minutes`, `group_port_minutes` and `gaps`.
    pub hour_rollups_ms: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            raw_ms: 2 * DAY_MS,
            // Minute rows are about 1 KB per host-minute; 35 days covers a 30-day report at minute resolution
            // while hourly rows (and group_minutes, which sizing reads) keep the long history.
            minute_rollups_ms: 35 * DAY_MS,
            hour_rollups_ms: 400 * DAY_MS,
        }
    }
}

/// What `maintain` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaintainReport {
    pub hosts_synced: u64,
    pub raw_rows_rolled: u64,
    pub minute_rows_written: u64,
    pub hour_rows_written: u64,
    pub raw_rows_deleted: u64,
    pub rollup_rows_deleted: u64,
    /// Steps that did something; `maintain_step` callers stop when a step did nothing.
    pub steps: u64,
}

/// A pass in progress: raw rows `(start, end]` being rolled up.
#[derive(Debug, Default)]
struct Pass {
    start: i64,
    scanned_to: i64,
    end: Option<i64>,
    /// Collector-clock minute boundary the pass rolls up to; 0 when the pass stopped at its memory cap.
    cutoff_ms: u64,
    entries: BTreeMap<(u64, i64), MinuteEntry>,
}

#[derive(Debug, Default)]
pub(crate) struct RollupState {
    pass: Option<Pass>,
    resumed: bool,
    /// The last pass stopped at its memory cap, so another may start before the cutoff moves.
    capped: bool,
    last_sync_ms: Option<u64>,
}

fn floor_to(ms: u64, step: u64) -> u64 {
    ms - ms % step
}

fn read_stats(path: &str, blob: Vec<u8>) -> Result<RollupStats, StoreError> {
    RollupStats::decode(&blob).map_err(|e| StoreError::BadBlob {
        path: path.to_string(),
        what: "rollup stats",
        detail: e.to_string(),
    })
}

impl Store {
    /// Do all maintenance that is due at `now_ms`, step by step; see the module documentation.
    pub fn maintain(&mut self, now_ms: u64, retention: &Retention) -> Result<MaintainReport, StoreError> {
        let mut report = MaintainReport::default();
        while self.maintain_step(now_ms, retention, &mut report)? {}
        Ok(report)
    }

    /// One small unit of maintenance (one transaction at most); `true` if it did something and more may
    /// be due.
    pub fn maintain_step(
        &mut self,
        now_ms: u64,
        retention: &Retention,
        report: &mut MaintainReport,
    ) -> Result<bool, StoreError> {
        let did = self.step(now_ms, retention, report)?;
        report.steps += u64::from(did);
        Ok(did)
    }

    fn step(
        &mut self,
        now_ms: u64,
        retention: &Retention,
        report: &mut MaintainReport,
    ) -> Result<bool, StoreError> {
        if !self.rollup.resumed {
            self.rollup.resumed = true;
            self.resume_pass()?;
        }
        if let Some(pass) = &self.rollup.pass {
            if pass.end.is_none_or(|end| pass.scanned_to < end) {
                self.scan_chunk(report)?;
            } else {
                self.flush_chunk(report)?;
            }
            return Ok(true);
        }
        // Under load every commit dirties hosts again; syncing at most every HOST_SYNC_INTERVAL_MS keeps
        // the sync from crowding out rollups and retention.
        let sync_due = self
            .rollup
            .last_sync_ms
            .is_none_or(|last| now_ms < last || now_ms >= last + HOST_SYNC_INTERVAL_MS);
        if sync_due && self.hosts.values().any(|h| h.dirty) {
            report.hosts_synced += self.sync_hosts()?;
            self.rollup.last_sync_ms = Some(now_ms);
            return Ok(true);
        }
        if self.build_hour_chunk(report)? {
            return Ok(true);
        }
        if self.start_pass(now_ms)? {
            return Ok(true);
        }
        self.retention_chunk(now_ms, retention, report)
    }

    /// After a crash during a flush, redo the same pass: same rows, minute rows already written skipped.
    fn resume_pass(&mut self) -> Result<(), StoreError> {
        let end = get_meta(&self.conn, META_PASS_END).map_err(self.sql_error("resume rollup"))?;
        if end == 0 {
            return Ok(());
        }
        let start = get_meta(&self.conn, META_RAW_ROWID).map_err(self.sql_error("resume rollup"))?;
        let cutoff = get_meta(&self.conn, META_PASS_CUTOFF).map_err(self.sql_error("resume rollup"))?;
        self.rollup.pass = Some(Pass {
            start,
            scanned_to: start,
            end: Some(end),
            cutoff_ms: cutoff as u64,
            entries: BTreeMap::new(),
        });
        Ok(())
    }

    /// Write each host's last seq and last seen time to `hosts`. Done here rather than on every commit:
    /// updating `hosts` per commit would dirty a page per few dozen hosts per second; rows stored after
    /// the sync are read back on open instead (`recover_last_seqs`).
    pub(crate) fn sync_hosts(&mut self) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(|e| StoreError::from_sqlite(&self.path, "sync hosts", e))?;
        let mut synced = 0;
        {
            let mut update = tx
                .prepare_cached(
                    "UPDATE hosts SET last_seq = ?1, last_seen_ms = ?2, instance_id = ?3 WHERE id = ?4",
                )
                .map_err(|e| StoreError::from_sqlite(&self.path, "sync hosts", e))?;
            for host in self.hosts.values().filter(|h| h.dirty) {
                update
                    .execute(params![
                        host.last_seq.map(|s| s as i64),
                        host.last_seen_ms as i64,
                        host.instance_id as i64,
                        host.id
                    ])
                    .map_err(|e| StoreError::from_sqlite(&self.path, "sync hosts", e))?;
                synced += 1;
            }
            let max_rowid = query_i64(&tx, "SELECT MAX(id) FROM samples", [])
                .map_err(|e| StoreError::from_sqlite(&self.path, "sync hosts", e))?
                .unwrap_or(0);
            set_meta(&tx, META_HOSTS_SYNCED_ROWID, max_rowid)
                .map_err(|e| StoreError::from_sqlite(&self.path, "sync hosts", e))?;
        }
        tx.commit()
            .map_err(|e| StoreError::from_sqlite(&self.path, "sync hosts", e))?;
        self.hosts.values_mut().for_each(|h| h.dirty = false);
        Ok(synced)
    }

    /// Start a pass if stored rows of finished minutes wait beyond the watermark.
    fn start_pass(&mut self, now_ms: u64) -> Result<bool, StoreError> {
        let path = self.path.clone();
        let err = |e| StoreError::from_sqlite(&path, "start rollup", e);
        let cutoff_ms = floor_to(now_ms.saturating_sub(ROLLUP_DELAY_MS), MINUTE_MS);
        let raw_cutoff = get_meta(&self.conn, META_RAW_CUTOFF).map_err(err)? as u64;
        let watermark = get_meta(&self.conn, META_RAW_ROWID).map_err(err)?;
        if cutoff_ms <= raw_cutoff && !self.rollup.capped {
            return Ok(false);
        }
        let next_ts = query_i64(
            &self.conn,
            "SELECT ts_ms FROM samples WHERE id > ?1 ORDER BY id LIMIT 1",
            [watermark],
        )
        .map_err(err)?;
        match next_ts {
            Some(ts) if (ts as u64) < cutoff_ms => {
                self.rollup.pass = Some(Pass {
                    start: watermark,
                    scanned_to: watermark,
                    end: None,
                    cutoff_ms,
                    entries: BTreeMap::new(),
                });
                Ok(true)
            }
            _ => {
                // Every stored row of a finished minute is rolled up: hours up to the cutoff may be built.
                self.rollup.capped = false;
                if cutoff_ms > raw_cutoff {
                    set_meta(&self.conn, META_RAW_CUTOFF, cutoff_ms as i64).map_err(err)?;
                    return Ok(true);
                }
                Ok(false)
            }
        }
    }

    fn scan_chunk(&mut self, report: &mut MaintainReport) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |e| StoreError::from_sqlite(&path, "roll up raw samples", e);
        let pass = self.rollup.pass.as_mut().expect("scan_chunk runs during a pass");
        let sql = format!(
            "SELECT id, host_id, ts_ms, {}, detail FROM samples WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3",
            super::schema::metric_columns()
        );
        let mut statement = self.conn.prepare_cached(&sql).map_err(err)?;
        let mut rows = statement
            .query(params![
                pass.scanned_to,
                pass.end.unwrap_or(i64::MAX),
                SCAN_CHUNK_ROWS as i64
            ])
            .map_err(err)?;
        let mut read = 0usize;
        while let Some(row) = rows.next().map_err(err)? {
            read += 1;
            let id: i64 = row.get(0).map_err(err)?;
            let host_id: i64 = row.get(1).map_err(err)?;
            let ts_ms = row.get::<_, i64>(2).map_err(err)?.max(0) as u64;
            let key = (floor_to(ts_ms, MINUTE_MS), host_id);
            if pass.end.is_none() {
                if ts_ms >= pass.cutoff_ms {
                    pass.end = Some(pass.scanned_to);
                    break;
                }
                if pass.entries.len() >= MAX_PASS_ENTRIES && !pass.entries.contains_key(&key) {
                    pass.end = Some(pass.scanned_to);
                    pass.cutoff_ms = 0;
                    break;
                }
            }
            pass.entries
                .entry(key)
                .or_insert_with(MinuteEntry::new)
                .add_row(row, 3, true)
                .map_err(err)?;
            pass.scanned_to = id;
            report.raw_rows_rolled += 1;
        }
        drop(rows);
        drop(statement);
        if pass.end.is_none() && read < SCAN_CHUNK_ROWS {
            pass.end = Some(pass.scanned_to);
        }
        let Some(end) = pass.end else {
            return Ok(());
        };
        if pass.scanned_to < end {
            return Ok(());
        }
        self.rollup.capped = pass.cutoff_ms == 0;
        // The plan is recorded before any rollup row is written, so a crash mid-flush redoes this pass.
        let first_minute = pass.entries.keys().next().map(|(minute, _)| *minute);
        let (cutoff, start) = (pass.cutoff_ms, pass.start);
        let tx = self.conn.unchecked_transaction().map_err(err)?;
        if end > start {
            set_meta(&tx, META_PASS_END, end).map_err(err)?;
            set_meta(&tx, META_PASS_CUTOFF, cutoff as i64).map_err(err)?;
        }
        if let Some(minute) = first_minute {
            if get_meta(&tx, META_HOUR_BUILT).map_err(err)? == 0 {
                set_meta(&tx, META_HOUR_BUILT, floor_to(minute, HOUR_MS) as i64).map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        if end == start {
            self.finish_pass()?;
        }
        Ok(())
    }

    fn finish_pass(&mut self) -> Result<(), StoreError> {
        let pass = self.rollup.pass.take().expect("finish_pass runs during a pass");
        let err = self.sql_error("finish rollup");
        let tx = self.conn.unchecked_transaction().map_err(&err)?;
        set_meta(&tx, META_RAW_ROWID, pass.end.unwrap_or(pass.start)).map_err(&err)?;
        set_meta(&tx, META_PASS_END, 0).map_err(&err)?;
        if pass.cutoff_ms > 0 && pass.cutoff_ms as i64 > get_meta(&tx, META_RAW_CUTOFF).map_err(&err)? {
            set_meta(&tx, META_RAW_CUTOFF, pass.cutoff_ms as i64).map_err(&err)?;
        }
        tx.commit().map_err(&err)
    }

    /// Merge the next chunk of a pass's (minute, host) statistics into `rollup_minute`, `group_minutes`,
    /// `group_port_minutes` and, for hours already built, `rollup_hour`.
    fn flush_chunk(&mut self, report: &mut MaintainReport) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |e| StoreError::from_sqlite(&path, "write rollups", e);
        let pass = self.rollup.pass.as_mut().expect("flush_chunk runs during a pass");
        let end = pass.end.expect("flush after the scan");
        let mut chunk = Vec::with_capacity(FLUSH_CHUNK_ENTRIES);
        while chunk.len() < FLUSH_CHUNK_ENTRIES {
            match pass.entries.pop_first() {
                Some(entry) => chunk.push(entry),
                None => break,
            }
        }
        let done = pass.entries.is_empty();
        let tx = self.conn.unchecked_transaction().map_err(err)?;
        let hour_built = get_meta(&tx, META_HOUR_BUILT).map_err(err)? as u64;
        let mut groups: HashMap<(u64, String, String), Contribution> = HashMap::new();
        let mut port_groups = PortContributions::default();
        for ((minute, host_id), entry) in chunk {
            let existing = tx
                .prepare_cached(
                    "SELECT stats, pass_rowid, ports FROM rollup_minute WHERE bucket_ms = ?1 AND host_id = ?2",
                )
                .map_err(err)?
                .query_row(params![minute as i64, host_id], |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?, r.get::<_, Option<Vec<u8>>>(2)?))
                })
                .optional()
                .map_err(err)?;
            let (old, old_ports) = match existing {
                Some((_, stamp, _)) if stamp == end => continue,
                Some((blob, _, port_blob)) => (Some(read_stats(&path, blob)?), read_ports(&path, port_blob)?),
                None => (None, PortSums::default()),
            };
            // The compact entry becomes full statistics only here, one entry at a time (`minute_entry.rs`).
            let (delta, ports) = entry.into_parts();
            let mut merged = old.clone().unwrap_or_default();
            merged.merge(&delta);
            let mut merged_ports = old_ports.clone();
            merged_ports.merge(&ports);
            upsert_rollup(
                &tx,
                "rollup_minute",
                minute,
                host_id,
                &merged,
                Some((end, &merged_ports)),
            )
            .map_err(err)?;
            report.minute_rows_written += 1;
            if let Some(host) = self.names_by_id.get(&host_id).and_then(|n| self.hosts.get(n)) {
                let group = groups
                    .entry((minute, host.group.clone(), host.zone.clone()))
                    .or_default();
                group.add(Contribution::replacing(old.as_ref(), &merged, host), 1.0);
                // Like the other gauges, the host's old mean for the minute is replaced by the new one.
                port_groups.replace(minute, &host.group, &host.zone, &old_ports, &merged_ports);
            }
            let hour = floor_to(minute, HOUR_MS);
            if hour < hour_built {
                // A late sample for an hour already built: merge it there too.
                let mut hourly = tx
                    .prepare_cached("SELECT stats FROM rollup_hour WHERE host_id = ?1 AND bucket_ms = ?2")
                    .map_err(err)?
                    .query_row(params![host_id, hour as i64], |r| r.get::<_, Vec<u8>>(0))
                    .optional()
                    .map_err(err)?
                    .map(|blob| read_stats(&path, blob))
                    .transpose()?
                    .unwrap_or_default();
                hourly.merge(&delta);
                upsert_rollup(&tx, "rollup_hour", hour, host_id, &hourly, None).map_err(err)?;
                report.hour_rows_written += 1;
            }
        }
        let mut upsert = tx
            .prepare_cached(
                "INSERT INTO group_minutes (minute_ms, group_name, zone, hosts, cpu_busy_cores, cores, \
                 mem_used_bytes, mem_bytes, tcp_established) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT(minute_ms, group_name, zone) DO UPDATE SET hosts = hosts + excluded.hosts, \
                 cpu_busy_cores = cpu_busy_cores + excluded.cpu_busy_cores, cores = cores + excluded.cores, \
                 mem_used_bytes = mem_used_bytes + excluded.mem_used_bytes, \
                 mem_bytes = mem_bytes + excluded.mem_bytes, \
                 tcp_established = tcp_established + excluded.tcp_established",
            )
            .map_err(err)?;
        for ((minute, group, zone), c) in &groups {
            upsert
                .execute(params![
                    *minute as i64,
                    group,
                    zone,
                    c.hosts,
                    c.cpu_busy_cores,
                    c.cores,
                    c.mem_used_bytes,
                    c.mem_bytes,
                    c.tcp_established
                ])
                .map_err(err)?;
        }
        drop(upsert);
        port_groups.write(&tx).map_err(err)?;
        tx.commit().map_err(err)?;
        if done {
            self.finish_pass()?;
        }
        Ok(())
    }

    /// Build hourly rows for the oldest hour whose minutes are all rolled up, a chunk of hosts at a time.
    fn build_hour_chunk(&mut self, report: &mut MaintainReport) -> Result<bool, StoreError> {
        let path = self.path.clone();
        let err = |e| StoreError::from_sqlite(&path, "build hourly rollups", e);
        let hour = get_meta(&self.conn, META_HOUR_BUILT).map_err(err)? as u64;
        let raw_cutoff = get_meta(&self.conn, META_RAW_CUTOFF).map_err(err)? as u64;
        if hour == 0 || hour + HOUR_MS > raw_cutoff {
            return Ok(false);
        }
        let cursor = get_meta(&self.conn, META_HOUR_NEXT_HOST).map_err(err)?;
        let tx = self.conn.unchecked_transaction().map_err(err)?;
        if cursor == 0 {
            // Skip hours with no minute rows at all (the collector was down) without visiting every host.
            let next = query_i64(
                &tx,
                "SELECT MIN(bucket_ms) FROM rollup_minute WHERE bucket_ms >= ?1",
                [hour as i64],
            )
            .map_err(err)?;
            let skip_to = match next {
                Some(bucket) if (bucket as u64) < hour + HOUR_MS => None,
                Some(bucket) => Some(floor_to(bucket as u64, HOUR_MS).min(floor_to(raw_cutoff, HOUR_MS))),
                None => Some(floor_to(raw_cutoff, HOUR_MS)),
            };
            if let Some(skip_to) = skip_to.filter(|&s| s > hour) {
                set_meta(&tx, META_HOUR_BUILT, skip_to as i64).map_err(err)?;
                tx.commit().map_err(err)?;
                return Ok(true);
            }
        }
        let hosts: Vec<i64> = self
            .names_by_id
            .range(cursor + 1..)
            .take(HOUR_BUILD_CHUNK_HOSTS)
            .map(|(&id, _)| id)
            .collect();
        for &host_id in &hosts {
            let mut hourly = RollupStats::default();
            let mut found = false;
            let mut lookup = tx
                .prepare_cached("SELECT stats FROM rollup_minute WHERE bucket_ms = ?1 AND host_id = ?2")
                .map_err(err)?;
            // One indexed point lookup per minute: the minute index is ordered by time, then host.
            for minute in (hour..hour + HOUR_MS).step_by(MINUTE_MS as usize) {
                let blob = lookup
                    .query_row(params![minute as i64, host_id], |r| r.get::<_, Vec<u8>>(0))
                    .optional()
                    .map_err(err)?;
                if let Some(blob) = blob {
                    hourly.merge(&read_stats(&path, blob)?);
                    found = true;
                }
            }
            drop(lookup);
            if found {
                upsert_rollup(&tx, "rollup_hour", hour, host_id, &hourly, None).map_err(err)?;
                report.hour_rows_written += 1;
            }
        }
        if hosts.len() < HOUR_BUILD_CHUNK_HOSTS {
            set_meta(&tx, META_HOUR_BUILT, (hour + HOUR_MS) as i64).map_err(err)?;
            set_meta(&tx, META_HOUR_NEXT_HOST, 0).map_err(err)?;
        } else {
            set_meta(&tx, META_HOUR_NEXT_HOST, *hosts.last().expect("non-empty chunk")).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(true)
    }
}

fn upsert_rollup(
    conn: &Connection,
    table: &'static str,
    bucket_ms: u64,
    host_id: i64,
    stats: &RollupStats,
    minute: Option<(i64, &PortSums)>,
) -> rusqlite::Result<()> {
    // Every sample adds to at least one metric, so the fullest metric counts the bucket's samples.
    let samples = stats.metrics.iter().flatten().map(|s| s.count).max().unwrap_or(0);
    match minute {
        Some((pass, ports)) => conn
            .prepare_cached(
                "INSERT INTO rollup_minute (bucket_ms, host_id, samples, stats, pass_rowid, ports) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(bucket_ms, host_id) DO UPDATE SET \
                 samples = excluded.samples, stats = excluded.stats, pass_rowid = excluded.pass_rowid, \
                 ports = excluded.ports",
            )?
            .execute(params![
                bucket_ms as i64,
                host_id,
                samples as i64,
                stats.encode(),
                pass,
                (!ports.is_empty()).then(|| ports.encode())
            ])?,
        None => conn
            .prepare_cached(&format!(
                "INSERT INTO {table} (bucket_ms, host_id, samples, stats) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(host_id, bucket_ms) DO UPDATE SET samples = excluded.samples, stats = excluded.stats"
            ))?
            .execute(params![bucket_ms as i64, host_id, samples as i64, stats.encode()])?,
    };
    Ok(())
}
