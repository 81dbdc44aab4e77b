//! One sample of one host: the raw counters and readings the agent sends, as the kernel reports them.

use super::bounds::{self, MAX_CORES, MAX_FAILED_FAMILIES, MAX_INTERFACES, MAX_LISTENERS};
use serde::{Deserialize, Deserializer, Serialize};

/// One sample of one host at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Per-host sequence number, starting at 1, without gaps.
    pub seq: u64,
    /// Wall-clock time of the sample, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    pub cpu: Option<CpuSample>,
    pub memory: Option<MemorySample>,
    pub pressure: Option<Pressure>,
    #[serde(deserialize_with = "bounded_interfaces")]
    pub network: Vec<InterfaceCounters>,
    pub sockets: Option<SocketSample>,
    /// Families that failed to read this tick; the rest of the sample is intact.
    #[serde(deserialize_with = "bounded_families")]
    pub failed: Vec<Family>,
}

/// A metric family the agent reads; named in errors and in `Sample::failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Family {
    Cpu,
    LoadAverage,
    Memory,
    Pressure,
    Network,
    TcpStates,
    Listeners,
    Sockstat,
    Snmp,
    Conntrack,
    PortRange,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Cpu => "cpu",
            Family::LoadAverage => "loadavg",
            Family::Memory => "memory",
            Family::Pressure => "pressure",
            Family::Network => "network",
            Family::TcpStates => "tcp_states",
            Family::Listeners => "listeners",
            Family::Sockstat => "sockstat",
            Family::Snmp => "snmp",
            Family::Conntrack => "conntrack",
            Family::PortRange => "port_range",
        }
    }
}

/// Cumulative CPU time per state, in clock ticks (USER_HZ), as /proc/stat reports it.
///
/// Kernels without a column (steal before 2.6.11) report it as 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTimes {
    /// Every tick counted, busy or not. Saturating: the values come from agents, and absurd ones must
    /// not overflow (a panic in ingest, or a wrapped total in release builds).
    pub fn total(&self) -> u64 {
        self.busy().saturating_add(self.idle).saturating_add(self.iowait)
    }

    /// Ticks spent doing work (iowait counts as idle: the CPU was free to run something else).
    pub fn busy(&self) -> u64 {
        [self.nice, self.system, self.irq, self.softirq, self.steal]
            .into_iter()
            .fold(self.user, u64::saturating_add)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuSample {
    pub total: CpuTimes,
    #[serde(deserialize_with = "bounded_cores")]
    pub per_core: Vec<CpuTimes>,
    pub cores: u32,
    /// Load averages over 1, 5 and 15 minutes; absent when /proc/loadavg could not be read.
    pub load: Option<LoadAverage>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadAverage {
    pub one: f32,
    pub five: f32,
    pub fifteen: f32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemorySample {
    pub total_bytes: u64,
    /// MemAvailable, or on kernels before 3.14 an estimate of free + buffers + cached.
    pub available_bytes: u64,
    /// total − available.
    pub used_bytes: u64,
    pub cached_bytes: u64,
    pub buffers_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
    /// True when the kernel has no MemAvailable and `available_bytes` is the estimate.
    pub available_estimated: bool,
}

/// One line of a /proc/pressure file: the "some" average over 10 s (percent) and total stall time (µs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PressureLine {
    pub some_avg10: f32,
    pub some_total_us: u64,
}

/// Pressure stall information; each resource is absent where the kernel has no file for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Pressure {
    pub cpu: Option<PressureLine>,
    pub memory: Option<PressureLine>,
    pub io: Option<PressureLine>,
}

/// Raw counters of one network interface, from /proc/net/dev.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceCounters {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_drops: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_drops: u64,
}

/// TCP states as the kernel numbers them (include/net/tcp_states.h). Index `state as usize - 1` in `TcpStates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum TcpState {
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait1 = 4,
    FinWait2 = 5,
    TimeWait = 6,
    Close = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
    /// Half-open connection (request socket) awaiting the final ACK of the handshake, since Linux 4.4.
    NewSynRecv = 12,
}

impl TcpState {
    pub const ALL: [TcpState; 12] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
        TcpState::NewSynRecv,
    ];

    /// The state with the kernel's number, if it is one.
    pub fn from_kernel(number: u8) -> Option<TcpState> {
        TcpState::ALL.get(usize::from(number).checked_sub(1)?).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            TcpState::Established => "established",
            TcpState::SynSent => "syn_sent",
            TcpState::SynRecv => "syn_recv",
            TcpState::FinWait1 => "fin_wait1",
            TcpState::FinWait2 => "fin_wait2",
            TcpState::TimeWait => "time_wait",
            TcpState::Close => "close",
            TcpState::CloseWait => "close_wait",
            TcpState::LastAck => "last_ack",
            TcpState::Listen => "listen",
            TcpState::Closing => "closing",
            TcpState::NewSynRecv => "new_syn_recv",
        }
    }
}

