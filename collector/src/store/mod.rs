//! Embedded SQLite storage: raw samples, data gaps, per-host rollups, group sums and per-port connection sums
//! for sizing, and the hosts the collector has stored data for. docs/SCHEMA.md describes the tables for
//! people querying with `sqlite3`.
//!
//! One connection writes (owned by the writer thread in `writer`); `maintain` in `rollup` runs on the same
//! connection between batches; `query` serves reads, usually from a read-only open of a copy.

mod commit;
pub mod export;
pub mod group_columns;
pub mod group_sums;
pub mod history;
pub mod kept_stats;
pub mod merge;
mod meta;
mod minute_entry;
mod pacer;
pub mod ports;
pub mod query;
mod retention;
pub mod rollup;
pub mod schema;
pub mod sketch;
pub mod window_stats;
pub mod writer;

pub use crate::metrics::Metric;
pub use query::{read_rollup_marks, FileReads};
pub use rollup::{MaintainReport, Retention};
pub use writer::{spawn_writer, spawn_writer_with, QueueSlot, StoreHandle, StoreHealth, WriterSettings};

use headroom_common::derive::HostMetrics;
use headroom_common::wire::{Hello, InterfaceCounters, Listener, Sample, TcpStates};
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Instant;
use thiserror::Error;

/// How long a statement waits for a lock held by another connection (a reader checkpointing, `sqlite3`).
const BUSY_TIMEOUT_MS: u64 = 5_000;

/// SQLite's page cache on the writer's connection, KiB (SQLite's default is 2 MiB).
const WRITER_CACHE_KIB: u32 = 16 * 1024;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("database {path}: disk full; free space on its volume (writes resume by themselves once there is room)")]
    DiskFull { path: String },
    #[error("database {path} is read-only ({detail}); make the file and its directory writable by the collector's user")]
    ReadOnly { path: String, detail: String },
    #[error("database {path}: cannot open ({detail}); check that its directory exists and is writable by the collector's user")]
    CannotOpen { path: String, detail: String },
    #[error(
        "{path} is not a headroom database ({detail}); point storage at a new file or at a headroom database"
    )]
    NotHeadroom { path: String, detail: String },
    #[error("database {path} has schema version {found}, newer than the {known} this build knows; run a newer headroom-collector")]
    NewerSchema { path: String, found: i64, known: i64 },
    #[error("database {path} is corrupt ({detail}); move it aside and restore a backup or start a new file")]
    Corrupt { path: String, detail: String },
    #[error("database {path}: {context}: {detail}")]
    Sqlite {
        path: String,
        context: &'static str,
        detail: String,
    },
    #[error(
        "database {path}: stored {what} does not decode ({detail}); the row was written by another build"
    )]
    BadBlob {
        path: String,
        what: &'static str,
        detail: String,
    },
    #[error("storage writer has stopped; restart the collector")]
    WriterStopped,
}

impl StoreError {
    /// Classify a SQLite error so the message names the fix, not just the code.
    pub(crate) fn from_sqlite(path: &str, context: &'static str, error: rusqlite::Error) -> StoreError {
        let path = path.to_string();
        let detail = error.to_string();
        match error.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull { path },
            Some(ErrorCode::ReadOnly) | Some(ErrorCode::PermissionDenied) => {
                StoreError::ReadOnly { path, detail }
            }
            Some(ErrorCode::CannotOpen) => StoreError::CannotOpen { path, detail },
            Some(ErrorCode::NotADatabase) => StoreError::NotHeadroom { path, detail },
            Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt { path, detail },
            _ => StoreError::Sqlite {
                path,
                context,
                detail,
            },
        }
    }
}

/// What a hello says about a host, as stored in `hosts`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostInfo {
    pub labels: BTreeMap<String, String>,
    pub cores: u32,
    pub memory_bytes: u64,
    pub interval_ms: u32,
    pub agent_version: String,
}

