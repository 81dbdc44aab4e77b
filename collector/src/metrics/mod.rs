//! The metric catalogue: every per-host metric headroom stores, shows, scores and alarms on, declared once.
//!
//! One entry per metric gives its name (the `samples` column, the CLI and API name, the alarm rule name), a
//! help line, its unit and kind, how it aggregates over time and across hosts, the outlier floor (metrics
//! without one are not scored for outliers), the Prometheus export name and how the value is read from a
//! sample's derived metrics (`headroom_common::derive::HostMetrics`, whose field names are the catalogue
//! names), and how the views show it (`show.rs`: short header, web title, display order, and the views that
//! list only some metrics: the `hosts` table, the web pages' columns and charts, the host history rows). The
//! store, the views, the outlier scorer and the alarm rules all iterate [`CATALOGUE`]; adding a metric is
//! one entry here plus its derivation.
//!
//! The order is the order of entries in rollup blobs and of the metric columns of `samples`: only ever
//! append, and a new metric needs a schema migration adding its column.

use headroom_common::derive::HostMetrics;
use serde::{Deserialize, Serialize};
use std::fmt;

mod show;
pub use show::{fleet_page_columns, format_number, metrics_in, Key, Place, Show, Values};

/// What a value measures, which fixes how it is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Percent,
    Bytes,
    BytesPerSecond,
    PerSecond,
    Count,
    /// A load average: runnable tasks, printed with two decimals.
    Load,
}

impl Unit {
    /// The unit as a short word for docs and help output.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Percent => "percent",
            Unit::Bytes => "bytes",
            Unit::BytesPerSecond => "bytes/s",
            Unit::PerSecond => "1/s",
            Unit::Count => "count",
            Unit::Load => "tasks",
        }
    }
}

/// How a metric comes about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A level read from one sample (memory, pressure, load) or a share of time between two (busy %).
    Gauge,
    /// Per second, from a counter's change between two samples; absent across a counter reset.
    Rate,
    /// A number of things at the moment of the sample (sockets).
    Count,
}

/// How one host's values over a window become one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverTime {
    /// The mean of the host's samples in the window: its typical level.
    Mean,
}

/// How the per-host numbers of a row of hosts are shown together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcrossHosts {
    /// Count, mean, nearest-rank percentiles and max across hosts: a level each host has on its own.
    Spread,
    /// The same spread, and the live summary adds the hosts' values up: traffic and events that the
    /// group as a whole carries.
    SpreadAndSum,
}

/// How the `samples` column stores the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    Real,
    Integer,
}

/// One metric's declaration.
#[derive(Debug)]
pub struct MetricDef {
    pub metric: Metric,
    /// The one name of the metric: `samples` column, CLI and API field, alarm rule `metric`.
    pub name: &'static str,
    pub help: &'static str,
    pub unit: Unit,
    pub kind: Kind,
    pub over_time: OverTime,
    pub across_hosts: AcrossHosts,
    pub storage: Storage,
    /// The smallest distance from a group's median, in the metric's unit, that one spread may stand for in
    /// outlier scoring; `None` leaves the metric out of outlier scoring. Chosen as the least difference an
    /// operator would call meaningful on an idle metric: one percentage point, a tenth of a load point,
    /// 10 kB/s, a handful of connections, one event per second.
    pub outlier_floor: Option<f64>,
    /// Name of the metric when exported to Prometheus (base units spelled out, `headroom_` prefix).
    pub export_name: &'static str,
    /// Names an earlier release accepted in alarm rules; still accepted, with a deprecation warning.
    pub deprecated_names: &'static [&'static str],
    /// The value in a sample's derived metrics, `None` when not measured.
    pub value: fn(&HostMetrics) -> Option<f64>,
    /// The columns of the live fleet summary (`fleet`, one row per group and zone) this metric gives, in
    /// order; empty when the summary leaves it out (`fleet --by` and `fleet --window` show every metric).
    pub summary: &'static [SummaryColumn],
    /// How the views show it: short header, web title, display order and the views that list it.
    pub show: Show,
}

