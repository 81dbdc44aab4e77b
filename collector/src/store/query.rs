//! Read side for reports and the command line: hosts, per-host and per-group percentiles over a window
//! (merged from rollup sketches, never from raw rows), group sums per minute, and data gaps.
//!
//! Windows are whole minutes: a rollup bucket counts when its start lies in `[from_ms, to_ms)`, with both
//! ends rounded up to the minute. Whole hours come from `rollup_hour` (one indexed range read per host),
//! the ragged ends and hours not yet built from `rollup_minute`, only between its first and last minute
//! (`Store::rollup_plan`). One host's minutes are point lookups; every host's at once
//! (`Store::hosts_metric_stats`, the sizing report's per-host memory) is one range read per end.

use super::merge::{RollupMerger, Wanted};
use super::meta::{get_meta, META_HOUR_BUILT, META_PORT_MINUTES_FROM, META_RAW_CUTOFF, META_RAW_ROWID};
use super::ports::{read_ports, PortSums};
use super::rollup::{HOUR_MS, MINUTE_MS};
use super::sketch::{DecodeError, MetricStats, RollupStats};
use super::{check_identity, Store, StoreError, BUSY_TIMEOUT_MS};
use crate::metrics::Metric;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

/// The rollups that cover a window: see [`Store::rollup_plan`].
#[derive(Debug, Default, PartialEq)]
pub(super) struct RollupPlan {
    /// Whole hours read from `rollup_hour`.
    pub(super) hours: Option<(u64, u64)>,
    /// Minute ranges read from `rollup_minute`, each within the minutes that hold rows.
    pub(super) minutes: Vec<(u64, u64)>,
}

/// A host as stored in `hosts`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredHost {
    pub name: String,
    pub instance_id: u64,
    pub labels: BTreeMap<String, String>,
    pub group: String,
    pub zone: String,
    pub cores: u32,
    pub memory_bytes: u64,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    pub last_seq: Option<u64>,
}

/// A metric's percentile over the hosts of one group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPercentile {
    pub group: String,
    /// Hosts of the group that had the metric in the window.
    pub hosts: usize,
    pub samples: u64,
    pub value: f64,
}

/// One row of `group_minutes`.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupMinute {
    pub minute_ms: u64,
    pub group: String,
    pub zone: String,
    pub hosts: u64,
    pub cpu_busy_cores: f64,
    pub cores: u64,
    pub mem_used_bytes: f64,
    pub mem_bytes: u64,
    pub tcp_established: f64,
}

/// How far the rollup has got, for readers that add raw rows past it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollupMarks {
    /// Every stored row of a minute before this instant is rolled up (rows stored later still merge in).
    pub rolled_up_through_ms: u64,
    /// `samples.id` of the last raw row the rollup has read; later rows are not in any rollup yet.
    pub raw_rowid: i64,
    /// First minute whose rollup kept per-port connection sums (0 unless the file predates them).
    pub port_minutes_from_ms: u64,
}

/// One host's rolled-up minute: metric statistics and per-port established sums.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostMinuteRollup {
    pub stats: RollupStats,
    pub ports: PortSums,
}

/// One row of `gaps`, with its host's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGap {
    pub host: String,
    pub instance_id: u64,
    pub from_seq: u64,
    pub to_seq: u64,
    pub from_ms: u64,
    pub to_ms: u64,
    pub count: u64,
    pub reason: String,
}

/// How a read-only store reads the file's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileReads {
    /// Copied into SQLite's page cache (at most 16 MiB, freed when the store closes): what the running
    /// collector's own reads use. Mapped pages count in the process's RSS while its store is open, and a
    /// sizing refresh over a day of 20,000 hosts' rollups added 110-140 MiB to the collector's RSS once a
    /// minute, 700 MiB at the first one; with a 64 MiB cache the refresh still raised it by up to 64 MiB a
    /// minute, the steady window's highest readings (bench/RESULTS.md).
    Copied,
    /// Mapped into the process (`mmap_size` 1 GiB, and a 64 MiB cache): SQLite reads pages where the kernel
    /// holds them instead of copying each into its cache first, the faster way for a one-off report that
    /// reads hundreds of MiB of minute sums once, in order.
    Mapped,
}