impl HostInfo {
    pub fn from_hello(hello: &Hello) -> Self {
        HostInfo {
            labels: hello.labels.clone(),
            cores: hello.capacity.cores,
            memory_bytes: hello.capacity.memory_bytes,
            interval_ms: hello.interval_ms,
            agent_version: hello.agent_version.clone(),
        }
    }

    fn label(&self, key: &str) -> String {
        self.labels.get(key).cloned().unwrap_or_default()
    }
}

/// Per-interface and per-listener detail of one sample, stored as a postcard blob in `samples.detail`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleDetail {
    /// Raw counters, as the agent sent them.
    pub interfaces: Vec<InterfaceCounters>,
    pub listeners: Vec<Listener>,
    pub tcp_states: Option<TcpStates>,
}

impl SampleDetail {
    pub fn of(sample: &Sample) -> Self {
        let sockets = sample.sockets.as_ref();
        SampleDetail {
            interfaces: sample.network.clone(),
            listeners: sockets.map(|s| s.listeners.clone()).unwrap_or_default(),
            tcp_states: sockets.and_then(|s| s.tcp_states),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("postcard encodes plain structs")
    }

    /// `SampleDetail::of(sample).encode()` written into `out` (cleared first) straight from the sample: no
    /// copy of its lists, and no allocation once `out` has grown to a sample's size.
    pub fn encode_sample_into(sample: &Sample, out: &mut Vec<u8>) {
        /// `SampleDetail` borrowing the sample's lists: postcard encodes a slice exactly as a `Vec`.
        #[derive(Serialize)]
        struct Borrowed<'a> {
            interfaces: &'a [InterfaceCounters],
            listeners: &'a [Listener],
            tcp_states: Option<TcpStates>,
        }
        let sockets = sample.sockets.as_ref();
        let detail = Borrowed {
            interfaces: &sample.network,
            listeners: sockets.map_or(&[], |s| s.listeners.as_slice()),
            tcp_states: sockets.and_then(|s| s.tcp_states),
        };
        out.clear();
        postcard::to_io(&detail, &mut *out).expect("postcard encodes plain structs");
    }

    pub fn decode(bytes: &[u8]) -> Result<SampleDetail, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// One sample to store: identity, derived metrics, and the detail blob.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampleRow {
    pub seq: u64,
    /// When the sample was taken on the collector's clock, Unix milliseconds: the host's own timestamp less
    /// `clock_offset_ms`.
    pub ts_ms: u64,
    /// The correction applied to the host's timestamp: how far its clock was ahead of the collector's
    /// (negative: behind), 0 when it agreed.
    pub clock_offset_ms: i64,
    pub metrics: HostMetrics,
    /// `SampleDetail` encoded; empty stores NULL.
    pub detail: Vec<u8>,
}

impl SampleRow {
    /// The row for a sample whose metrics were derived at ingest (`headroom_common::derive::derive_metrics`).
    pub fn from_sample(sample: &Sample, metrics: HostMetrics) -> Self {
        let mut row = SampleRow {
            metrics,
            ..SampleRow::default()
        };
        row.fill_from(sample, 0);
        row
    }

    /// Makes this row the one for `sample`, keeping `metrics` (derived into the row beforehand with
    /// `derive_metrics_into`) and reusing the detail buffer: ingest keeps its rows from batch to batch.
    pub fn fill_from(&mut self, sample: &Sample, clock_offset_ms: i64) {
        self.seq = sample.seq;
        self.ts_ms = sample.timestamp_ms;
        self.clock_offset_ms = clock_offset_ms;
        SampleDetail::encode_sample_into(sample, &mut self.detail);
    }
}

/// Samples an agent had to drop (its spool was full), reported so that reports can show the hole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GapRow {
    pub from_seq: u64,
    pub to_seq: u64,
    pub from_ms: u64,
    pub to_ms: u64,
    pub count: u64,
    pub reason: String,
}