/// A statistic across the live hosts of one summary row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Mean,
    /// Nearest-rank percentiles across hosts.
    P50,
    P99,
    Max,
    /// The hosts' values added up: traffic and events the row carries as a whole
    /// ([`AcrossHosts::SpreadAndSum`]).
    Sum,
}

/// One column of the live fleet summary: a statistic of one metric across a row's hosts.
#[derive(Debug)]
pub struct SummaryColumn {
    pub stat: Stat,
    /// The JSON key and CSV header of the column (names users' scripts rely on: never renamed).
    pub key: &'static str,
    /// The terminal table's header; `None` leaves the column to JSON and CSV.
    pub header: Option<&'static str>,
}

const fn show(short: &'static str, title: &'static str, order: u8, places: &'static [Place]) -> Show {
    Show {
        short,
        title,
        order,
        places,
    }
}

const fn col(stat: Stat, key: &'static str, header: Option<&'static str>) -> SummaryColumn {
    SummaryColumn { stat, key, header }
}

/// Every column of the live fleet summary with its metric, in catalogue order.
pub fn summary_columns() -> impl Iterator<Item = (Metric, &'static SummaryColumn)> {
    CATALOGUE
        .iter()
        .flat_map(|def| def.summary.iter().map(move |column| (def.metric, column)))
}

fn count(value: Option<u64>) -> Option<f64> {
    value.map(|v| v as f64)
}