impl Store {
    /// Open an existing database for queries only, its pages copied ([`FileReads::Copied`]); nothing is
    /// migrated or written. Each host's last stored seq is the one last synced into `hosts` (`last_seq` may
    /// be behind by the rows of the last minute): only the writer resumes agents from it, and reading back
    /// the rows stored since the sync (up to a minute of the whole fleet's samples, 1.2 million rows at
    /// 20,000 agents) made every web page, API call and `/metrics` scrape that opens one take up to half a
    /// second at that size.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        Store::open_read_only_with(path, FileReads::Copied)
    }

    /// [`Store::open_read_only`], reading the file's pages as `reads` says.
    pub fn open_read_only_with(path: &Path, reads: FileReads) -> Result<Store, StoreError> {
        let name = path.display().to_string();
        let conn = read_only_connection(path, &name)?;
        // Hour rollups are stored hour by hour, so one host's 30 days touch about 720 pages that the next
        // hosts touch again. SQLite's default 2 MiB cache is smaller than that and rereads every page for
        // every host; 64 MiB keeps them between hosts for a report. The collector's own reads (a day's
        // window at most, and mostly the last minutes) keep 16 MiB, as the writer does: what the cache
        // holds is the collector's memory while the store is open.
        let pragmas = match reads {
            FileReads::Copied => "PRAGMA cache_size = -16384; PRAGMA mmap_size = 0;",
            FileReads::Mapped => "PRAGMA cache_size = -65536; PRAGMA mmap_size = 1073741824;",
        };
        conn.execute_batch(pragmas)
            .map_err(|e| StoreError::from_sqlite(&name, "set cache_size", e))?;
        let version = check_identity(&conn, &name)?;
        if version != super::schema::SCHEMA_VERSION {
            return Err(StoreError::NotHeadroom {
                path: name,
                detail: format!(
                    "schema version {version}, expected {}; open it once with the collector to migrate it",
                    super::schema::SCHEMA_VERSION
                ),
            });
        }
        Store::with_connection(conn, name)
    }
}

fn ceil_to(ms: u64, step: u64) -> u64 {
    ms.div_ceil(step) * step
}

