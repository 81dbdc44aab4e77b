//! The database schema, its migrations, and the list of scalar metrics stored per sample and per rollup.
//!
//! The schema version lives in `PRAGMA user_version`; `PRAGMA application_id` marks the file as headroom's,
//! so a wrong `storage.path` is refused instead of being written into. Migrations only ever append: a
//! released step is never edited, a change is a new step. docs/SCHEMA.md documents the result.

use crate::fleet::HostMetrics;

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
    // Version 3: alarm transitions and outlier flags, for the alarms page and the weekly review. Times are
    // the collector's clock. Rows are few (transitions only), so each table has one time index.
    r#"
CREATE TABLE alarm_events (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject TEXT NOT NULL,
    status TEXT NOT NULL,
    value REAL,
    active_since_ms INTEGER,
    fired_ms INTEGER,
    summary TEXT NOT NULL,
    runbook TEXT NOT NULL
);
CREATE INDEX alarm_events_by_time ON alarm_events (at_ms);
CREATE TABLE outlier_flags (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    host TEXT NOT NULL,
    group_name TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    group_median REAL NOT NULL,
    score REAL NOT NULL,
    explanation TEXT NOT NULL
);
CREATE INDEX outlier_flags_by_time ON outlier_flags (at_ms);
"#,
];

/// Schema version this build creates and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A scalar metric stored per sample (a column of `samples`) and per rollup (an entry of the stats blob).
///
/// The order is the order of entries in rollup blobs: only ever append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    CpuBusyPct,
    CpuUserPct,
    CpuSystemPct,
    CpuIowaitPct,
    CpuStealPct,
    Load1,
    MemUsedPct,
    MemUsedBytes,
    SwapUsedBytes,
    PsiCpu,
    PsiMemory,
    PsiIo,
    NetRxBytesPerS,
    NetTxBytesPerS,
    TcpEstablished,
    TcpTimeWait,
    RetransPerS,
    ListenOverflowsPerS,
    ListenDropsPerS,
    ConntrackFillPct,
    MaxAcceptQueueFillPct,
}

impl Metric {
    pub const ALL: [Metric; 21] = [
        Metric::CpuBusyPct,
        Metric::CpuUserPct,
        Metric::CpuSystemPct,
        Metric::CpuIowaitPct,
        Metric::CpuStealPct,
        Metric::Load1,
        Metric::MemUsedPct,
        Metric::MemUsedBytes,
        Metric::SwapUsedBytes,
        Metric::PsiCpu,
        Metric::PsiMemory,
        Metric::PsiIo,
        Metric::NetRxBytesPerS,
        Metric::NetTxBytesPerS,
        Metric::TcpEstablished,
        Metric::TcpTimeWait,
        Metric::RetransPerS,
        Metric::ListenOverflowsPerS,
        Metric::ListenDropsPerS,
        Metric::ConntrackFillPct,
        Metric::MaxAcceptQueueFillPct,
    ];