/// Declares the metrics once: the `Metric` enum, its order, and the catalogue table come from one list.
macro_rules! catalogue {
    ($( $(#[$doc:meta])* $variant:ident { $($field:ident : $value:expr),* $(,)? } )*) => {
        /// A metric of the catalogue; `Metric::def()` has its declaration.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Metric {
            $( $(#[$doc])* $variant, )*
        }

        impl Metric {
            /// Number of metrics in the catalogue.
            pub const COUNT: usize = [$(stringify!($variant)),*].len();
            /// Every metric, in catalogue order.
            pub const ALL: [Metric; Metric::COUNT] = [$(Metric::$variant),*];
        }

        /// Every metric's declaration, in catalogue order (`CATALOGUE[m.index()].metric == m`).
        pub static CATALOGUE: [MetricDef; Metric::COUNT] = [
            $( MetricDef { metric: Metric::$variant, $($field: $value),* }, )*
        ];
    };
}

catalogue! {
    CpuBusyPct {
        name: "cpu_busy_pct", help: "share of CPU time spent working (not idle, not iowait), all cores",
        show: show("cpu", "CPU busy %", 1, &[
            Place::HostsTable,
            Place::FleetPage(Stat::P99),
            Place::GroupPage,
            Place::HostLastHour,
            Place::HostDays,
        ]),
        unit: Unit::Percent, kind: Kind::Gauge, over_time: OverTime::Mean, across_hosts: AcrossHosts::Spread,
        storage: Storage::Real, outlier_floor: Some(1.0), export_name: "headroom_cpu_busy_ratio",
        deprecated_names: &[], value: |m| m.cpu_busy_pct,
        summary: &[
            col(Stat::Mean, "cpu_busy_mean", None),
            col(Stat::P50, "cpu_busy_p50", Some("cpu p50")),
            col(Stat::P99, "cpu_busy_p99", Some("cpu p99")),
            col(Stat::Max, "cpu_busy_max", Some("cpu max")),
        ],
    }
    CpuUserPct {
        name: "cpu_user_pct", help: "share of CPU time in user mode",
        show: show("user", "CPU user %", 13, &[]),
        unit: Unit::Percent, kind: Kind::Gauge, over_time: OverTime::Mean, across_hosts: AcrossHosts::Spread,
        storage: Storage::Real, outlier_floor: None, export_name: "headroom_cpu_user_ratio",
        deprecated_names: &[], value: |m| m.cpu_user_pct, summary: &[],
    }
    CpuSystemPct {
        name: "cpu_system_pct", help: "share of CPU time in kernel mode",
        show: show("system", "CPU system %", 14, &[]),
        unit: Unit::Percent, kind: Kind::Gauge, over_time: OverTime::Mean, across_hosts: AcrossHosts::Spread,
        storage: Storage::Real, outlier_floor: None, export_name: "headroom_cpu_system_ratio",
        deprecated_names: &[], value: |m| m.cpu_system_pct, summary: &[],
    }
    CpuIowaitPct {
        name: "cpu_iowait_pct", help: "share of CPU time idle while waiting for IO",
        show: show("iowait", "CPU iowait %", 15, &[]),
        unit: Unit::Percent, kind: Kind::Gauge, over_time: OverTime::Mean, across_hosts: AcrossHosts::Spread,
        storage: Storage::Real, outlier_floor: None, export_name: "headroom_cpu_iowait_ratio",
        deprecated_names: &[], value: |m| m.cpu_iowait_pct, summary: &[],
    }
    CpuStealPct {
        name: "cpu_steal_pct", help: "share of CPU time taken by the hypervisor for other guests",
        show: show("steal", "CPU steal %", 16, &[]),
        unit: Unit::Percent, kind: Kind::Gauge, over_time: OverTime::Mean, across_hosts: AcrossHosts::Spread,
        storage: Storage::Real, outlier_floor: None, export_name: "headroom_cpu_steal_ratio",
        deprecated_names: &[], value: |m| m.cpu_steal_pct, summary: &[],
    }
    Load1 {
        name: "load1", help: "1-minute load average",
        show: show("load1", "Load 1m", 3, &[Place::HostsTable, Place::GroupPage]),
        unit: Unit::Load, kind: Kind::Gauge, over_time: OverTime::Mean, across_hosts: AcrossHosts::Spread,
        storage: Storage::Real, outlier_floor: Some(0.1), export_name: "headroom_load1",
        deprecated_names: &[], value: |m| m.load1, summary: &[],
    }
    MemUsedPct {
        name: "mem_used_pct", help: "memory in use (total minus available), in percent of total",
        show: show("mem", "Memory used %", 2, &[
            Place::HostsTable,
            Place::FleetPage(Stat::P99),
            Place::GroupPage,
            Place::HostLastHour,
            Place::HostDays,
        ]),
        unit: Unit::Percent, kind: Kind::Gauge, over_time: OverTime::Mean, across_hosts: AcrossHosts::Spread,
        storage: Storage::Real, outlier_floor: Some(1.0), export_name: "headroom_memory_used_ratio",
        deprecated_names: &[], value: |m| m.mem_used_pct,
        summary: &[
            col(Stat::Mean, "mem_used_pct_mean", None),
            col(Stat::P50, "mem_used_pct_p50", Some("mem p50")),
            col(Stat::P99, "mem_used_pct_p99", None),
            col(Stat::Max, "mem_used_pct_max", Some("mem max")),
        ],
    }
    MemUsedBytes {
        name: "mem_used_bytes", help: "memory in use (total minus available)",
        show: show("mem_bytes", "Memory used B", 17, &[]),
        unit: Unit::Bytes, kind: Kind::Gauge, over_time: OverTime::Mean, across_hosts: AcrossHosts::SpreadAndSum,
        storage: Storage::Integer, outlier_floor: None, export_name: "headroom_memory_used_bytes",
        deprecated_names: &[], value: |m| count(m.mem_used_bytes), summary: &[],
    }
    SwapUsedBytes {
        name: "swap_used_bytes", help: "swap in use",
        show: show("swap", "Swap used B", 18, &[]),
        unit: Unit::Bytes, kind: Kind::Gauge, over_time: OverTime::Mean, across_hosts: AcrossHosts::Spread,
        storage: Storage::Integer, outlier_floor: None, export_name: "headroom_swap_used_bytes",
        deprecated_names: &[], value: |m| count(m.swap_used_bytes), summary: &[],
    }
    PsiCpu {
        name: "psi_cpu", help: "CPU pressure: share of time some task waited for a CPU (PSI some avg10)",
        show: show("psi_cpu", "CPU pressure %", 19, &[]),
        unit: Unit::Percent, kind: Kind::Gauge, over_time: OverTime::Mean, across_hosts: AcrossHosts::Spread,
        storage: Storage::Real, outlier_floor: Some(1.0), export_name: "headroom_pressure_cpu_some_ratio",
        deprecated_names: &["psi_cpu_some_avg10"], value: |m| m.psi_cpu, summary: &[],
    }
    PsiMemory {
        name: "psi_memory", help: "memory pressure: share of time some task stalled on memory (PSI some avg10)",
        show: show("psi_mem", "Memory pressure %", 20, &[]),
        unit: Unit::Percent, kind: Kind::Gauge, over_time: OverTime::Mean, across_hosts: AcrossHosts::Spread,
        storage: Storage::Real, outlier_floor: Some(1.0), export_name: "headroom_pressure_memory_some_ratio",
        deprecated_names: &["psi_memory_some_avg10"], value: |m| m.psi_memory, summary: &[],
    }
    PsiIo {
        name: "psi_io", help: "IO pressure: share of time some task stalled on IO (PSI some avg10)",
        show: show("psi_io", "IO pressure %", 21, &[]),
        unit: Unit::Percent, kind: Kind::Gauge, over_time: OverTime::Mean, across_hosts: AcrossHosts::Spread,
        storage: Storage::Real, outlier_floor: None, export_name: "headroom_pressure_io_some_ratio",
        deprecated_names: &["psi_io_some_avg10"], value: |m| m.psi_io, summary: &[],
    }
    NetRxBytesPerS {
        name: "net_rx_bytes_per_s", help: "bytes received per second, all interfaces",
        show: show("rx", "Rx B/s", 4, &[Place::HostsTable, Place::GroupPage]),
        unit: Unit::BytesPerSecond, kind: Kind::Rate, over_time: OverTime::Mean,
        across_hosts: AcrossHosts::SpreadAndSum, storage: Storage::Real, outlier_floor: Some(10_000.0),
        export_name: "headroom_network_receive_bytes_per_second", deprecated_names: &[],
        value: |m| m.net_rx_bytes_per_s, summary: &[col(Stat::Sum, "net_rx_bytes_per_s", Some("rx"))],
    }
    NetTxBytesPerS {
        name: "net_tx_bytes_per_s", help: "bytes transmitted per second, all interfaces",
        show: show("tx", "Tx B/s", 5, &[Place::HostsTable, Place::GroupPage]),
        unit: Unit::BytesPerSecond, kind: Kind::Rate, over_time: OverTime::Mean,
        across_hosts: AcrossHosts::SpreadAndSum, storage: Storage::Real, outlier_floor: Some(10_000.0),
        export_name: "headroom_network_transmit_bytes_per_second", deprecated_names: &[],
        value: |m| m.net_tx_bytes_per_s, summary: &[col(Stat::Sum, "net_tx_bytes_per_s", Some("tx"))],
    }
    TcpEstablished {
        name: "tcp_established", help: "TCP connections in ESTABLISHED",
        show: show("estab", "Established connections", 6, &[
            Place::HostsTable,
            Place::FleetPage(Stat::Sum),
            Place::GroupPage,
            Place::HostLastHour,
            Place::HostDays,
        ]),
        unit: Unit::Count, kind: Kind::Count, over_time: OverTime::Mean, across_hosts: AcrossHosts::SpreadAndSum,
        storage: Storage::Integer, outlier_floor: Some(5.0), export_name: "headroom_tcp_established",
        deprecated_names: &[], value: |m| count(m.tcp_established),
        summary: &[
            col(Stat::Sum, "tcp_established_sum", Some("tcp estab")),
            col(Stat::Max, "tcp_established_max", Some("estab max")),
        ],
    }
    TcpTimeWait {
        name: "tcp_time_wait", help: "TCP connections in TIME_WAIT",
        show: show("time_wait", "TIME_WAIT connections", 8, &[Place::HostsTable]),
        unit: Unit::Count, kind: Kind::Count, over_time: OverTime::Mean, across_hosts: AcrossHosts::Spread,
        storage: Storage::Integer, outlier_floor: Some(10.0), export_name: "headroom_tcp_time_wait",
        deprecated_names: &[], value: |m| count(m.tcp_time_wait), summary: &[],
    }
    RetransPerS {
        name: "retrans_per_s", help: "TCP segments retransmitted per second",
        show: show("retrans", "Retransmits /s", 9, &[Place::HostsTable]),
        unit: Unit::PerSecond, kind: Kind::Rate, over_time: OverTime::Mean, across_hosts: AcrossHosts::SpreadAndSum,
        storage: Storage::Real, outlier_floor: Some(1.0), export_name: "headroom_tcp_retransmits_per_second",
        deprecated_names: &[], value: |m| m.retrans_per_s, summary: &[],
    }
    ListenOverflowsPerS {
        name: "listen_overflows_per_s", help: "connections refused per second because an accept queue was full",
        show: show("overflows", "Listen overflows /s", 10, &[Place::HostsTable]),
        unit: Unit::PerSecond, kind: Kind::Rate, over_time: OverTime::Mean, across_hosts: AcrossHosts::SpreadAndSum,
        storage: Storage::Real, outlier_floor: Some(1.0),
        export_name: "headroom_tcp_listen_overflows_per_second", deprecated_names: &[],
        value: |m| m.listen_overflows_per_s, summary: &[col(Stat::Sum, "listen_overflows_per_s", Some("overflows"))],
    }
    ListenDropsPerS {
        name: "listen_drops_per_s", help: "incoming connections dropped per second by listeners, any reason",
        show: show("drops", "Listen drops /s", 11, &[]),
        unit: Unit::PerSecond, kind: Kind::Rate, over_time: OverTime::Mean, across_hosts: AcrossHosts::SpreadAndSum,
        storage: Storage::Real, outlier_floor: None, export_name: "headroom_tcp_listen_drops_per_second",
        deprecated_names: &[], value: |m| m.listen_drops_per_s, summary: &[],
    }
    ConntrackFillPct {
        name: "conntrack_fill_pct", help: "connection tracking table entries in percent of its limit",
        show: show("conntrack", "Conntrack table fill %", 22, &[]),
        unit: Unit::Percent, kind: Kind::Gauge, over_time: OverTime::Mean, across_hosts: AcrossHosts::Spread,
        storage: Storage::Real, outlier_floor: Some(1.0), export_name: "headroom_conntrack_fill_ratio",
        deprecated_names: &[], value: |m| m.conntrack_fill_pct, summary: &[],
    }
    MaxAcceptQueueFillPct {
        name: "max_accept_queue_fill_pct", help: "the fullest listener accept queue, in percent of its limit",
        show: show("accept", "Fullest accept queue %", 7, &[Place::GroupPage, Place::HostLastHour]),
        unit: Unit::Percent, kind: Kind::Gauge, over_time: OverTime::Mean, across_hosts: AcrossHosts::Spread,
        storage: Storage::Real, outlier_floor: None, export_name: "headroom_accept_queue_max_fill_ratio",
        deprecated_names: &[], value: |m| m.max_accept_queue_fill_pct, summary: &[],
    }
    CpuBusiestCorePct {
        name: "cpu_busiest_core_pct",
        show: show("core_max", "Busiest core %", 12, &[]),
        help: "busy share of the busiest core: one saturated core on a mostly idle host shows here",
        unit: Unit::Percent, kind: Kind::Gauge, over_time: OverTime::Mean, across_hosts: AcrossHosts::Spread,
        storage: Storage::Real, outlier_floor: Some(1.0), export_name: "headroom_cpu_busiest_core_ratio",
        deprecated_names: &[], value: |m| m.cpu_busiest_core_pct, summary: &[],
    }
}

/// How a name given by a user resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Current(Metric),
    /// An old name of the metric: accepted, and the caller warns once.
    Deprecated(Metric),
}

impl Metric {
    /// The metric's declaration.
    pub fn def(self) -> &'static MetricDef {
        &CATALOGUE[self.index()]
    }

    /// Position in [`Metric::ALL`], in rollup blobs and in per-metric arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// The metric of a current name.
    pub fn from_name(name: &str) -> Option<Metric> {
        CATALOGUE.iter().find(|d| d.name == name).map(|d| d.metric)
    }

    /// The metric of a current or deprecated name.
    pub fn lookup(name: &str) -> Option<Lookup> {
        if let Some(metric) = Metric::from_name(name) {
            return Some(Lookup::Current(metric));
        }
        CATALOGUE
            .iter()
            .find(|d| d.deprecated_names.contains(&name))
            .map(|d| Lookup::Deprecated(d.metric))
    }

    /// The metric's value in a sample's derived metrics, `None` when it was not measured.
    pub fn value(self, metrics: &HostMetrics) -> Option<f64> {
        (self.def().value)(metrics)
    }

    /// Whether the metric takes part in outlier scoring (it has a floor).
    pub fn outlier_floor(self) -> Option<f64> {
        self.def().outlier_floor
    }

    /// The metrics scored for outliers, in catalogue order.
    pub fn outlier_metrics() -> impl Iterator<Item = Metric> {
        Metric::ALL.into_iter().filter(|m| m.outlier_floor().is_some())
    }

    /// Every current name, comma-separated, for error messages and help.
    pub fn names() -> String {
        CATALOGUE.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")
    }

    /// A value with its unit, for explanations and tables: `92.0%`, `1.2 MB/s`, `3.1/s`, `412`.
    pub fn format_value(self, value: f64) -> String {
        format_in(self.def().unit, value)
    }
}

/// A value printed in a unit.
pub fn format_in(unit: Unit, value: f64) -> String {
    let scaled = |suffix: &str| {
        let magnitude = value.abs();
        if magnitude >= 1e9 {
            format!("{:.1} G{suffix}", value / 1e9)
        } else if magnitude >= 1e6 {
            format!("{:.1} M{suffix}", value / 1e6)
        } else if magnitude >= 1e3 {
            format!("{:.1} k{suffix}", value / 1e3)
        } else {
            format!("{value:.0} {suffix}")
        }
    };
    match unit {
        Unit::Percent => format!("{value:.1}%"),
        Unit::PerSecond => format!("{value:.1}/s"),
        Unit::Count => format!("{value:.0}"),
        Unit::Load => format!("{value:.2}"),
        Unit::BytesPerSecond => scaled("B/s"),
        Unit::Bytes => scaled("B"),
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match Metric::lookup(&name) {
            Some(Lookup::Current(metric) | Lookup::Deprecated(metric)) => Ok(metric),
            None => Err(serde::de::Error::custom(format!(
                "unknown metric \"{name}\" (use one of {})",
                Metric::names()
            ))),
        }
    }
}

/// Every metric's value for one sample, in catalogue order.
pub fn metric_values(metrics: &HostMetrics) -> [Option<f64>; Metric::COUNT] {
    Metric::ALL.map(|metric| metric.value(metrics))
}

#[cfg(test)]
mod tests;
