//! The database schema and its migrations. The scalar metric columns of `samples` (and the entries of rollup
//! blobs) are the metric catalogue's, in its order (`crate::metrics`).
//!
//! The schema version lives in `PRAGMA user_version`; `PRAGMA application_id` marks the file as headroom's,
//! so a wrong `storage.path` is refused instead of being written into. Migrations only ever append: a
//! released step is never edited, a change is a new step. docs/SCHEMA.md documents the result.

use crate::metrics::CATALOGUE;

/// Marks a SQLite file as a headroom database ("HDRM").
pub const APPLICATION_ID: i32 = 0x4844_524d;

/// One SQL script per schema version; version N is reached by running steps 1..=N in order.
pub const MIGRATIONS: &[&str] = &[
    // Version 1.
    r#"
CREATE TABLE hosts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    instance_id INTEGER NOT NULL DEFAULT 0,
    labels TEXT NOT NULL DEFAULT '{}',
    group_name TEXT NOT NULL DEFAULT '',
    zone TEXT NOT NULL DEFAULT '',
    cores INTEGER NOT NULL DEFAULT 0,
    memory_bytes INTEGER NOT NULL DEFAULT 0,
    interval_ms INTEGER NOT NULL DEFAULT 1000,
    agent_version TEXT NOT NULL DEFAULT '',
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    last_seq INTEGER,
    instance_since_rowid INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms INTEGER NOT NULL,
    host_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    cpu_busy_pct REAL,
    cpu_user_pct REAL,
    cpu_system_pct REAL,
    cpu_iowait_pct REAL,
    cpu_steal_pct REAL,
    load1 REAL,
    mem_used_pct REAL,
    mem_used_bytes INTEGER,
    swap_used_bytes INTEGER,
    psi_cpu REAL,
    psi_memory REAL,
    psi_io REAL,
    net_rx_bytes_per_s REAL,
    net_tx_bytes_per_s REAL,
    tcp_established INTEGER,
    tcp_time_wait INTEGER,
    retrans_per_s REAL,
    listen_overflows_per_s REAL,
    listen_drops_per_s REAL,
    conntrack_fill_pct REAL,
    max_accept_queue_fill_pct REAL,
    detail BLOB
);
CREATE TABLE gaps (
    id INTEGER PRIMARY KEY,
    host_id INTEGER NOT NULL,
    instance_id INTEGER NOT NULL,
    from_seq INTEGER NOT NULL,
    to_seq INTEGER NOT NULL,
    from_ms INTEGER NOT NULL,
    to_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    reason TEXT NOT NULL,
    recorded_ms INTEGER NOT NULL,
    UNIQUE (host_id, instance_id, from_seq)
);
CREATE TABLE rollup_minute (
    id INTEGER PRIMARY KEY,
    bucket_ms INTEGER NOT NULL,
    host_id INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    stats BLOB NOT NULL,
    pass_rowid INTEGER NOT NULL
);
CREATE UNIQUE INDEX rollup_minute_by_bucket ON rollup_minute (bucket_ms, host_id);
CREATE TABLE rollup_hour (
    id INTEGER PRIMARY KEY,
    bucket_ms INTEGER NOT NULL,
    host_id INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    stats BLOB NOT NULL
);
CREATE UNIQUE INDEX rollup_hour_by_host ON rollup_hour (host_id, bucket_ms);
CREATE TABLE group_minutes (
    minute_ms INTEGER NOT NULL,
    group_name TEXT NOT NULL,
    zone TEXT NOT NULL,
    hosts INTEGER NOT NULL,
    cpu_busy_cores REAL NOT NULL,
    cores INTEGER NOT NULL,
    mem_used_bytes REAL NOT NULL,
    mem_bytes INTEGER NOT NULL,
    tcp_established REAL NOT NULL,
    PRIMARY KEY (minute_ms, group_name, zone)
) WITHOUT ROWID;
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // Version 2: established connections per listening port, per host minute and per group minute.
    // Minutes rolled up before this step have no per-port sums: `port_minutes_from_ms` is the first
    // minute after every minute row already written (an indexed MAX, not a scan of raw rows).
    r#"
ALTER TABLE rollup_minute ADD COLUMN ports BLOB;
CREATE TABLE group_port_minutes (
    minute_ms INTEGER NOT NULL,
    group_name TEXT NOT NULL,
    zone TEXT NOT NULL,
    port INTEGER NOT NULL,
    established REAL NOT NULL,
    hosts INTEGER NOT NULL,
    PRIMARY KEY (minute_ms, group_name, zone, port)
) WITHOUT ROWID;
INSERT OR REPLACE INTO meta (key, value) VALUES ('port_minutes_from_ms',
    COALESCE((SELECT MAX(bucket_ms) + 60000 FROM rollup_minute), 0));
"#,
    // Version 3: the busiest core's busy %, derived at ingest from consecutive per-core counters. Rows
    // stored before have NULL, like any metric a sample lacked; rollup blobs written before have one
    // entry fewer, which reads as "no data" for it.
    r#"
ALTER TABLE samples ADD COLUMN cpu_busiest_core_pct REAL;
"#,
    // Version 4: samples are stored on the collector's clock; the correction applied to the host's own
    // timestamp is kept with each. Rows stored before were on the host's clock, uncorrected: 0.
    r#"
ALTER TABLE samples ADD COLUMN clock_offset_ms INTEGER NOT NULL DEFAULT 0;
"#,
];

/// Schema version this build creates and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Comma-separated metric column names, in catalogue order, for building SQL.
pub fn metric_columns() -> String {
    CATALOGUE.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}