/// Everything one host delivered that is to be committed together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostBatch {
    /// Identity from the client certificate.
    pub host: String,
    pub instance_id: u64,
    /// Collector clock when the batch arrived; becomes `hosts.last_seen_ms`.
    pub received_ms: u64,
    pub hello: Option<HostInfo>,
    pub rows: Vec<SampleRow>,
    pub gaps: Vec<GapRow>,
}

/// What a committed batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitOutcome {
    pub stored: usize,
    /// Rows dropped because their seq was at or below the host's last stored seq.
    pub duplicates: usize,
    /// Highest seq durably stored for the host and instance: what to acknowledge.
    pub last_seq: Option<u64>,
}

/// What `Store::open` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    pub path: String,
    pub schema_version: i64,
    /// The version found before migrations ran, when they did (0 for a new file).
    pub migrated_from: Option<i64>,
    pub check_ok: bool,
    /// Result of `PRAGMA quick_check` as one line: "ok" or the first problems.
    pub check: String,
    pub hosts: usize,
    pub took_ms: u64,
}

impl OpenReport {
    /// One line for the log.
    pub fn line(&self) -> String {
        let migrated = match self.migrated_from {
            Some(0) => " (created)".to_string(),
            Some(from) => format!(" (migrated from {from})"),
            None => String::new(),
        };
        let check = if self.check_ok {
            "quick_check ok".to_string()
        } else {
            format!("quick_check found problems: {}", self.check)
        };
        format!(
            "database {}: schema version {}{migrated}, {} hosts, {check}, opened in {} ms",
            self.path, self.schema_version, self.hosts, self.took_ms
        )
    }
}

/// What the store keeps in memory per host.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HostRecord {
    pub id: i64,
    pub instance_id: u64,
    pub last_seq: Option<u64>,
    pub last_seen_ms: u64,
    pub group: String,
    pub zone: String,
    pub cores: u32,
    pub memory_bytes: u64,
    /// `last_seq` / `last_seen_ms` / `instance_id` changed since the last sync to `hosts`.
    pub dirty: bool,
}

/// Last stored seq per host name, with the instance it belongs to; shared with `StoreHandle`. Every update is
/// one map insert, so a thread that panicked while holding the lock leaves it whole: readers and writers take
/// a poisoned lock as it is, and a panic elsewhere does not stop ingest.
pub(crate) type Progress = Arc<RwLock<HashMap<String, HostProgress>>>;

/// What ingest needs to know of a host without asking the database: its instance, last stored sequence and
/// when the collector last stored anything of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HostProgress {
    pub instance_id: u64,
    pub last_seq: Option<u64>,
    pub last_seen_ms: u64,
}

/// An open headroom database.
pub struct Store {
    conn: Connection,
    pub(crate) path: String,
    pub(crate) hosts: HashMap<String, HostRecord>,
    pub(crate) names_by_id: BTreeMap<i64, String>,
    pub(crate) progress: Progress,
    pub(crate) rollup: rollup::RollupState,
}