/// Count of TCP sockets per state, IPv4 and IPv6 together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpStates {
    pub counts: [u32; 12],
}

impl TcpStates {
    pub fn get(&self, state: TcpState) -> u32 {
        self.counts[state as usize - 1]
    }

    pub fn add(&mut self, state: TcpState, n: u32) {
        let slot = &mut self.counts[state as usize - 1];
        *slot = slot.saturating_add(n);
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }
}

/// Where the per-state counts came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SocketSource {
    #[default]
    Netlink,
    ProcNet,
}

/// One listening TCP port (all addresses that listen on it merged).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub port: u16,
    /// ESTABLISHED connections whose local port is this one.
    pub established: u32,
    /// Connections waiting in the accept queue (completed handshakes not yet accepted).
    pub accept_queue: u32,
    /// The accept queue's limit (the listen backlog); 0 when unknown (read from /proc, which does not show it).
    pub accept_queue_limit: u32,
}

/// /proc/net/sockstat and sockstat6.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sockstat {
    pub sockets_used: u64,
    pub tcp_inuse: u64,
    pub tcp_orphan: u64,
    pub tcp_time_wait: u64,
    pub tcp_alloc: u64,
    /// TCP buffer memory in pages.
    pub tcp_mem_pages: u64,
    pub tcp6_inuse: u64,
    pub udp_inuse: u64,
    pub udp6_inuse: u64,
}

/// Cumulative TCP counters from /proc/net/snmp (Tcp:) and /proc/net/netstat (TcpExt:).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpCounters {
    pub active_opens: u64,
    pub passive_opens: u64,
    /// A gauge, not a counter: connections currently ESTABLISHED or CLOSE_WAIT.
    pub curr_estab: u64,
    pub retrans_segs: u64,
    pub in_errs: u64,
    pub out_rsts: u64,
    pub listen_overflows: u64,
    pub listen_drops: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conntrack {
    pub count: u64,
    pub max: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SocketSample {
    /// Per-state counts: LISTEN, ESTABLISHED and TIME_WAIT from this tick, the rest from the last full dump
    /// (docs/PROTOCOL.md); absent when it failed.
    pub tcp_states: Option<TcpStates>,
    /// How old the last full dump is, in milliseconds (0: this tick): the age of the per-port established
    /// counts and of the states other than LISTEN, ESTABLISHED and TIME_WAIT.
    pub tcp_states_age_ms: u32,
    pub source: SocketSource,
    /// Listening ports, sorted by port.
    #[serde(deserialize_with = "bounded_listeners")]
    pub listeners: Vec<Listener>,
    pub sockstat: Option<Sockstat>,
    pub tcp: Option<TcpCounters>,
    pub conntrack: Option<Conntrack>,
    pub ephemeral_ports: Option<PortRange>,
}

fn bounded_interfaces<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<InterfaceCounters>, D::Error> {
    bounds::vec(d, MAX_INTERFACES, "network interfaces")
}

fn bounded_families<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Family>, D::Error> {
    bounds::vec(d, MAX_FAILED_FAMILIES, "failed families")
}

fn bounded_cores<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<CpuTimes>, D::Error> {
    bounds::vec(d, MAX_CORES, "per-core CPU entries")
}

fn bounded_listeners<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Listener>, D::Error> {
    bounds::vec(d, MAX_LISTENERS, "listening ports")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 11: counters from agent data never overflow the sums.
    #[test]
    fn issue_11_cpu_totals_saturate() {
        let times = CpuTimes {
            user: u64::MAX,
            idle: u64::MAX,
            steal: 5,
            ..Default::default()
        };
        assert_eq!(times.busy(), u64::MAX);
        assert_eq!(times.total(), u64::MAX);
    }

    #[test]
    fn tcp_state_numbers_match_the_kernel() {
        assert_eq!(TcpState::from_kernel(1), Some(TcpState::Established));
        assert_eq!(TcpState::from_kernel(10), Some(TcpState::Listen));
        assert_eq!(TcpState::from_kernel(12), Some(TcpState::NewSynRecv));
        assert_eq!(TcpState::from_kernel(0), None);
        assert_eq!(TcpState::from_kernel(13), None);
        let mut states = TcpStates::default();
        states.add(TcpState::TimeWait, 3);
        assert_eq!(states.get(TcpState::TimeWait), 3);
        assert_eq!(states.total(), 3);
    }
}