impl Store {
    pub fn hosts(&self) -> Result<Vec<StoredHost>, StoreError> {
        let err = self.sql_error("list hosts");
        let mut statement = self
            .conn
            .prepare(
                "SELECT name, instance_id, labels, group_name, zone, cores, memory_bytes, first_seen_ms, \
                 last_seen_ms, last_seq FROM hosts ORDER BY name",
            )
            .map_err(&err)?;
        let rows = statement
            .query_map([], |r| {
                Ok(StoredHost {
                    name: r.get(0)?,
                    instance_id: r.get::<_, i64>(1)? as u64,
                    labels: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                    group: r.get(3)?,
                    zone: r.get(4)?,
                    cores: r.get::<_, i64>(5)? as u32,
                    memory_bytes: r.get::<_, i64>(6)? as u64,
                    first_seen_ms: r.get::<_, i64>(7)? as u64,
                    last_seen_ms: r.get::<_, i64>(8)? as u64,
                    last_seq: r.get::<_, Option<i64>>(9)?.map(|s| s as u64),
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(&err)?;
        // hosts.last_seq is synced lazily; the in-memory value is current.
        Ok(rows
            .into_iter()
            .map(|mut host| {
                if let Some(record) = self.hosts.get(&host.name) {
                    host.last_seq = record.last_seq;
                    host.last_seen_ms = host.last_seen_ms.max(record.last_seen_ms);
                }
                host
            })
            .collect())
    }

    /// Count, sum, min, max and sketch of `metric` for `host` over the window; `None` without data.
    pub fn host_stats(
        &self,
        host: &str,
        metric: Metric,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Option<MetricStats>, StoreError> {
        let Some(record) = self.hosts.get(host) else {
            return Ok(None);
        };
        let plan = self.rollup_plan(from_ms, to_ms)?;
        let all = self.host_rollup(record.id, &plan, Wanted::One(metric.index()))?;
        Ok(all.get(metric.index()).cloned())
    }

    /// The `q` quantile (0..=1) of `metric` for `host` over the window, within the sketch's 1 %.
    pub fn host_percentile(
        &self,
        host: &str,
        metric: Metric,
        from_ms: u64,
        to_ms: u64,
        q: f64,
    ) -> Result<Option<f64>, StoreError> {
        Ok(self
            .host_stats(host, metric, from_ms, to_ms)?
            .and_then(|s| s.quantile(q)))
    }

    /// Per group label value: the `q` quantile of `metric` over every sample of the group's hosts.
    pub fn group_percentiles(
        &self,
        metric: Metric,
        from_ms: u64,
        to_ms: u64,
        q: f64,
    ) -> Result<Vec<GroupPercentile>, StoreError> {
        self.in_read_snapshot("read rollups", || {
            self.group_percentiles_now(metric, from_ms, to_ms, q)
        })
    }

    fn group_percentiles_now(
        &self,
        metric: Metric,
        from_ms: u64,
        to_ms: u64,
        q: f64,
    ) -> Result<Vec<GroupPercentile>, StoreError> {
        let plan = self.rollup_plan(from_ms, to_ms)?;
        let mut groups: BTreeMap<&str, (usize, Option<MetricStats>)> = BTreeMap::new();
        for record in self.hosts.values() {
            let Some(stats) = self
                .host_rollup(record.id, &plan, Wanted::One(metric.index()))?
                .get(metric.index())
                .cloned()
            else {
                continue;
            };
            let (hosts, merged) = groups.entry(record.group.as_str()).or_default();
            *hosts += 1;
            match merged {
                Some(m) => m.merge(&stats),
                None => *merged = Some(stats),
            }
        }
        Ok(groups
            .into_iter()
            .filter_map(|(group, (hosts, stats))| {
                let stats = stats?;
                Some(GroupPercentile {
                    group: group.to_string(),
                    hosts,
                    samples: stats.count,
                    value: stats.quantile(q)?,
                })
            })
            .collect())
    }

    /// Which rollups cover `[from_ms, to_ms)`: hour rows for the whole hours already built, minute rows for
    /// the rest, with the minute ranges cut to the minutes that hold rows at all (two indexed reads), so a
    /// day's window over a database a few minutes old looks up a few minutes, not 1,440 per host.
    pub(super) fn rollup_plan(&self, from_ms: u64, to_ms: u64) -> Result<RollupPlan, StoreError> {
        let err = self.sql_error("read rollups");
        let from = ceil_to(from_ms, MINUTE_MS);
        let to = ceil_to(to_ms, MINUTE_MS);
        if from >= to {
            return Ok(RollupPlan::default());
        }
        let hour_built = get_meta(&self.conn, META_HOUR_BUILT).map_err(&err)? as u64;
        let hours_from = ceil_to(from, HOUR_MS);
        let hours_to = (to - to % HOUR_MS).min(hour_built - hour_built % HOUR_MS);
        let (hours, ranges) = if hours_from < hours_to {
            (
                Some((hours_from, hours_to)),
                vec![(from, hours_from), (hours_to, to)],
            )
        } else {
            (None, vec![(from, to)])
        };
        let bound = |sql: &str| -> Result<Option<u64>, StoreError> {
            self.conn
                .prepare_cached(sql)
                .and_then(|mut s| s.query_row([], |r| r.get::<_, Option<i64>>(0)))
                .map(|v| v.map(|v| v as u64))
                .map_err(&err)
        };
        let minutes = match (
            bound("SELECT MIN(bucket_ms) FROM rollup_minute")?,
            bound("SELECT MAX(bucket_ms) FROM rollup_minute")?,
        ) {
            (Some(first), Some(last)) => ranges
                .into_iter()
                .map(|(start, end)| (start.max(first), end.min(last + MINUTE_MS)))
                .filter(|(start, end)| start < end)
                .collect(),
            _ => Vec::new(),
        };
        Ok(RollupPlan { hours, minutes })
    }

    /// `host_id`'s rollups in the window `plan` covers ([`Store::rollup_plan`], made once for every host of
    /// a read) merged into one, keeping the `wanted` metrics.
    pub(super) fn host_rollup(
        &self,
        host_id: i64,
        plan: &RollupPlan,
        wanted: Wanted,
    ) -> Result<RollupStats, StoreError> {
        let mut total = RollupMerger::new(wanted);
        if let Some((hours_from, hours_to)) = plan.hours {
            self.add_hour_rollups(host_id, hours_from, hours_to, &mut total)?;
        }
        let err = self.sql_error("read rollups");
        let mut lookup = self
            .conn
            .prepare_cached("SELECT stats FROM rollup_minute WHERE bucket_ms = ?1 AND host_id = ?2")
            .map_err(&err)?;
        for &(start, end) in &plan.minutes {
            for minute in (start..end).step_by(MINUTE_MS as usize) {
                // Summed where SQLite holds the blob, as the hour rows are.
                let added = lookup
                    .query_row(params![minute as i64, host_id], |r| {
                        Ok(total.add_encoded(r.get_ref(0)?.as_blob()?))
                    })
                    .optional()
                    .map_err(&err)?;
                if let Some(added) = added {
                    added.map_err(|e| self.bad_stats(e))?;
                }
            }
        }
        Ok(total.finish())
    }

    /// `host_id`'s hour rollups in `[hours_from, hours_to)` summed into `total`; returns how many it read.
    pub(super) fn add_hour_rollups(
        &self,
        host_id: i64,
        hours_from: u64,
        hours_to: u64,
        total: &mut RollupMerger,
    ) -> Result<u64, StoreError> {
        let err = self.sql_error("read rollups");
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT stats FROM rollup_hour WHERE host_id = ?1 AND bucket_ms >= ?2 AND bucket_ms < ?3",
            )
            .map_err(&err)?;
        // Each blob is summed where SQLite holds it: no copy, no sketch per blob.
        let mut rows = statement
            .query(params![host_id, hours_from as i64, hours_to as i64])
            .map_err(&err)?;
        let mut blobs = 0;
        while let Some(row) = rows.next().map_err(&err)? {
            let blob = row.get_ref(0).and_then(|v| Ok(v.as_blob()?)).map_err(&err)?;
            total.add_encoded(blob).map_err(|e| self.bad_stats(e))?;
            blobs += 1;
        }
        Ok(blobs)
    }

    /// `metric` over `[from_ms, to_ms)` for every host with rollups there, by host name: what
    /// [`Store::host_stats`] gives host by host (the same counts, extremes and sketch; the sum may differ in
    /// its last bits, being added in another order), with the minute rollups read in one range per end of
    /// the window for all hosts instead of one lookup per host and minute. What the sizing report reads for
    /// every host's memory.
    pub fn hosts_metric_stats(
        &self,
        metric: Metric,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<HashMap<String, MetricStats>, StoreError> {
        self.in_read_snapshot("read rollups", || {
            self.hosts_metric_stats_now(metric, from_ms, to_ms)
        })
    }

    fn hosts_metric_stats_now(
        &self,
        metric: Metric,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<HashMap<String, MetricStats>, StoreError> {
        let plan = self.rollup_plan(from_ms, to_ms)?;
        let wanted = Wanted::One(metric.index());
        let mut minutes: HashMap<i64, RollupMerger> = HashMap::new();
        for (start, end) in plan.minutes {
            self.add_every_hosts_minutes(start, end, wanted, &mut minutes)?;
        }
        let mut out = HashMap::new();
        for (name, record) in &self.hosts {
            let mut stats: Option<MetricStats> = None;
            if let Some((hours_from, hours_to)) = plan.hours {
                let mut total = RollupMerger::new(wanted);
                self.add_hour_rollups(record.id, hours_from, hours_to, &mut total)?;
                stats = total.finish().get(metric.index()).cloned();
            }
            let minute_part = minutes
                .remove(&record.id)
                .and_then(|merger| merger.finish().get(metric.index()).cloned());
            let merged = match (stats, minute_part) {
                (Some(mut hours), Some(minutes)) => {
                    hours.merge(&minutes);
                    Some(hours)
                }
                (hours, minutes) => hours.or(minutes),
            };
            if let Some(merged) = merged {
                out.insert(name.clone(), merged);
            }
        }
        Ok(out)
    }

    /// Adds every host's minute rollups in `[from, to)` to its entry of `totals` (by host row id), keeping
    /// `wanted`: one range read for all hosts. A sparse merger per host, since thousands are held at once,
    /// each seeing a few blobs. Returns how many blobs it read.
    pub(super) fn add_every_hosts_minutes(
        &self,
        from: u64,
        to: u64,
        wanted: Wanted,
        totals: &mut HashMap<i64, RollupMerger>,
    ) -> Result<u64, StoreError> {
        let err = self.sql_error("read rollups");
        let mut scan = self
            .conn
            .prepare_cached(
                "SELECT host_id, stats FROM rollup_minute WHERE bucket_ms >= ?1 AND bucket_ms < ?2",
            )
            .map_err(&err)?;
        let mut rows = scan.query(params![from as i64, to as i64]).map_err(&err)?;
        let mut blobs = 0;
        while let Some(row) = rows.next().map_err(&err)? {
            let host_id: i64 = row.get(0).map_err(&err)?;
            let blob = row.get_ref(1).and_then(|v| Ok(v.as_blob()?)).map_err(&err)?;
            totals
                .entry(host_id)
                .or_insert_with(|| RollupMerger::sparse(wanted))
                .add_encoded(blob)
                .map_err(|e| self.bad_stats(e))?;
            blobs += 1;
        }
        Ok(blobs)
    }

    pub(super) fn bad_stats(&self, e: DecodeError) -> StoreError {
        StoreError::BadBlob {
            path: self.path.clone(),
            what: "rollup stats",
            detail: e.to_string(),
        }
    }

    fn decode_stats(&self, blob: &[u8]) -> Result<RollupStats, StoreError> {
        RollupStats::decode(blob).map_err(|e| self.bad_stats(e))
    }

    /// `group_minutes` rows with `from_ms <= minute_ms < to_ms`, in time then group order.
    pub fn group_minutes(&self, from_ms: u64, to_ms: u64) -> Result<Vec<GroupMinute>, StoreError> {
        self.rows_between(
            "read group_minutes",
            "SELECT minute_ms, group_name, zone, hosts, cpu_busy_cores, cores, mem_used_bytes, mem_bytes, \
                 tcp_established FROM group_minutes WHERE minute_ms >= ?1 AND minute_ms < ?2 \
                 ORDER BY minute_ms, group_name, zone",
            from_ms,
            to_ms,
            |r| {
                Ok(GroupMinute {
                    minute_ms: r.get::<_, i64>(0)? as u64,
                    group: r.get(1)?,
                    zone: r.get(2)?,
                    hosts: r.get::<_, i64>(3)? as u64,
                    cpu_busy_cores: r.get(4)?,
                    cores: r.get::<_, i64>(5)? as u64,
                    mem_used_bytes: r.get(6)?,
                    mem_bytes: r.get::<_, i64>(7)? as u64,
                    tcp_established: r.get(8)?,
                })
            },
        )
    }

    /// The rollup's progress marks.
    pub fn rollup_marks(&self) -> Result<RollupMarks, StoreError> {
        marks_of(&self.conn, &self.path)
    }

    /// The `rollup_minute` row of host `host_id` (a `hosts.id`) for the minute starting at `minute_ms`.
    pub fn host_minute(&self, host_id: i64, minute_ms: u64) -> Result<Option<HostMinuteRollup>, StoreError> {
        let err = self.sql_error("read rollup_minute");
        let row = self
            .conn
            .prepare_cached("SELECT stats, ports FROM rollup_minute WHERE bucket_ms = ?1 AND host_id = ?2")
            .and_then(|mut statement| {
                statement
                    .query_row(params![minute_ms as i64, host_id], |r| {
                        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
                    })
                    .optional()
            })
            .map_err(&err)?;
        row.map(|(stats, ports)| {
            Ok(HostMinuteRollup {
                stats: self.decode_stats(&stats)?,
                ports: read_ports(&self.path, ports)?,
            })
        })
        .transpose()
    }

    /// Gaps overlapping `[from_ms, to_ms)`, by host then time.
    pub fn gaps(&self, from_ms: u64, to_ms: u64) -> Result<Vec<StoredGap>, StoreError> {
        self.rows_between(
            "read gaps",
            "SELECT h.name, g.instance_id, g.from_seq, g.to_seq, g.from_ms, g.to_ms, g.count, g.reason \
                 FROM gaps g JOIN hosts h ON h.id = g.host_id WHERE g.to_ms >= ?1 AND g.from_ms < ?2 \
                 ORDER BY h.name, g.from_ms",
            from_ms,
            to_ms,
            |r| {
                Ok(StoredGap {
                    host: r.get(0)?,
                    instance_id: r.get::<_, i64>(1)? as u64,
                    from_seq: r.get::<_, i64>(2)? as u64,
                    to_seq: r.get::<_, i64>(3)? as u64,
                    from_ms: r.get::<_, i64>(4)? as u64,
                    to_ms: r.get::<_, i64>(5)? as u64,
                    count: r.get::<_, i64>(6)? as u64,
                    reason: r.get(7)?,
                })
            },
        )
    }
}

fn marks_of(conn: &Connection, path: &str) -> Result<RollupMarks, StoreError> {
    let get = |key| {
        get_meta(conn, key)
            .map(|v| v.max(0))
            .map_err(|e| StoreError::from_sqlite(path, "read rollup progress", e))
    };
    Ok(RollupMarks {
        rolled_up_through_ms: get(META_RAW_CUTOFF)? as u64,
        raw_rowid: get(META_RAW_ROWID)?,
        port_minutes_from_ms: get(META_PORT_MINUTES_FROM)? as u64,
    })
}

/// A read-only connection to the database at `path` (named `name` in errors), nothing set or loaded yet.
pub(super) fn read_only_connection(path: &Path, name: &str) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| StoreError::from_sqlite(name, "open", e))?;
    conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
        .map_err(|e| StoreError::from_sqlite(name, "set busy_timeout", e))?;
    Ok(conn)
}

/// The rollup's progress marks in the database at `path`, read on a connection of their own without opening
/// a [`Store`]: a read-only store loads every host's row first (20,000 of them at that size), which
/// `/metrics` needs none of, at every scrape.
pub fn read_rollup_marks(path: &Path) -> Result<RollupMarks, StoreError> {
    let name = path.display().to_string();
    let conn = read_only_connection(path, &name)?;
    check_identity(&conn, &name)?;
    marks_of(&conn, &name)
}