    /// Column name in `samples`, also the name used on the command line and in docs/SCHEMA.md.
    pub fn name(self) -> &'static str {
        match self {
            Metric::CpuBusyPct => "cpu_busy_pct",
            Metric::CpuUserPct => "cpu_user_pct",
            Metric::CpuSystemPct => "cpu_system_pct",
            Metric::CpuIowaitPct => "cpu_iowait_pct",
            Metric::CpuStealPct => "cpu_steal_pct",
            Metric::Load1 => "load1",
            Metric::MemUsedPct => "mem_used_pct",
            Metric::MemUsedBytes => "mem_used_bytes",
            Metric::SwapUsedBytes => "swap_used_bytes",
            Metric::PsiCpu => "psi_cpu",
            Metric::PsiMemory => "psi_memory",
            Metric::PsiIo => "psi_io",
            Metric::NetRxBytesPerS => "net_rx_bytes_per_s",
            Metric::NetTxBytesPerS => "net_tx_bytes_per_s",
            Metric::TcpEstablished => "tcp_established",
            Metric::TcpTimeWait => "tcp_time_wait",
            Metric::RetransPerS => "retrans_per_s",
            Metric::ListenOverflowsPerS => "listen_overflows_per_s",
            Metric::ListenDropsPerS => "listen_drops_per_s",
            Metric::ConntrackFillPct => "conntrack_fill_pct",
            Metric::MaxAcceptQueueFillPct => "max_accept_queue_fill_pct",
        }
    }

    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.iter().copied().find(|m| m.name() == name)
    }

    /// Position in rollup blobs and in `values`.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The metric's value in a sample's derived metrics, `None` when it was not measured.
    pub fn value(self, m: &HostMetrics) -> Option<f64> {
        let bytes = |v: Option<u64>| v.map(|v| v as f64);
        match self {
            Metric::CpuBusyPct => m.cpu_busy_pct,
            Metric::CpuUserPct => m.cpu_user_pct,
            Metric::CpuSystemPct => m.cpu_system_pct,
            Metric::CpuIowaitPct => m.cpu_iowait_pct,
            Metric::CpuStealPct => m.cpu_steal_pct,
            Metric::Load1 => m.load1,
            Metric::MemUsedPct => m.mem_used_pct,
            Metric::MemUsedBytes => bytes(m.mem_used_bytes),
            Metric::SwapUsedBytes => bytes(m.swap_used_bytes),
            Metric::PsiCpu => m.psi_cpu_some_avg10,
            Metric::PsiMemory => m.psi_memory_some_avg10,
            Metric::PsiIo => m.psi_io_some_avg10,
            Metric::NetRxBytesPerS => m.net_rx_bytes_per_s,
            Metric::NetTxBytesPerS => m.net_tx_bytes_per_s,
            Metric::TcpEstablished => bytes(m.tcp_established),
            Metric::TcpTimeWait => bytes(m.tcp_time_wait),
            Metric::RetransPerS => m.retrans_per_s,
            Metric::ListenOverflowsPerS => m.listen_overflows_per_s,
            Metric::ListenDropsPerS => m.listen_drops_per_s,
            Metric::ConntrackFillPct => m.conntrack_fill_pct,
            Metric::MaxAcceptQueueFillPct => max_accept_queue_fill_pct(m),
        }
    }

    /// Whether the `samples` column holds integers (counts and bytes) rather than reals.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            Metric::MemUsedBytes | Metric::SwapUsedBytes | Metric::TcpEstablished | Metric::TcpTimeWait
        )
    }
}

/// The fullest accept queue among listeners whose limit is known, in percent of its limit.
pub fn max_accept_queue_fill_pct(m: &HostMetrics) -> Option<f64> {
    m.listeners
        .iter()
        .filter(|l| l.accept_queue_limit > 0)
        .map(|l| f64::from(l.accept_queue) * 100.0 / f64::from(l.accept_queue_limit))
        .reduce(f64::max)
}

/// Every metric's value for one sample, in `Metric::ALL` order.
pub fn metric_values(m: &HostMetrics) -> [Option<f64>; 21] {
    Metric::ALL.map(|metric| metric.value(m))
}

/// Comma-separated metric column names, in `Metric::ALL` order, for building SQL.
pub fn metric_columns() -> String {
    Metric::ALL
        .iter()
        .map(|m| m.name())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use headroom_common::wire::Listener;

    #[test]
    fn names_round_trip_and_indexes_follow_the_list() {
        for (i, metric) in Metric::ALL.iter().enumerate() {
            assert_eq!(metric.index(), i);
            assert_eq!(Metric::from_name(metric.name()), Some(*metric));
        }
        assert_eq!(Metric::from_name("cpu"), None);
    }

    #[test]
    fn accept_queue_fill_ignores_listeners_with_unknown_limits() {
        let listener = |queue, limit| Listener {
            port: 80,
            established: 0,
            accept_queue: queue,
            accept_queue_limit: limit,
        };
        let mut m = HostMetrics {
            listeners: vec![listener(50, 0)],
            ..HostMetrics::default()
        };
        assert_eq!(max_accept_queue_fill_pct(&m), None);
        m.listeners = vec![listener(10, 100), listener(64, 128), listener(900, 0)];
        assert_eq!(max_accept_queue_fill_pct(&m), Some(50.0));
    }
}