impl Store {
    /// Open (creating if needed) the database at `path`, migrate it, check it, and load each host's last seq.
    pub fn open(path: &Path, now_ms: u64) -> Result<(Store, OpenReport), StoreError> {
        let started = Instant::now();
        let name = path.display().to_string();
        let err = |context| {
            let name = name.clone();
            move |e| StoreError::from_sqlite(&name, context, e)
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(err("open"))?;
        conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))
            .map_err(err("set busy_timeout"))?;
        let found_version = check_identity(&conn, &name)?;
        // WAL lets readers (the CLI, `sqlite3`, a backup) run while the writer commits. synchronous=NORMAL
        // in WAL mode fsyncs at checkpoints rather than at every commit: a committed transaction survives a
        // crash of the process (kill -9, a panic), which is what acknowledgements promise; on power loss
        // the last commits before the crash may be lost, and the agents resend them because the collector
        // will then report an older last stored seq. FULL would add an fsync per group commit for a case
        // the agents already cover.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(err("set journal_mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Sqlite {
                path: name,
                context: "set journal_mode",
                detail: format!("journal mode is {mode}, WAL needed; is the file on a network filesystem?"),
            });
        }
        // The writer appends samples and rewrites recent rollup rows; the pass reads rows a minute or two
        // old (hundreds of MB a minute at 20,000 hosts), which no cache of this size holds anyway.
        conn.execute_batch(&format!(
            "PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{};",
            WRITER_CACHE_KIB
        ))
        .map_err(err("set pragmas"))?;
        let (check_ok, check) = quick_check(&conn).map_err(err("quick_check"))?;
        let migrated_from = if found_version < schema::SCHEMA_VERSION {
            migrate(&conn, found_version, now_ms).map_err(err("migrate"))?;
            Some(found_version)
        } else {
            None
        };
        let mut store = Store::with_connection(conn, name)?;
        store.recover_last_seqs()?;
        let report = OpenReport {
            path: store.path.clone(),
            schema_version: schema::SCHEMA_VERSION,
            migrated_from,
            check_ok,
            check,
            hosts: store.hosts.len(),
            took_ms: started.elapsed().as_millis() as u64,
        };
        Ok((store, report))
    }

    fn with_connection(conn: Connection, path: String) -> Result<Store, StoreError> {
        let mut store = Store {
            conn,
            path,
            hosts: HashMap::new(),
            names_by_id: BTreeMap::new(),
            progress: Progress::default(),
            rollup: rollup::RollupState::default(),
        };
        store.load_hosts()?;
        Ok(store)
    }

    pub(crate) fn sql_error(&self, context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |e| StoreError::from_sqlite(&self.path, context, e)
    }

    /// Runs `read` in one read transaction: every statement sees the same snapshot, and the database file is
    /// locked and checked once instead of once per statement (which is what a read of thousands of small
    /// lookups otherwise spends most of its time on). Inside a transaction already open, `read` just runs.
    pub(crate) fn in_read_snapshot<T>(
        &self,
        context: &'static str,
        read: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if !self.conn.is_autocommit() {
            return read();
        }
        self.conn
            .execute_batch("BEGIN")
            .map_err(self.sql_error(context))?;
        match read() {
            Ok(value) => {
                self.conn
                    .execute_batch("COMMIT")
                    .map_err(self.sql_error(context))?;
                Ok(value)
            }
            Err(error) => {
                // What failed is the error worth reporting; ending a read-only transaction changes nothing.
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(error)
            }
        }
    }

    /// Every row `sql` returns for the window `[from_ms, to_ms)`, bound as `?1` and `?2`, each read by `row`:
    /// the shape of the store's time-range queries.
    pub(crate) fn rows_between<T>(
        &self,
        context: &'static str,
        sql: &str,
        from_ms: u64,
        to_ms: u64,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let err = self.sql_error(context);
        let mut statement = self.conn.prepare_cached(sql).map_err(&err)?;
        let rows = statement
            .query_map(rusqlite::params![from_ms as i64, to_ms as i64], row)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(&err)?;
        Ok(rows)
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Last stored seq of `host` if it came from agent instance `instance_id`.
    pub fn last_seq(&self, host: &str, instance_id: u64) -> Option<u64> {
        self.hosts
            .get(host)
            .filter(|r| r.instance_id == instance_id)
            .and_then(|r| r.last_seq)
    }

    fn load_hosts(&mut self) -> Result<(), StoreError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT id, name, instance_id, last_seq, last_seen_ms, group_name, zone, cores, memory_bytes \
                 FROM hosts",
            )
            .map_err(|e| StoreError::from_sqlite(&self.path, "load hosts", e))?;
        let rows = statement
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(1)?,
                    HostRecord {
                        id: r.get(0)?,
                        instance_id: r.get::<_, i64>(2)? as u64,
                        last_seq: r.get::<_, Option<i64>>(3)?.map(|s| s as u64),
                        last_seen_ms: r.get::<_, i64>(4)? as u64,
                        group: r.get(5)?,
                        zone: r.get(6)?,
                        cores: r.get::<_, i64>(7)? as u32,
                        memory_bytes: r.get::<_, i64>(8)? as u64,
                        dirty: false,
                    },
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| StoreError::from_sqlite(&self.path, "load hosts", e))?;
        drop(statement);
        for (name, record) in rows {
            self.names_by_id.insert(record.id, name.clone());
            self.hosts.insert(name, record);
        }
        Ok(())
    }

    /// `hosts.last_seq` is synced lazily (see `rollup::sync_hosts`), so rows stored after the last sync are
    /// read back here: their highest seq per host is the true last stored seq. Only rows of the host's
    /// current agent instance count.
    fn recover_last_seqs(&mut self) -> Result<(), StoreError> {
        let synced = meta::get_meta(&self.conn, meta::META_HOSTS_SYNCED_ROWID)
            .map_err(|e| StoreError::from_sqlite(&self.path, "recover last seqs", e))?;
        let mut statement = self
            .conn
            .prepare(
                "SELECT s.host_id, MAX(s.seq) FROM samples s JOIN hosts h ON h.id = s.host_id \
                 WHERE s.id > ?1 AND s.id > h.instance_since_rowid GROUP BY s.host_id",
            )
            .map_err(|e| StoreError::from_sqlite(&self.path, "recover last seqs", e))?;
        let found = statement
            .query_map([synced], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| StoreError::from_sqlite(&self.path, "recover last seqs", e))?;
        drop(statement);
        for (id, seq) in found {
            if let Some(record) = self
                .names_by_id
                .get(&id)
                .and_then(|name| self.hosts.get_mut(name))
            {
                record.last_seq = record.last_seq.max(Some(seq));
                record.dirty = true;
            }
        }
        let mut progress = self.progress.write().unwrap_or_else(|p| p.into_inner());
        for (name, record) in &self.hosts {
            progress.insert(
                name.clone(),
                HostProgress {
                    instance_id: record.instance_id,
                    last_seq: record.last_seq,
                    last_seen_ms: record.last_seen_ms,
                },
            );
        }
        Ok(())
    }
}

/// The file's schema version, after checking it is headroom's (or empty) and not newer than this build.
fn check_identity(conn: &Connection, path: &str) -> Result<i64, StoreError> {
    let err = |e| StoreError::from_sqlite(path, "read schema version", e);
    let application_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(err)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name LIMIT 5")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(err)?;
    if application_id != schema::APPLICATION_ID && !(application_id == 0 && tables.is_empty()) {
        return Err(StoreError::NotHeadroom {
            path: path.to_string(),
            detail: format!(
                "application_id {application_id:#x}, tables: {}",
                tables.join(", ")
            ),
        });
    }
    if version > schema::SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_string(),
            found: version,
            known: schema::SCHEMA_VERSION,
        });
    }
    Ok(version)
}

fn migrate(conn: &Connection, from: i64, now_ms: u64) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        for step in &schema::MIGRATIONS[from as usize..] {
            conn.execute_batch(step)?;
        }
        conn.execute_batch(&format!(
            "PRAGMA application_id = {}; PRAGMA user_version = {};",
            schema::APPLICATION_ID,
            schema::SCHEMA_VERSION
        ))?;
        if from == 0 {
            meta::set_meta(conn, meta::META_CREATED, now_ms as i64)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// `PRAGMA quick_check`, at most 10 problems, joined into one line.
fn quick_check(conn: &Connection) -> rusqlite::Result<(bool, String)> {
    let lines: Vec<String> = conn
        .prepare("PRAGMA quick_check(10)")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let ok = lines.len() == 1 && lines[0] == "ok";
    Ok((ok, lines.join("; ")))
}

/// Run a query that returns at most one integer, `None` for no row or NULL.
pub(crate) fn query_i64(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Option<i64>> {
    conn.query_row(sql, params, |r| r.get::<_, Option<i64>>(0))
        .optional()
        .map(Option::flatten)
}

#[cfg(test)]
pub(crate) mod tests;
